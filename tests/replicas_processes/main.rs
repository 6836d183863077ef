//! Four OS processes of one backend share one login through PostgreSQL against a strict
//! rotating server, and no refresh token is ever presented twice.
//!
//! The parent starts a throwaway PostgreSQL (`tokenflow_postgres::testing`) and
//! `oauth2-server.js` with `strictReuse` (a spent refresh token presented again revokes its
//! whole family), 2-second access tokens and single-use refresh tokens; logs in once, through
//! a client whose tokens live in the shared store; then re-executes this binary as four
//! replica processes — two with the blocking client, two with the async one — each with 16
//! tasks calling `bearer()` and `send()` against the server's API, every replica with the
//! same client id, the same `PgStore` key and a `PgChangeListener`.
//!
//! - `one_login_for_four_processes`: 30 s of calls. No reuse detection, no revoked family,
//!   no token error, not one failed call, the one login, and no more refreshes than one per
//!   renewal period of the whole run (+1).
//! - `a_replica_killed_inside_its_refresh`: the next token answer is held back, and the
//!   replica that sends the next refresh — so it holds the lease, and the store holds its
//!   in-flight mark — is killed with SIGKILL once the server has received (and applied) that
//!   refresh. Its refresh token is then possibly spent: the others must never present it
//!   again (no reuse detection, no `invalid_grant`), and must carry on — a new login through
//!   their credentials source, since the reuse setting is strict — within the lease's
//!   duration and two request timeouts.
//!
//! `cargo test --all-features --test replicas_processes` (about a minute). The test binary
//! has its own `main` (`harness = false`): run with [`REPLICA_ARG`] it is a replica.

#[path = "../support/servers.rs"]
mod servers;

mod fleet;
mod harness;
mod probe;
mod replica;
mod setup;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::shared::{SharedSnapshot, SharedTokenStore, StoreVersion};
use tokenflow_postgres::PgStore;
use tokenflow_postgres::testing::TestServer;

use fleet::{Ended, Fleet};
use servers::RunningServer;
use setup::{ACCESS_TTL_SECS, Flavour, REPLICA_ARG, REQUEST_TIMEOUT, ReplicaSettings};

/// The replica processes, and the client each runs.
const FLAVOURS: [Flavour; 4] = [
    Flavour::Blocking,
    Flavour::Blocking,
    Flavour::Async,
    Flavour::Async,
];
/// Tasks per replica process.
const TASKS: usize = 16;
/// How long the replicas of the first scenario call the API.
const SHARED_RUN: Duration = Duration::from_secs(30);
/// How long the replicas of the second scenario call the API: enough for a few renewals,
/// the kill, the recovery, and calls after it.
const KILL_RUN: Duration = Duration::from_secs(22);
/// Renewals the replicas of the second scenario make before the kill is prepared.
const SETTLE: Duration = Duration::from_secs(3);
/// How long the server holds the killed replica's refresh answer: longer than the scenario.
const HELD_ANSWER: Duration = Duration::from_secs(60);
/// How long a replica may take to connect and build its client.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long after its run a replica may take to finish its last calls and report.
const FINISH_GRACE: Duration = Duration::from_secs(15);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(REPLICA_ARG) {
        let settings = args.get(1).map_or("", String::as_str);
        std::process::exit(replica::main(settings));
    }
    harness::main(
        &args,
        &[
            (
                "one_login_for_four_processes",
                one_login_for_four_processes as fn(&Env),
            ),
            (
                "a_replica_killed_inside_its_refresh",
                a_replica_killed_inside_its_refresh,
            ),
        ],
        Env::start,
    );
}

/// The servers both scenarios use; each scenario has a store key of its own and resets the
/// token server's counters.
struct Env {
    database: TestServer,
    node: RunningServer,
}

impl Env {
    fn start() -> Env {
        let database = TestServer::start()
            .unwrap_or_else(|e| panic!("cannot start PostgreSQL for the shared store: {e}"));
        println!(
            "PostgreSQL on 127.0.0.1:{} (started in {:.1} s)",
            database.port(),
            database.startup_time().as_secs_f64()
        );
        let node = RunningServer::oauth2_server(json!({
            "accessTokenTtl": ACCESS_TTL_SECS,
            "strictReuse": true,
        }));
        Env { database, node }
    }

    fn store(&self, key: &str) -> PgStore {
        PgStore::connect(&self.database.connection_string(), key)
            .unwrap_or_else(|e| panic!("cannot open the store: {e}"))
    }

    /// The one login of a scenario: a client on the shared store logs in and writes it
    /// there, then goes away. Returns the version it wrote.
    fn log_in(&self, key: &str) -> StoreVersion {
        let client = BlockingClient::builder(
            setup::config(&self.node.token_endpoint()),
            UreqTransport::new(),
        )
        .replicas(self.store(key), "the-first-login")
        .build()
        .unwrap_or_else(|e| panic!("cannot build the login client: {e}"));
        let credentials = setup::credentials().expect("credentials");
        client
            .login(credentials)
            .unwrap_or_else(|e| panic!("the first login failed: {e}"));
        drop(client);
        let stored = snapshot(&self.store(key));
        assert!(stored.tokens.is_some(), "the login is not in the store");
        assert_eq!(stored.version, StoreVersion::new(1), "{stored:?}");
        stored.version
    }

    fn replicas(&self, key: &str, run_for: Duration) -> Vec<ReplicaSettings> {
        FLAVOURS
            .iter()
            .enumerate()
            .map(|(i, &flavour)| ReplicaSettings {
                name: format!("replica-{}-{flavour:?}", i + 1).to_lowercase(),
                flavour,
                token_endpoint: self.node.token_endpoint(),
                api_url: self.node.resource_url(),
                database: self.database.connection_string(),
                key: key.to_owned(),
                tasks: TASKS,
                run_for_ms: millis(run_for),
            })
            .collect()
    }
}

fn one_login_for_four_processes(env: &Env) {
    env.node.reset_stats();
    let key = TestServer::unique_key("replicas-processes/one-login");
    let began = Instant::now();
    env.log_in(&key);
    let mut fleet = Fleet::start(env.replicas(&key, SHARED_RUN));
    fleet.wait_ready(READY_TIMEOUT);
    let ended = fleet.finish(SHARED_RUN + FINISH_GRACE);
    let window = began.elapsed();
    let stats = env.node.stats();
    print_replicas(&ended);
    let (logins, refreshes) = (grants(&stats, "password"), grants(&stats, "refresh_token"));
    let bound = refresh_bound(window);
    println!(
        "server: {logins} login, {refreshes} refreshes in {:.1} s (bound {bound}: one per {:.1} s \
         renewal period + 1), reuse detections {}, families revoked {}",
        window.as_secs_f64(),
        renewal_period().as_secs_f64(),
        stats["reuse_detections"],
        stats["families_revoked"],
    );

    assert_no_reuse(&stats);
    for replica in &ended {
        let report = finished_well(replica);
        assert_eq!(report.errors, 0, "{report:?}");
        assert!(report.calls_served > 0, "{report:?}");
        assert_eq!(report.logins, 0, "a replica logged in again: {report:?}");
        assert_eq!(report.other_token_requests, 0, "{report:?}");
    }
    assert_eq!(logins, 1, "only the first login: {stats}");
    assert_eq!(grants_total(&stats), logins + refreshes, "{stats}");
    let sent: u64 = ended
        .iter()
        .filter_map(|r| r.report.as_ref())
        .map(|r| r.refreshes)
        .sum();
    assert_eq!(sent, refreshes, "the replicas' refreshes are the server's");
    assert!(
        refreshes <= bound,
        "{refreshes} refreshes in {window:?}: more than one per renewal period ({bound})"
    );
    // Every call was served and each token lives 2 s: the tokens used cover the whole run.
    let least = SHARED_RUN.as_secs() / ACCESS_TTL_SECS - 2;
    assert!(
        refreshes >= least,
        "{refreshes} refreshes cannot have served {SHARED_RUN:?} of calls ({least} at least)"
    );
}

fn a_replica_killed_inside_its_refresh(env: &Env) {
    env.node.reset_stats();
    let key = TestServer::unique_key("replicas-processes/killed");
    let began = Instant::now();
    env.log_in(&key);
    let watcher = env.store(&key);
    let mut fleet = Fleet::start(env.replicas(&key, KILL_RUN));
    fleet.wait_ready(READY_TIMEOUT);
    std::thread::sleep(SETTLE);

    // Right after a renewal is written, the next one is a renewal period away: hold back the
    // next token answer now, and it is that renewal's.
    let renewed =
        wait_for_version_after(&watcher, snapshot(&watcher).version, Duration::from_secs(5));
    fleet.drain();
    env.node.delay_next_token_answer(HELD_ANSWER);
    let refreshes_before = grants(&env.node.stats(), "refresh_token");
    let victim = loop {
        match fleet.next(Duration::from_secs(5)) {
            Some((index, _, Some(setup::Line::RefreshSending { .. }))) => break index,
            Some((index, _, None)) => panic!("replica {index} ended during the run"),
            Some(_) => {}
            None => panic!("no replica sent the next refresh within 5 s"),
        }
    };
    // The server has received it (and applied it: the answer is held after the rotation).
    let deadline = Instant::now() + Duration::from_secs(5);
    while grants(&env.node.stats(), "refresh_token") <= refreshes_before {
        assert!(
            Instant::now() < deadline,
            "the held refresh never reached the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let held = snapshot(&watcher);
    assert_eq!(held.version, renewed.version, "{held:?}");
    assert!(
        held.in_flight.is_some(),
        "no in-flight mark while the refresh is out: {held:?}"
    );
    assert_eq!(
        grants(&env.node.stats(), "refresh_token"),
        refreshes_before + 1,
        "only the victim's refresh is out"
    );
    let victim_name = fleet.replicas[victim].settings.name.clone();
    fleet.kill(victim);
    let killed_at = Instant::now();
    let killed_unix_ms = replica::unix_ms();
    println!("killed {victim_name} (SIGKILL) with its refresh at the server, answer held back");

    // Recovered when a replica has written new tokens over the marked ones.
    let lease = setup::config("http://127.0.0.1/token").renewal_lease_duration();
    let recovery_bound = lease + REQUEST_TIMEOUT * 2;
    let recovered = wait_for_version_after(
        &watcher,
        held.version,
        recovery_bound + Duration::from_secs(10),
    );
    let recovery = killed_at.elapsed();
    let recovered_unix_ms = replica::unix_ms();
    println!(
        "recovered in {:.2} s (bound {:.1} s: the lease's {:.1} s, a waiting replica's next ask \
         and the new login): store at {}, in-flight mark {}",
        recovery.as_secs_f64(),
        recovery_bound.as_secs_f64(),
        lease.as_secs_f64(),
        recovered.version,
        if recovered.in_flight.is_some() {
            "kept"
        } else {
            "cleared"
        },
    );

    let ended = fleet.finish(KILL_RUN + FINISH_GRACE);
    let window = began.elapsed();
    let stats = env.node.stats();
    print_replicas(&ended);
    let (logins, refreshes) = (grants(&stats, "password"), grants(&stats, "refresh_token"));
    let bound = refresh_bound(window);
    println!(
        "server: {logins} logins, {refreshes} refreshes in {:.1} s (bound {bound}), reuse \
         detections {}, families revoked {}, kill {} ms after the epoch",
        window.as_secs_f64(),
        stats["reuse_detections"],
        stats["families_revoked"],
        killed_unix_ms,
    );

    assert_no_reuse(&stats);
    assert!(
        recovery <= recovery_bound,
        "recovery took {recovery:?}, bound {recovery_bound:?}"
    );
    assert!(
        recovered.tokens.is_some() && recovered.in_flight.is_none(),
        "{recovered:?}"
    );
    let mut recovery_logins = 0;
    for replica in &ended {
        if replica.settings.name == victim_name {
            assert!(replica.killed(), "the victim ended with {}", replica.status);
            continue;
        }
        let report = finished_well(replica);
        assert_eq!(report.errors, 0, "{report:?}");
        assert!(
            report.last_served_unix_ms > recovered_unix_ms,
            "{} served no call after the recovery: {report:?}",
            report.name
        );
        assert!(
            Duration::from_millis(report.longest_call_ms) <= recovery_bound + REQUEST_TIMEOUT,
            "a caller of {} waited {} ms",
            report.name,
            report.longest_call_ms
        );
        assert_eq!(report.other_token_requests, 0, "{report:?}");
        recovery_logins += report.logins;
    }
    let survivors = u64::try_from(FLAVOURS.len() - 1).expect("a few");
    assert!(
        (1..=survivors).contains(&recovery_logins),
        "{recovery_logins} new logins after the kill"
    );
    assert_eq!(logins, 1 + recovery_logins, "{stats}");
    assert_eq!(grants_total(&stats), logins + refreshes, "{stats}");
    assert!(
        refreshes <= bound,
        "{refreshes} refreshes in {window:?} (bound {bound})"
    );
    println!("{recovery_logins} new login(s) by the survivors");
}

/// How long a token lives before it is renewed: its lifetime less the margin.
fn renewal_period() -> Duration {
    let ttl = Duration::from_secs(ACCESS_TTL_SECS);
    ttl - setup::config("http://127.0.0.1/token").margin_for(ttl)
}

/// The most refreshes a window can hold: the first renewal comes a renewal period after the
/// login, each next one a renewal period after the token it replaces was received (which is
/// after the previous one was sent), so `window / period` of them; +1 of slack, because the
/// window is read by the parent and each renewal is timed by a replica from the arrival of
/// an answer.
fn refresh_bound(window: Duration) -> u64 {
    let periods = window.as_nanos() / renewal_period().as_nanos();
    u64::try_from(periods).expect("a few") + 1
}

fn snapshot(store: &PgStore) -> SharedSnapshot {
    store
        .snapshot()
        .unwrap_or_else(|e| panic!("cannot read the store: {e}"))
}

/// Polls the store until it holds a version newer than `than`.
fn wait_for_version_after(
    store: &PgStore,
    than: StoreVersion,
    timeout: Duration,
) -> SharedSnapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let held = snapshot(store);
        if held.version > than {
            return held;
        }
        assert!(
            Instant::now() < deadline,
            "the store stayed at {than} for {timeout:?}: {held:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A replica that ran to its end and reported.
fn finished_well(replica: &Ended) -> &setup::Report {
    assert!(
        replica.status.success(),
        "{} ended with {}",
        replica.settings.name,
        replica.status
    );
    replica
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("{} ended without a report", replica.settings.name))
}

fn print_replicas(ended: &[Ended]) {
    println!(
        "{:<20} {:>7} {:>6} {:>9} {:>12} {:>6} {:>13}",
        "replica", "pid", "logins", "refreshes", "calls served", "errors", "longest wait"
    );
    for replica in ended {
        match &replica.report {
            Some(r) => println!(
                "{:<20} {:>7} {:>6} {:>9} {:>12} {:>6} {:>10} ms{}",
                r.name,
                r.pid,
                r.logins,
                r.refreshes,
                r.calls_served,
                r.errors,
                r.longest_call_ms,
                r.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  first error: {e}")),
            ),
            None => println!(
                "{:<20} {:>7} (no report: {})",
                replica.settings.name, replica.pid, replica.status
            ),
        }
    }
}

fn grants(stats: &Value, grant: &str) -> u64 {
    servers::count(stats, "token_requests", grant)
}

fn grants_total(stats: &Value) -> u64 {
    stats["token_requests"]
        .as_object()
        .map_or(0, |all| all.values().filter_map(Value::as_u64).sum())
}

/// No spent refresh token was presented: no reuse detected, no family revoked, and no token
/// request refused at all.
fn assert_no_reuse(stats: &Value) {
    assert_eq!(stats["reuse_detections"], 0, "{stats}");
    assert_eq!(stats["families_revoked"], 0, "{stats}");
    assert_eq!(stats["token_errors"], json!({}), "{stats}");
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("a short run")
}
