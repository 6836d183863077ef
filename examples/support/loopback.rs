//! An identity server and an API on 127.0.0.1, in-process, for the examples: the simulated
//! authorization server of the test suite served over real HTTP/1.1 sockets.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tokenflow::Timestamp;

use super::fake_api::FakeApi;
use super::fake_auth::FakeAuthServer;

/// The largest request the server reads.
const MAX_REQUEST: usize = 64 * 1024;

/// The shared state behind the listener.
pub struct World {
    pub auth: FakeAuthServer,
    pub api: FakeApi,
}

/// A running loopback server: `/connect/token` is the token endpoint, every other path is the
/// protected API.
pub struct Loopback {
    pub addr: SocketAddr,
    world: Arc<Mutex<World>>,
}

impl Loopback {
    pub fn start(auth: FakeAuthServer) -> std::io::Result<Loopback> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let world = Arc::new(Mutex::new(World {
            auth,
            api: FakeApi::new(),
        }));
        let shared = Arc::clone(&world);
        // The simulated server's clock counts from its start.
        let origin = Instant::now();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let world = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = serve(stream, &world, origin);
                });
            }
        });
        Ok(Loopback { addr, world })
    }

    pub fn token_endpoint(&self) -> String {
        format!("http://{}/connect/token", self.addr)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn serve(stream: TcpStream, world: &Mutex<World>, origin: Instant) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // Answers are written whole; waiting to coalesce them only adds delayed-ACK latency.
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        let now =
            Timestamp::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let response = {
            let mut world = world.lock().unwrap_or_else(|e| e.into_inner());
            let World { auth, api } = &mut *world;
            if request.uri().path() == "/connect/token" {
                auth.handle(now, &request)
            } else {
                api.handle(now, auth, &request)
            }
        };
        write_response(&mut writer, &response)?;
    }
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<http::Request<Vec<u8>>>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let mut builder = http::Request::builder().method(method).uri(target);
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0).min(MAX_REQUEST);
            }
            builder = builder.header(name, value);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(builder.body(body).ok())
}

fn write_response(
    writer: &mut impl Write,
    response: &http::Response<Vec<u8>>,
) -> std::io::Result<()> {
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        response.body().len()
    );
    for (name, value) in response.headers() {
        if name != http::header::CONTENT_LENGTH {
            head.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(response.body());
    writer.write_all(&message)?;
    writer.flush()
}
