//! A tiny HTTP/1.1 server on 127.0.0.1 over `std::net`, for tests that need real sockets but
//! not a real authorization server: one that redirects, one that hands out tokens, one that
//! must never be reached. It answers every request with one fixed response, records what it
//! received, and counts every connection, so that "received nothing" can be checked.
//!
//! Include it with
//!
//! ```ignore
//! #[path = "support/local_http.rs"]
//! mod local_http;
//! ```
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A request as received: the request line, the header block (as sent) and the body.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST /token HTTP/1.1`.
    pub request_line: String,
    /// The header lines, as sent.
    pub headers: Vec<String>,
    /// The body, as long as `content-length` said.
    pub body: Vec<u8>,
}

impl Received {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// A server answering every request with the same response; stops with the test process.
pub struct LocalServer {
    /// The port it listens on.
    pub port: u16,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl LocalServer {
    /// Answers every request with `status`, the extra `headers` and `body` (JSON).
    pub fn start(status: u16, headers: Vec<(String, String)>, body: String) -> LocalServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut reply = format!("HTTP/1.1 {status} Status\r\n");
        for (name, value) in &headers {
            reply.push_str(&format!("{name}: {value}\r\n"));
        }
        reply.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        let (count, log) = (Arc::clone(&connections), Arc::clone(&received));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (log, reply) = (Arc::clone(&log), reply.clone());
                thread::spawn(move || serve(stream, &log, &reply));
            }
        });
        LocalServer {
            port,
            connections,
            received,
        }
    }

    /// Answers every request with `status` and `location: location`, and a body that looks
    /// like tokens, so that a client reading a redirect's body as the answer would show it.
    pub fn redirecting(status: u16, location: &str) -> LocalServer {
        Self::start(
            status,
            vec![("location".to_owned(), location.to_owned())],
            token_body("AT-IN-REDIRECT"),
        )
    }

    /// Answers every request with a `200` token response for `access_token`.
    pub fn tokens(access_token: &str) -> LocalServer {
        Self::start(200, Vec::new(), token_body(access_token))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// How many connections it accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The requests it received.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("the log").clone()
    }
}

/// A token response carrying `access_token` and a refresh token.
pub fn token_body(access_token: &str) -> String {
    format!(
        r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{access_token}"}}"#
    )
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>, reply: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let Some(received) = read_request(&mut BufReader::new(stream)) else {
        return;
    };
    log.lock().expect("the log").push(received);
    let _ = writer.write_all(reply.as_bytes());
    let _ = writer.flush();
}

/// Reads one request: `None` when the connection ends before a request line; a body that
/// cannot be read whole is left empty.
pub fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let mut received = Received {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    let length = received
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_ok() {
        received.body = body;
    }
    Some(received)
}
