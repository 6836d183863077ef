//! API calls through the async adapter against the same calls made with raw `reqwest` and a
//! fixed `Authorization` header, both against one HTTP/1.1 server on 127.0.0.1, in the same
//! run: what holding a token costs on every call.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokenflow::adapters::MemoryStore;
use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
use tokenflow::{Config, Credentials};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const TOKEN: &str =
    r#"{"access_token":"bench-access-token","token_type":"Bearer","expires_in":3600}"#;

/// Concurrent callers in the second comparison.
const TASKS: usize = 16;

/// A keep-alive HTTP/1.1 server: `POST /token` answers a token, everything else `200 ok`.
async fn serve(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let is_token = line.starts_with("POST /token");
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                let (content_type, payload) = if is_token {
                    ("application/json", TOKEN)
                } else {
                    ("text/plain", "ok")
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{payload}",
                    payload.len()
                );
                if write.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One API call with raw reqwest and a fixed token, body read.
async fn raw_call(raw: &reqwest::Client, url: &str) {
    let response = raw
        .get(url)
        .header("authorization", "Bearer bench-access-token")
        .send()
        .await
        .expect("a response");
    let _ = response.bytes().await.expect("a body");
}

/// One API call through the adapter, which attaches the token it holds.
async fn adapter_call(client: &AsyncClient, addr: SocketAddr) {
    let request = http::Request::get(format!("http://{addr}/resource"))
        .body(Vec::new())
        .expect("a valid request");
    let response = client.send(request).await.expect("a response");
    assert_eq!(response.status(), 200);
}

fn throughput(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let addr = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(serve(listener));
        addr
    });

    let raw = reqwest::Client::new();
    let config = Config::builder(format!("http://{addr}/token"), "bench-client")
        .client_secret("bench-secret")
        .build()
        .expect("a valid configuration");
    let client = runtime.block_on(async {
        let client = AsyncClient::builder(config, ReqwestTransport::with_client(raw.clone()))
            .store(MemoryStore::new())
            .build()
            .expect("the client is built");
        client
            .login(Credentials::ClientCredentials)
            .await
            .expect("the login succeeds");
        client
    });
    let url = format!("http://{addr}/resource");

    let mut group = c.benchmark_group("api_throughput");
    group.bench_function("raw_reqwest", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    raw_call(&raw, &url).await;
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("tokenflow_async", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    adapter_call(&client, addr).await;
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("raw_reqwest_16_tasks", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    let raw = raw.clone();
                    let url = url.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..iters.div_ceil(TASKS as u64) {
                            raw_call(&raw, &url).await;
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("the task completes");
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("tokenflow_async_16_tasks", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    let client = client.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..iters.div_ceil(TASKS as u64) {
                            adapter_call(&client, addr).await;
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("the task completes");
                }
                start.elapsed()
            })
        });
    });
    group.finish();

    // Criterion measures one benchmark after the other, so a change in the machine's load
    // between them shows up as a difference between the two sides. Alternating short rounds
    // of each side spreads any such change over both.
    let (mut raw_time, mut flow_time) = (Duration::ZERO, Duration::ZERO);
    let rounds = if std::env::args().any(|a| a == "--test") {
        2
    } else {
        40
    };
    runtime.block_on(async {
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..100 {
                raw_call(&raw, &url).await;
            }
            raw_time += start.elapsed();
            let start = Instant::now();
            for _ in 0..100 {
                adapter_call(&client, addr).await;
            }
            flow_time += start.elapsed();
        }
    });
    println!(
        "interleaved, {rounds} rounds of 100 calls each: tokenflow throughput is {:.0}% of raw reqwest's",
        100.0 * raw_time.as_secs_f64() / flow_time.as_secs_f64()
    );
    runtime.block_on(client.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = throughput
}
criterion_main!(benches);
