//! The async PostgreSQL store against a real, throwaway server (one per test binary): the
//! behavioural cases of the blocking store, and async waiting and concurrency.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{Fixture, cases, tokens, wall_clock_now};
use tokenflow::UnixTime;
use tokenflow::shared::{
    CasOutcome, LeaseAnswer, MarkOutcome, SharedSnapshot, SharedTokenStore, StoreVersion,
};
use tokenflow::token::StoredTokens;
use tokenflow_postgres::testing::TestServer;
use tokenflow_postgres::{
    AsyncChangeListener, AsyncPgStore, ChangeKind, PgStore, PgStoreError, StoreChange,
};
use tokio::runtime::Runtime;

fn server() -> &'static TestServer {
    TestServer::shared().expect("a throwaway PostgreSQL server")
}

async fn connect(key: &str) -> AsyncPgStore {
    AsyncPgStore::connect(&server().connection_string(), key)
        .await
        .expect("open the store")
}

/// The runtime the cases' blocking calls run the async store on (its connections' tasks
/// live there between calls).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// An [`AsyncPgStore`] called through the trait by blocking on each call, so that the
/// blocking store's cases run unchanged.
struct BlockOn(AsyncPgStore);

impl SharedTokenStore for BlockOn {
    type Error = PgStoreError;

    fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
        now: UnixTime,
    ) -> Result<LeaseAnswer, PgStoreError> {
        runtime().block_on(self.0.acquire_lease(holder, duration, now))
    }

    fn snapshot(&self) -> Result<SharedSnapshot, PgStoreError> {
        runtime().block_on(self.0.snapshot())
    }

    fn mark_in_flight(
        &self,
        holder: &str,
        since: UnixTime,
        now: UnixTime,
    ) -> Result<MarkOutcome, PgStoreError> {
        runtime().block_on(self.0.mark_in_flight(holder, since, now))
    }

    fn compare_and_set(
        &self,
        expected: StoreVersion,
        tokens: Option<&StoredTokens>,
    ) -> Result<CasOutcome, PgStoreError> {
        runtime().block_on(self.0.compare_and_set(expected, tokens))
    }

    fn release_lease(&self, holder: &str, clear_in_flight: bool) -> Result<(), PgStoreError> {
        runtime().block_on(self.0.release_lease(holder, clear_in_flight))
    }
}

struct AsyncFixture;

impl Fixture for AsyncFixture {
    type Store = BlockOn;
    type Error = PgStoreError;

    fn stores(&self, count: usize) -> Vec<BlockOn> {
        let key = TestServer::unique_key("async-case");
        (0..count)
            .map(|_| BlockOn(runtime().block_on(connect(&key))))
            .collect()
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

macro_rules! async_store_cases {
    ($($case:ident),* $(,)?) => {
        mod async_postgres_store {
            use super::*;
            $(#[test] fn $case() { cases::$case(&AsyncFixture); })*
        }
    };
}

async_store_cases!(
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
fn concurrent_writers_through_blocking_calls_one_wins_per_version() {
    cases::concurrent_writers_one_wins_per_version(&AsyncFixture, 8, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_one_wins_per_version() {
    const WRITERS: usize = 16;
    const ROUNDS: u64 = 25;
    let key = TestServer::unique_key("async-tasks");
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for id in 0..WRITERS as u64 {
        let store = connect(&key).await;
        let barrier = Arc::clone(&barrier);
        // Outcomes are judged after the tasks end: a task that panicked in a round would
        // leave the others waiting at the barrier for ever.
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let outcome = store
                    .compare_and_set(StoreVersion::new(round), Some(&tokens(round * 100 + id)))
                    .await;
                barrier.wait().await;
                outcomes.push((round, outcome));
            }
            outcomes
        }));
    }
    let mut rounds_won = Vec::new();
    for task in tasks {
        for (round, outcome) in task.await.unwrap() {
            let expected = StoreVersion::new(round);
            match outcome.unwrap() {
                CasOutcome::Written(version) => {
                    assert_eq!(version, expected.next(), "round {round}");
                    rounds_won.push(round);
                }
                CasOutcome::Conflict(held) => {
                    assert_eq!(held.version, expected.next(), "round {round}")
                }
            }
        }
    }
    rounds_won.sort_unstable();
    assert_eq!(rounds_won, (0..ROUNDS).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_and_a_release_wake_an_async_waiter() {
    let key = TestServer::unique_key("async-notify");
    let store = connect(&key).await;
    let mut listener = AsyncChangeListener::connect(&server().connection_string(), &key)
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let began = Instant::now();
        let first = listener.wait_for_change(Duration::from_secs(20)).await;
        (listener, first.unwrap(), began.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now = wall_clock_now();
    store
        .acquire_lease("a", Duration::from_secs(60), now)
        .await
        .unwrap();
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
        .await
        .unwrap();
    let (mut listener, change, waited) = waiter.await.unwrap();
    assert_eq!(
        change,
        Some(StoreChange {
            kind: ChangeKind::Written,
            version: StoreVersion::new(1)
        })
    );
    assert!(waited < Duration::from_secs(5), "woken after {waited:?}");
    assert_eq!(
        listener
            .wait_for_change(Duration::from_millis(300))
            .await
            .unwrap(),
        None,
        "a lease taken is no change"
    );
    store.release_lease("a", true).await.unwrap();
    assert_eq!(
        listener
            .wait_for_change(Duration::from_secs(10))
            .await
            .unwrap(),
        Some(StoreChange {
            kind: ChangeKind::Released,
            version: StoreVersion::new(1)
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_and_an_async_store_share_one_key() {
    let key = TestServer::unique_key("mixed");
    let config = server().connection_string();
    let blocking = {
        let (config, key) = (config.clone(), key.clone());
        tokio::task::spawn_blocking(move || PgStore::connect(&config, &key).unwrap())
            .await
            .unwrap()
    };
    let store = connect(&key).await;
    let now = wall_clock_now();
    let LeaseAnswer::Granted(_) = store
        .acquire_lease("async", Duration::from_secs(60), now)
        .await
        .unwrap()
    else {
        panic!("the free lease was refused");
    };
    store
        .compare_and_set(StoreVersion::EMPTY, Some(&tokens(3)))
        .await
        .unwrap();
    // A blocking client may be used and dropped only off the runtime's threads.
    let answer = tokio::task::spawn_blocking(move || {
        blocking
            .acquire_lease("blocking", Duration::from_secs(60), now)
            .unwrap()
    })
    .await
    .unwrap();
    let LeaseAnswer::Busy(seen) = answer else {
        panic!("a held lease was granted");
    };
    assert_eq!(seen.tokens, Some(tokens(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_listener_connection_is_an_error_not_a_timeout() {
    let key = TestServer::unique_key("async-closed");
    let name = format!("async_victim_{}", std::process::id());
    let config = format!("{} application_name={name}", server().connection_string());
    let mut listener = AsyncChangeListener::connect(&config, &key).await.unwrap();
    let store = AsyncPgStore::connect(&config, &key).await.unwrap();
    let (client, connection) =
        tokio_postgres::connect(&server().connection_string(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2);
    let began = Instant::now();
    let error = listener
        .wait_for_change(Duration::from_secs(20))
        .await
        .unwrap_err();
    assert_eq!(error, PgStoreError::ListenerClosed);
    assert!(began.elapsed() < Duration::from_secs(5));
    let error = store.snapshot().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
}
