//! The blocking adapter against real OAuth 2.0 servers (oidc-provider and oauth2-server).
//!
//! Every scenario runs against both servers; the numbers they print (times, token requests,
//! 401s) show with `cargo test --test interop_blocking -- --nocapture`.

#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use tokenflow::adapters::blocking::{BlockingClient, Error, Transport, UreqTransport};
use tokenflow::adapters::{FileStore, TokenStore};
use tokenflow::{ClientAuth, Config, Credentials, TransportError};

use servers::{
    BASIC_CLIENT, PIN_USER, POST_CLIENT, RunningServer, SPECIAL_CLIENT, ServerKind, TestClient,
    TestUser, count,
};

fn config(server: &RunningServer, client: TestClient, auth: ClientAuth, scope: &str) -> Config {
    Config::builder(server.token_endpoint(), client.id)
        .client_secret(client.secret.expect("a confidential client"))
        .client_auth(auth)
        .scope(scope)
        .request_timeout(Duration::from_secs(10))
        .build()
        .expect("a valid configuration")
}

fn password(user: TestUser) -> Credentials {
    Credentials::password(user.username, user.password)
}

fn api_get(server: &RunningServer) -> Request<Vec<u8>> {
    Request::get(server.resource_url())
        .body(Vec::new())
        .expect("a request")
}

fn json_body(response: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or_else(|e| {
        panic!(
            "{} {:?}: {e}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )
    })
}

/// Calls the protected resource and checks that it answered 200 for `sub`.
fn call_ok<T: Transport>(client: &BlockingClient<T>, server: &RunningServer, sub: &str) {
    let response = client.send(api_get(server)).expect("the API call");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        json_body(&response)
    );
    assert_eq!(json_body(&response)["sub"], sub);
}

fn token_requests(stats: &Value) -> u64 {
    stats["token_requests"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

fn file_store(dir: &TempDir) -> FileStore {
    FileStore::new(dir.path().join("tokens.json"))
}

fn stored_refresh_token(store: &FileStore) -> String {
    store
        .load()
        .expect("a readable store")
        .and_then(|t| t.refresh_token)
        .map(|t| t.expose_secret().to_owned())
        .expect("a stored refresh token")
}

/// Presents `refresh_token` straight to the token endpoint, as `basic-client`.
fn raw_refresh(server: &RunningServer, refresh_token: &str) -> (u16, Value) {
    let body = serde_urlencoded::to_string([
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ])
    .expect("a form");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let secret = BASIC_CLIENT.secret.expect("confidential");
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{secret}", BASIC_CLIENT.id),
    );
    let response = agent
        .post(server.token_endpoint())
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(body.as_str())
        .expect("a response from the token endpoint");
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .read_to_string()
        .expect("a readable body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A transport that removes `expires_in` from token responses, as some servers do: the
/// client then assumes the configured lifetime (an hour) and only the API's 401 tells it the
/// token ended. It is also the closure form of [`Transport`].
fn without_expires_in(
    inner: UreqTransport,
) -> impl Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
    move |request| {
        let is_token_request = request.uri().path() == "/token";
        let deadline = Instant::now() + Duration::from_secs(10);
        let response = inner.send(request, deadline, 1 << 20)?;
        if !is_token_request || !response.status().is_success() {
            return Ok(response);
        }
        let (mut parts, body) = response.into_parts();
        let mut json: Value = serde_json::from_slice(&body).expect("a JSON token response");
        json.as_object_mut()
            .expect("a JSON object")
            .remove("expires_in");
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Ok(Response::from_parts(
            parts,
            serde_json::to_vec(&json).expect("JSON"),
        ))
    }
}

/// Password grant with a pin-style username; the access token ends on the server while the
/// client still believes in it; the API's 401 makes exactly one refresh and the retried call
/// succeeds; the rotated-out refresh token is then refused.
fn password_expiry_401_refresh_and_rotation(kind: ServerKind) {
    let started = Instant::now();
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client = BlockingClient::builder(
        config(
            &server,
            BASIC_CLIENT,
            ClientAuth::SecretBasic,
            "api offline_access",
        ),
        without_expires_in(UreqTransport::new()),
    )
    .store(file_store(&dir))
    .build()
    .expect("a client");

    client.login(password(PIN_USER)).expect("the login");
    let first_refresh = stored_refresh_token(&file_store(&dir));
    call_ok(&client, &server, PIN_USER.username);

    thread::sleep(Duration::from_millis(2600));
    server.reset_stats();
    call_ok(&client, &server, PIN_USER.username);
    let stats = server.stats();
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        1,
        "{stats}"
    );
    assert_eq!(token_requests(&stats), 1, "{stats}");
    assert_eq!(stats["resource_401"], 1, "{stats}");
    assert_eq!(stats["resource_ok"], 1, "{stats}");

    let second_refresh = stored_refresh_token(&file_store(&dir));
    assert_ne!(
        second_refresh, first_refresh,
        "the new refresh token was stored"
    );
    let (status, body) = raw_refresh(&server, &first_refresh);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    eprintln!(
        "[{kind:?}] password + 401-driven refresh + rotation: {:?}",
        started.elapsed()
    );
}

#[test]
fn oidc_provider_password_expiry_401_refresh_and_rotation() {
    password_expiry_401_refresh_and_rotation(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_password_expiry_401_refresh_and_rotation() {
    password_expiry_401_refresh_and_rotation(ServerKind::NodeOauth2Server);
}

/// Client credentials with each client authentication, the special secret included.
fn client_credentials(kind: ServerKind) {
    let started = Instant::now();
    let server = RunningServer::start(kind, json!({}));
    for (client, auth) in [
        (BASIC_CLIENT, ClientAuth::SecretBasic),
        (POST_CLIENT, ClientAuth::SecretPost),
        // `s3cr:t/+%&= x`: only RFC 6749 §2.3.1 form-encoding before base64 gets it through.
        (SPECIAL_CLIENT, ClientAuth::SecretBasic),
    ] {
        server.reset_stats();
        let client_id = client.id;
        let client =
            BlockingClient::builder(config(&server, client, auth, "api"), UreqTransport::new())
                .credentials(|| Some(Credentials::ClientCredentials))
                .build()
                .expect("a client");
        // No explicit login: the credentials source answers the need for one.
        call_ok(&client, &server, client_id);
        call_ok(&client, &server, client_id);
        let stats = server.stats();
        assert_eq!(
            count(&stats, "token_requests", "client_credentials"),
            1,
            "{client_id}: {stats}"
        );
        assert_eq!(token_requests(&stats), 1, "{client_id}: {stats}");
    }
    eprintln!(
        "[{kind:?}] client credentials (basic, post, special): {:?}",
        started.elapsed()
    );
}

#[test]
fn oidc_provider_client_credentials() {
    client_credentials(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_client_credentials() {
    client_credentials(ServerKind::NodeOauth2Server);
}

/// The client's refresh token was used elsewhere; its own refresh is refused with
/// `invalid_grant`, the tokens are cleared, the credentials source logs in again and the call
/// goes through.
fn reused_refresh_token_relogin(kind: ServerKind) {
    let started = Instant::now();
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let logins = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&logins);
    let client = BlockingClient::builder(
        config(
            &server,
            BASIC_CLIENT,
            ClientAuth::SecretBasic,
            "api offline_access",
        ),
        UreqTransport::new(),
    )
    .store(file_store(&dir))
    .credentials(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Some(password(PIN_USER))
    })
    .build()
    .expect("a client");

    call_ok(&client, &server, PIN_USER.username);
    assert_eq!(logins.load(Ordering::SeqCst), 1);
    let spent = stored_refresh_token(&file_store(&dir));
    // Someone else uses the refresh token first.
    let (status, body) = raw_refresh(&server, &spent);
    assert_eq!(status, 200, "{body}");

    thread::sleep(Duration::from_millis(2200));
    server.reset_stats();
    call_ok(&client, &server, PIN_USER.username);
    let stats = server.stats();
    assert_eq!(logins.load(Ordering::SeqCst), 2, "{stats}");
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        1,
        "{stats}"
    );
    assert_eq!(count(&stats, "token_errors", "invalid_grant"), 1, "{stats}");
    assert_eq!(count(&stats, "token_requests", "password"), 1, "{stats}");
    let fresh = stored_refresh_token(&file_store(&dir));
    assert_ne!(fresh, spent, "the new login's tokens were stored");
    eprintln!(
        "[{kind:?}] reused refresh token -> invalid_grant -> re-login: {:?}",
        started.elapsed()
    );
}

#[test]
fn oidc_provider_reused_refresh_token_relogin() {
    reused_refresh_token_relogin(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_reused_refresh_token_relogin() {
    reused_refresh_token_relogin(ServerKind::NodeOauth2Server);
}

/// A second process restored from the same file carries on without logging in: at once with
/// the stored access token, and after its expiry with the stored refresh token.
fn restart_from_file_store(kind: ServerKind) {
    let started = Instant::now();
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = config(
        &server,
        BASIC_CLIENT,
        ClientAuth::SecretBasic,
        "api offline_access",
    );
    let no_login = || -> Option<Credentials> { panic!("a restored client must not log in") };

    let first = BlockingClient::builder(settings.clone(), UreqTransport::new())
        .store(file_store(&dir))
        .build()
        .expect("a client");
    first.login(password(PIN_USER)).expect("the login");
    call_ok(&first, &server, PIN_USER.username);
    drop(first);

    let second = BlockingClient::builder(settings.clone(), UreqTransport::new())
        .store(file_store(&dir))
        .credentials(no_login)
        .build()
        .expect("a restored client");
    call_ok(&second, &server, PIN_USER.username);
    drop(second);
    let stats = server.stats();
    assert_eq!(token_requests(&stats), 1, "{stats}");

    thread::sleep(Duration::from_millis(2200));
    let third = BlockingClient::builder(settings, UreqTransport::new())
        .store(file_store(&dir))
        .credentials(no_login)
        .build()
        .expect("a restored client");
    call_ok(&third, &server, PIN_USER.username);
    let stats = server.stats();
    assert_eq!(count(&stats, "token_requests", "password"), 1, "{stats}");
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        1,
        "{stats}"
    );
    assert_eq!(stats["resource_ok"], 3, "{stats}");
    eprintln!(
        "[{kind:?}] restart from the file store: {:?}",
        started.elapsed()
    );
}

#[test]
fn oidc_provider_restart_from_file_store() {
    restart_from_file_store(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_restart_from_file_store() {
    restart_from_file_store(ServerKind::NodeOauth2Server);
}

const LOAD_THREADS: usize = 64;
const LOAD_DURATION: Duration = Duration::from_secs(20);

/// Sixty-four threads share one client for twenty seconds of two-second tokens.
fn load(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let client = BlockingClient::builder(
        config(
            &server,
            BASIC_CLIENT,
            ClientAuth::SecretBasic,
            "api offline_access",
        ),
        UreqTransport::new(),
    )
    .credentials(|| Some(password(PIN_USER)))
    .build()
    .expect("a client");

    let started = Instant::now();
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let unauthorized = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..LOAD_THREADS)
        .map(|_| {
            let (client, calls, failures, unauthorized) = (
                client.clone(),
                Arc::clone(&calls),
                Arc::clone(&failures),
                Arc::clone(&unauthorized),
            );
            let url = server.resource_url();
            thread::spawn(move || {
                while started.elapsed() < LOAD_DURATION {
                    let request = Request::get(&url).body(Vec::new()).expect("a request");
                    calls.fetch_add(1, Ordering::Relaxed);
                    match client.send(request) {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                            unauthorized.fetch_add(1, Ordering::Relaxed);
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(response) => {
                            eprintln!("unexpected status {}", response.status());
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            eprintln!("failed call: {error}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker thread");
    }
    let elapsed = started.elapsed();
    let stats = server.stats();
    let token_requests = token_requests(&stats);
    eprintln!(
        "[{kind:?}] load: {LOAD_THREADS} threads for {elapsed:?}: {} calls, {} failed, \
         {} token requests ({} password, {} refresh), 401s seen by callers: {}, \
         401s absorbed by the client (server count): {}",
        calls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        token_requests,
        count(&stats, "token_requests", "password"),
        count(&stats, "token_requests", "refresh_token"),
        unauthorized.load(Ordering::Relaxed),
        stats["resource_401"],
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "{stats}");
    // The bound: one login, then one renewal per effective token lifetime, plus one for the
    // renewal under way when the time is up. The effective lifetime is at least 0.9 s: the
    // servers count expiry in whole seconds, so a 2 s token may live only 1–2 s on the server
    // and be announced with `expires_in` 1 (oauth2-server rounds the remaining lifetime down;
    // oidc-provider's expiry starts at the whole second of issue); the client renews at 90 %
    // of the announced lifetime (the refresh margin is capped at a tenth of it), and a token
    // the server ends earlier is renewed once on the API's 401, which cannot come before the
    // server's 1 s. So 20 s / 0.9 s + 2 = 24.
    let bound = (LOAD_DURATION.as_secs_f64() / 0.9).floor() as u64 + 2;
    assert!(
        token_requests <= bound,
        "{token_requests} token requests, more than {bound}: {stats}"
    );
    assert!(
        count(&stats, "token_requests", "refresh_token") > 0,
        "{stats}"
    );
}

#[test]
fn oidc_provider_load_shared_client() {
    load(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_load_shared_client() {
    load(ServerKind::NodeOauth2Server);
}

/// A login that fails reports the server's error, and the client stays usable.
#[test]
fn wrong_password_is_a_clear_error() {
    let server = RunningServer::oauth2_server(json!({}));
    let client = BlockingClient::builder(
        config(&server, BASIC_CLIENT, ClientAuth::SecretBasic, "api"),
        UreqTransport::new(),
    )
    .build()
    .expect("a client");
    let error = client
        .login(Credentials::password(PIN_USER.username, "not-the-password"))
        .expect_err("a wrong password");
    assert!(matches!(error, Error::TokenRequest(_)), "{error:?}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    assert!(!error.to_string().contains("not-the-password"), "{error}");
    assert!(matches!(
        client.bearer(),
        Err(Error::LoginRequired { reason: None })
    ));
    client
        .login(password(PIN_USER))
        .expect("the right password");
    call_ok(&client, &server, PIN_USER.username);
    client.logout().expect("a logout");
    assert!(matches!(client.bearer(), Err(Error::LoginRequired { .. })));
}
