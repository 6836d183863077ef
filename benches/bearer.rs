//! `bearer()` on a held token, for both clients, against a hand-written cache of the same
//! token (`RwLock<Option<(String, Instant)>>`, cloned out when still valid), at 1 and 2
//! threads: what the clients' token at hand costs next to the simplest cache one would write.
//!
//! Rounds of each side are interleaved with their order alternated; each prints the client's
//! throughput as a share of the hand-written cache's. `--test` (or a run outside
//! `cargo bench`) makes it a two-round smoke run.

#[path = "support/api_server.rs"]
mod api_server;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::RwLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use api_server::{interleaved, is_quick_run, single_side, timed};
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::adapters::tokio::AsyncClient;
use tokenflow::{Config, Credentials, TransportError};

const CALLS: usize = 1_000_000;
const ROUNDS: usize = 20;

const TOKEN: &str =
    r#"{"access_token":"bench-access-token","token_type":"Bearer","expires_in":3600}"#;

/// The cache an application would write by hand.
struct HandWritten {
    slot: RwLock<Option<(String, Instant)>>,
}

impl HandWritten {
    fn get(&self) -> Option<String> {
        let now = Instant::now();
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((token, valid_until)) if now < *valid_until => Some(token.clone()),
            _ => None,
        }
    }
}

fn token_response() -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(TOKEN.as_bytes().to_vec())
        .expect("a response")
}

fn config() -> Config {
    Config::builder("http://127.0.0.1:9/token", "bench-client")
        .client_secret("bench-secret")
        .build()
        .expect("a valid configuration")
}

/// `threads` threads sharing `CALLS` calls of `get`.
fn batch(threads: usize, get: impl Fn() + Sync) -> Duration {
    timed(|| {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..CALLS / threads {
                        get();
                    }
                });
            }
        })
    })
}

/// Polls a future that is ready at once, as `bearer()` is while a token is held.
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the token was not at hand"),
    }
}

fn main() {
    let rounds = if is_quick_run() { 2 } else { ROUNDS };
    let hand = HandWritten {
        slot: RwLock::new(Some((
            "Bearer bench-access-token".to_owned(),
            Instant::now() + Duration::from_secs(3600),
        ))),
    };

    let blocking = BlockingClient::builder(config(), |_request| {
        Ok::<_, TransportError>(token_response())
    })
    .build()
    .expect("the client is built");
    blocking
        .login(Credentials::ClientCredentials)
        .expect("the login succeeds");
    blocking.bearer().expect("a token, now at hand");

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let asynchronous = runtime.block_on(async {
        let client = AsyncClient::builder(config(), |_request, _deadline, _max_body| async {
            Ok::<_, TransportError>(token_response())
        })
        .build()
        .expect("the client is built");
        client
            .login(Credentials::ClientCredentials)
            .await
            .expect("the login succeeds");
        client.bearer().await.expect("a token, now at hand");
        client
    });

    if let Some((measured, calls)) = single_side() {
        let side = std::env::var("TOKENFLOW_BENCH_CLIENT").unwrap_or_default();
        for _ in 0..calls {
            match (measured, side.as_str()) {
                (false, _) => drop(black_box(hand.get())),
                (true, "async") => drop(black_box(ready(asynchronous.bearer()))),
                (true, _) => drop(black_box(blocking.bearer())),
            }
        }
        return;
    }

    for threads in [1, 2] {
        let comparison = interleaved(
            rounds,
            || batch(threads, || drop(black_box(hand.get()))),
            || batch(threads, || drop(black_box(blocking.bearer()))),
        );
        println!(
            "BlockingClient::bearer(), {threads} thread(s): {:.1}% of the hand-written cache's \
             throughput over all rounds (median round {:.1}%); hand-written {:.1} ns per call; \
             {rounds} rounds of {CALLS} calls per side, order alternated",
            100.0 * comparison.overall(),
            100.0 * comparison.median(),
            comparison.reference.as_nanos() as f64 / (rounds * CALLS) as f64,
        );
        let comparison = interleaved(
            rounds,
            || batch(threads, || drop(black_box(hand.get()))),
            || batch(threads, || drop(black_box(ready(asynchronous.bearer())))),
        );
        println!(
            "AsyncClient::bearer(),    {threads} thread(s): {:.1}% of the hand-written cache's \
             throughput over all rounds (median round {:.1}%); hand-written {:.1} ns per call; \
             {rounds} rounds of {CALLS} calls per side, order alternated",
            100.0 * comparison.overall(),
            100.0 * comparison.median(),
            comparison.reference.as_nanos() as f64 / (rounds * CALLS) as f64,
        );
    }
}
