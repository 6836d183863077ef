//! Replicas through both clients (`ClientBuilder::replicas`): clients sharing one login
//! through a shared store renew it one at a time, so that a strict server (`oauth2-server.js`
//! with `strictReuse`: a spent refresh token presented again revokes its whole family) never
//! sees a refresh token twice.
//!
//! - Under load, in one process: blocking clients on threads and async clients on tasks share
//!   one `tokenflow::shared::MemoryStore` (each with its change feed), then a PostgreSQL
//!   store (`tokenflow_postgres::PgStore` and `PgChangeListener`, one connection pair per
//!   client as replicas in other processes would have), with single-use refresh tokens and
//!   2-second access tokens: every call is served, no reuse is detected, and there are no
//!   more token requests than renewal periods, plus the one login.
//! - A store that fails: typed errors, no stall, and no token lost.
//! - What `build` refuses, and the change waiter's life: it reports changes, and ends with
//!   the client.
//!
//! The numbers show with `cargo test --all-features --test adapter_replicas -- --nocapture`.

#[path = "support/servers.rs"]
mod servers;

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde_json::{Value, json};

use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
use tokenflow::adapters::{Error, ReplicaSetupError, StoreError};
use tokenflow::shared::{
    CasOutcome, LeaseAnswer, MarkOutcome, MemoryStore, SharedSnapshot, SharedTokenStore,
    StoreChanges, StoreVersion,
};
use tokenflow::{
    Config, Credentials, FailureCause, RetryPolicy, StoredTokens, TransportError, UnixTime,
};
use tokenflow_postgres::testing::TestServer;
use tokenflow_postgres::{PgChangeListener, PgStore};

use servers::{BASIC_CLIENT, JOE, RunningServer, count, counter};

/// The access tokens' lifetime on the server: renewals every couple of seconds.
const ACCESS_TTL_SECS: u64 = 2;
/// When a client renews a token: a tenth of its lifetime before it ends. The server announces
/// `expires_in` rounded down to whole seconds from when it answers, so a token of 2 seconds
/// is sometimes announced as 1.
const RENEWED_AT: f64 = 0.9;
/// What the clocks of two clients may disagree by when one renews after the other.
const CLOCK_SLACK: Duration = Duration::from_millis(20);
/// How long the callers keep calling.
const RUN_FOR: Duration = Duration::from_secs(10);
/// Clients of each kind, and callers of each client.
const CLIENTS: usize = 4;
const CALLERS: usize = 8;
/// The pause between one caller's calls (64 callers: some 600 API calls a second).
const PACE: Duration = Duration::from_millis(100);

fn strict_server() -> RunningServer {
    RunningServer::oauth2_server(json!({ "accessTokenTtl": ACCESS_TTL_SECS, "strictReuse": true }))
}

fn config_builder(token_endpoint: &str) -> tokenflow::ConfigBuilder {
    Config::builder(token_endpoint, BASIC_CLIENT.id)
        .client_secret(BASIC_CLIENT.secret.expect("a confidential client"))
        .scope("api offline_access")
        .request_timeout(Duration::from_secs(3))
}

fn joe() -> Credentials {
    Credentials::password(JOE.username, JOE.password)
}

fn api_get(resource: &str) -> Request<Vec<u8>> {
    Request::get(resource).body(Vec::new()).expect("a request")
}

/// What one caller's call came to, as a line for the failure report.
fn served(result: Result<Response<Vec<u8>>, Error>) -> Result<(), String> {
    match result {
        Ok(response) if response.status() == StatusCode::OK => Ok(()),
        Ok(response) => Err(format!(
            "answered {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// Every caller's count of calls served, and what went wrong.
#[derive(Default)]
struct Tally {
    served: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, who: &str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.served.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) => self
                .failures
                .lock()
                .unwrap()
                .push(format!("{who}: {failure}")),
        }
    }
}

/// When each token request went out, from which client, and the lifetime its answer
/// announced.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<Sent>>>);

#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    who: String,
    expires_in: Option<u64>,
}

impl Timeline {
    /// Notes a token request and, once answered, its answer's `expires_in`.
    fn note(
        &self,
        request: &Request<Vec<u8>>,
        who: &str,
        at: Instant,
        answer: &Result<Response<Vec<u8>>, TransportError>,
    ) {
        if request.uri().path() != "/token" {
            return;
        }
        let expires_in = answer
            .as_ref()
            .ok()
            .and_then(|response| serde_json::from_slice::<Value>(response.body()).ok())
            .and_then(|body| body["expires_in"].as_u64());
        self.0.lock().unwrap().push(Sent {
            at,
            who: who.to_owned(),
            expires_in,
        });
    }

    /// The requests in the order they went out.
    fn sent(&self) -> Vec<Sent> {
        let mut sent = self.0.lock().unwrap().clone();
        sent.sort_by_key(|s| s.at);
        sent
    }
}

/// ureq, noting its token requests in a [`Timeline`].
struct Noted {
    transport: UreqTransport,
    timeline: Timeline,
    who: String,
}

impl tokenflow::adapters::blocking::Transport for Noted {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let (at, noted) = (Instant::now(), request.clone());
        let answer = self.transport.send(request, deadline, max_body);
        self.timeline.note(&noted, &self.who, at, &answer);
        answer
    }
}

/// Runs `CLIENTS` blocking and `CLIENTS` async clients, each with `CALLERS` callers, for
/// `RUN_FOR`, every client a replica with the store and change feed `replica` makes for it.
/// The first logs in; the others are built after, and start from its login in the store.
fn run_replicas<S, F>(label: &str, server: &RunningServer, replica: impl Fn(usize) -> (S, F))
where
    S: SharedTokenStore + Send + Sync + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
    F: StoreChanges + Send + 'static,
    F::Error: std::error::Error + Send + Sync + 'static,
{
    let config = config_builder(&server.token_endpoint())
        .build()
        .expect("a valid configuration");
    let timeline = Timeline::default();
    let blocking_replica = |n: usize| {
        let (store, changes) = replica(n);
        let transport = Noted {
            transport: UreqTransport::new(),
            timeline: timeline.clone(),
            who: format!("blocking-{n}"),
        };
        BlockingClient::builder(config.clone(), transport)
            .replicas(store, format!("blocking-{n}"))
            .store_changes(changes)
            .build()
            .expect("a blocking replica starts")
    };
    let first = blocking_replica(0);
    let logged_in = Instant::now();
    first.login(joe()).expect("the login");
    let mut blocking = vec![first];
    blocking.extend((1..CLIENTS).map(blocking_replica));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // The stores are made outside the runtime (a blocking database client may not start
    // there); the clients within it, as they must be.
    let parts: Vec<_> = (0..CLIENTS).map(|n| replica(CLIENTS + n)).collect();
    let asynchronous: Vec<_> = {
        let _inside = runtime.enter();
        parts
            .into_iter()
            .enumerate()
            .map(|(n, (store, changes))| {
                let (reqwest, timeline, who) = (
                    ReqwestTransport::new().expect("reqwest"),
                    timeline.clone(),
                    format!("async-{n}"),
                );
                let transport = move |request: Request<Vec<u8>>, deadline, max_body| {
                    let (reqwest, timeline, who) = (reqwest.clone(), timeline.clone(), who.clone());
                    async move {
                        let (at, noted) = (Instant::now(), request.clone());
                        let answer = tokenflow::adapters::tokio::AsyncTransport::send(
                            &reqwest, request, deadline, max_body,
                        )
                        .await;
                        timeline.note(&noted, &who, at, &answer);
                        answer
                    }
                };
                AsyncClient::builder(config.clone(), transport)
                    .replicas(store, format!("async-{n}"))
                    .store_changes(changes)
                    .build()
                    .expect("an async replica starts")
            })
            .collect()
    };
    for client in &blocking {
        assert!(client.token_info().is_some(), "started from the login");
    }
    for client in &asynchronous {
        assert!(client.token_info().is_some(), "started from the login");
    }

    let resource = server.resource_url();
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = started + RUN_FOR;
    thread::scope(|scope| {
        for (n, client) in blocking.iter().enumerate() {
            for c in 0..CALLERS {
                let (tally, resource) = (&tally, &resource);
                scope.spawn(move || {
                    let who = format!("blocking-{n}/{c}");
                    while Instant::now() < until {
                        tally.record(&who, served(client.send(api_get(resource))));
                        thread::sleep(PACE);
                    }
                });
            }
        }
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for (n, client) in asynchronous.iter().enumerate() {
                for c in 0..CALLERS {
                    let (client, tally, resource) =
                        (client.clone(), Arc::clone(&tally), resource.clone());
                    tasks.push(tokio::spawn(async move {
                        let who = format!("async-{n}/{c}");
                        while Instant::now() < until {
                            tally.record(&who, served(client.send(api_get(&resource)).await));
                            tokio::time::sleep(PACE).await;
                        }
                    }));
                }
            }
            for task in tasks {
                task.await.expect("a caller task");
            }
        });
    });
    let elapsed = logged_in.elapsed();
    // The async clients go before their runtime: its shutdown waits for their change
    // waiters, which end with them.
    drop(asynchronous);
    drop(runtime);
    drop(blocking);

    let stats = server.stats();
    let logins = count(&stats, "token_requests", "password");
    let refreshes = count(&stats, "token_requests", "refresh_token");
    let sent = timeline.sent();
    // The renewal periods: each token is renewed a tenth of its announced lifetime before
    // it ends, and no sooner.
    let periods: Vec<f64> = sent
        .iter()
        .map(|s| RENEWED_AT * s.expires_in.unwrap_or(0) as f64)
        .collect();
    let failures = std::mem::take(&mut *tally.failures.lock().unwrap());
    eprintln!(
        "{label}: {} calls served in {:?} by {} clients x {CALLERS} callers, {} failed; \
         {logins} login(s), {refreshes} refreshes over {elapsed:?} (renewal periods {periods:?} \
         s); API 401s {}, reuse detections {}, families revoked {}",
        tally.served.load(Ordering::Relaxed),
        RUN_FOR,
        2 * CLIENTS,
        failures.len(),
        counter(&stats, "resource_401"),
        counter(&stats, "reuse_detections"),
        counter(&stats, "families_revoked"),
    );
    eprintln!(
        "{label}: token requests sent at {:?}",
        sent.iter()
            .map(|s| format!(
                "{:.3}s by {}",
                s.at.duration_since(logged_in).as_secs_f64(),
                s.who
            ))
            .collect::<Vec<_>>()
    );
    assert!(failures.is_empty(), "calls not served: {failures:#?}");
    assert!(tally.served.load(Ordering::Relaxed) > 0);
    assert_eq!(counter(&stats, "reuse_detections"), 0, "{stats}");
    assert_eq!(counter(&stats, "families_revoked"), 0, "{stats}");
    assert_eq!(stats["token_errors"], json!({}), "{stats}");
    assert_eq!(logins, 1, "one login, shared: {stats}");
    assert_eq!(sent.len() as u64, logins + refreshes, "{stats}");
    // One token request per renewal period: each comes when the token before it was due,
    // not sooner (so there are no more requests than renewal periods in the run, plus the
    // login), and each was answered with a token.
    for pair in sent.windows(2) {
        let (before, next) = (&pair[0], &pair[1]);
        let due = Duration::from_secs_f64(RENEWED_AT * before.expires_in.unwrap_or(0) as f64);
        assert!(
            next.at.duration_since(before.at) + CLOCK_SLACK >= due,
            "a token request {:?} after the one before, whose token was due for renewal \
             after {due:?}: {sent:?}",
            next.at.duration_since(before.at)
        );
    }
    assert!(sent.iter().all(|s| s.expires_in.is_some()), "{sent:?}");
}

#[test]
fn replicas_sharing_a_memory_store_renew_one_at_a_time() {
    let server = strict_server();
    let store = Arc::new(MemoryStore::new());
    run_replicas("memory store", &server, |_| {
        (Arc::clone(&store), store.changes())
    });
}

#[test]
fn replicas_sharing_a_postgres_store_renew_one_at_a_time() {
    let database = TestServer::shared().expect("a PostgreSQL server (install `postgresql`)");
    let server = strict_server();
    let key = TestServer::unique_key("adapter-replicas");
    let connection = database.connection_string();
    run_replicas("postgres store", &server, |_| {
        // The listener first, so that it hears every change the store's first use may miss.
        let changes = PgChangeListener::connect(&connection, &key).expect("a listener");
        let store = PgStore::connect(&connection, &key).expect("a store");
        (store, changes)
    });
}

// ---------------------------------------------------------------------------------------------
// A store that fails.

/// Which operations of a [`Flaky`] store fail (or panic).
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    snapshot: bool,
    lease: bool,
    mark: bool,
    write: bool,
    release: bool,
    panic_on_write: bool,
}

/// A [`MemoryStore`] whose operations fail as told.
#[derive(Clone, Default)]
struct Flaky {
    inner: Arc<MemoryStore>,
    faults: Arc<Mutex<Faults>>,
}

#[derive(Debug)]
struct Down(&'static str);

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the store is down ({})", self.0)
    }
}

impl std::error::Error for Down {}

impl Flaky {
    fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().unwrap());
    }

    fn check(&self, fails: impl FnOnce(&Faults) -> bool, what: &'static str) -> Result<(), Down> {
        if fails(&self.faults.lock().unwrap()) {
            return Err(Down(what));
        }
        Ok(())
    }
}

fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

impl SharedTokenStore for Flaky {
    type Error = Down;

    fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
        now: UnixTime,
    ) -> Result<LeaseAnswer, Down> {
        self.check(|f| f.lease, "lease")?;
        Ok(infallible(self.inner.acquire_lease(holder, duration, now)))
    }

    fn snapshot(&self) -> Result<SharedSnapshot, Down> {
        self.check(|f| f.snapshot, "snapshot")?;
        Ok(infallible(self.inner.snapshot()))
    }

    fn mark_in_flight(
        &self,
        holder: &str,
        since: UnixTime,
        now: UnixTime,
    ) -> Result<MarkOutcome, Down> {
        self.check(|f| f.mark, "mark")?;
        Ok(infallible(self.inner.mark_in_flight(holder, since, now)))
    }

    fn compare_and_set(
        &self,
        expected: StoreVersion,
        tokens: Option<&StoredTokens>,
    ) -> Result<CasOutcome, Down> {
        if self.faults.lock().unwrap().panic_on_write {
            panic!("a store bug");
        }
        self.check(|f| f.write, "write")?;
        Ok(infallible(self.inner.compare_and_set(expected, tokens)))
    }

    fn release_lease(&self, holder: &str, clear_in_flight: bool) -> Result<(), Down> {
        self.check(|f| f.release, "release")?;
        infallible(self.inner.release_lease(holder, clear_in_flight));
        Ok(())
    }
}

fn shared_failure(result: Result<impl fmt::Debug, Error>, during: &str) {
    match result {
        Err(Error::Store(error)) => match &*error {
            StoreError::Shared { during: what, .. } => assert_eq!(*what, during, "{error}"),
            other => panic!("expected a shared-store error, got {other}"),
        },
        other => panic!("expected a store error {during}, got {other:?}"),
    }
}

fn store_unavailable(result: Result<impl fmt::Debug, Error>) {
    match result {
        Err(Error::TokenRequest(error)) => {
            assert_eq!(error.cause, FailureCause::SharedStoreUnavailable, "{error}")
        }
        other => panic!("expected the renewal to fail on the store, got {other:?}"),
    }
}

/// Past the expiry of the token issued last.
fn past_expiry() {
    thread::sleep(Duration::from_millis(ACCESS_TTL_SECS * 1_000 + 100));
}

#[test]
fn a_failing_store_costs_typed_errors_and_no_token() {
    let server = strict_server();
    let config = config_builder(&server.token_endpoint())
        .retry(RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(1),
        })
        .build()
        .expect("a valid configuration");
    let store = Flaky::default();
    let replica = || {
        BlockingClient::builder(config.clone(), UreqTransport::new())
            .replicas(store.clone(), "flaky")
            .build()
    };
    let stats = || server.stats();
    let refreshes = || count(&stats(), "token_requests", "refresh_token");
    let version = || store.inner.snapshot().unwrap().version;

    // A store that cannot be read when the client starts.
    store.set(|f| f.snapshot = true);
    shared_failure(replica(), "reading the store");
    store.set(|f| f.snapshot = false);
    let client = replica().expect("the client starts");

    // Tokens that cannot be written: the login fails, at once, and the tokens are held back.
    store.set(|f| f.write = true);
    let started = Instant::now();
    shared_failure(client.login(joe()), "writing the tokens");
    assert!(started.elapsed() < Duration::from_secs(2), "no stall");
    assert_eq!(store.inner.snapshot().unwrap().tokens, None);
    // The next call writes them, and uses them.
    store.set(|f| f.write = false);
    client.bearer().expect("the held-back tokens, written");
    assert_eq!(version(), StoreVersion::new(1));

    // A lease that cannot be had: the renewal backs off, then fails; nothing is sent.
    past_expiry();
    store.set(|f| f.lease = true);
    let started = Instant::now();
    store_unavailable(client.bearer());
    eprintln!(
        "a renewal without a lease failed after {:?}",
        started.elapsed()
    );
    assert_eq!(refreshes(), 0);

    // A mark that cannot be written: the refresh is not sent either.
    store.set(|f| {
        f.lease = false;
        f.mark = true;
    });
    store_unavailable(client.bearer());
    assert_eq!(refreshes(), 0, "no refresh without its mark");

    store.set(|f| f.mark = false);
    client.bearer().expect("a renewal");
    assert_eq!(refreshes(), 1);
    assert_eq!(version(), StoreVersion::new(2));

    // A refresh answered, its tokens not written: held back, then written by the next call.
    past_expiry();
    store.set(|f| f.write = true);
    shared_failure(client.bearer(), "writing the tokens");
    assert_eq!(refreshes(), 2);
    store.set(|f| f.write = false);
    client.bearer().expect("the refreshed tokens, written");
    assert_eq!(version(), StoreVersion::new(3));

    // A lease that cannot be released runs out; the same replica takes it again meanwhile.
    past_expiry();
    store.set(|f| f.release = true);
    client
        .bearer()
        .expect("a renewal whose lease is not released");
    store.set(|f| f.release = false);
    past_expiry();
    client
        .bearer()
        .expect("a renewal under the unreleased lease");
    assert_eq!(refreshes(), 4);

    // A store that panics writing: the caller that performed the write unwinds, the next
    // call writes the tokens.
    past_expiry();
    store.set(|f| f.panic_on_write = true);
    let panicking = client.clone();
    assert!(thread::spawn(move || panicking.bearer()).join().is_err());
    store.set(|f| f.panic_on_write = false);
    client.bearer().expect("the tokens written after the panic");
    assert_eq!(version(), StoreVersion::new(6));

    // No token was lost: the family goes on, with no reuse and no second login.
    let response = client
        .send(api_get(&server.resource_url()))
        .expect("a call");
    assert_eq!(response.status(), StatusCode::OK);
    let stats = stats();
    eprintln!("after the store's failures: {stats}");
    assert_eq!(counter(&stats, "reuse_detections"), 0, "{stats}");
    assert_eq!(counter(&stats, "families_revoked"), 0, "{stats}");
    assert_eq!(count(&stats, "token_requests", "password"), 1, "{stats}");
    assert_eq!(
        count(&stats, "token_requests", "refresh_token"),
        5,
        "{stats}"
    );
    assert_eq!(stats["token_errors"], json!({}), "{stats}");
}

// ---------------------------------------------------------------------------------------------
// Building, and the change waiter.

fn offline(_: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
    Err(TransportError::not_sent("offline"))
}

fn setup_error<T: fmt::Debug>(result: Result<T, Error>) -> ReplicaSetupError {
    match result {
        Err(Error::ReplicaSetup(error)) => error,
        other => panic!("expected a refused setup, got {other:?}"),
    }
}

#[test]
fn build_refuses_replica_settings_that_cannot_work() {
    let plain = config_builder("http://127.0.0.1:9/token").build().unwrap();
    let shared = config_builder("http://127.0.0.1:9/token")
        .shared_store(true)
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let blocking = |config: &Config| BlockingClient::builder(config.clone(), offline);

    assert_eq!(
        setup_error(blocking(&shared).build()),
        ReplicaSetupError::NoSharedStore
    );
    assert_eq!(
        setup_error(
            blocking(&plain)
                .store(tokenflow::adapters::MemoryStore::new())
                .replicas(Arc::clone(&store), "a")
                .build()
        ),
        ReplicaSetupError::StoreBesideReplicas
    );
    assert_eq!(
        setup_error(blocking(&plain).store_changes(store.changes()).build()),
        ReplicaSetupError::ChangesWithoutReplicas
    );
    assert_eq!(
        setup_error(blocking(&plain).replicas(Arc::clone(&store), "").build()),
        ReplicaSetupError::EmptyHolder
    );
    // Given a store, a configuration without the shared-store mode gets it.
    let client = blocking(&plain)
        .replicas(Arc::clone(&store), "a")
        .build()
        .expect("a replica");
    assert!(client.token_info().is_none());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let transport = |_: Request<Vec<u8>>, _: Instant, _: usize| async {
            Err::<Response<Vec<u8>>, _>(TransportError::not_sent("offline"))
        };
        let refused = AsyncClient::builder(shared.clone(), transport).build();
        assert_eq!(setup_error(refused), ReplicaSetupError::NoSharedStore);
        let client = AsyncClient::builder(plain.clone(), transport)
            .replicas(Arc::clone(&store), "b")
            .store_changes(store.changes())
            .build()
            .expect("an async replica");
        assert!(client.token_info().is_none());
    });
}

/// A token endpoint in the test's own process.
type TokenEndpoint =
    Arc<dyn Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> + Send + Sync>;

/// A token endpoint answering every request with new tokens, numbered, that last an hour;
/// and its count of requests.
fn numbered_tokens() -> (TokenEndpoint, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let transport: TokenEndpoint = Arc::new(move |_: Request<Vec<u8>>| {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!(
            r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{n}"}}"#
        );
        Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap())
    });
    (transport, requests)
}

#[test]
fn a_replica_hears_another_ones_login_through_its_change_feed() {
    let config = config_builder("http://127.0.0.1:9/token").build().unwrap();
    let store = Arc::new(MemoryStore::new());
    let (transport, requests) = numbered_tokens();
    let replica = |name: &str| {
        let transport = Arc::clone(&transport);
        BlockingClient::builder(config.clone(), move |request: Request<Vec<u8>>| {
            transport(request)
        })
        .replicas(Arc::clone(&store), name)
        .store_changes(store.changes())
        .build()
        .expect("a replica")
    };
    let (first, second) = (replica("first"), replica("second"));
    assert!(second.token_info().is_none());
    first
        .login(Credentials::ClientCredentials)
        .expect("a login");

    // The second replica adopts the login without a call of its own.
    let heard = Instant::now();
    while second.token_info().is_none() {
        assert!(
            heard.elapsed() < Duration::from_secs(5),
            "the change was not reported"
        );
        thread::sleep(Duration::from_millis(5));
    }
    eprintln!("the change was reported after {:?}", heard.elapsed());
    let (a, b) = (first.bearer().unwrap(), second.bearer().unwrap());
    assert_eq!(
        a.header_value().to_str().unwrap(),
        b.header_value().to_str().unwrap()
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

/// A change feed that never hears anything, and says when it is dropped.
struct Silent {
    dropped: Arc<AtomicBool>,
}

impl StoreChanges for Silent {
    type Error = Infallible;

    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool, Infallible> {
        thread::sleep(timeout);
        Ok(false)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// How long after the client's drop the feed was dropped.
fn feed_outlives(dropped: &AtomicBool, client_dropped: Instant) -> Duration {
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            client_dropped.elapsed() < Duration::from_secs(10),
            "the change waiter outlived its client"
        );
        thread::sleep(Duration::from_millis(10));
    }
    client_dropped.elapsed()
}

#[test]
fn the_change_waiter_ends_with_the_client() {
    let config = config_builder("http://127.0.0.1:9/token").build().unwrap();
    let store = Arc::new(MemoryStore::new());

    let dropped = Arc::new(AtomicBool::new(false));
    let client = BlockingClient::builder(config.clone(), offline)
        .replicas(Arc::clone(&store), "blocking")
        .store_changes(Silent {
            dropped: Arc::clone(&dropped),
        })
        .build()
        .expect("a replica");
    let clone = client.clone();
    thread::sleep(Duration::from_millis(50));
    drop(client);
    thread::sleep(Duration::from_millis(1_500));
    assert!(!dropped.load(Ordering::SeqCst), "a clone is still there");
    let gone = Instant::now();
    drop(clone);
    let after = feed_outlives(&dropped, gone);
    eprintln!("blocking client: its change waiter ended {after:?} after it");
    assert!(after < Duration::from_millis(2_500), "{after:?}");

    let dropped = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gone = runtime.block_on(async {
        let transport = |_: Request<Vec<u8>>, _: Instant, _: usize| async {
            Err::<Response<Vec<u8>>, _>(TransportError::not_sent("offline"))
        };
        let client = AsyncClient::builder(config.clone(), transport)
            .replicas(Arc::clone(&store), "async")
            .store_changes(Silent {
                dropped: Arc::clone(&dropped),
            })
            .build()
            .expect("a replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(client);
        Instant::now()
    });
    let after = feed_outlives(&dropped, gone);
    eprintln!("async client: its change waiter ended {after:?} after it");
    assert!(after < Duration::from_millis(2_500), "{after:?}");
    drop(runtime);
}

#[test]
fn a_runtime_shutting_down_does_not_wait_for_a_client_that_outlives_it() {
    let config = config_builder("http://127.0.0.1:9/token").build().unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let transport = |_: Request<Vec<u8>>, _: Instant, _: usize| async {
            Err::<Response<Vec<u8>>, _>(TransportError::not_sent("offline"))
        };
        AsyncClient::builder(config, transport)
            .replicas(Arc::new(MemoryStore::new()), "outliving")
            .store_changes(Silent {
                dropped: Arc::clone(&dropped),
            })
            .build()
            .expect("a replica")
    });
    // A runtime's shutdown waits for its blocking tasks: the change waiter must end with it.
    let (shut_down, done) = std::sync::mpsc::channel();
    let started = Instant::now();
    thread::spawn(move || {
        drop(runtime);
        let _ = shut_down.send(());
    });
    assert!(
        done.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the runtime's shutdown waits for the change waiter"
    );
    eprintln!("the runtime shut down in {:?}", started.elapsed());
    // The waiter ended inside the runtime's blocking pool, where a feed is dropped on a
    // thread of its own (it may own a runtime): soon after, not necessarily before the
    // shutdown returns.
    let after = feed_outlives(&dropped, started);
    eprintln!("the feed was dropped {after:?} after the shutdown began");
    drop(client);
}
