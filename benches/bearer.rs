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

use api_server::quick_run::is_quick_run;
use api_server::{interleaved, single_side, timed};
use tokenflow::adapters::blocking::{BlockingClient, Transport};
use tokenflow::adapters::tokio::{AsyncClient, AsyncTransport};
use tokenflow::{Config, Credentials, TransportError};

const CALLS: usize = 1_000_000;
const ROUNDS: usize = 20;

/// The two access tokens compared: a short one, where copying a string costs least, and one
/// of the size of the signed JWTs most providers issue (IdentityServer's run to about 1 KB).
const SHORT_TOKEN: &str = "bench-access-token";
const JWT_SIZED_TOKEN_BYTES: usize = 1_000;

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

fn token_response(token: &str) -> http::Response<Vec<u8>> {
    let body = format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#);
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.into_bytes())
        .expect("a response")
}

/// A token of `len` characters of the base64url alphabet, shaped like a JWT.
fn jwt_sized(len: usize) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|i| match i {
            36 | 700 => '.',
            _ => char::from(alphabet[(i * 7 + i / 64) % alphabet.len()]),
        })
        .collect()
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
    let long = jwt_sized(JWT_SIZED_TOKEN_BYTES);
    if let Some((measured, calls)) = single_side() {
        let side = std::env::var("TOKENFLOW_BENCH_CLIENT").unwrap_or_default();
        let token = match std::env::var("TOKENFLOW_BENCH_TOKEN").as_deref() {
            Ok("long") => long.as_str(),
            _ => SHORT_TOKEN,
        };
        let sides = Sides::new(token);
        for _ in 0..calls {
            match (measured, side.as_str()) {
                (false, _) => drop(black_box(sides.hand.get())),
                (true, "async") => drop(black_box(ready(sides.asynchronous.bearer()))),
                (true, _) => drop(black_box(sides.blocking.bearer())),
            }
        }
        return;
    }
    for token in [SHORT_TOKEN, long.as_str()] {
        compare(&Sides::new(token), token.len(), rounds);
    }
}

/// The hand-written cache and both clients, each holding the same token.
struct Sides<B, A> {
    hand: HandWritten,
    blocking: BlockingClient<B>,
    asynchronous: AsyncClient<A>,
    _runtime: tokio::runtime::Runtime,
}

impl Sides<(), ()> {
    fn new(token: &str) -> Sides<impl Transport + Send + Sync, impl AsyncTransport> {
        let hand = HandWritten {
            slot: RwLock::new(Some((
                format!("Bearer {token}"),
                Instant::now() + Duration::from_secs(3600),
            ))),
        };
        let answer = token.to_owned();
        let blocking = BlockingClient::builder(config(), move |_request| {
            Ok::<_, TransportError>(token_response(&answer))
        })
        .build()
        .expect("the client is built");
        blocking
            .login(Credentials::ClientCredentials)
            .expect("the login succeeds");
        blocking.bearer().expect("a token, now at hand");

        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let answer = token.to_owned();
        let asynchronous = runtime.block_on(async {
            let client = AsyncClient::builder(config(), move |_request, _deadline, _max_body| {
                let response = token_response(&answer);
                async move { Ok::<_, TransportError>(response) }
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
        Sides {
            hand,
            blocking,
            asynchronous,
            _runtime: runtime,
        }
    }
}

fn compare<B: Transport + Send + Sync, A: AsyncTransport>(
    sides: &Sides<B, A>,
    token_len: usize,
    rounds: usize,
) {
    let Sides {
        hand,
        blocking,
        asynchronous,
        ..
    } = sides;
    for threads in [1, 2] {
        let shape = (threads, token_len, rounds);
        measure("BlockingClient::bearer(),", hand, shape, || {
            drop(black_box(blocking.bearer()))
        });
        measure("AsyncClient::bearer(),", hand, shape, || {
            drop(black_box(ready(asynchronous.bearer())))
        });
    }
}

/// Compares `bearer` with the hand-written cache at `threads` threads and prints the outcome.
/// Generic, so that neither side calls through a pointer.
fn measure(
    client: &str,
    hand: &HandWritten,
    (threads, token_len, rounds): (usize, usize, usize),
    bearer: impl Fn() + Sync,
) {
    let comparison = interleaved(
        rounds,
        || batch(threads, || drop(black_box(hand.get()))),
        || batch(threads, &bearer),
    );
    println!(
        "{client:<26}{token_len:>4}-byte token, {threads} thread(s): {:.1}% of the hand-written \
         cache's throughput over all rounds (median round {:.1}%); hand-written {:.1} ns per \
         call; {rounds} rounds of {CALLS} calls per side, order alternated",
        100.0 * comparison.overall(),
        100.0 * comparison.median(),
        comparison.reference.as_nanos() as f64 / (rounds * CALLS) as f64,
    );
}
