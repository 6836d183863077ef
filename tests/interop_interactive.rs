//! Interactive logins through both adapters against oidc-provider, driven headless: the
//! authorization-code grant with PKCE through the loopback redirect listener, the device
//! grant approved, denied and left to expire, logout with revocation, and discovery.
//!
//! The browser is a small cookie-jar client over ureq: it opens the authorization URL and
//! follows redirects through the server's auto-approving interaction until it reaches the
//! redirect URI, which it opens too, as a browser would, so that the loopback listener gets
//! the callback.

#[path = "support/servers.rs"]
mod servers;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use http::{Request, StatusCode};
use serde_json::{Value, json};

use servers::{PKCE_CLIENT, RunningServer, count, form_encode};
use tokenflow::adapters::blocking::{self, BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{self as async_adapter, AsyncClient, ReqwestTransport};
use tokenflow::adapters::{LoopbackRedirect, MemoryStore, TokenStore};
use tokenflow::discovery::{DiscoveryError, ProviderMetadata};
use tokenflow::{AuthorizationError, Config, TokenTypeHint};

/// How long a browser round trip or a callback may take.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

const SCOPE: &str = "openid offline_access api";

// --- a headless browser

/// Follows redirects with a cookie jar, as a browser does, without running any script.
struct Browser {
    agent: ureq::Agent,
    /// Cookies by authority, then by (path, name).
    jar: HashMap<String, HashMap<(String, String), String>>,
    /// Every URL opened, in order.
    visited: Vec<String>,
}

impl Browser {
    fn new() -> Browser {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Browser {
            agent,
            jar: HashMap::new(),
            visited: Vec::new(),
        }
    }

    /// Opens `url` and follows redirects until one leads to `stop_at`. Returns that URL
    /// without opening it.
    fn follow_until(&mut self, url: &str, stop_at: &str) -> String {
        let mut url = url.to_owned();
        for _ in 0..20 {
            if url.starts_with(stop_at) {
                return url;
            }
            url = match self.get(&url) {
                (status, Some(location)) if status.is_redirection() => location,
                (status, _) => panic!("{url} answered {status} before reaching {stop_at}"),
            };
        }
        panic!("too many redirects; visited {:?}", self.visited);
    }

    /// Opens `url` and follows every redirect; returns the final status and body.
    fn open(&mut self, url: &str) -> (StatusCode, String) {
        let mut url = url.to_owned();
        for _ in 0..20 {
            let response = self.request(&url);
            let status = response.status();
            if status.is_redirection() {
                url = self.location(&url, &response);
                continue;
            }
            let body = response
                .into_body()
                .read_to_string()
                .unwrap_or_else(|e| panic!("reading {url}: {e}"));
            return (status, body);
        }
        panic!("too many redirects; visited {:?}", self.visited);
    }

    fn get(&mut self, url: &str) -> (StatusCode, Option<String>) {
        let response = self.request(url);
        let status = response.status();
        let location = status
            .is_redirection()
            .then(|| self.location(url, &response));
        (status, location)
    }

    fn request(&mut self, url: &str) -> http::Response<ureq::Body> {
        self.visited.push(url.to_owned());
        let (authority, path) = split(url);
        let cookie = self
            .jar
            .get(&authority)
            .map(|cookies| {
                cookies
                    .iter()
                    .filter(|((cookie_path, _), _)| path.starts_with(cookie_path.as_str()))
                    .map(|((_, name), value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let mut request = self.agent.get(url).header("accept", "text/html");
        if !cookie.is_empty() {
            request = request.header("cookie", &cookie);
        }
        let response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.keep_cookies(&authority, &response);
        response
    }

    fn keep_cookies(&mut self, authority: &str, response: &http::Response<ureq::Body>) {
        for header in response.headers().get_all("set-cookie") {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = "/".to_owned();
            let mut expired = false;
            for attribute in parts {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.to_ascii_lowercase().as_str() {
                    "path" => path = val.to_owned(),
                    "max-age" => expired |= val.trim().starts_with('0') || val.starts_with('-'),
                    "expires" => expired |= val.contains("1970"),
                    _ => {}
                }
            }
            let cookies = self.jar.entry(authority.to_owned()).or_default();
            let key = (path, name.to_owned());
            if expired {
                cookies.remove(&key);
            } else {
                cookies.insert(key, value.to_owned());
            }
        }
    }

    /// The redirect target, resolved against `base` when it is relative.
    fn location(&self, base: &str, response: &http::Response<ureq::Body>) -> String {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{base}: a redirect without Location"))
            .to_owned();
        if location.starts_with("http://") || location.starts_with("https://") {
            return location;
        }
        let (authority, path) = split(base);
        if location.starts_with('/') {
            return format!("http://{authority}{location}");
        }
        let directory = path
            .split('?')
            .next()
            .and_then(|p| p.rsplit_once('/'))
            .map_or("", |(dir, _)| dir);
        format!("http://{authority}{directory}/{location}")
    }
}

/// `http://authority/path?query` → (authority, /path?query).
fn split(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// Opens the authorization URL in a headless browser on another thread, which follows the
/// interaction and opens the redirect URI; returns what the loopback listener received.
fn browse_to_listener(listener: &LoopbackRedirect, authorization_url: &str) -> String {
    let url = authorization_url.to_owned();
    let browser = thread::spawn(move || Browser::new().open(&url));
    let callback = listener
        .wait(CALLBACK_TIMEOUT)
        .expect("a callback at the listener");
    let (status, page) = browser.join().expect("the browser");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("close this window"), "{page}");
    callback
}

// --- server and configuration

fn server(options: Value) -> RunningServer {
    RunningServer::oidc(options)
}

fn metadata_blocking(server: &RunningServer) -> ProviderMetadata {
    blocking::fetch_metadata(&UreqTransport::new(), &server.issuer).expect("the metadata")
}

/// The client configuration from discovery. `prompt=consent` is kept in the authorization
/// endpoint's query: oidc-provider grants `offline_access` (and so a refresh token) to the
/// code flow only when consent is prompted (OpenID Connect Core §11).
fn pkce_config(metadata: &ProviderMetadata, redirect_uri: &str) -> Config {
    let authorization = metadata
        .authorization_endpoint
        .as_deref()
        .expect("an authorization endpoint");
    metadata
        .config_builder(PKCE_CLIENT.id)
        .authorization_endpoint(format!("{authorization}?prompt=consent"))
        .redirect_uri(redirect_uri)
        .scope(SCOPE)
        .request_timeout(Duration::from_secs(10))
        .build()
        .expect("a valid configuration")
}

fn resource(server: &RunningServer) -> Request<Vec<u8>> {
    Request::get(server.resource_url())
        .body(Vec::new())
        .expect("a request")
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(body)))
}

/// Presents `refresh_token` straight to the token endpoint as the public client.
fn raw_refresh(server: &RunningServer, refresh_token: &str) -> (u16, Value) {
    let body = format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}",
        PKCE_CLIENT.id,
        form_encode(refresh_token)
    );
    let (status, text) = server.plain_request("POST", "/token", &body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Calls the resource with `authorization` as it is.
fn raw_resource(server: &RunningServer, authorization: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .get(server.resource_url())
        .header("authorization", authorization)
        .call()
        .expect("a response from the resource")
        .status()
        .as_u16()
}

/// A token store both the client and the test can read.
#[derive(Clone, Default)]
struct SharedStore(Arc<MemoryStore>);

impl TokenStore for SharedStore {
    fn load(&self) -> Result<Option<tokenflow::StoredTokens>, tokenflow::adapters::StoreError> {
        self.0.load()
    }
    fn save(
        &self,
        tokens: &tokenflow::StoredTokens,
    ) -> Result<(), tokenflow::adapters::StoreError> {
        self.0.save(tokens)
    }
    fn clear(&self) -> Result<(), tokenflow::adapters::StoreError> {
        self.0.clear()
    }
}

impl SharedStore {
    fn refresh_token(&self) -> String {
        self.load()
            .expect("the store")
            .and_then(|t| t.refresh_token)
            .expect("a stored refresh token")
            .expose_secret()
            .to_owned()
    }

    fn access_token(&self) -> String {
        self.load()
            .expect("the store")
            .and_then(|t| t.access_token)
            .expect("a stored access token")
            .expose_secret()
            .to_owned()
    }
}

/// After a logout: the old refresh token is refused by the server and the access token is no
/// longer accepted by the resource.
fn assert_revoked(server: &RunningServer, refresh_token: &str, access_token: &str) {
    let (status, body) = raw_refresh(server, refresh_token);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(raw_resource(server, &format!("Bearer {access_token}")), 401);
    assert_eq!(server.stats()["revocations"], 2);
}

// --- the blocking adapter

mod blocking_adapter {
    use super::*;

    fn code_login(server: &RunningServer) -> (BlockingClient, SharedStore) {
        let (listener, redirect_uri) = LoopbackRedirect::bind().expect("a loopback listener");
        let config = pkce_config(&metadata_blocking(server), &redirect_uri);
        let store = SharedStore::default();
        let client = BlockingClient::builder(config, UreqTransport::new())
            .store(store.clone())
            .build()
            .expect("a client");
        let request = client.start_authorization().expect("an authorization URL");
        let callback = browse_to_listener(&listener, &request.url);
        assert!(callback.starts_with(&redirect_uri), "{callback}");
        assert!(callback.contains("iss="), "RFC 9207: {callback}");
        client
            .complete_authorization(&callback)
            .expect("the code exchange");
        (client, store)
    }

    #[test]
    fn code_with_pkce_then_an_api_call_and_a_refresh() {
        let server = server(json!({"accessTokenTtl": 2}));
        let (client, store) = code_login(&server);
        let first = client.send(resource(&server)).expect("the API call");
        assert_eq!(first.status(), 200);
        assert_eq!(json_body(first.body())["sub"], "joe");
        let refresh_token = store.refresh_token();

        thread::sleep(Duration::from_millis(2500));
        let second = client.send(resource(&server)).expect("the API call");
        assert_eq!(second.status(), 200, "{}", json_body(second.body()));
        assert_ne!(store.refresh_token(), refresh_token, "rotated");
        let stats = server.stats();
        assert_eq!(count(&stats, "token_requests", "authorization_code"), 1);
        assert!(
            count(&stats, "token_requests", "refresh_token") >= 1,
            "{stats}"
        );
    }

    #[test]
    fn a_tampered_state_is_refused() {
        let server = server(json!({}));
        let (_listener, redirect_uri) = LoopbackRedirect::bind().expect("a loopback listener");
        let config = pkce_config(&metadata_blocking(&server), &redirect_uri);
        let client = BlockingClient::builder(config, UreqTransport::new())
            .build()
            .expect("a client");
        let request = client.start_authorization().expect("an authorization URL");
        let callback = Browser::new().follow_until(&request.url, &redirect_uri);
        let tampered = callback.replace(
            &format!("state={}", request.state),
            "state=forged-by-an-attacker",
        );
        assert_ne!(tampered, callback);
        let error = client.complete_authorization(&tampered).unwrap_err();
        assert!(
            matches!(
                error,
                blocking::Error::Authorization(AuthorizationError::StateMismatch)
            ),
            "{error:?}"
        );
        assert_eq!(
            count(&server.stats(), "token_requests", "authorization_code"),
            0
        );
    }

    fn device_client(server: &RunningServer) -> BlockingClient {
        let config = metadata_blocking(server)
            .config_builder(PKCE_CLIENT.id)
            .scope(SCOPE)
            .request_timeout(Duration::from_secs(10))
            .build()
            .expect("a valid configuration");
        BlockingClient::builder(config, UreqTransport::new())
            .build()
            .expect("a client")
    }

    #[test]
    fn device_login_approved() {
        let server = server(json!({}));
        let client = device_client(&server);
        let mut shown = None;
        client
            .login_with_device(|device| {
                shown = Some(device.clone());
                server.approve_device(&device.user_code);
            })
            .expect("an approved device login");
        let device = shown.expect("the code was shown");
        assert!(device.verification_uri.starts_with(&server.issuer));
        let response = client.send(resource(&server)).expect("the API call");
        assert_eq!(response.status(), 200);
        assert_eq!(json_body(response.body())["sub"], "joe");
    }

    #[test]
    fn device_login_denied() {
        let server = server(json!({}));
        let client = device_client(&server);
        let error = client
            .login_with_device(|device| server.deny_device(&device.user_code))
            .unwrap_err();
        assert!(
            matches!(error, blocking::Error::DeviceDenied(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains("denied"), "{error}");
    }

    #[test]
    fn device_login_expired() {
        let server = server(json!({"deviceCodeTtl": 7}));
        let client = device_client(&server);
        let error = client.login_with_device(|_| {}).unwrap_err();
        assert!(
            matches!(error, blocking::Error::DeviceExpired(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains("expired"), "{error}");
    }

    #[test]
    fn logout_revokes_both_tokens() {
        let server = server(json!({}));
        let (client, store) = code_login(&server);
        assert_eq!(
            client.send(resource(&server)).expect("a call").status(),
            200
        );
        let (refresh_token, access_token) = (store.refresh_token(), store.access_token());
        let report = client.logout().expect("a logout");
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(
            report.revoked,
            [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
        );
        assert!(store.load().expect("the store").is_none());
        assert_revoked(&server, &refresh_token, &access_token);
    }

    #[test]
    fn discovery_refuses_a_mismatching_issuer() {
        let server = server(json!({}));
        let metadata = metadata_blocking(&server);
        assert_eq!(metadata.issuer, server.issuer);
        assert_eq!(metadata.token_endpoint, server.token_endpoint());
        assert!(metadata.revocation_endpoint.is_some());
        assert!(metadata.device_authorization_endpoint.is_some());
        let other = format!("{}/", server.issuer);
        let error = blocking::fetch_metadata(&UreqTransport::new(), &other).unwrap_err();
        assert!(
            matches!(
                error,
                blocking::Error::Discovery(DiscoveryError::IssuerMismatch { .. })
            ),
            "{error:?}"
        );
    }
}

// --- the async adapter

mod async_adapter_tests {
    use super::*;

    async fn metadata(server: &RunningServer) -> ProviderMetadata {
        async_adapter::fetch_metadata(&ReqwestTransport::new().expect("reqwest"), &server.issuer)
            .await
            .expect("the metadata")
    }

    async fn code_login(server: &RunningServer) -> (AsyncClient, SharedStore) {
        let (listener, redirect_uri) = LoopbackRedirect::bind().expect("a loopback listener");
        let config = pkce_config(&metadata(server).await, &redirect_uri);
        let store = SharedStore::default();
        let client = AsyncClient::builder(config, ReqwestTransport::new().expect("reqwest"))
            .store(store.clone())
            .build()
            .expect("a client");
        let request = client
            .start_authorization()
            .await
            .expect("an authorization URL");
        let url = request.url.clone();
        let browser = tokio::task::spawn_blocking(move || Browser::new().open(&url));
        let callback = listener
            .wait_async(CALLBACK_TIMEOUT)
            .await
            .expect("a callback at the listener");
        let (status, page) = browser.await.expect("the browser");
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(callback.starts_with(&redirect_uri), "{callback}");
        client
            .complete_authorization(&callback)
            .await
            .expect("the code exchange");
        (client, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn code_with_pkce_then_an_api_call_and_a_refresh() {
        let server = server(json!({"accessTokenTtl": 2}));
        let (client, store) = code_login(&server).await;
        let first = client.send(resource(&server)).await.expect("the API call");
        assert_eq!(first.status(), 200);
        assert_eq!(json_body(first.body())["sub"], "joe");
        let refresh_token = store.refresh_token();

        tokio::time::sleep(Duration::from_millis(2500)).await;
        let second = client.send(resource(&server)).await.expect("the API call");
        assert_eq!(second.status(), 200, "{}", json_body(second.body()));
        assert_ne!(store.refresh_token(), refresh_token, "rotated");
        let stats = server.stats();
        assert_eq!(count(&stats, "token_requests", "authorization_code"), 1);
        assert!(
            count(&stats, "token_requests", "refresh_token") >= 1,
            "{stats}"
        );
        client.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tampered_state_is_refused() {
        let server = server(json!({}));
        let (_listener, redirect_uri) = LoopbackRedirect::bind().expect("a loopback listener");
        let config = pkce_config(&metadata(&server).await, &redirect_uri);
        let client = AsyncClient::builder(config, ReqwestTransport::new().expect("reqwest"))
            .store(MemoryStore::new())
            .build()
            .expect("a client");
        let request = client
            .start_authorization()
            .await
            .expect("an authorization URL");
        let (url, stop_at) = (request.url.clone(), redirect_uri.clone());
        let callback =
            tokio::task::spawn_blocking(move || Browser::new().follow_until(&url, &stop_at))
                .await
                .expect("the browser");
        let tampered = callback.replace(
            &format!("state={}", request.state),
            "state=forged-by-an-attacker",
        );
        assert_ne!(tampered, callback);
        let error = client.complete_authorization(&tampered).await.unwrap_err();
        assert!(
            matches!(
                error,
                async_adapter::Error::Authorization(AuthorizationError::StateMismatch)
            ),
            "{error:?}"
        );
        assert_eq!(
            count(&server.stats(), "token_requests", "authorization_code"),
            0
        );
    }

    async fn device_client(server: &RunningServer) -> AsyncClient {
        let config = metadata(server)
            .await
            .config_builder(PKCE_CLIENT.id)
            .scope(SCOPE)
            .request_timeout(Duration::from_secs(10))
            .build()
            .expect("a valid configuration");
        AsyncClient::builder(config, ReqwestTransport::new().expect("reqwest"))
            .store(MemoryStore::new())
            .build()
            .expect("a client")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn device_login_approved() {
        let server = Arc::new(server(json!({})));
        let client = device_client(&server).await;
        let approver = Arc::clone(&server);
        client
            .login_with_device(move |device| approver.approve_device(&device.user_code))
            .await
            .expect("an approved device login");
        let response = client.send(resource(&server)).await.expect("the API call");
        assert_eq!(response.status(), 200);
        assert_eq!(json_body(response.body())["sub"], "joe");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn device_login_denied() {
        let server = Arc::new(server(json!({})));
        let client = device_client(&server).await;
        let denier = Arc::clone(&server);
        let error = client
            .login_with_device(move |device| denier.deny_device(&device.user_code))
            .await
            .unwrap_err();
        assert!(
            matches!(error, async_adapter::Error::DeviceDenied(_)),
            "{error:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn device_login_expired() {
        let server = server(json!({"deviceCodeTtl": 7}));
        let client = device_client(&server).await;
        let error = client.login_with_device(|_| {}).await.unwrap_err();
        assert!(
            matches!(error, async_adapter::Error::DeviceExpired(_)),
            "{error:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logout_revokes_both_tokens() {
        let server = server(json!({}));
        let (client, store) = code_login(&server).await;
        assert_eq!(
            client
                .send(resource(&server))
                .await
                .expect("a call")
                .status(),
            200
        );
        let (refresh_token, access_token) = (store.refresh_token(), store.access_token());
        let report = client.logout().await.expect("a logout");
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(
            report.revoked,
            [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
        );
        assert!(store.load().expect("the store").is_none());
        let server = Arc::new(server);
        let checker = Arc::clone(&server);
        tokio::task::spawn_blocking(move || {
            assert_revoked(&checker, &refresh_token, &access_token)
        })
        .await
        .expect("the checks");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn discovery_refuses_a_mismatching_issuer() {
        let server = server(json!({}));
        let metadata = metadata(&server).await;
        assert_eq!(metadata.issuer, server.issuer);
        let other = format!("{}/", server.issuer);
        let error =
            async_adapter::fetch_metadata(&ReqwestTransport::new().expect("reqwest"), &other)
                .await
                .unwrap_err();
        assert!(
            matches!(
                error,
                async_adapter::Error::Discovery(DiscoveryError::IssuerMismatch { .. })
            ),
            "{error:?}"
        );
    }
}
