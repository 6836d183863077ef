//! API calls through the async client against the same calls made with raw `reqwest` and a
//! fixed `Authorization` header, against one HTTP/1.1 server in another process: what holding
//! a token costs on every call, at 1, 16 and 64 concurrent callers.
//!
//! Each comparison runs rounds of one batch of each side, interleaved with their order
//! alternated, and prints the client's throughput as a share of raw reqwest's (over all
//! rounds, in the median round and at the rounds' quartiles). `--test` (or a run outside `cargo bench`) makes it a
//! two-round smoke run.

#[path = "support/api_server.rs"]
mod api_server;

use std::sync::Arc;
use std::time::Duration;

use api_server::{AUTHORIZATION, ApiServer, interleaved, rounds, serve_if_asked, single_side};
use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
use tokenflow::{Config, Credentials};
use tokio::runtime::Runtime;

/// Calls in one batch of one side, shared out between the callers.
const BATCH: usize = 4_096;

/// One API call with raw reqwest and a fixed token, body read.
async fn raw_call(raw: &reqwest::Client, url: &str) {
    let response = raw
        .get(url)
        .header("authorization", AUTHORIZATION)
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await.expect("a body");
}

/// One API call with raw reqwest given the request the client is given, an `http::Request`,
/// with the fixed token: what the client adds, apart from the conversion every sender of an
/// `http::Request` through reqwest pays (its URI is written out and parsed again as a `Url`).
async fn raw_call_same_request(raw: &reqwest::Client, url: &str) {
    let request = http::Request::get(url)
        .header("authorization", AUTHORIZATION)
        .body(Vec::new())
        .expect("a valid request");
    let request = reqwest::Request::try_from(request).expect("a request reqwest can send");
    let response = raw.execute(request).await.expect("a response");
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await.expect("a body");
}

/// One API call through the client, which attaches the token it holds.
async fn client_call(client: &AsyncClient, url: &str) {
    let request = http::Request::get(url)
        .body(Vec::new())
        .expect("a valid request");
    let response = client.send(request).await.expect("a response");
    assert_eq!(response.status(), 200);
}

/// Who sends the calls of a batch.
#[derive(Clone, Copy)]
enum Side {
    Raw,
    RawSameRequest,
    Client,
}

/// What every caller shares: each task holds one reference for its whole batch, so that
/// neither side pays a clone of its client (a shared reference count) per call.
struct Callers {
    raw: reqwest::Client,
    client: AsyncClient,
    url: String,
}

/// Which URLs the calls of a batch go to.
#[derive(Clone, Copy, PartialEq)]
enum Urls {
    /// All to the same URL.
    Same,
    /// Each to a URL of its own (`/resource/{caller}-{call}`), written out by the caller.
    Distinct,
}

/// One batch: `callers` tasks sharing `BATCH` calls.
fn batch(
    runtime: &Runtime,
    callers: usize,
    shared: &Arc<Callers>,
    (side, urls): (Side, Urls),
) -> Duration {
    runtime.block_on(async {
        api_server::timed_async(async {
            let tasks: Vec<_> = (0..callers)
                .map(|caller| {
                    let shared = Arc::clone(shared);
                    tokio::spawn(async move {
                        let Callers { raw, client, url } = &*shared;
                        for call in 0..BATCH / callers {
                            let distinct;
                            let url = match urls {
                                Urls::Same => url.as_str(),
                                Urls::Distinct => {
                                    distinct = format!("{url}/{caller}-{call}");
                                    distinct.as_str()
                                }
                            };
                            match side {
                                Side::Raw => raw_call(raw, url).await,
                                Side::RawSameRequest => raw_call_same_request(raw, url).await,
                                Side::Client => client_call(client, url).await,
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a caller");
            }
        })
        .await
    })
}

fn main() {
    if serve_if_asked() {
        return;
    }
    let server = ApiServer::start();
    let runtime = Runtime::new().expect("a tokio runtime");
    // The raw side shares the transport's client: the same pool settings, no redirects.
    let transport = ReqwestTransport::new().expect("a reqwest client");
    let raw = transport.client().clone();
    let config = Config::builder(server.url("/token"), "bench-client")
        .client_secret("bench-secret")
        .build()
        .expect("a valid configuration");
    let client = runtime.block_on(async {
        let client = AsyncClient::builder(config, transport)
            .build()
            .expect("the client is built");
        client
            .login(Credentials::ClientCredentials)
            .await
            .expect("the login succeeds");
        client
    });
    let shared = Arc::new(Callers {
        raw,
        client,
        url: server.url("/resource"),
    });
    if let Some((measured, calls)) = single_side() {
        runtime.block_on(async {
            for _ in 0..calls {
                match measured {
                    false => raw_call(&shared.raw, &shared.url).await,
                    true => client_call(&shared.client, &shared.url).await,
                }
            }
        });
        return;
    }

    for callers in [1, 16, 64] {
        for (urls, shown) in [(Urls::Same, ""), (Urls::Distinct, ", one URL per call")] {
            for (reference, name) in [
                (Side::Raw, "raw reqwest's"),
                (
                    Side::RawSameRequest,
                    "raw reqwest's (sending the same http::Request)",
                ),
            ] {
                let comparison = interleaved(
                    rounds(callers),
                    || batch(&runtime, callers, &shared, (reference, urls)),
                    || batch(&runtime, callers, &shared, (Side::Client, urls)),
                );
                println!(
                    "async send(), {callers:>2} callers{shown}: {}",
                    comparison.shares(name, BATCH)
                );
            }
        }
    }
}
