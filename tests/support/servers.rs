//! Real OAuth 2.0 servers for integration tests: `oidc-provider` and
//! `@node-oauth/oauth2-server`, run by Node from `tests/servers/` on 127.0.0.1.
//!
//! Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/servers.rs"]
//! mod servers;
//! ```
//!
//! (a `#[path]` include rather than `tests/support/mod.rs`, so each test binary takes only the
//! helper files it names). Then:
//!
//! ```ignore
//! let server = servers::RunningServer::start(servers::ServerKind::OidcProvider, json!({"accessTokenTtl": 2}));
//! let token_url = server.url("/token");
//! // … talk to it …
//! let stats = server.stats();
//! // dropped here: the server is killed
//! ```
//!
//! A missing `node` or `npm`, or a failed `npm ci`, is a test failure with a message that says
//! what to install, never a skip. This module uses std and `serde_json` only, so tests of every
//! adapter can share it.
#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// How long a server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A client registered on both servers (`tests/servers/common.js`).
#[derive(Debug, Clone, Copy)]
pub struct TestClient {
    /// The client id.
    pub id: &'static str,
    /// The client secret; `None` for the public client.
    pub secret: Option<&'static str>,
}

/// Authenticates with `client_secret_basic`.
pub const BASIC_CLIENT: TestClient = TestClient {
    id: "basic-client",
    secret: Some("basic-secret"),
};
/// Authenticates with `client_secret_post`.
pub const POST_CLIENT: TestClient = TestClient {
    id: "post-client",
    secret: Some("post-secret"),
};
/// `client_secret_basic` with a secret that RFC 6749 §2.3.1 form-encoding changes in every way
/// it can while staying VSCHAR (appendix A.2), which both servers enforce.
pub const SPECIAL_CLIENT: TestClient = TestClient {
    id: "special-client",
    secret: Some("s3cr:t/+%&= x"),
};
/// Public client (`token_endpoint_auth_method: none`), redirect URI [`REDIRECT_URI`].
pub const PKCE_CLIENT: TestClient = TestClient {
    id: "pkce-client",
    secret: None,
};
/// The redirect URI registered for every client on `oidc-provider`.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// A resource owner known to both servers. The `sub` the resource reports is the username.
#[derive(Debug, Clone, Copy)]
pub struct TestUser {
    /// The username, to be sent verbatim.
    pub username: &'static str,
    /// The password.
    pub password: &'static str,
}

/// A plain user.
pub const JOE: TestUser = TestUser {
    username: "joe",
    password: "pw-joe",
};
/// A pin-style username (`{enterprise_pin}/email`) as some providers use.
pub const PIN_USER: TestUser = TestUser {
    username: "1234/joe.bloggs@acme.com",
    password: "secret1234",
};

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `tests/servers/oidc.js`: oidc-provider with a password grant, device flow, revocation,
    /// introspection and headless authorization-code interactions.
    OidcProvider,
    /// `tests/servers/oauth2-server.js`: @node-oauth/oauth2-server with password,
    /// client_credentials and rotating refresh_token grants.
    NodeOauth2Server,
}

impl ServerKind {
    fn script(self) -> &'static str {
        match self {
            ServerKind::OidcProvider => "oidc.js",
            ServerKind::NodeOauth2Server => "oauth2-server.js",
        }
    }
}

/// A server process; killed when dropped.
pub struct RunningServer {
    /// `http://127.0.0.1:PORT`, exactly as the server reports it (the OIDC issuer).
    pub issuer: String,
    /// The port it listens on.
    pub port: u16,
    /// Which server this is.
    pub kind: ServerKind,
    child: Child,
    // Closing it tells the server to exit, even if this process dies without dropping us.
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl RunningServer {
    /// Starts a server with the given options (a JSON object; `{}` or `null` for defaults) and
    /// waits for it to be ready. Panics, failing the test, if it cannot.
    pub fn start(kind: ServerKind, options: Value) -> RunningServer {
        match Self::try_start(kind, &options) {
            Ok(server) => server,
            Err(message) => panic!("cannot start {kind:?} test server: {message}"),
        }
    }

    /// Starts `tests/servers/oidc.js`.
    pub fn oidc(options: Value) -> RunningServer {
        Self::start(ServerKind::OidcProvider, options)
    }

    /// Starts `tests/servers/oauth2-server.js`.
    pub fn oauth2_server(options: Value) -> RunningServer {
        Self::start(ServerKind::NodeOauth2Server, options)
    }

    fn try_start(kind: ServerKind, options: &Value) -> Result<RunningServer, String> {
        ensure_node_modules()?;
        let node = find_program("NODE", "node")?;
        let options = match options {
            Value::Null => "{}".to_owned(),
            other => other.to_string(),
        };
        let started = Instant::now();
        let mut child = Command::new(&node)
            .arg(kind.script())
            .arg(&options)
            .current_dir(servers_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", node.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;

        // Keep the server's log: echoed through the test's (captured) stderr and kept for
        // error messages.
        let stderr = Arc::new(Mutex::new(String::new()));
        let log = Arc::clone(&stderr);
        let tag = kind.script();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{tag}] {line}");
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });

        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(line) = lines.next() {
                let _ = ready_tx.send(line);
            }
            // Nothing more is expected; drain so the server never blocks on a full pipe.
            for _ in lines {}
        });

        let mut server = RunningServer {
            issuer: String::new(),
            port: 0,
            kind,
            child,
            stdin,
            stderr,
        };
        let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(server.failure(&format!("reading its stdout: {e}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(server.failure(&format!("no ready line within {READY_TIMEOUT:?}")));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(server.failure("it exited before it was ready"));
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .map_err(|e| server.failure(&format!("ready line {line:?} is not JSON: {e}")))?;
        let (Some(true), Some(issuer), Some(port)) = (
            ready["ready"].as_bool(),
            ready["issuer"].as_str(),
            ready["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
        ) else {
            return Err(server.failure(&format!("unexpected ready line {line:?}")));
        };
        server.issuer = issuer.to_owned();
        server.port = port;
        eprintln!(
            "[{}] ready at {} in {:?} with options {options}",
            kind.script(),
            server.issuer,
            started.elapsed()
        );
        Ok(server)
    }

    // Describes a failed start with the server's own log, after stopping it.
    fn failure(&mut self, what: &str) -> String {
        self.stop();
        // Give the stderr thread a moment to collect the last lines.
        thread::sleep(Duration::from_millis(100));
        let log = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        format!("{what}; server stderr:\n{log}")
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `issuer` + `path`, e.g. `server.url("/token")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The token endpoint (`/token` on both servers).
    pub fn token_endpoint(&self) -> String {
        self.url("/token")
    }

    /// The protected resource: `GET /api/resource` with `Authorization: Bearer …`.
    pub fn resource_url(&self) -> String {
        self.url("/api/resource")
    }

    /// What the server has logged on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `GET /test/stats`: `token_requests` (by grant type), `token_errors` (by error code),
    /// `resource_calls`, `resource_ok`, `resource_401`, `resource_403`, `revocations`,
    /// `introspections`; on oauth2-server also `reuse_detections` and `families_revoked`.
    /// (`kill` of a paused server still works: SIGKILL needs no `CONT`.)
    pub fn stats(&self) -> Value {
        let (status, body) = self.plain_request("GET", "/test/stats", "");
        assert_eq!(status, 200, "GET /test/stats answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats {body:?}: {e}"))
    }

    /// `POST /test/stats/reset`: zeroes the counters.
    pub fn reset_stats(&self) {
        let (status, body) = self.plain_request("POST", "/test/stats/reset", "");
        assert_eq!(
            status, 200,
            "POST /test/stats/reset answered {status}: {body}"
        );
    }

    /// The server process's id, e.g. to pause it with `kill -STOP`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server process (`kill -STOP`): connections are still accepted by the kernel,
    /// but nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a [paused](Self::pause) server run again (`kill -CONT`); it then works through
    /// what arrived meanwhile.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([format!("-{name}").as_str(), pid.as_str()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -{name} {pid}`: {e}"));
        assert!(status.success(), "`kill -{name} {pid}` failed: {status}");
    }

    /// `POST /test/delay-token` (oauth2-server only): the next token answer is held back for
    /// `delay` after the request was applied.
    pub fn delay_next_token_answer(&self, delay: Duration) {
        let body = format!("ms={}", delay.as_millis());
        let (status, text) = self.plain_request("POST", "/test/delay-token", &body);
        assert_eq!(
            status, 200,
            "POST /test/delay-token answered {status}: {text}"
        );
    }

    /// Approves a pending device authorization as user `joe` (oidc-provider only).
    pub fn approve_device(&self, user_code: &str) {
        let body = format!("user_code={}", form_encode(user_code));
        let (status, text) = self.plain_request("POST", "/test/device/approve", &body);
        assert_eq!(status, 200, "device approval answered {status}: {text}");
    }

    /// Denies a pending device authorization (oidc-provider only); the next poll gets
    /// `access_denied`.
    pub fn deny_device(&self, user_code: &str) {
        let body = format!("user_code={}", form_encode(user_code));
        let (status, text) = self.plain_request("POST", "/test/device/deny", &body);
        assert_eq!(status, 200, "device denial answered {status}: {text}");
    }

    /// A minimal HTTP/1.0 request to this server (form body if not empty); returns the status
    /// and the body. For the test routes, not for the flows under test.
    pub fn plain_request(&self, method: &str, path: &str, form_body: &str) -> (u16, String) {
        let context = || format!("{method} {path} on {}", self.issuer);
        let mut stream = or_panic(TcpStream::connect(("127.0.0.1", self.port)), context);
        or_panic(
            stream.set_read_timeout(Some(Duration::from_secs(10))),
            context,
        );
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form_body}",
            self.port,
            form_body.len()
        );
        or_panic(stream.write_all(request.as_bytes()), context);
        let mut response = String::new();
        or_panic(stream.read_to_string(&mut response), context);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("malformed response to {method} {path}: {response:?}"));
        (status, body.to_owned())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn or_panic<T>(result: io::Result<T>, context: impl Fn() -> String) -> T {
    result.unwrap_or_else(|e| panic!("{}: {e}", context()))
}

/// `application/x-www-form-urlencoded` serialisation of one value (space → `+`).
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `tests/servers` in this crate.
pub fn servers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("servers")
}

/// Finds a program through the environment variable `var` (a path) or else on `PATH`.
fn find_program(var: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{var}={} is not a file", path.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| {
            let plain = dir.join(name);
            let windows = dir.join(format!("{name}.cmd"));
            let exe = dir.join(format!("{name}.exe"));
            [plain, exe, windows]
        })
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "`{name}` was not found on PATH (or set {var}=/path/to/{name}). The interop \
                 tests need Node.js 20 or newer with npm: install them and run the tests again."
            )
        })
}

/// Makes sure `tests/servers/node_modules` matches `package-lock.json`, running `npm ci` at
/// most once per test binary.
///
/// Installation never happens in place: `npm ci` runs in a fresh staging directory holding
/// copies of `package.json` and `package-lock.json`, and the finished `node_modules` is then
/// moved into place with `rename`, which is atomic. A copy of the lock file inside
/// `node_modules` (`.tokenflow-lock`) records what it was installed from; freshness compares
/// contents, not mtimes, which git checkouts do not preserve. So concurrent test binaries
/// (cargo runs them one by one, but nextest and several checkouts sharing a build do not)
/// never see a half-installed tree: each either finds a complete, fresh one or installs its
/// own and renames it in; when the rename loses a race, the winner's tree is fresh and the
/// loser's staging copy is discarded. An interrupted install leaves only a stale staging
/// directory, cleaned up by the next run. Within one binary a `OnceLock` keeps the test
/// threads from installing side by side.
fn ensure_node_modules() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED.get_or_init(install_node_modules).clone()
}

const STAMP: &str = ".tokenflow-lock";
const STAGING_PREFIX: &str = ".staging-";

fn is_fresh(node_modules: &Path, lock: &[u8]) -> bool {
    fs::read(node_modules.join(STAMP)).is_ok_and(|stamp| stamp == lock)
}

fn install_node_modules() -> Result<(), String> {
    let dir = servers_dir();
    let lock_path = dir.join("package-lock.json");
    let lock = fs::read(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let target = dir.join("node_modules");
    if is_fresh(&target, &lock) {
        return Ok(());
    }
    let npm = find_program("NPM", "npm")?;
    find_program("NODE", "node")?;
    remove_old_staging(&dir);

    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let staging = dir.join(format!("{STAGING_PREFIX}{}-{unique}", std::process::id()));
    fs::create_dir(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    let result = (|| {
        for file in ["package.json", "package-lock.json"] {
            fs::copy(dir.join(file), staging.join(file))
                .map_err(|e| format!("copying {file} to {}: {e}", staging.display()))?;
        }
        let started = Instant::now();
        eprintln!(
            "running `npm ci` for the test servers in {}",
            staging.display()
        );
        let output = Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&staging)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", npm.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`npm ci` in {} failed ({}); it needs the npm registry or a warm npm cache.\n\
                 stdout:\n{}\nstderr:\n{}",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        eprintln!("`npm ci` took {:?}", started.elapsed());
        let installed = staging.join("node_modules");
        fs::write(installed.join(STAMP), &lock).map_err(|e| format!("writing {STAMP}: {e}"))?;
        swap_into_place(&installed, &target, &lock, &staging)
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

// Moves a finished install to `target`, unless a fresh one got there first.
fn swap_into_place(
    installed: &Path,
    target: &Path,
    lock: &[u8],
    staging: &Path,
) -> Result<(), String> {
    for _ in 0..3 {
        if is_fresh(target, lock) {
            return Ok(());
        }
        if target.exists() {
            // A stale tree: move it aside (atomically) into our staging dir to be deleted.
            let old = staging.join("old_node_modules");
            match fs::rename(target, &old) {
                Ok(()) => {}
                Err(_) if !target.exists() => {} // someone else moved it
                Err(e) => return Err(format!("moving stale {} aside: {e}", target.display())),
            }
        }
        if fs::rename(installed, target).is_ok() {
            return Ok(());
        }
        // Lost a race with another installer; look again.
    }
    if is_fresh(target, lock) {
        Ok(())
    } else {
        Err(format!(
            "could not move the installed node_modules to {}",
            target.display()
        ))
    }
}

// Staging directories older than an hour belong to interrupted runs.
fn remove_old_staging(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
            && old_enough
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// `stats[group][key]` of [`RunningServer::stats`], zero when the server has not counted it.
pub fn count(stats: &Value, group: &str, key: &str) -> u64 {
    stats[group][key].as_u64().unwrap_or(0)
}

/// The top-level counter `key` of [`RunningServer::stats`], which the server must report.
pub fn counter(stats: &Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {key} in {stats}"))
}
