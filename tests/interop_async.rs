//! The async adapter against real servers (oidc-provider and @node-oauth/oauth2-server), with
//! reqwest doing the IO: password and client-credentials logins, expiry and 401s, refresh
//! token rotation and reuse, a restart from a file, a load test and cancelled callers.

#[path = "support/servers.rs"]
mod servers;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use servers::{
    BASIC_CLIENT, PIN_USER, POST_CLIENT, RunningServer, SPECIAL_CLIENT, ServerKind, TestClient,
    count, form_encode,
};
use tokenflow::adapters::tokio::{AsyncClient, AsyncTransport, Error, ReqwestTransport};
use tokenflow::adapters::{MemoryStore, StoreError, TokenStore};
use tokenflow::{ClientAuth, Config, Credentials, StoredTokens};

/// Every scenario finishes well within this, or fails.
const SCENARIO_LIMIT: Duration = Duration::from_secs(90);

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(SCENARIO_LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {SCENARIO_LIMIT:?}"))
}

fn reqwest_transport() -> ReqwestTransport {
    ReqwestTransport::new().expect("a reqwest client")
}

fn config(server: &RunningServer, client: TestClient, auth: ClientAuth, scope: &str) -> Config {
    Config::builder(server.token_endpoint(), client.id)
        .client_secret(client.secret.expect("a confidential client"))
        .client_auth(auth)
        .scope(scope)
        .request_timeout(Duration::from_secs(10))
        .build()
        .expect("a valid configuration")
}

fn password_config(server: &RunningServer, proactive: bool) -> Config {
    Config::builder(server.token_endpoint(), BASIC_CLIENT.id)
        .client_secret(BASIC_CLIENT.secret.expect("a confidential client"))
        .scope("api offline_access")
        .request_timeout(Duration::from_secs(10))
        .proactive_refresh(proactive)
        .build()
        .expect("a valid configuration")
}

fn pin_user() -> Credentials {
    Credentials::password(PIN_USER.username, PIN_USER.password)
}

fn resource_request(server: &RunningServer) -> http::Request<Vec<u8>> {
    http::Request::get(server.resource_url())
        .body(Vec::new())
        .expect("a valid request")
}

/// Calls the protected resource through the client; the answer must be a 200.
async fn call_ok<T: AsyncTransport>(client: &AsyncClient<T>, server: &RunningServer) -> Value {
    let response = client
        .send(resource_request(server))
        .await
        .expect("the API call");
    let body: Value = serde_json::from_slice(response.body()).expect("a JSON body");
    assert_eq!(response.status(), 200, "{body}");
    body
}

fn stored_refresh_token(store: &dyn TokenStore) -> String {
    store
        .load()
        .expect("the store")
        .and_then(|t| t.refresh_token)
        .expect("a stored refresh token")
        .expose_secret()
        .to_owned()
}

/// Presents `refresh_token` straight to the token endpoint as `basic-client`, the way another
/// process holding a copy of it would.
async fn raw_refresh(server: &RunningServer, refresh_token: &str) -> (u16, Value) {
    let secret = BASIC_CLIENT.secret.expect("confidential");
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            form_encode(BASIC_CLIENT.id),
            form_encode(secret)
        ))
    );
    let response = reqwest::Client::new()
        .post(server.token_endpoint())
        .header("authorization", basic)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&refresh_token={}",
            form_encode(refresh_token)
        ))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the raw refresh request");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("the raw refresh body");
    (status, serde_json::from_slice(&body).expect("a JSON body"))
}

/// A transport for a server whose tokens die before they say: token responses are rewritten
/// to claim an hour's lifetime, so the client keeps using a token the server has expired and
/// only the API's 401 tells it otherwise.
fn lying_about_expiry(token_endpoint: String) -> impl AsyncTransport {
    let inner = reqwest_transport();
    move |request: http::Request<Vec<u8>>, deadline: Instant, max_body: usize| {
        let inner = inner.clone();
        let is_token_request = request.uri().to_string() == token_endpoint;
        async move {
            let mut response = inner.send(request, deadline, max_body).await?;
            if is_token_request && response.status().is_success() {
                let mut body: Value =
                    serde_json::from_slice(response.body()).expect("a JSON token response");
                body["expires_in"] = json!(3600);
                *response.body_mut() = body.to_string().into_bytes();
            }
            Ok(response)
        }
    }
}

/// A transport whose token requests take `delay` longer, counting them.
fn slow_token_endpoint(
    token_endpoint: String,
    delay: Duration,
    sent: Arc<AtomicUsize>,
) -> impl AsyncTransport {
    let inner = reqwest_transport();
    move |request: http::Request<Vec<u8>>, deadline: Instant, max_body: usize| {
        let inner = inner.clone();
        let is_token_request = request.uri().to_string() == token_endpoint;
        if is_token_request {
            sent.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            if is_token_request {
                tokio::time::sleep(delay).await;
            }
            inner.send(request, deadline, max_body).await
        }
    }
}

/// A memory store that records what was done to it.
#[derive(Default)]
struct RecordingStore {
    inner: MemoryStore,
    log: Mutex<Vec<&'static str>>,
}

impl RecordingStore {
    fn log(&self) -> Vec<&'static str> {
        self.log.lock().expect("the log").clone()
    }
}

impl TokenStore for RecordingStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.inner.load()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        self.log.lock().expect("the log").push("save");
        self.inner.save(tokens)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.log.lock().expect("the log").push("clear");
        self.inner.clear()
    }
}

/// A minimal JSON file store, written through a temporary file and a rename.
struct JsonFileStore {
    path: PathBuf,
}

impl TokenStore for JsonFileStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                StoredTokens::from_json(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        path: self.path.clone(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, tokens.to_json()).map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)
    }

    fn clear(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                path: self.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Password grant, expiry through a 401, one refresh, rotation honoured.

async fn password_expiry_and_rotation(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let store = Arc::new(MemoryStore::new());
    let client = AsyncClient::builder(
        password_config(&server, false),
        lying_about_expiry(server.token_endpoint()),
    )
    .store_arc(store.clone())
    .build()
    .expect("the client starts");

    bounded("login", client.login(pin_user()))
        .await
        .expect("login");
    let first_refresh = stored_refresh_token(store.as_ref());
    let body = bounded("the first call", call_ok(&client, &server)).await;
    assert_eq!(
        body["sub"], PIN_USER.username,
        "the username arrives verbatim"
    );
    let scope = body["scope"].as_str().unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "api"), "scope {scope:?}");

    // The server expires the token after 2 s; the client believes it has an hour.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = Instant::now();
    bounded("the call after expiry", call_ok(&client, &server)).await;
    let stats = server.stats();
    eprintln!(
        "{kind:?}: 401 → refresh → retry took {:?}; stats {stats}",
        started.elapsed()
    );
    assert_eq!(stats["resource_401"], 1, "one 401: {stats}");
    assert_eq!(stats["resource_ok"], 2, "{stats}");
    assert_eq!(count(&stats, "token_requests", "password"), 1, "{stats}");
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        1,
        "exactly one refresh: {stats}"
    );

    let second_refresh = stored_refresh_token(store.as_ref());
    assert_ne!(second_refresh, first_refresh, "the refresh token rotated");
    let (status, error) = raw_refresh(&server, &first_refresh).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"], "invalid_grant", "{error}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_password_expiry_refresh_and_rotation() {
    password_expiry_and_rotation(ServerKind::OidcProvider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_server_password_expiry_refresh_and_rotation() {
    password_expiry_and_rotation(ServerKind::NodeOauth2Server).await;
}

// ---------------------------------------------------------------------------------------------
// Client credentials with each way of authenticating the client.

async fn client_credentials(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({}));
    let cases = [
        (BASIC_CLIENT, ClientAuth::SecretBasic),
        (POST_CLIENT, ClientAuth::SecretPost),
        // `s3cr:t/+%&= x`: RFC 6749 §2.3.1 form-encodes it before base64.
        (SPECIAL_CLIENT, ClientAuth::SecretBasic),
    ];
    for (test_client, auth) in cases {
        server.reset_stats();
        let client = AsyncClient::builder(
            config(&server, test_client, auth, "api"),
            reqwest_transport(),
        )
        .credentials(|| Some(Credentials::ClientCredentials))
        .build()
        .expect("the client starts");
        // No explicit login: the first call asks the credentials source.
        let body = bounded("a client-credentials call", call_ok(&client, &server)).await;
        assert_eq!(body["sub"], test_client.id, "{body}");
        bounded("a second call", call_ok(&client, &server)).await;
        let stats = server.stats();
        assert_eq!(
            count(&stats, "token_requests", "client_credentials"),
            1,
            "{} with {auth:?}: {stats}",
            test_client.id
        );
        assert_eq!(stats["resource_ok"], 2, "{stats}");
        client.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_client_credentials_basic_post_and_special_secret() {
    client_credentials(ServerKind::OidcProvider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_server_client_credentials_basic_post_and_special_secret() {
    client_credentials(ServerKind::NodeOauth2Server).await;
}

// ---------------------------------------------------------------------------------------------
// A refresh token spent elsewhere: invalid_grant, tokens cleared, a new login, work resumes.

async fn reused_refresh_token(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let store = Arc::new(RecordingStore::default());
    let client = AsyncClient::builder(
        password_config(&server, false),
        lying_about_expiry(server.token_endpoint()),
    )
    .store_arc(store.clone())
    .credentials(|| Some(pin_user()))
    .build()
    .expect("the client starts");

    bounded("the first call", call_ok(&client, &server)).await;
    let spent = stored_refresh_token(store.as_ref());
    let (status, body) = raw_refresh(&server, &spent).await;
    assert_eq!(
        status, 200,
        "another holder spends the refresh token: {body}"
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let body = bounded("the call after reuse", call_ok(&client, &server)).await;
    assert_eq!(body["sub"], PIN_USER.username);
    bounded("one more call", call_ok(&client, &server)).await;

    let stats = server.stats();
    eprintln!("{kind:?}: stats {stats}; store log {:?}", store.log());
    assert_eq!(count(&stats, "token_requests", "password"), 2, "{stats}");
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        2,
        "{stats}"
    );
    assert_eq!(count(&stats, "token_errors", "invalid_grant"), 1, "{stats}");
    assert_eq!(
        store.log(),
        ["save", "clear", "save"],
        "saved, cleared, saved"
    );
    assert_ne!(stored_refresh_token(store.as_ref()), spent);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_reused_refresh_token_leads_to_a_new_login() {
    reused_refresh_token(ServerKind::OidcProvider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_server_reused_refresh_token_leads_to_a_new_login() {
    reused_refresh_token(ServerKind::NodeOauth2Server).await;
}

// ---------------------------------------------------------------------------------------------
// A restart: a second client carries on from the file the first one left.

async fn restart(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tokens.json");

    let first = AsyncClient::builder(password_config(&server, true), reqwest_transport())
        .store(JsonFileStore { path: path.clone() })
        .build()
        .expect("the first client starts");
    bounded("login", first.login(pin_user()))
        .await
        .expect("login");
    bounded("a call", call_ok(&first, &server)).await;
    first.shutdown().await;
    assert!(matches!(first.bearer().await, Err(Error::Shutdown)));

    // No credentials source: this client can only carry on from the file.
    let second = AsyncClient::builder(password_config(&server, true), reqwest_transport())
        .store(JsonFileStore { path: path.clone() })
        .build()
        .expect("the second client starts");
    bounded("a call after the restart", call_ok(&second, &server)).await;
    // Past the first token's lifetime: the second client renews with the stored refresh token.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    bounded("a call after expiry", call_ok(&second, &server)).await;

    let stats = server.stats();
    eprintln!("{kind:?}: stats {stats}");
    assert_eq!(
        count(&stats, "token_requests", "password"),
        1,
        "no second login: {stats}"
    );
    assert!(
        count(&stats, "token_requests", "refresh_token") >= 1,
        "{stats}"
    );
    assert_eq!(count(&stats, "token_errors", "invalid_grant"), 0, "{stats}");
    assert_eq!(stats["resource_ok"], 3, "{stats}");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_restart_carries_on_without_a_login() {
    restart(ServerKind::OidcProvider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_server_restart_carries_on_without_a_login() {
    restart(ServerKind::NodeOauth2Server).await;
}

// ---------------------------------------------------------------------------------------------
// Load: 64 tasks calling the API for 20 s with 2 s tokens.

const LOAD_TASKS: usize = 64;
const LOAD_TIME: Duration = Duration::from_secs(20);

async fn load(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let store = Arc::new(MemoryStore::new());
    let client = AsyncClient::builder(password_config(&server, true), reqwest_transport())
        .store_arc(store.clone())
        .credentials(|| Some(pin_user()))
        .build()
        .expect("the client starts");
    bounded("the first call", call_ok(&client, &server)).await;
    let first = store.load().expect("the store").expect("stored tokens");
    let believed = first
        .expires_at
        .expect("an expiry")
        .saturating_duration_since(first.issued_at);
    server.reset_stats();

    let started = Instant::now();
    let end = started + LOAD_TIME;
    let mut tasks = Vec::new();
    for _ in 0..LOAD_TASKS {
        let client = client.clone();
        let request = resource_request(&server);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut unauthorized, mut failed) = (0u64, 0u64, Vec::new());
            while Instant::now() < end {
                let mut copy = http::Request::new(request.body().clone());
                *copy.uri_mut() = request.uri().clone();
                match client.send(copy).await {
                    Ok(response) if response.status() == 200 => ok += 1,
                    Ok(response) if response.status() == 401 => unauthorized += 1,
                    Ok(response) => failed.push(format!("status {}", response.status())),
                    Err(error) => failed.push(error.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, unauthorized, failed)
        }));
    }
    let (mut ok, mut unauthorized, mut failed) = (0u64, 0u64, Vec::new());
    for task in tasks {
        let (o, u, f) = bounded("a load task", task).await.expect("a load task");
        ok += o;
        unauthorized += u;
        failed.extend(f);
    }
    let elapsed = started.elapsed();
    let stats = server.stats();
    let token_requests = count(&stats, "token_requests", "refresh_token")
        + count(&stats, "token_requests", "password");

    // How long a token serves, at worst. The client renews at 9/10 of the lifetime it was told
    // (`margin_for`: a tenth of the lifetime when that is under the 30 s margin). The server
    // may end it sooner: oidc-provider counts expiry in whole seconds (`exp = floor(iat) +
    // ttl`), so a 2 s token lives between 1 and 2 s there, and only a 401 shows it; a refresh
    // then follows the 401 at once. oauth2-server ends tokens to the millisecond, but rounds
    // `expires_in` down, so the client is told 1 s for a 2 s token and renews at 0.9 s. Each
    // token thus serves at least `effective`; over the run that makes at most
    // LOAD_TIME / effective renewals, plus one for a renewal landing on the run's edge and one
    // for the partial first interval.
    let server_floor = match kind {
        ServerKind::OidcProvider => Duration::from_secs(1),
        ServerKind::NodeOauth2Server => Duration::from_secs(2),
    };
    let effective = (believed * 9 / 10).min(server_floor);
    let bound = (LOAD_TIME.as_secs_f64() / effective.as_secs_f64()).floor() as u64 + 2;
    eprintln!(
        "{kind:?} load: {LOAD_TASKS} tasks for {elapsed:?}: {ok} calls answered 200, {} failed, \
         {unauthorized} 401s returned to callers, {} 401s answered by the server (each retried \
         once after a renewal), {token_requests} token requests (bound {bound}; lifetime told \
         {believed:?}, effective {effective:?}); stats {stats}",
        failed.len(),
        stats["resource_401"],
    );
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    assert_eq!(unauthorized, 0, "no caller is left with a 401");
    assert!(ok > 0);
    assert!(
        token_requests <= bound,
        "{token_requests} token requests, more than {bound}"
    );
    assert_eq!(count(&stats, "token_errors", "invalid_grant"), 0, "{stats}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_load_64_tasks_20_seconds() {
    load(ServerKind::OidcProvider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_server_load_64_tasks_20_seconds() {
    load(ServerKind::NodeOauth2Server).await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation: callers dropped mid-refresh leave the flow intact.

async fn cancellation(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 2 }));
    let sent = Arc::new(AtomicUsize::new(0));
    let client = AsyncClient::builder(
        password_config(&server, false),
        slow_token_endpoint(
            server.token_endpoint(),
            Duration::from_millis(800),
            sent.clone(),
        ),
    )
    .build()
    .expect("the client starts");
    bounded("login", client.login(pin_user()))
        .await
        .expect("login");
    let before = client.bearer().await.expect("a token");
    assert_eq!(sent.load(Ordering::SeqCst), 1);

    // The client knows the token has ended (it was told 1–2 s), so callers now wait on a
    // refresh, which the slow endpoint holds for 800 ms.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let mut timed_out = Vec::new();
    for _ in 0..25 {
        let client = client.clone();
        timed_out.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(100), client.bearer())
                .await
                .is_err()
        }));
    }
    let mut aborted = Vec::new();
    for _ in 0..25 {
        let client = client.clone();
        aborted.push(tokio::spawn(async move { client.bearer().await }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for task in &aborted {
        task.abort();
    }
    for task in timed_out {
        assert!(task.await.expect("a caller task"), "dropped while waiting");
    }
    for task in aborted {
        assert!(task.await.is_err_and(|e| e.is_cancelled()), "aborted");
    }
    assert_eq!(
        sent.load(Ordering::SeqCst),
        2,
        "one refresh went out for the fifty callers"
    );

    let after = bounded("a new caller", client.bearer())
        .await
        .expect("a token after the cancellations");
    assert!(after.generation() > before.generation());
    bounded("a call", call_ok(&client, &server)).await;
    let stats = server.stats();
    eprintln!("{kind:?}: stats {stats}");
    assert_eq!(sent.load(Ordering::SeqCst), 2);
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        1,
        "exactly one refresh: {stats}"
    );
    assert_eq!(count(&stats, "token_requests", "password"), 1, "{stats}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_cancelled_callers_leave_one_refresh() {
    cancellation(ServerKind::OidcProvider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_server_cancelled_callers_leave_one_refresh() {
    cancellation(ServerKind::NodeOauth2Server).await;
}

// ---------------------------------------------------------------------------------------------
// The handle itself: shutdown, errors, and starting outside a runtime.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_driver_and_answers_waiting_callers() {
    // A token endpoint that never answers before the deadline.
    let silent = |_request: http::Request<Vec<u8>>, deadline: Instant, _max_body: usize| async move {
        tokio::time::sleep_until(deadline.into()).await;
        Err(tokenflow::TransportError::timed_out("no answer"))
    };
    let config = Config::builder("http://127.0.0.1:9/token", "app")
        .client_secret("secret")
        .build()
        .expect("a valid configuration");
    let client = AsyncClient::builder(config, silent)
        .credentials(|| Some(Credentials::ClientCredentials))
        .build()
        .expect("the client starts");
    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.bearer().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    bounded("shutdown", client.shutdown()).await;
    for task in waiting {
        let answer = bounded("a waiting caller", task)
            .await
            .expect("a caller task");
        assert!(matches!(answer, Err(Error::Shutdown)), "{answer:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(client.bearer().await, Err(Error::Shutdown)));
    assert!(matches!(
        client.login(Credentials::ClientCredentials).await,
        Err(Error::Shutdown)
    ));
    assert!(matches!(client.logout().await, Err(Error::Shutdown)));
    client.shutdown().await;
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let config = Config::builder("http://127.0.0.1:9/token", "app")
        .build()
        .expect("a valid configuration");
    let started = AsyncClient::builder(config, reqwest_transport())
        .store(MemoryStore::new())
        .build();
    assert!(matches!(started, Err(Error::NoRuntime)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_never_show_the_password() {
    let server = RunningServer::oauth2_server(json!({}));
    let client = AsyncClient::builder(password_config(&server, true), reqwest_transport())
        .store(MemoryStore::new())
        .build()
        .expect("the client starts");
    // No tokens and no credentials source.
    let error = client.bearer().await.expect_err("not logged in");
    assert!(
        matches!(error, Error::LoginRequired { reason: None }),
        "{error:?}"
    );

    let error = bounded(
        "a refused login",
        client.login(Credentials::password(PIN_USER.username, "wrong-secret-PW")),
    )
    .await
    .expect_err("a wrong password");
    let shown = format!("{error} {error:?}");
    assert!(matches!(error, Error::TokenRequest(_)), "{shown}");
    assert!(shown.contains("invalid_grant"), "{shown}");
    assert!(!shown.contains("wrong-secret-PW"), "{shown}");
    assert!(!shown.contains("basic-secret"), "{shown}");

    bounded("login", client.login(pin_user()))
        .await
        .expect("login");
    bounded("a call", call_ok(&client, &server)).await;
    bounded("logout", client.logout()).await.expect("logout");
    assert!(matches!(
        client.bearer().await,
        Err(Error::LoginRequired { reason: None })
    ));
    client.shutdown().await;
}
