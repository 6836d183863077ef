//! No request is ever followed to another location, by either adapter: a `302`, `303`, `307`
//! or `308` from the token, device authorization, revocation or metadata endpoint ends that
//! request with a clear, typed error, and the host it pointed to receives nothing. An API's
//! redirect is handed back to the caller, and the access token stays where it was sent.
//!
//! Every case runs against two real servers on 127.0.0.1: one that redirects, and one, on
//! another port, that answers with tokens and must never be reached.

#[path = "support/local_http.rs"]
mod local_http;

use std::future::Future;
use std::time::Duration;

use http::Request;

use local_http::LocalServer;
use tokenflow::adapters::blocking::{self, BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{self as async_adapter, AsyncClient, ReqwestTransport};
use tokenflow::adapters::{LogoutReport, MemoryStore};
use tokenflow::discovery::DiscoveryError;
use tokenflow::refused_redirect::Endpoint;
use tokenflow::{Config, Credentials, FailureCause, Origin, RedirectTarget, RefusedRedirect};

const STATUSES: [u16; 4] = [302, 303, 307, 308];
const PASSWORD: &str = "pw-must-stay-home";
const SECRET: &str = "secret-must-stay-home";

/// The redirecting server and the one it points to, which answers with tokens.
fn servers(status: u16) -> (LocalServer, LocalServer) {
    let elsewhere = LocalServer::tokens("AT-FROM-ELSEWHERE");
    let redirecting = LocalServer::redirecting(status, &elsewhere.url("/stolen?code=1"));
    (redirecting, elsewhere)
}

fn config(token_endpoint: String) -> tokenflow::ConfigBuilder {
    Config::builder(token_endpoint, "client")
        .client_secret(SECRET)
        .request_timeout(Duration::from_secs(5))
}

/// A ureq agent that follows up to ten redirects, as ureq's defaults do: the transport must
/// override it for every request.
fn following_ureq() -> UreqTransport {
    let agent =
        ureq::Agent::new_with_config(ureq::Agent::config_builder().max_redirects(10).build());
    UreqTransport::with_agent(agent)
}

/// A reqwest builder told to follow up to ten redirects: the transport must override it.
fn following_reqwest() -> ReqwestTransport {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10));
    ReqwestTransport::from_builder(builder).expect("a reqwest client")
}

fn assert_refused(
    redirect: &RefusedRedirect,
    endpoint: Endpoint,
    status: u16,
    elsewhere: &LocalServer,
) {
    assert_eq!(redirect.endpoint, endpoint, "{redirect}");
    assert_eq!(redirect.status.as_u16(), status, "{redirect}");
    let origin = Origin::parse(&elsewhere.origin()).expect("an origin");
    assert_eq!(
        redirect.target,
        RedirectTarget::Origin(origin),
        "{redirect}"
    );
}

fn assert_cause(cause: &FailureCause, endpoint: Endpoint, status: u16, elsewhere: &LocalServer) {
    match cause {
        FailureCause::Redirect(redirect) => assert_refused(redirect, endpoint, status, elsewhere),
        other => panic!("{status}: not a refused redirect: {other:?}"),
    }
}

/// The message says what happened and where, and nothing secret.
fn assert_clear(message: &str, status: u16, elsewhere: &LocalServer) {
    assert!(
        message.contains(&format!(
            "answered a redirect ({status}) to {}",
            elsewhere.origin()
        )),
        "{message}"
    );
    assert!(
        message.contains("redirects are never followed"),
        "{message}"
    );
    for secret in [PASSWORD, SECRET, "stolen", "code=1", "AT-IN-REDIRECT"] {
        assert!(!message.contains(secret), "{secret} in {message}");
    }
    assert!(message.len() < 400, "{message}");
}

fn assert_untouched(elsewhere: &LocalServer, status: u16) {
    assert_eq!(
        elsewhere.connections(),
        0,
        "{status}: the other host received {:?}",
        elsewhere.received()
    );
}

/// An API's redirect came back as the answer (`returned`), after one request that carried the
/// token from home, and the place it pointed to heard nothing.
fn assert_redirect_returned(
    returned: u16,
    status: u16,
    redirecting: &LocalServer,
    elsewhere: &LocalServer,
) {
    assert_eq!(returned, status);
    let sent = redirecting.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("authorization"), Some("Bearer AT-HOME"));
    assert_untouched(elsewhere, status);
}

fn assert_revocations_refused(report: &LogoutReport, status: u16, elsewhere: &LocalServer) {
    assert_eq!(report.failures.len(), 2, "{status}: {report:?}");
    assert!(report.revoked.is_empty(), "{status}: {report:?}");
    for failure in &report.failures {
        assert_eq!(failure.attempts, 1, "a redirect is not retried");
        assert_cause(&failure.cause, Endpoint::Revocation, status, elsewhere);
        let message = failure.to_string();
        assert!(!message.contains("AT-HOME"), "{message}");
        assert!(
            message.contains("never followed for revocation requests"),
            "{message}"
        );
    }
}

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("done within 30 s")
}

// The blocking adapter, over ureq.

#[test]
fn blocking_token_requests_are_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let config = config(redirecting.url("/token")).build().unwrap();
        let client = BlockingClient::builder(config, following_ureq())
            .store(MemoryStore::new())
            .build()
            .unwrap();
        let error = client
            .login(Credentials::password("joe", PASSWORD))
            .unwrap_err();
        let blocking::Error::TokenRequest(flow) = &error else {
            panic!("{status}: {error:?}");
        };
        assert_eq!(flow.attempts, 1, "a redirect is not retried");
        assert_cause(&flow.cause, Endpoint::Token, status, &elsewhere);
        assert_clear(&error.to_string(), status, &elsewhere);
        assert!(
            error
                .to_string()
                .contains("the token endpoint answered a redirect")
        );
        assert_eq!(redirecting.received().len(), 1);
        assert_untouched(&elsewhere, status);
    }
}

#[test]
fn blocking_device_authorization_is_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let config = config(redirecting.url("/token"))
            .device_authorization_endpoint(redirecting.url("/device"))
            .build()
            .unwrap();
        let client = BlockingClient::builder(config, following_ureq())
            .store(MemoryStore::new())
            .build()
            .unwrap();
        let error = client
            .login_with_device(|code| panic!("no code was issued: {code:?}"))
            .unwrap_err();
        let blocking::Error::TokenRequest(flow) = &error else {
            panic!("{status}: {error:?}");
        };
        assert_cause(
            &flow.cause,
            Endpoint::DeviceAuthorization,
            status,
            &elsewhere,
        );
        assert_clear(&error.to_string(), status, &elsewhere);
        assert_untouched(&elsewhere, status);
    }
}

#[test]
fn blocking_revocations_are_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let home = LocalServer::tokens("AT-HOME");
        let config = config(home.url("/token"))
            .revocation_endpoint(redirecting.url("/revoke"))
            .build()
            .unwrap();
        let client = BlockingClient::builder(config, following_ureq())
            .store(MemoryStore::new())
            .build()
            .unwrap();
        client.login(Credentials::ClientCredentials).unwrap();
        let report = client.logout().unwrap();
        assert_revocations_refused(&report, status, &elsewhere);
        assert_eq!(redirecting.received().len(), 2);
        assert_untouched(&elsewhere, status);
    }
}

#[test]
fn blocking_metadata_is_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let error = blocking::fetch_metadata(&following_ureq(), &redirecting.origin()).unwrap_err();
        let blocking::Error::Discovery(DiscoveryError::Redirect(redirect)) = &error else {
            panic!("{status}: {error:?}");
        };
        assert_refused(redirect, Endpoint::Metadata, status, &elsewhere);
        assert_clear(&error.to_string(), status, &elsewhere);
        assert_eq!(
            redirecting.received().len(),
            1,
            "no other document is tried"
        );
        assert_untouched(&elsewhere, status);
    }
}

/// API timeouts to send with: the default, and none (which spares the transports their
/// per-request settings and timers, but never their refusal of redirects).
const API_TIMEOUTS: [Duration; 2] = [tokenflow::adapters::DEFAULT_API_TIMEOUT, Duration::MAX];

#[test]
fn blocking_api_redirects_are_returned_and_the_token_stays_home() {
    let transports: [fn() -> UreqTransport; 2] = [following_ureq, UreqTransport::new];
    for status in STATUSES {
        for (transport, api_timeout) in transports
            .iter()
            .flat_map(|transport| API_TIMEOUTS.map(|timeout| (transport, timeout)))
        {
            blocking_api_redirect_is_returned(status, transport(), api_timeout);
        }
    }
}

fn blocking_api_redirect_is_returned(status: u16, transport: UreqTransport, api_timeout: Duration) {
    let (redirecting, elsewhere) = servers(status);
    let home = LocalServer::tokens("AT-HOME");
    let config = config(home.url("/token")).build().unwrap();
    let client = BlockingClient::builder(config, transport)
        .store(MemoryStore::new())
        .credentials(|| Some(Credentials::ClientCredentials))
        .api_timeout(api_timeout)
        .build()
        .unwrap();
    let request = Request::get(redirecting.url("/api"))
        .body(Vec::new())
        .unwrap();
    let response = client.send(request).unwrap();
    assert_redirect_returned(response.status().as_u16(), status, &redirecting, &elsewhere);
}

// The async adapter, over reqwest.

#[tokio::test]
async fn async_token_requests_are_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let config = config(redirecting.url("/token")).build().unwrap();
        let client = AsyncClient::builder(config, following_reqwest())
            .build()
            .unwrap();
        let error = bounded(client.login(Credentials::password("joe", PASSWORD)))
            .await
            .unwrap_err();
        let async_adapter::Error::TokenRequest(flow) = &error else {
            panic!("{status}: {error:?}");
        };
        assert_eq!(flow.attempts, 1, "a redirect is not retried");
        assert_cause(&flow.cause, Endpoint::Token, status, &elsewhere);
        assert_clear(&error.to_string(), status, &elsewhere);
        assert_eq!(redirecting.received().len(), 1);
        assert_untouched(&elsewhere, status);
        // The tokens the other host would have given are nowhere.
        assert!(bounded(client.bearer()).await.is_err());
        client.shutdown().await;
    }
}

#[tokio::test]
async fn async_device_authorization_is_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let config = config(redirecting.url("/token"))
            .device_authorization_endpoint(redirecting.url("/device"))
            .build()
            .unwrap();
        let client = AsyncClient::builder(config, following_reqwest())
            .build()
            .unwrap();
        let error = bounded(client.login_with_device(|code| panic!("no code: {code:?}")))
            .await
            .unwrap_err();
        let async_adapter::Error::TokenRequest(flow) = &error else {
            panic!("{status}: {error:?}");
        };
        assert_cause(
            &flow.cause,
            Endpoint::DeviceAuthorization,
            status,
            &elsewhere,
        );
        assert_clear(&error.to_string(), status, &elsewhere);
        assert_untouched(&elsewhere, status);
        client.shutdown().await;
    }
}

#[tokio::test]
async fn async_revocations_are_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let home = LocalServer::tokens("AT-HOME");
        let config = config(home.url("/token"))
            .revocation_endpoint(redirecting.url("/revoke"))
            .build()
            .unwrap();
        let client = AsyncClient::builder(config, following_reqwest())
            .build()
            .unwrap();
        bounded(client.login(Credentials::ClientCredentials))
            .await
            .unwrap();
        let report = bounded(client.logout()).await.unwrap();
        assert_revocations_refused(&report, status, &elsewhere);
        assert_eq!(redirecting.received().len(), 2);
        assert_untouched(&elsewhere, status);
        client.shutdown().await;
    }
}

#[tokio::test]
async fn async_metadata_is_never_redirected() {
    for status in STATUSES {
        let (redirecting, elsewhere) = servers(status);
        let transport = following_reqwest();
        let error = bounded(async_adapter::fetch_metadata(
            &transport,
            &redirecting.origin(),
        ))
        .await
        .unwrap_err();
        let async_adapter::Error::Discovery(DiscoveryError::Redirect(redirect)) = &error else {
            panic!("{status}: {error:?}");
        };
        assert_refused(redirect, Endpoint::Metadata, status, &elsewhere);
        assert_clear(&error.to_string(), status, &elsewhere);
        assert_eq!(
            redirecting.received().len(),
            1,
            "no other document is tried"
        );
        assert_untouched(&elsewhere, status);
    }
}

#[tokio::test]
async fn async_api_redirects_are_returned_and_the_token_stays_home() {
    for (status, api_timeout) in STATUSES
        .iter()
        .flat_map(|&status| API_TIMEOUTS.map(|timeout| (status, timeout)))
    {
        let (redirecting, elsewhere) = servers(status);
        let home = LocalServer::tokens("AT-HOME");
        let config = config(home.url("/token")).build().unwrap();
        // The default transport, as the README's quickstart builds it.
        let client = AsyncClient::builder(config, ReqwestTransport::new().unwrap())
            .credentials(|| Some(Credentials::ClientCredentials))
            .api_timeout(api_timeout)
            .build()
            .unwrap();
        let request = Request::get(redirecting.url("/api"))
            .body(Vec::new())
            .unwrap();
        let response = bounded(client.send(request)).await.unwrap();
        assert_redirect_returned(response.status().as_u16(), status, &redirecting, &elsewhere);
        client.shutdown().await;
    }
}
