//! An API call never outlasts the client's API timeout, through either built-in transport,
//! whether the server stays silent or answers a byte at a time, on a new connection or on
//! one already used: the deadline is the call's, not each read's.
//!
//! The server runs on 127.0.0.1 and serves three paths besides `/token`: `/ok` answers at
//! once, `/silent` never answers, `/drip` starts its answer and then sends a byte every
//! 50 ms, each read so returning well inside any per-read timeout.

#[path = "support/local_http.rs"]
mod local_http;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use http::Request;

use local_http::token_body;

use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
use tokenflow::adapters::{Error, MemoryStore};
use tokenflow::{Config, Credentials, TransportErrorKind};

const API_TIMEOUT: Duration = Duration::from_millis(600);
/// How long the server keeps a silent or dripping answer going: far past the timeout.
const HOLD: Duration = Duration::from_secs(10);

/// Starts the server; returns its origin.
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let origin = format!("http://{}", listener.local_addr().expect("an address"));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    origin
}

/// Serves one keep-alive connection.
fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("the stream"));
    let mut stream = stream;
    while let Some(request) = local_http::read_request(&mut reader) {
        let path = request.request_line.split(' ').nth(1).unwrap_or("");
        let reply = match path {
            "/token" => answer("application/json", &token_body("AT")),
            "/ok" => answer("text/plain", "ok"),
            "/silent" => {
                thread::sleep(HOLD);
                return;
            }
            "/drip" => {
                let started = Instant::now();
                let head = b"HTTP/1.1 200 OK\r\nx-drip: ";
                if stream.write_all(head).is_err() {
                    return;
                }
                while started.elapsed() < HOLD {
                    thread::sleep(Duration::from_millis(50));
                    if stream.write_all(b"a").is_err() {
                        return;
                    }
                }
                return;
            }
            _ => answer("text/plain", "not found"),
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn answer(content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn config(origin: &str) -> Config {
    Config::builder(format!("{origin}/token"), "client")
        .client_secret("secret")
        .allow_api_origin(origin)
        .build()
        .expect("a valid configuration")
}

fn get(origin: &str, path: &str) -> Request<Vec<u8>> {
    Request::get(format!("{origin}{path}"))
        .body(Vec::new())
        .expect("a valid request")
}

/// The call failed as timed out, after most of the API timeout and well before the server
/// gave up.
fn assert_timed_out<T: std::fmt::Debug>(result: Result<T, Error>, took: Duration, what: &str) {
    match result {
        Err(Error::Transport(error)) => {
            assert_eq!(
                error.kind(),
                TransportErrorKind::TimedOut,
                "{what}: {error}"
            )
        }
        other => panic!("{what}: expected a timeout, got {other:?}"),
    }
    assert!(
        took >= API_TIMEOUT * 3 / 4 && took < API_TIMEOUT * 5,
        "{what}: took {took:?} with an API timeout of {API_TIMEOUT:?}"
    );
}

fn blocking_calls_end_at_the_api_timeout(transport: UreqTransport, shown: &str) {
    let origin = server();
    let client = BlockingClient::builder(config(&origin), transport)
        .store(MemoryStore::new())
        .credentials(|| Some(Credentials::ClientCredentials))
        .api_timeout(API_TIMEOUT)
        .build()
        .expect("the client is built");
    for path in ["/silent", "/drip"] {
        // First a call that succeeds, so that the next one goes over a pooled connection
        // whose socket timeouts are already set.
        let response = client.send(get(&origin, "/ok")).expect("an answer");
        assert_eq!(response.body(), b"ok");
        let started = Instant::now();
        let result = client.send(get(&origin, path));
        assert_timed_out(result, started.elapsed(), &format!("{shown}, {path}"));
    }
}

#[test]
fn blocking_calls_end_at_the_api_timeout_through_the_transports_own_agent() {
    blocking_calls_end_at_the_api_timeout(UreqTransport::new(), "UreqTransport::new()");
    blocking_calls_end_at_the_api_timeout(
        UreqTransport::with_config(|config| config.max_idle_connections_per_host(8)),
        "UreqTransport::with_config",
    );
}

#[test]
fn blocking_calls_end_at_the_api_timeout_through_an_agent_given() {
    let agent = ureq::Agent::new_with_defaults();
    blocking_calls_end_at_the_api_timeout(
        UreqTransport::with_agent(agent),
        "UreqTransport::with_agent",
    );
}

#[tokio::test]
async fn async_calls_end_at_the_api_timeout() {
    let origin = server();
    let client = AsyncClient::builder(config(&origin), ReqwestTransport::new().unwrap())
        .credentials(|| Some(Credentials::ClientCredentials))
        .api_timeout(API_TIMEOUT)
        .build()
        .expect("the client is built");
    for path in ["/silent", "/drip"] {
        let response = client.send(get(&origin, "/ok")).await.expect("an answer");
        assert_eq!(response.body(), b"ok");
        let started = Instant::now();
        let result = client.send(get(&origin, path)).await;
        assert_timed_out(result, started.elapsed(), path);
    }
    client.shutdown().await;
}
