//! The blocking PostgreSQL store against a real, throwaway server (one per test binary), and
//! the same behavioural cases against the core's in-memory store.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, MemoryFixture, cases, tokens, wall_clock_now};
use postgres::{Client, NoTls};
use tokenflow::UnixTime;
use tokenflow::shared::{SharedTokenStore, StoreVersion};
use tokenflow_postgres::testing::TestServer;
use tokenflow_postgres::{
    ChangeKind, PgChangeListener, PgStore, PgStoreError, StoreChange, TableName,
};

fn server() -> &'static TestServer {
    TestServer::shared().expect("a throwaway PostgreSQL server")
}

fn connect(store_key: &str) -> PgStore {
    PgStore::connect(&server().connection_string(), store_key).expect("open the store")
}

fn raw_client() -> Client {
    Client::connect(&server().connection_string(), NoTls).expect("connect")
}

/// PostgreSQL stores on a fresh key, each handle on its own connection; leases run on the
/// server's clock, so time passes for real.
struct PgFixture;

impl Fixture for PgFixture {
    type Store = PgStore;
    type Error = PgStoreError;

    fn stores(&self, count: usize) -> Vec<PgStore> {
        let key = TestServer::unique_key("case");
        (0..count).map(|_| connect(&key)).collect()
    }

    fn now(&self) -> UnixTime {
        wall_clock_now()
    }

    fn pass(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn short_lease(&self) -> Duration {
        Duration::from_millis(400)
    }
}

macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod postgres_store {
            use super::*;
            $(#[test] fn $case() { cases::$case(&PgFixture); })*
        }
        mod memory_store {
            use super::*;
            $(#[test] fn $case() { cases::$case(&MemoryFixture::new()); })*
        }
    };
}

both_stores!(
    lease_is_exclusive,
    expired_lease_is_taken_over,
    reacquiring_extends_the_lease,
    release_keeps_or_clears_the_mark,
    release_by_another_holder_does_nothing,
    mark_without_the_lease_is_lease_lost,
    compare_and_set_increments_and_clears_the_mark,
    conflict_returns_what_the_store_holds,
    lease_answers_carry_the_stored_tokens,
);

#[test]
fn concurrent_writers_on_postgres_one_wins_per_version() {
    cases::concurrent_writers_one_wins_per_version(&PgFixture, 16, 25);
}

#[test]
fn concurrent_writers_in_memory_one_wins_per_version() {
    cases::concurrent_writers_one_wins_per_version(&MemoryFixture::new(), 16, 25);
}

#[test]
fn server_starts_and_reports_its_startup_time() {
    let server = server();
    eprintln!(
        "PostgreSQL on 127.0.0.1:{} started in {:?}",
        server.port(),
        server.startup_time()
    );
    let version: String = raw_client()
        .query_one("SHOW server_version", &[])
        .unwrap()
        .get(0);
    assert!(!version.is_empty());
}

#[test]
fn a_write_wakes_a_waiting_listener() {
    let key = TestServer::unique_key("notify-write");
    let store = connect(&key);
    let mut listener = PgChangeListener::connect(&server().connection_string(), &key).unwrap();
    let waiter = std::thread::spawn(move || {
        let began = Instant::now();
        let change = listener.wait_for_change(Duration::from_secs(20)).unwrap();
        (change, began.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap();
    let (change, waited) = waiter.join().unwrap();
    assert_eq!(
        change,
        Some(StoreChange {
            kind: ChangeKind::Written,
            version: StoreVersion::new(1)
        })
    );
    assert!(waited < Duration::from_secs(5), "woken after {waited:?}");
}

#[test]
fn a_release_wakes_a_waiting_listener_and_nothing_else_does() {
    let key = TestServer::unique_key("notify-release");
    let store = connect(&key);
    let other = connect(&TestServer::unique_key("notify-other-key"));
    let mut listener = PgChangeListener::connect(&server().connection_string(), &key).unwrap();
    let now = wall_clock_now();
    store
        .acquire_lease("a", Duration::from_secs(60), now)
        .unwrap();
    store.mark_in_flight("a", now, now).unwrap();
    // Another key's write, a lease taken, a mark, a release by a non-holder: no change.
    other
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap();
    store.release_lease("not-the-holder", true).unwrap();
    assert_eq!(
        listener
            .wait_for_change(Duration::from_millis(300))
            .unwrap(),
        None
    );
    store.release_lease("a", false).unwrap();
    assert_eq!(
        listener.wait_for_change(Duration::from_secs(10)).unwrap(),
        Some(StoreChange {
            kind: ChangeKind::Released,
            version: StoreVersion::EMPTY
        })
    );
}

#[test]
fn changes_made_before_the_wait_are_reported_at_once_merged() {
    let key = TestServer::unique_key("notify-merged");
    let store = connect(&key);
    let mut listener = PgChangeListener::connect(&server().connection_string(), &key).unwrap();
    for version in 0..3 {
        store
            .compare_and_set(StoreVersion::new(version), Some(&tokens(version)))
            .unwrap();
    }
    // Let the notifications reach the listener's connection.
    std::thread::sleep(Duration::from_millis(200));
    let began = Instant::now();
    assert_eq!(
        listener.wait_for_change(Duration::from_secs(10)).unwrap(),
        Some(StoreChange {
            kind: ChangeKind::Written,
            version: StoreVersion::new(3)
        })
    );
    assert!(began.elapsed() < Duration::from_secs(1));
    assert_eq!(
        listener
            .wait_for_change(Duration::from_millis(200))
            .unwrap(),
        None,
        "all three were reported as one"
    );
}

#[test]
fn unreadable_tokens_are_a_typed_error_that_quotes_nothing() {
    let key = TestServer::unique_key("corrupt");
    let store = connect(&key);
    raw_client()
        .execute(
            "UPDATE tokenflow_shared_tokens SET tokens = $2 WHERE key = $1",
            &[&key, &r#"{"version":1,"refresh_token":"RT-leaked"#],
        )
        .unwrap();
    let error = store.snapshot().unwrap_err();
    assert!(matches!(error, PgStoreError::CorruptTokens(_)), "{error:?}");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("RT-leaked"), "{text}");
    }
    // Under the lease too, and the lease is not taken on the way.
    let now = wall_clock_now();
    let error = store
        .acquire_lease("a", Duration::from_secs(60), now)
        .unwrap_err();
    assert!(matches!(error, PgStoreError::CorruptTokens(_)), "{error:?}");
    assert_eq!(
        store.mark_in_flight("a", now, now).unwrap(),
        tokenflow::shared::MarkOutcome::LeaseLost
    );
    // A conflict over them is the same error; a write over them repairs the store.
    assert!(matches!(
        store.compare_and_set(StoreVersion::new(9), None),
        Err(PgStoreError::CorruptTokens(_))
    ));
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap();
    assert_eq!(store.snapshot().unwrap().tokens, Some(tokens(1)));
}

#[test]
fn values_the_store_never_writes_are_typed_errors() {
    let key = TestServer::unique_key("corrupt-row");
    let store = connect(&key);
    raw_client()
        .execute(
            "UPDATE tokenflow_shared_tokens SET in_flight_since_ms = -1 WHERE key = $1",
            &[&key],
        )
        .unwrap();
    assert_eq!(
        store.snapshot().unwrap_err(),
        PgStoreError::CorruptRow {
            column: "in_flight_since_ms"
        }
    );
    raw_client()
        .execute(
            "DELETE FROM tokenflow_shared_tokens WHERE key = $1",
            &[&key],
        )
        .unwrap();
    assert_eq!(store.snapshot().unwrap_err(), PgStoreError::MissingRow);
    let now = wall_clock_now();
    assert_eq!(
        store
            .acquire_lease("a", Duration::from_secs(1), now)
            .unwrap_err(),
        PgStoreError::MissingRow
    );
    // Opening the store again makes an empty one.
    assert_eq!(
        connect(&key).snapshot().unwrap().version,
        StoreVersion::EMPTY
    );
}

#[test]
fn debug_output_holds_no_token() {
    let key = TestServer::unique_key("debug");
    let store = connect(&key);
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap();
    let snapshot = store.snapshot().unwrap();
    for text in [format!("{store:?}"), format!("{snapshot:?}")] {
        assert!(!text.contains("secret"), "{text}");
    }
}

#[test]
fn the_schema_is_created_once_by_stores_opening_at_once() {
    let table = TableName::new(&format!("concurrent_schema_{}", std::process::id())).unwrap();
    let key = TestServer::unique_key("schema");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let client = raw_client();
                PgStore::open(client, table.clone(), &key).expect("open");
            });
        }
    });
    let store = PgStore::open(raw_client(), table.clone(), &key).unwrap();
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap();
    // Opening again keeps what is stored; the default table's row of the key is another store.
    let again = PgStore::open(raw_client(), table, &key).unwrap();
    assert_eq!(again.snapshot().unwrap().version, StoreVersion::new(1));
    assert_eq!(
        connect(&key).snapshot().unwrap().version,
        StoreVersion::EMPTY
    );
}

#[test]
fn a_closed_connection_is_an_unavailable_store() {
    let key = TestServer::unique_key("closed");
    let name = format!("victim-{}", key.replace(['#', '-'], "_"));
    let config = format!("{} application_name={name}", server().connection_string());
    let store = PgStore::connect(&config, &key).unwrap();
    let mut listener = PgChangeListener::connect(&config, &key).unwrap();
    let killed: i64 = raw_client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 2);
    let error = store
        .acquire_lease("a", Duration::from_secs(1), wall_clock_now())
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    let error = listener
        .wait_for_change(Duration::from_secs(5))
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
}

#[test]
fn a_database_error_quotes_no_row() {
    // A table with an extra constraint the store's writes break: PostgreSQL's DETAIL then
    // quotes the failing row, tokens and all.
    let table = TableName::new(&format!("strict_{}", std::process::id())).unwrap();
    raw_client()
        .batch_execute(&format!(
            "CREATE TABLE {table} (
                key text PRIMARY KEY,
                version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
                tokens text CHECK (tokens IS NULL OR length(tokens) < 10),
                in_flight_since_ms bigint,
                lease_holder text,
                lease_expires_at timestamptz
            )"
        ))
        .unwrap();
    let store = PgStore::open(raw_client(), table, "strict").unwrap();
    let error = store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap_err();
    let PgStoreError::Database { code, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        code.as_ref(),
        Some(&postgres::error::SqlState::CHECK_VIOLATION)
    );
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("Failing row"), "{text}");
    }
    assert!(std::error::Error::source(&error).is_none());
    assert_eq!(store.snapshot().unwrap().version, StoreVersion::EMPTY);
}

#[test]
fn a_key_too_long_for_a_notification_is_refused_before_anything_is_written() {
    // The table exists, whichever test runs first.
    connect(&TestServer::unique_key("key-length"));
    let key = "k".repeat(tokenflow_postgres::MAX_KEY_BYTES + 1);
    let error = PgStore::connect(&server().connection_string(), &key).unwrap_err();
    assert_eq!(error, PgStoreError::InvalidKey);
    let error = PgChangeListener::connect(&server().connection_string(), &key).unwrap_err();
    assert_eq!(error, PgStoreError::InvalidKey);
    let rows: i64 = raw_client()
        .query_one(
            "SELECT count(*) FROM tokenflow_shared_tokens WHERE key = $1",
            &[&key],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    // The longest key works, notifications included.
    let key = "k".repeat(tokenflow_postgres::MAX_KEY_BYTES);
    let store = connect(&key);
    let mut listener = PgChangeListener::connect(&server().connection_string(), &key).unwrap();
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .unwrap();
    assert!(
        listener
            .wait_for_change(Duration::from_secs(10))
            .unwrap()
            .is_some()
    );
}
