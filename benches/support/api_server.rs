//! What the API throughput benchmarks share: a keep-alive HTTP/1.1 server run in a process of
//! its own (the benchmark re-executes itself), and rounds of two measurements interleaved
//! with their order alternated.
//!
//! The server answers `POST /token` with a token and everything else with `200 ok`. Running
//! it in another process keeps its work off the measuring process's runtime and allocator, as
//! a real API would be.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[path = "quick_run.rs"]
pub mod quick_run;

use quick_run::is_quick_run;

/// Set in the environment of the re-executed benchmark that serves.
const SERVE: &str = "TOKENFLOW_BENCH_API_SERVER";

/// The fixed token, as raw clients send it.
pub const AUTHORIZATION: &str = "Bearer bench-access-token";

const TOKEN: &str =
    r#"{"access_token":"bench-access-token","token_type":"Bearer","expires_in":3600}"#;

/// Rounds of a comparison at `callers` concurrent callers: 80 at one; 160 at more, where a
/// batch takes a fraction of one at one caller and its time moves more with the scheduling of
/// the callers (one round's ratio by ten points and more); two in a quick smoke run. At one
/// caller a round's ratio still moves by five points and more either way (its quartiles), and
/// 40 rounds left the whole ratio up to ten points apart between runs of the same code.
pub fn rounds(callers: usize) -> usize {
    match (is_quick_run(), callers) {
        (true, _) => 2,
        (false, 1) => 80,
        (false, _) => 160,
    }
}

/// Serves until standard input closes, when this process was started as the server; returns
/// false otherwise.
pub fn serve_if_asked() -> bool {
    if std::env::var_os(SERVE).is_none() {
        return false;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        println!("{addr}");
        std::io::stdout().flush().expect("the address written");
        tokio::spawn(serve(listener));
        let mut byte = [0u8; 1];
        let _ = tokio::io::stdin().read(&mut byte).await;
    });
    true
}

/// The server process; it ends when this is dropped.
pub struct ApiServer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
}

impl ApiServer {
    pub fn start() -> ApiServer {
        let mut child = Command::new(std::env::current_exe().expect("this benchmark"))
            .env(SERVE, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server process");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its output"))
            .read_line(&mut line)
            .expect("its address");
        let addr = line.trim().parse().expect("an address");
        ApiServer { child, stdin, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

async fn serve(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = tokio::io::BufReader::new(read);
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let is_token = line.starts_with("POST /token");
                let mut length = 0usize;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let header = line.trim_end();
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

/// Two sides measured in interleaved rounds.
pub struct Comparison {
    pub reference: Duration,
    pub measured: Duration,
    /// Each round's throughput of the measured side relative to the reference.
    pub ratios: Vec<f64>,
}

impl Comparison {
    /// The measured side's throughput as a share of the reference's, over all rounds.
    pub fn overall(&self) -> f64 {
        self.reference.as_secs_f64() / self.measured.as_secs_f64()
    }

    /// The median of the rounds' ratios.
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The first and third quartiles of the rounds' ratios.
    pub fn quartiles(&self) -> (f64, f64) {
        (self.quantile(0.25), self.quantile(0.75))
    }

    /// The measured side's throughput as a share of `reference`'s, over all rounds, in the
    /// median round and at the rounds' quartiles; the reference's calls a second, batches
    /// being `batch` calls.
    pub fn shares(&self, reference: &str, batch: usize) -> String {
        let rounds = self.ratios.len();
        let (low, high) = self.quartiles();
        format!(
            "{:.1}% of {reference} throughput over all rounds (median round {:.1}%, quartiles \
             {:.1}–{:.1}%); raw {:.0} calls/s; {rounds} rounds of {batch} calls per side, order \
             alternated",
            100.0 * self.overall(),
            100.0 * self.median(),
            100.0 * low,
            100.0 * high,
            (rounds * batch) as f64 / self.reference.as_secs_f64(),
        )
    }

    /// The rounds' ratio that a share `q` of the rounds falls below (nearest rank).
    fn quantile(&self, q: f64) -> f64 {
        let mut ratios = self.ratios.clone();
        ratios.sort_by(f64::total_cmp);
        let rank = (q * ratios.len() as f64) as usize;
        ratios[rank.min(ratios.len() - 1)]
    }
}

/// `rounds` rounds of one batch of each side; the reference goes first in even rounds, the
/// measured side in odd ones, so that a drift in the machine's load weighs on both alike.
pub fn interleaved(
    rounds: usize,
    mut reference: impl FnMut() -> Duration,
    mut measured: impl FnMut() -> Duration,
) -> Comparison {
    let mut comparison = Comparison {
        reference: Duration::ZERO,
        measured: Duration::ZERO,
        ratios: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        let (r, m) = if round % 2 == 0 {
            let r = reference();
            (r, measured())
        } else {
            let m = measured();
            (reference(), m)
        };
        comparison.reference += r;
        comparison.measured += m;
        comparison.ratios.push(r.as_secs_f64() / m.as_secs_f64());
    }
    comparison
}

/// Times `f`.
pub fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Times `future`.
pub async fn timed_async(future: impl std::future::Future<Output = ()>) -> Duration {
    let start = Instant::now();
    future.await;
    start.elapsed()
}

/// For counting instructions (under `valgrind --tool=callgrind`): when
/// `TOKENFLOW_BENCH_SIDE` is `reference` or `measured`, only that side runs, once, with one
/// caller and `TOKENFLOW_BENCH_CALLS` calls (default 0, which measures the setup alone).
pub fn single_side() -> Option<(bool, usize)> {
    let side = std::env::var("TOKENFLOW_BENCH_SIDE").ok()?;
    let calls = std::env::var("TOKENFLOW_BENCH_CALLS")
        .ok()
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0);
    Some((side == "measured", calls))
}
