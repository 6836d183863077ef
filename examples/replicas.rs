//! Replicas of one backend — separate processes — sharing one login through PostgreSQL,
//! against a token service whose refresh tokens are single-use and which revokes the whole
//! grant when a spent one comes back (RFC 9700 §4.14.2).
//!
//! ```sh
//! cargo run --example replicas                                  # 3 replicas for 12 s
//! cargo run --example replicas -- --replicas 5 --seconds 15
//! ```
//!
//! The example starts a PostgreSQL of its own (from the server binaries on the machine:
//! Debian's `postgresql` package; see `tokenflow_postgres::testing`) and, in-process on
//! 127.0.0.1, the token service and API of the other examples with 2-second access tokens.
//! It logs in once, through a client whose tokens live in the shared store. Then it runs the
//! replicas: this program again, as separate processes, each a `BlockingClient` on the same
//! store key (`replicas`) with a change listener (`store_changes`) and a credentials source,
//! its threads calling the API. Each replica says what it sent; the example prints that
//! beside what the token service counted. It exits with an error if any replica failed a
//! call or the service saw a refresh token come back.

mod support;

use support::{fake_auth, loopback, report, settings};

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fake_auth::{ClientAuthStyle, FakeAuthServer, ResponseStyle, ServerConfig};
use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokenflow::adapters::blocking::{BlockingClient, Transport, UreqTransport};
use tokenflow::{Config, Credentials, RefreshTokenReuse, TransportError};
use tokenflow_postgres::testing::TestServer;
use tokenflow_postgres::{PgChangeListener, PgStore};

const CLIENT_ID: &str = "inventory-backend";
const CLIENT_SECRET: &str = "inventory-secret";
const USERNAME: &str = "svc-inventory@acme.com";
const PASSWORD: &str = "correct horse battery staple";
const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
/// The store key: one per client and login; every replica opens the same one.
const STORE_KEY: &str = "inventory-backend/svc-inventory";
/// API threads per replica, and the pause of each between two calls.
const THREADS: usize = 4;
const PACE: Duration = Duration::from_millis(100);
/// The first argument of a replica process.
const REPLICA_ARG: &str = "--replica";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let outcome = if args.get(1).map(String::as_str) == Some(REPLICA_ARG) {
        replica(args.get(2).map_or("", String::as_str))
    } else {
        run()
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What the example tells a replica (a JSON argument).
#[derive(Serialize, Deserialize)]
struct Assignment {
    name: String,
    token_endpoint: String,
    api_url: String,
    database: String,
    seconds: u64,
}

/// What a replica did (one JSON line on its stdout).
#[derive(Serialize, Deserialize)]
struct Tally {
    name: String,
    pid: u32,
    logins: u64,
    refreshes: u64,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Every replica's configuration, the first login's too. Strict reuse is the default; it is
/// named because this is what it is for: a refresh whose outcome is unknown is never sent
/// again, so that the service never sees a spent token.
fn config(token_endpoint: &str) -> Result<Config, tokenflow::ConfigError> {
    Config::builder(token_endpoint, CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .scope("inventory offline_access")
        .refresh_token_reuse(RefreshTokenReuse::Strict)
        // The renewal lease lasts as long as a whole renewal may (the sends and backoffs):
        // short timeouts keep the wait short if a replica dies holding it.
        .request_timeout(Duration::from_secs(2))
        .build()
}

/// The token service: 2-second access tokens, a new refresh token on every refresh, and the
/// whole grant revoked when a superseded one is presented.
fn token_service() -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: TOKEN_LIFETIME,
        refresh_ttl: None,
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: false,
        revoke_family_on_reuse: true,
        require_query_grant_type: false,
    });
    server.add_client(CLIENT_ID, Some(CLIENT_SECRET), ClientAuthStyle::Basic);
    server.add_user(USERNAME, PASSWORD);
    server
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings::Settings::parse(&[])?;
    let replicas: usize = settings.get_or("replicas", "3").parse()?;
    let seconds: u64 = settings.get_or("seconds", "12").parse()?;
    if !(1..=16).contains(&replicas) || !(1..=600).contains(&seconds) {
        return Err("--replicas is 1 to 16, --seconds 1 to 600".into());
    }
    let timeline = report::Timeline::new();

    let database = TestServer::start()?;
    timeline.say(
        "store",
        &format!(
            "PostgreSQL on 127.0.0.1:{}, made and started in {:.1} s",
            database.port(),
            database.startup_time().as_secs_f64()
        ),
    );
    let server = loopback::Loopback::start(token_service())?;
    timeline.say(
        "server",
        &format!(
            "token service and API on http://{}: {} access tokens, single-use refresh tokens, \
             a spent one presented again revokes the grant",
            server.addr,
            report::seconds(TOKEN_LIFETIME)
        ),
    );

    // One login for all: written to the shared store, where every replica finds it.
    let store = PgStore::connect(&database.connection_string(), STORE_KEY)?;
    let first = BlockingClient::builder(config(&server.token_endpoint())?, UreqTransport::new())
        .replicas(store, "first-login")
        .build()?;
    first.login(Credentials::password(USERNAME, PASSWORD))?;
    drop(first);
    timeline.say("app", "logged in once: the tokens are in the shared store");

    let mut children = Vec::new();
    for n in 1..=replicas {
        let assignment = Assignment {
            name: format!("replica-{n}"),
            token_endpoint: server.token_endpoint(),
            api_url: server.api_url("/inventory/items"),
            database: database.connection_string(),
            seconds,
        };
        let child = Command::new(std::env::current_exe()?)
            .arg(REPLICA_ARG)
            .arg(serde_json::to_string(&assignment)?)
            // Held open: a replica stops when the example ends, however it ends.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        timeline.say(
            &assignment.name,
            &format!(
                "started (pid {}): {THREADS} threads calling {} for {seconds} s",
                child.id(),
                assignment.api_url
            ),
        );
        children.push((assignment.name, child));
    }

    let mut tallies = Vec::new();
    let mut failed = Vec::new();
    for (name, mut child) in children {
        let stdout = child.stdout.take().ok_or("a replica without stdout")?;
        // Read to the end, which comes when the replica exits: `wait` closes its stdin,
        // which a replica still running takes for the example's end.
        let lines: Vec<String> = BufReader::new(stdout).lines().collect::<Result<_, _>>()?;
        let status = child.wait()?;
        let line = lines.into_iter().next();
        match line.map(|line| serde_json::from_str::<Tally>(&line)) {
            Some(Ok(tally)) if status.success() => tallies.push(tally),
            _ => failed.push(format!("{name} ({status})")),
        }
    }
    timeline.say("app", "every replica has finished");

    println!(
        "\n  {:<10} {:>7} {:>6} {:>9} {:>9} {:>6}",
        "replica", "pid", "logins", "refreshes", "API calls", "errors"
    );
    for t in &tallies {
        println!(
            "  {:<10} {:>7} {:>6} {:>9} {:>9} {:>6}{}",
            t.name,
            t.pid,
            t.logins,
            t.refreshes,
            t.calls,
            t.errors,
            t.first_error
                .as_ref()
                .map_or(String::new(), |e| format!("  first error: {e}"))
        );
    }
    let world = server.world();
    let grants = |grant: &str| {
        world
            .auth
            .requests()
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some(grant))
            .count()
    };
    let reuses = world.auth.reuses_detected();
    // A token is renewed its lifetime less the refresh margin after it came.
    let renewal = TOKEN_LIFETIME - config(&server.token_endpoint())?.margin_for(TOKEN_LIFETIME);
    let revoked = world.auth.families_revoked();
    println!(
        "\n  token service: {} login, {} refreshes for {replicas} replicas over {seconds} s \
         (tokens renewed every {:.1} s); {reuses} spent refresh tokens presented again, \
         {revoked} grants revoked\n",
        grants("password"),
        grants("refresh_token"),
        renewal.as_secs_f64(),
    );

    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    if !failed.is_empty() || errors > 0 || reuses > 0 || revoked > 0 {
        return Err(format!(
            "{errors} failed calls, {reuses} reuses, {revoked} revoked grants, replicas that \
             did not finish: {failed:?}"
        )
        .into());
    }
    Ok(())
}

/// One replica: a client on the shared store, its threads calling the API until the time
/// is up, then its tally on stdout.
fn replica(assignment: &str) -> Result<(), Box<dyn std::error::Error>> {
    let assignment: Assignment = serde_json::from_str(assignment)?;
    thread::spawn(|| {
        // The example holds stdin: its end is the example's.
        let _ = std::io::stdin().lines().count();
        std::process::exit(3);
    });
    let store = PgStore::connect(&assignment.database, STORE_KEY)?;
    let changes = PgChangeListener::connect(&assignment.database, STORE_KEY)?;
    let sent = Arc::new(Sent::default());
    let transport = Counting {
        inner: UreqTransport::new(),
        sent: Arc::clone(&sent),
    };
    let client = BlockingClient::builder(config(&assignment.token_endpoint)?, transport)
        .replicas(store, assignment.name.clone())
        .store_changes(changes)
        // Only needed if the shared login is lost (a refresh whose outcome is unknown).
        .credentials(|| Some(Credentials::password(USERNAME, PASSWORD)))
        .build()?;

    let until = Instant::now() + Duration::from_secs(assignment.seconds);
    let (calls, errors) = (AtomicU64::new(0), AtomicU64::new(0));
    let first_error = std::sync::Mutex::new(None);
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                while Instant::now() < until {
                    let outcome = Request::get(assignment.api_url.as_str())
                        .body(Vec::new())
                        .map_err(|e| e.to_string())
                        .and_then(|request| client.send(request).map_err(|e| e.to_string()))
                        .and_then(|response| match response.status() {
                            StatusCode::OK => Ok(()),
                            status => Err(format!("the API answered {status}")),
                        });
                    match outcome {
                        Ok(()) => calls.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                            first.get_or_insert(error);
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    thread::sleep(PACE);
                }
            });
        }
    });
    let tally = Tally {
        name: assignment.name,
        pid: std::process::id(),
        logins: sent.logins.load(Ordering::SeqCst),
        refreshes: sent.refreshes.load(Ordering::SeqCst),
        calls: calls.into_inner(),
        errors: errors.into_inner(),
        first_error: first_error.into_inner().unwrap_or_else(|e| e.into_inner()),
    };
    println!("{}", serde_json::to_string(&tally)?);
    Ok(())
}

/// The token requests one replica sent.
#[derive(Default)]
struct Sent {
    logins: AtomicU64,
    refreshes: AtomicU64,
}

/// The replica's transport, counting its token requests by grant type.
struct Counting {
    inner: UreqTransport,
    sent: Arc<Sent>,
}

impl Transport for Counting {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let grant = form_urlencoded::parse(request.body())
            .find(|(name, _)| name == "grant_type")
            .map(|(_, value)| value.into_owned());
        match grant.as_deref() {
            Some("password") => self.sent.logins.fetch_add(1, Ordering::SeqCst),
            Some("refresh_token") => self.sent.refreshes.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        self.inner.send(request, deadline, max_body)
    }
}
