//! API calls through the blocking client against the same calls made with a raw `ureq` agent
//! and a fixed `Authorization` header, against one HTTP/1.1 server in another process: what
//! holding a token costs on every call, at 1, 16 and 64 concurrent threads. The client with
//! its default API timeout is compared with raw ureq without any timeout and with raw ureq
//! given the same deadline; the client without a deadline with raw ureq without one.
//!
//! Each comparison runs rounds of one batch of each side, interleaved with their order
//! alternated, and prints the client's throughput as a share of raw ureq's (over all rounds,
//! in the median round and at the rounds' quartiles). `--test` (or a run outside `cargo bench`) makes it a
//! two-round smoke run.

#[path = "support/api_server.rs"]
mod api_server;

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_server::{
    AUTHORIZATION, ApiServer, Comparison, interleaved, rounds, serve_if_asked, single_side, timed,
};
use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::{Config, Credentials};

/// Calls in one batch of one side, shared out between the threads.
const BATCH: usize = 4_096;

/// One API call with a raw ureq agent and a fixed token, body read.
fn raw_call(agent: &ureq::Agent, url: &str) {
    let mut response = agent
        .get(url)
        .header("authorization", AUTHORIZATION)
        .call()
        .expect("a response");
    assert_eq!(response.status(), 200);
    let _ = response.body_mut().read_to_vec().expect("a body");
}

/// One API call through the client, which attaches the token it holds.
fn client_call(client: &BlockingClient, url: &str) {
    let request = http::Request::get(url)
        .body(Vec::new())
        .expect("a valid request");
    let response = client.send(request).expect("a response");
    assert_eq!(response.status(), 200);
}

/// `rounds` rounds of one batch of each side, interleaved with their order alternated by
/// [`interleaved`], each batch being `BATCH` calls shared out between `threads` threads. The
/// threads are started once and run every batch of the comparison, as an application's pool
/// of threads would, all released together at the start of a batch, told which side it is; a
/// batch's time runs from their release until the last one is done.
fn on_threads(
    rounds: usize,
    threads: usize,
    reference: impl Fn() + Sync,
    measured: impl Fn() + Sync,
) -> Comparison {
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    // The side of the batch about to start; the barrier orders it before the threads read it.
    let measuring = AtomicBool::new(false);
    let batch = |side_measured: bool| {
        measuring.store(side_measured, Ordering::Relaxed);
        start.wait();
        timed(|| {
            done.wait();
        })
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                // Two batches a round, one of each side.
                for _ in 0..2 * rounds {
                    start.wait();
                    let side: &(dyn Fn() + Sync) = match measuring.load(Ordering::Relaxed) {
                        true => &measured,
                        false => &reference,
                    };
                    for _ in 0..BATCH / threads {
                        side();
                    }
                    done.wait();
                }
            });
        }
        interleaved(rounds, || batch(false), || batch(true))
    })
}

fn main() {
    if serve_if_asked() {
        return;
    }
    let server = ApiServer::start();
    // Raw ureq set as `UreqTransport` sets its own agent: statuses as responses, no
    // redirects; every agent keeps a connection per thread (ureq's default keeps three per
    // host, and the threads beyond would open a connection per call).
    let agent = ureq::Agent::new_with_config(policy().build());
    // A raw agent with the deadline a ureq user would give it: each phase 30 s, the client's
    // default API timeout.
    let timeout = Some(tokenflow::adapters::DEFAULT_API_TIMEOUT);
    let agent_with_deadline = ureq::Agent::new_with_config(
        policy()
            .timeout_connect(timeout)
            .timeout_send_request(timeout)
            .timeout_send_body(timeout)
            .timeout_recv_response(timeout)
            .timeout_recv_body(timeout)
            .build(),
    );
    let client = |api_timeout| {
        let config = Config::builder(server.url("/token"), "bench-client")
            .client_secret("bench-secret")
            .build()
            .expect("a valid configuration");
        let client = BlockingClient::builder(config, UreqTransport::with_config(pool))
            .api_timeout(api_timeout)
            .build()
            .expect("the client is built");
        client
            .login(Credentials::ClientCredentials)
            .expect("the login succeeds");
        client
    };
    let with_deadline = client(tokenflow::adapters::DEFAULT_API_TIMEOUT);
    let without_deadline = client(Duration::MAX);
    let url = server.url("/resource");
    if let Some((measured, calls)) = single_side() {
        for _ in 0..calls {
            match measured {
                false => raw_call(&agent, &url),
                true => client_call(&with_deadline, &url),
            }
        }
        return;
    }

    for threads in [1, 16, 64] {
        for (client, reference, shown) in [
            (&with_deadline, &agent, "raw ureq's"),
            (
                &with_deadline,
                &agent_with_deadline,
                "raw ureq's with the same deadline (30 s per phase, set on its agent)",
            ),
            (
                &without_deadline,
                &agent,
                "raw ureq's, no deadline on either side (api_timeout(Duration::MAX))",
            ),
        ] {
            let comparison = on_threads(
                rounds(threads),
                threads,
                || raw_call(reference, &url),
                || client_call(client, &url),
            );
            println!(
                "blocking send(), {threads:>2} threads: {}",
                comparison.shares(shown, BATCH)
            );
        }
    }
}

/// What `UreqTransport` sets on its agent, and the pool.
fn policy() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    pool(ureq::Agent::config_builder())
        .http_status_as_error(false)
        .max_redirects(0)
}

/// A connection per thread kept for the next call, at 64 threads.
fn pool(
    config: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    config
        .max_idle_connections(128)
        .max_idle_connections_per_host(128)
}
