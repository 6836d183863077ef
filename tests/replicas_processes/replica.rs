//! One replica process: a client of one flavour sharing the login kept in PostgreSQL, its
//! tasks calling the API until the run ends, and its report on stdout.
//!
//! Anything that keeps the replica from running (a bad argument, the database or the client
//! refusing to start) ends the process with a non-zero status, which fails the parent.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Request, StatusCode};
use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
use tokenflow_postgres::{PgChangeListener, PgStore};

use crate::probe::{Probe, Probed};
use crate::setup::{self, Flavour, Line, PACE, ReplicaSettings, Report};

/// Runs the replica described by the JSON `settings`; returns the process's exit status.
pub fn main(settings: &str) -> i32 {
    let settings: ReplicaSettings = match serde_json::from_str(settings) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("replica: unreadable settings: {error}");
            return 2;
        }
    };
    exit_with_parent();
    match run(&settings) {
        Ok(report) => {
            say(&Line::Report(report));
            0
        }
        Err(error) => {
            eprintln!("replica {}: {error}", settings.name);
            1
        }
    }
}

/// Prints one line for the parent.
pub fn say(line: &Line) {
    let text = serde_json::to_string(line).expect("a line is JSON");
    let mut stdout = std::io::stdout().lock();
    // The parent reads every line; a replica that cannot tell it anything has no use.
    writeln!(stdout, "{text}").expect("stdout is the parent's pipe");
    stdout.flush().expect("stdout is the parent's pipe");
}

/// The parent holds this process's stdin: when it ends, however it ends, the pipe closes and
/// the replica stops too, instead of calling the API for the rest of its run.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
        std::process::exit(3);
    });
}

fn run(settings: &ReplicaSettings) -> Result<Report, String> {
    // Connected here, off any async runtime: the blocking driver runs a runtime of its own.
    let store = PgStore::connect(&settings.database, &settings.key)
        .map_err(|error| format!("opening the store: {error}"))?;
    let changes = PgChangeListener::connect(&settings.database, &settings.key)
        .map_err(|error| format!("listening to the store: {error}"))?;
    let probe = Arc::new(Probe::default());
    let tally = Arc::new(Tally::default());
    match settings.flavour {
        Flavour::Blocking => run_blocking(settings, store, changes, &probe, &tally)?,
        Flavour::Async => run_async(settings, store, changes, &probe, &tally)?,
    }
    Ok(Report {
        name: settings.name.clone(),
        flavour: settings.flavour,
        pid: std::process::id(),
        logins: probe.logins.load(Ordering::SeqCst),
        refreshes: probe.refreshes.load(Ordering::SeqCst),
        other_token_requests: probe.others.load(Ordering::SeqCst),
        calls_served: tally.served.load(Ordering::SeqCst),
        errors: tally.errors.load(Ordering::SeqCst),
        first_error: tally.first_error.lock().expect("not poisoned").clone(),
        longest_call_ms: tally.longest_ms.load(Ordering::SeqCst),
        last_served_unix_ms: tally.last_served_unix_ms.load(Ordering::SeqCst),
    })
}

fn run_blocking(
    settings: &ReplicaSettings,
    store: PgStore,
    changes: PgChangeListener,
    probe: &Arc<Probe>,
    tally: &Tally,
) -> Result<(), String> {
    let transport = Probed::new(UreqTransport::new(), probe);
    let client = BlockingClient::builder(setup::config(&settings.token_endpoint), transport)
        .replicas(store, settings.name.clone())
        .store_changes(changes)
        .credentials(setup::credentials)
        .build()
        .map_err(|error| format!("building the blocking client: {error}"))?;
    say(&Line::Ready {
        pid: std::process::id(),
    });
    let until = Instant::now() + Duration::from_millis(settings.run_for_ms);
    std::thread::scope(|scope| {
        for _ in 0..settings.tasks {
            scope.spawn(|| {
                while Instant::now() < until {
                    let started = Instant::now();
                    let outcome = (|| {
                        client.bearer().map_err(|e| format!("bearer(): {e}"))?;
                        let response = client
                            .send(api_request(&settings.api_url))
                            .map_err(|e| format!("send(): {e}"))?;
                        served(response.status())
                    })();
                    tally.record(started, outcome);
                    std::thread::sleep(PACE);
                }
            });
        }
    });
    Ok(())
}

fn run_async(
    settings: &ReplicaSettings,
    store: PgStore,
    changes: PgChangeListener,
    probe: &Arc<Probe>,
    tally: &Arc<Tally>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("starting the runtime: {error}"))?;
    let transport = Probed::new(
        ReqwestTransport::new().map_err(|error| format!("the HTTP client: {error}"))?,
        probe,
    );
    let client = runtime.block_on(async {
        AsyncClient::builder(setup::config(&settings.token_endpoint), transport)
            .replicas(store, settings.name.clone())
            .store_changes(changes)
            .credentials(setup::credentials)
            .build()
            .map_err(|error| format!("building the async client: {error}"))
    })?;
    say(&Line::Ready {
        pid: std::process::id(),
    });
    let until = Instant::now() + Duration::from_millis(settings.run_for_ms);
    let finished = runtime.block_on(async {
        // Spawned, so that the tasks run on both workers as an application's would.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..settings.tasks {
            let (client, tally) = (client.clone(), Arc::clone(tally));
            let url = settings.api_url.clone();
            tasks.spawn(async move {
                while Instant::now() < until {
                    let started = Instant::now();
                    let outcome = async {
                        client
                            .bearer()
                            .await
                            .map_err(|e| format!("bearer(): {e}"))?;
                        let response = client
                            .send(api_request(&url))
                            .await
                            .map_err(|e| format!("send(): {e}"))?;
                        served(response.status())
                    }
                    .await;
                    tally.record(started, outcome);
                    tokio::time::sleep(PACE).await;
                }
            });
        }
        let mut finished = Ok(());
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                finished = Err(format!("a task failed: {error}"));
            }
        }
        finished
    });
    // Dropped off the runtime's threads: the store's blocking driver must not be dropped on
    // them.
    drop(client);
    drop(runtime);
    finished
}

fn api_request(url: &str) -> Request<Vec<u8>> {
    Request::get(url)
        .body(Vec::new())
        .expect("a valid API request")
}

fn served(status: StatusCode) -> Result<(), String> {
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("the API answered {status}"))
    }
}

/// What the tasks of one replica saw.
#[derive(Debug, Default)]
struct Tally {
    served: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    longest_ms: AtomicU64,
    last_served_unix_ms: AtomicU64,
}

impl Tally {
    fn record(&self, started: Instant, outcome: Result<(), String>) {
        let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.longest_ms.fetch_max(took, Ordering::SeqCst);
        match outcome {
            Ok(()) => {
                self.served.fetch_add(1, Ordering::SeqCst);
                self.last_served_unix_ms
                    .fetch_max(unix_ms(), Ordering::SeqCst);
            }
            Err(error) => {
                self.errors.fetch_add(1, Ordering::SeqCst);
                self.first_error
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert(error);
            }
        }
    }
}

/// Milliseconds since the Unix epoch: the one clock the parent and its replicas share.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
