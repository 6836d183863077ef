//! A throwaway PostgreSQL server for tests and examples (feature `test-server`).
//!
//! [`TestServer::start`] makes a new cluster in a temporary directory with the server binaries
//! installed on the machine (`initdb`, `pg_ctl`, `postgres`), starts it on `127.0.0.1` on a
//! free port with trust authentication for loopback connections, and stops and deletes it
//! when dropped. No set-up by hand is needed: a machine with the binaries is enough.
//!
//! The binaries are looked for in the directory named by `TOKENFLOW_PG_BIN` if set, else in
//! the newest `/usr/lib/postgresql/<major>/bin` (Debian's layout), else on `PATH`. PostgreSQL
//! refuses to run as root, so when the process is root the server runs as the `postgres`
//! user (through `runuser`) and the directory is given to that user.
//!
//! Tests share one server per test binary ([`TestServer::shared`]); an example starts its
//! own with [`TestServer::start`] and connects with [`TestServer::connection_string`]. The
//! crate's tests and examples have the feature without asking for it (the crate dev-depends
//! on itself with it).
//!
//! A server that outlives its owner is impossible by construction: a small watchdog process,
//! started beside the server, waits for the owning process to close a pipe (which the
//! operating system does when the process ends, however it ends), then stops the server and
//! deletes the directory. That is what frees the server of a `static` shared by a whole test
//! binary ([`TestServer::shared`]), which is never dropped.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The user the server runs as when the process is root.
const SERVER_USER: &str = "postgres";

/// How long `pg_ctl` may wait for the server to accept connections.
const START_TIMEOUT_SECS: u32 = 60;

/// A PostgreSQL server of its own on `127.0.0.1`, stopped and deleted on drop.
pub struct TestServer {
    port: u16,
    dir: PathBuf,
    startup: Duration,
    /// Closing its standard input tells the watchdog to stop the server and delete `dir`.
    watchdog: Option<Child>,
    watchdog_stdin: Option<ChildStdin>,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Makes and starts a new server. Takes a second or two: `initdb` makes a whole cluster.
    pub fn start() -> io::Result<TestServer> {
        let bin = find_bin_dir()?;
        let as_root = running_as_root()?;
        // A port found free may be taken before the server binds it: try a few.
        let mut last_error = None;
        for _ in 0..3 {
            match TestServer::start_once(&bin, as_root) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("the server did not start")))
    }

    /// The server shared by every test of this process, started by the first caller.
    ///
    /// Tests share it and keep apart by using keys of their own ([`TestServer::unique_key`]).
    /// It is stopped and deleted when the process ends (see the [module docs](self)).
    pub fn shared() -> Result<&'static TestServer, String> {
        static SHARED: OnceLock<Result<TestServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| TestServer::start().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn start_once(bin: &Path, as_root: bool) -> io::Result<TestServer> {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("tokenflow-pg-")
            .tempdir()?
            .keep();
        // From here on the watchdog owns the directory, even if starting fails.
        let (watchdog, watchdog_stdin) = spawn_watchdog(bin, &dir, as_root)?;
        let mut server = TestServer {
            port: 0,
            dir,
            startup: Duration::ZERO,
            watchdog: Some(watchdog),
            watchdog_stdin: Some(watchdog_stdin),
        };
        if as_root {
            run(Command::new("chown").arg(SERVER_USER).arg(&server.dir))?;
        }
        let data = server.dir.join("data");
        run(server_command(bin, "initdb", as_root, &server.dir)
            .arg("--pgdata")
            .arg(&data)
            .args(["--username", "postgres", "--auth", "trust"])
            .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"]))?;
        server.port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            server.port,
            server.dir.display()
        );
        let started = run(server_command(bin, "pg_ctl", as_root, &server.dir)
            .arg("--pgdata")
            .arg(&data)
            .arg("--log")
            .arg(server.dir.join("server.log"))
            .args(["--options", &options])
            .args(["--wait", "--timeout", &START_TIMEOUT_SECS.to_string()])
            .arg("start"));
        if let Err(error) = started {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            return Err(io::Error::other(format!("{error}\nserver log:\n{log}")));
        }
        server.startup = began.elapsed();
        Ok(server)
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long making and starting the server took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// A connection string for the `postgres` database as the `postgres` user (no password:
    /// loopback connections are trusted).
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    /// A store key no other caller in this process gets: `name` and a counter.
    pub fn unique_key(name: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "{name}#{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // EOF on the watchdog's input: it stops the server and deletes the directory.
        drop(self.watchdog_stdin.take());
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.wait();
        }
    }
}

/// Starts a shell that waits for its standard input to close, then stops the server (if it
/// was started) and deletes `dir`. It runs in a process group of its own so that a Ctrl-C
/// meant for the tests does not kill it before it has cleaned up.
fn spawn_watchdog(bin: &Path, dir: &Path, as_root: bool) -> io::Result<(Child, ChildStdin)> {
    use std::os::unix::process::CommandExt;

    let pg_ctl = bin.join("pg_ctl");
    let stop = if as_root {
        format!("runuser -u {SERVER_USER} -- \"$1\" --pgdata \"$2/data\"")
    } else {
        "\"$1\" --pgdata \"$2/data\"".to_owned()
    };
    let script = format!(
        "cat >/dev/null; \
         if [ -f \"$2/data/postmaster.pid\" ]; then {stop} --mode immediate --wait stop >/dev/null 2>&1; fi; \
         rm -rf \"$2\""
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(&pg_ctl)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("the watchdog has no standard input"))?;
    Ok((child, stdin))
}

/// A command for one of the server binaries, as the server's user when root.
fn server_command(bin: &Path, program: &str, as_root: bool, dir: &Path) -> Command {
    let path = bin.join(program);
    let mut command = if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(path);
        command
    } else {
        Command::new(path)
    };
    // The server's user may not be allowed into the caller's directory.
    command.current_dir(dir);
    command
}

/// Runs a command to its end; an error carries what it printed.
fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::new();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(io::Error::other(format!(
        "{:?} failed ({}): {}",
        command.get_program(),
        output.status,
        text.trim()
    )))
}

fn running_as_root() -> io::Result<bool> {
    let output = Command::new("id").arg("-u").stdin(Stdio::null()).output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn find_bin_dir() -> io::Result<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Some(dir) = std::env::var_os("TOKENFLOW_PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_initdb(&dir) {
            return Ok(dir);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("TOKENFLOW_PG_BIN={} holds no initdb", dir.display()),
        ));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((major, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_initdb(dir))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no PostgreSQL server binaries (initdb, pg_ctl): install them (Debian: \
                 postgresql) or name their directory in TOKENFLOW_PG_BIN",
            )
        })
}
