//! Refresh-token rotation stays safe through both clients when a refresh goes unanswered, against
//! `oauth2-server.js` with `strictReuse` (RFC 9700 §4.14.2: a spent refresh token presented
//! again is refused and its whole family revoked, counted in `reuse_detections` and
//! `families_revoked`).
//!
//! - A server paused (`kill -STOP`) past the request timeout during a refresh, then resumed,
//!   applies the refresh nobody hears the answer to. Under the default strict reuse setting the
//!   client never presents that refresh token again: it logs in anew through its credentials
//!   source, and the server sees no reuse.
//! - A refresh answer held back past the deadline (`POST /test/delay-token`) reaches a
//!   transport that waits longer than the flow: the flow adopts it, so the rotated refresh
//!   token is kept, the next API call works without a login and later refreshes go on.
//!
//! The numbers show with `cargo test --test interop_rotation -- --nocapture`.

#[path = "support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde_json::{Value, json};

use tokenflow::adapters::Error;
use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
use tokenflow::{
    Config, Credentials, FailureCause, GrantKind, RefreshTokenReuse, TransportErrorKind,
};

use servers::{BASIC_CLIENT, JOE, RunningServer, count, counter};

/// Access tokens live this long on the server, so that refreshes come within seconds: long
/// enough for a token held back by [`ANSWER_DELAY`] to be still valid when it arrives.
const ACCESS_TTL_SECS: u64 = 4;
/// Waited after a token was issued for it to have expired.
const PAST_EXPIRY: Duration = Duration::from_millis(4300);
/// How long the flow waits for a token answer.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the server stays paused: past the refresh's deadline.
const PAUSED_FOR: Duration = Duration::from_millis(2200);
/// How long the refresh's answer is held back: past its deadline.
const ANSWER_DELAY: Duration = Duration::from_millis(2500);

fn strict_server() -> RunningServer {
    RunningServer::oauth2_server(json!({ "accessTokenTtl": ACCESS_TTL_SECS, "strictReuse": true }))
}

fn config(server: &RunningServer) -> Config {
    Config::builder(server.token_endpoint(), BASIC_CLIENT.id)
        .client_secret(BASIC_CLIENT.secret.expect("a confidential client"))
        .scope("api offline_access")
        .request_timeout(TIMEOUT)
        .proactive_refresh(false)
        .refresh_token_reuse(RefreshTokenReuse::Strict)
        .build()
        .expect("a valid configuration")
}

fn joe() -> Credentials {
    Credentials::password(JOE.username, JOE.password)
}

/// A credentials source that counts how often it was asked.
fn counting_source(asked: &Arc<AtomicUsize>) -> impl Fn() -> Option<Credentials> + use<> {
    let asked = Arc::clone(asked);
    move || {
        asked.fetch_add(1, Ordering::SeqCst);
        Some(joe())
    }
}

fn api_get(server: &RunningServer) -> Request<Vec<u8>> {
    Request::get(server.resource_url())
        .body(Vec::new())
        .expect("a request")
}

fn assert_ok(response: &Response<Vec<u8>>) {
    let body: Value = serde_json::from_slice(response.body()).expect("a JSON body");
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    assert_eq!(body["sub"], JOE.username);
}

/// No spent refresh token was ever presented again, and no family revoked.
fn assert_no_reuse(stats: &Value) {
    assert_eq!(counter(stats, "reuse_detections"), 0, "{stats}");
    assert_eq!(counter(stats, "families_revoked"), 0, "{stats}");
}

/// The caller whose refresh went unanswered hears so; under strict reuse its refresh token is
/// not presented again.
fn assert_refresh_timed_out<T: std::fmt::Debug>(result: &Result<T, Error>) {
    match result {
        Err(Error::TokenRequest(error))
            if error.grant == GrantKind::RefreshToken
                && error.attempts == 1
                && matches!(&error.cause, FailureCause::Transport(t) if t.kind() == TransportErrorKind::TimedOut) =>
            {}
        other => panic!("expected the refresh to time out after one attempt, got {other:?}"),
    }
}

/// What a test that paused the server during a refresh must see at the end: the refresh was
/// applied by the server after all (its answer went nowhere), the client logged in anew
/// through its source exactly once and never presented the spent token again, and the next
/// refresh, of the new family, went through.
fn assert_paused_refresh_outcome(stats: &Value, asked: usize) {
    assert_no_reuse(stats);
    assert_eq!(counter(stats, "resource_401"), 0, "{stats}");
    assert_eq!(asked, 1, "one new login through the credentials source");
    assert_eq!(count(stats, "token_requests", "password"), 2, "{stats}");
    assert_eq!(
        count(stats, "token_requests", "refresh_token"),
        2,
        "the unanswered refresh and the new family's: {stats}"
    );
    assert_eq!(stats["token_errors"], json!({}), "{stats}");
}

/// After a slow refresh answer: it was adopted (no new login) and its refresh token used for
/// the next refresh.
fn assert_adopted_outcome(stats: &Value) {
    assert_no_reuse(stats);
    assert_eq!(
        counter(stats, "resource_401"),
        0,
        "the adopted access token worked: {stats}"
    );
    assert_eq!(count(stats, "token_requests", "password"), 1, "{stats}");
    assert_eq!(
        count(stats, "token_requests", "refresh_token"),
        2,
        "the slow refresh and one with its successor: {stats}"
    );
    assert_eq!(stats["token_errors"], json!({}), "{stats}");
}

// ---------------------------------------------------------------------------------------------
// The blocking client.

#[test]
fn blocking_a_refresh_to_a_paused_server_ends_in_one_new_login_and_no_reuse() {
    let server = strict_server();
    let asked = Arc::new(AtomicUsize::new(0));
    let client = BlockingClient::builder(config(&server), UreqTransport::new())
        .credentials(counting_source(&asked))
        .build()
        .expect("the client starts");
    client.login(joe()).expect("the first login");
    assert_ok(&client.send(api_get(&server)).expect("the first call"));

    server.pause();
    thread::sleep(PAST_EXPIRY);
    let started = Instant::now();
    let during = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(PAUSED_FOR);
            server.resume();
        });
        client.send(api_get(&server))
    });
    eprintln!(
        "the call across the pause ended after {:?}",
        started.elapsed()
    );
    assert_refresh_timed_out(&during);
    // The server has applied the refresh by now; its answer went to a closed connection.
    assert_ok(
        &client
            .send(api_get(&server))
            .expect("the call after the pause"),
    );

    // The new family refreshes as usual.
    thread::sleep(PAST_EXPIRY);
    assert_ok(&client.send(api_get(&server)).expect("the call after"));

    let stats = server.stats();
    eprintln!("stats {stats}; credentials source asked {asked:?}");
    assert_paused_refresh_outcome(&stats, asked.load(Ordering::SeqCst));
}

#[test]
fn blocking_a_refresh_answered_after_its_deadline_is_adopted() {
    let server = strict_server();
    let client = BlockingClient::builder(config(&server), UreqTransport::new())
        .build()
        .expect("the client starts");
    client.login(joe()).expect("the first login");
    assert_ok(&client.send(api_get(&server)).expect("the first call"));

    server.delay_next_token_answer(ANSWER_DELAY);
    thread::sleep(PAST_EXPIRY);
    let started = Instant::now();
    // This caller sends the refresh and waits for its late answer itself.
    let during = client.send(api_get(&server));
    eprintln!(
        "the call with the slow refresh took {:?}: {:?}",
        started.elapsed(),
        during.as_ref().map(Response::status)
    );

    assert_ok(
        &client
            .send(api_get(&server))
            .expect("the call after the late answer"),
    );
    thread::sleep(PAST_EXPIRY);
    assert_ok(
        &client
            .send(api_get(&server))
            .expect("the call with the adopted refresh token's successor"),
    );

    let stats = server.stats();
    eprintln!("stats {stats}");
    assert_adopted_outcome(&stats);
}

// ---------------------------------------------------------------------------------------------
// The async client.

fn reqwest_transport() -> ReqwestTransport {
    ReqwestTransport::new().expect("a reqwest client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_a_refresh_to_a_paused_server_ends_in_one_new_login_and_no_reuse() {
    let server = strict_server();
    let asked = Arc::new(AtomicUsize::new(0));
    let client = AsyncClient::builder(config(&server), reqwest_transport())
        .credentials(counting_source(&asked))
        .build()
        .expect("the client starts");
    client.login(joe()).await.expect("the first login");
    assert_ok(&client.send(api_get(&server)).await.expect("the first call"));

    server.pause();
    tokio::time::sleep(PAST_EXPIRY).await;
    let started = Instant::now();
    let resume = async {
        tokio::time::sleep(PAUSED_FOR).await;
        server.resume();
    };
    let (during, ()) = tokio::join!(client.send(api_get(&server)), resume);
    eprintln!(
        "the call across the pause ended after {:?}",
        started.elapsed()
    );
    assert_refresh_timed_out(&during);
    assert_ok(
        &client
            .send(api_get(&server))
            .await
            .expect("the call after the pause"),
    );

    tokio::time::sleep(PAST_EXPIRY).await;
    assert_ok(&client.send(api_get(&server)).await.expect("the call after"));

    let stats = server.stats();
    eprintln!("stats {stats}; credentials source asked {asked:?}");
    assert_paused_refresh_outcome(&stats, asked.load(Ordering::SeqCst));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_a_refresh_answered_after_its_deadline_is_adopted() {
    let server = strict_server();
    let client = AsyncClient::builder(config(&server), reqwest_transport())
        .build()
        .expect("the client starts");
    client.login(joe()).await.expect("the first login");
    assert_ok(&client.send(api_get(&server)).await.expect("the first call"));

    server.delay_next_token_answer(ANSWER_DELAY);
    tokio::time::sleep(PAST_EXPIRY).await;
    let started = Instant::now();
    // The caller stops waiting at the deadline; the refresh's task goes on.
    let during = client.send(api_get(&server)).await;
    eprintln!(
        "the call with the slow refresh ended after {:?}: {:?}",
        started.elapsed(),
        during.as_ref().map(Response::status)
    );
    assert!(
        during.is_err(),
        "the caller gave up at the deadline: {during:?}"
    );
    // Until just after the answer arrived: the adopted access token is still valid then.
    tokio::time::sleep(ANSWER_DELAY.saturating_sub(started.elapsed()) + Duration::from_millis(300))
        .await;

    assert_ok(
        &client
            .send(api_get(&server))
            .await
            .expect("the call after the late answer"),
    );
    tokio::time::sleep(PAST_EXPIRY).await;
    assert_ok(
        &client
            .send(api_get(&server))
            .await
            .expect("the call with the adopted refresh token's successor"),
    );

    let stats = server.stats();
    eprintln!("stats {stats}");
    assert_adopted_outcome(&stats);
    client.shutdown().await;
}
