//! A loopback redirect listener for desktop and command-line applications (RFC 8252 §7.3).
//!
//! A native application cannot receive a redirect at a fixed URL, so it listens on
//! `127.0.0.1` on a port the operating system picks and registers `http://127.0.0.1/callback`
//! with the authorization server, which must accept the loopback redirect URI with any port
//! (RFC 8252 §7.3). The listener answers the one request the browser makes to `/callback`
//! with a short page telling the user to close the window, and hands the full callback URL to
//! the client's `complete_authorization`.
//!
//! ```no_run
//! # #[cfg(feature = "blocking")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
//! use tokenflow::adapters::LoopbackRedirect;
//! use tokenflow::Config;
//!
//! let (listener, redirect_uri) = LoopbackRedirect::bind()?;
//! let config = Config::builder("https://id.example/token", "my-cli")
//!     .authorization_endpoint("https://id.example/authorize")
//!     .redirect_uri(redirect_uri)
//!     .scope("openid offline_access")
//!     .build()?;
//! let client = BlockingClient::builder(config, UreqTransport::new()).build()?;
//! let request = client.start_authorization()?;
//! println!("Open {} in your browser", request.url);
//! let callback = listener.wait(Duration::from_secs(300))?;
//! client.complete_authorization(&callback)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "blocking"))]
//! # fn main() {}
//! ```
//!
//! It uses the standard library only and blocks; with the `tokio` feature,
//! `LoopbackRedirect::wait_async` runs the wait on tokio's blocking thread pool.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// The path of the redirect URI.
pub const CALLBACK_PATH: &str = "/callback";

/// The longest a request head may be; longer ones are refused.
const MAX_HEAD: usize = 16 * 1024;

/// How long one connection may take to send its request. A browser may open a connection
/// ahead of time and send nothing on it; this keeps such a connection from holding the
/// listener up.
const CONNECTION_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the listener looks for a new connection.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

const DONE_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Signed in</title></head><body style=\"font-family:sans-serif;margin:3em\">\
<h1>You are signed in</h1><p>You can close this window and return to the application.</p>\
</body></html>\n";

/// Listens on `127.0.0.1` for the browser's redirect back from the authorization server.
#[derive(Debug)]
pub struct LoopbackRedirect {
    listener: TcpListener,
    port: u16,
}

impl LoopbackRedirect {
    /// Binds `127.0.0.1` on a port the operating system picks. Returns the listener and the
    /// redirect URI to configure (`http://127.0.0.1:PORT/callback`).
    pub fn bind() -> Result<(LoopbackRedirect, String), RedirectError> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(RedirectError::Io)?;
        let port = listener.local_addr().map_err(RedirectError::Io)?.port();
        listener.set_nonblocking(true).map_err(RedirectError::Io)?;
        let redirect = LoopbackRedirect { listener, port };
        let uri = redirect.redirect_uri();
        Ok((redirect, uri))
    }

    /// The redirect URI: `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.port)
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// [`wait`](Self::wait) on tokio's blocking thread pool, for async applications.
    #[cfg(feature = "tokio")]
    pub async fn wait_async(self, timeout: Duration) -> Result<String, RedirectError> {
        ::tokio::task::spawn_blocking(move || self.wait(timeout))
            .await
            .unwrap_or_else(|_| {
                Err(RedirectError::Io(io::Error::other(
                    "the redirect listener's thread panicked",
                )))
            })
    }

    /// Waits up to `timeout` for a `GET /callback` and returns the full callback URL
    /// (`http://127.0.0.1:PORT/callback?code=…&state=…`), having answered the browser with a
    /// page saying it can be closed. Requests for other paths (`/favicon.ico`, say) get a 404
    /// and are otherwise ignored. The URL is returned as it came: checking `state`, `iss` and
    /// `error` is the flow's job.
    pub fn wait(&self, timeout: Duration) -> Result<String, RedirectError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(target) = serve(stream, deadline) {
                        return Ok(format!("http://127.0.0.1:{}{target}", self.port));
                    }
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => return Err(RedirectError::Io(error)),
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Err(RedirectError::TimedOut);
            }
            let pause = deadline.map_or(ACCEPT_POLL, |deadline| {
                deadline.saturating_duration_since(now).min(ACCEPT_POLL)
            });
            thread::sleep(pause);
        }
    }
}

/// Reads one request from `stream` and answers it. Returns the request target when it was a
/// `GET` of the callback path.
fn serve(mut stream: TcpStream, deadline: Option<Instant>) -> Option<String> {
    // Accepted sockets may inherit the listener's non-blocking mode on some platforms.
    stream.set_nonblocking(false).ok()?;
    let read_timeout = deadline.map_or(CONNECTION_READ_TIMEOUT, |deadline| {
        deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), CONNECTION_READ_TIMEOUT)
    });
    stream.set_read_timeout(Some(read_timeout)).ok()?;
    stream
        .set_write_timeout(Some(CONNECTION_READ_TIMEOUT))
        .ok()?;
    let head = read_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next()?);
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if method == "GET" && path == CALLBACK_PATH {
        respond(&mut stream, "200 OK", "text/html; charset=utf-8", DONE_PAGE);
        return Some(target.to_owned());
    }
    respond(
        &mut stream,
        "404 Not Found",
        "text/plain; charset=utf-8",
        "not found\n",
    );
    None
}

/// The request head (up to the blank line), or `None` when the peer sent none in time.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    loop {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        head.extend_from_slice(buffer.get(..read)?);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return String::from_utf8(head).ok();
        }
        if head.len() > MAX_HEAD {
            respond(
                stream,
                "431 Request Header Fields Too Large",
                "text/plain; charset=utf-8",
                "request too large\n",
            );
            return None;
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// Why no redirect was received.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedirectError {
    /// The listener could not be set up or failed.
    Io(io::Error),
    /// No callback arrived in time.
    TimedOut,
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectError::Io(error) => write!(f, "the loopback redirect listener failed: {error}"),
            RedirectError::TimedOut => f.write_str("no redirect arrived from the browser in time"),
        }
    }
}

impl std::error::Error for RedirectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedirectError::Io(error) => Some(error),
            RedirectError::TimedOut => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(port: u16, target: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn the_callback_is_returned_and_other_paths_are_ignored() {
        let (listener, uri) = LoopbackRedirect::bind().unwrap();
        let port = listener.port();
        assert_eq!(uri, format!("http://127.0.0.1:{port}/callback"));
        let browser = thread::spawn(move || {
            // A connection that never sends anything must not hold the listener up.
            let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let favicon = get(port, "/favicon.ico");
            let done = get(port, "/callback?code=C&state=S");
            drop(idle);
            (favicon, done)
        });
        let url = listener.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(
            url,
            format!("http://127.0.0.1:{port}/callback?code=C&state=S")
        );
        let (favicon, done) = browser.join().unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(done.starts_with("HTTP/1.1 200"), "{done}");
        assert!(done.contains("close this window"), "{done}");
    }

    #[test]
    fn waiting_ends_at_the_timeout() {
        let (listener, _) = LoopbackRedirect::bind().unwrap();
        let started = Instant::now();
        let error = listener.wait(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, RedirectError::TimedOut), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
