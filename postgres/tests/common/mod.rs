//! Behaviour every shared token store must show, written once and run against each store:
//! PostgreSQL (blocking and async) and the core's in-memory store, to show they agree.
#![allow(dead_code)]

pub mod cases;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokenflow::grant::GrantKind;
use tokenflow::shared::{
    CasOutcome, LeaseAnswer, MarkOutcome, MemoryStore, SharedSnapshot, SharedTokenStore,
    StoreVersion,
};
use tokenflow::token::{STORED_TOKENS_VERSION, StoredTokens};
use tokenflow::{AccessToken, RefreshToken, UnixTime};

/// Stores on one fresh key, and the clock their leases run on.
pub trait Fixture: Sync {
    /// A store handle; PostgreSQL fixtures give each its own connection.
    type Store: SharedTokenStore<Error = Self::Error> + Send + Sync;
    /// The store's error.
    type Error: std::fmt::Debug;

    /// `count` handles on one store no other test uses.
    fn stores(&self, count: usize) -> Vec<Self::Store>;
    /// Now, on the clock the leases run on (what the host would pass as `now`).
    fn now(&self) -> UnixTime;
    /// Lets `duration` pass on that clock.
    fn pass(&self, duration: Duration);
    /// A lease short enough to wait out, long enough to hold across a few statements.
    fn short_lease(&self) -> Duration;
}

/// A token set whose access and refresh tokens carry `n`.
pub fn tokens(n: u64) -> StoredTokens {
    StoredTokens {
        version: STORED_TOKENS_VERSION,
        grant: GrantKind::Password,
        access_token: Some(AccessToken::new(format!("AT-secret-{n}"))),
        expires_at: Some(UnixTime::from_secs(1_700_000_600 + n)),
        refresh_token: Some(RefreshToken::new(format!("RT-secret-{n}"))),
        refresh_token_expires_at: None,
        scope: Some("api offline_access".into()),
        id_token: None,
        issued_at: UnixTime::from_secs(1_700_000_000 + n),
        extra: serde_json::Map::new(),
    }
}

/// `acquire_lease` with a lease of a minute.
pub fn acquire<S: SharedTokenStore>(store: &S, holder: &str, now: UnixTime) -> LeaseAnswer
where
    S::Error: std::fmt::Debug,
{
    store
        .acquire_lease(holder, Duration::from_secs(60), now)
        .expect("acquire_lease")
}

/// Whether an answer grants the lease.
pub fn granted(answer: &LeaseAnswer) -> bool {
    matches!(answer, LeaseAnswer::Granted(_))
}

/// The snapshot in an answer.
pub fn lease_snapshot(answer: LeaseAnswer) -> SharedSnapshot {
    match answer {
        LeaseAnswer::Granted(snapshot) | LeaseAnswer::Busy(snapshot) => snapshot,
    }
}

/// The version a compare-and-set wrote; panics on a conflict.
pub fn written(outcome: CasOutcome) -> StoreVersion {
    match outcome {
        CasOutcome::Written(version) => version,
        CasOutcome::Conflict(held) => panic!("unexpected conflict with {held:?}"),
    }
}

/// [`MarkOutcome`] of a mark at `now`.
pub fn mark<S: SharedTokenStore>(
    store: &S,
    holder: &str,
    since: UnixTime,
    now: UnixTime,
) -> MarkOutcome
where
    S::Error: std::fmt::Debug,
{
    store
        .mark_in_flight(holder, since, now)
        .expect("mark_in_flight")
}

/// The core's in-memory store, shared by handles, on a virtual clock.
pub struct MemoryFixture {
    clock: AtomicU64,
}

impl MemoryFixture {
    /// A fixture whose clock starts at an arbitrary fixed time.
    pub fn new() -> Self {
        MemoryFixture {
            clock: AtomicU64::new(1_700_000_000_000),
        }
    }
}

impl Fixture for MemoryFixture {
    // Each "replica" holds a clone of one `Arc`, which is a shared store of its own.
    type Store = Arc<MemoryStore>;
    type Error = std::convert::Infallible;

    fn stores(&self, count: usize) -> Vec<Arc<MemoryStore>> {
        let store = Arc::new(MemoryStore::new());
        (0..count).map(|_| Arc::clone(&store)).collect()
    }

    fn now(&self) -> UnixTime {
        UnixTime::from_millis(self.clock.load(Ordering::SeqCst))
    }

    fn pass(&self, duration: Duration) {
        let millis = u64::try_from(duration.as_millis()).expect("a short duration");
        self.clock.fetch_add(millis, Ordering::SeqCst);
    }

    fn short_lease(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// Real time, for stores whose leases run on a database server's clock.
pub fn wall_clock_now() -> UnixTime {
    UnixTime::from_system_time(std::time::SystemTime::now())
}
