//! A [`SharedTokenStore`] in memory, for tests and simulations of many replicas, with a
//! change feed ([`MemoryChanges`]) for replicas that run on threads of one process.

use std::convert::Infallible;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::time::UnixTime;
use crate::token::StoredTokens;

use super::changes::StoreChanges;
use super::protocol::LeaseAnswer;
use super::snapshot::{InFlightRefresh, SharedSnapshot, StoreVersion};
use super::store::{CasOutcome, MarkOutcome, SharedTokenStore};

/// A shared token store in one process's memory: the replicas of a simulation share it by
/// reference (or, being clients on threads, through an `Arc`). Leases expire by the `now`
/// each call is given; nothing reads a clock.
///
/// Every write and every released lease is announced to the feeds made with
/// [`changes`](Self::changes).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    feed: Arc<Feed>,
}

/// Counts the changes of one store; waiting feeds sleep on the condition variable until the
/// count moves.
#[derive(Debug, Default)]
struct Feed {
    changes: Mutex<u64>,
    moved: Condvar,
}

impl Feed {
    fn count(&self) -> MutexGuard<'_, u64> {
        // A counter is never left half-updated.
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn announce(&self) {
        let mut count = self.count();
        *count = count.wrapping_add(1);
        drop(count);
        self.moved.notify_all();
    }
}

/// The change feed of a [`MemoryStore`], made by [`MemoryStore::changes`]: a
/// [`StoreChanges`] for replicas in one process (threads or tasks sharing the store).
///
/// It hears every change from the moment it is made. Waiting blocks the calling thread (on a
/// condition variable); the wait's timeout is the only time it measures.
#[derive(Debug)]
pub struct MemoryChanges {
    feed: Arc<Feed>,
    /// The count of changes already reported.
    seen: u64,
}

impl StoreChanges for MemoryChanges {
    type Error = Infallible;

    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool, Infallible> {
        let seen = self.seen;
        let count = self.feed.count();
        let (count, _) = self
            .feed
            .moved
            .wait_timeout_while(count, timeout, |count| *count == seen)
            .unwrap_or_else(PoisonError::into_inner);
        self.seen = *count;
        Ok(*count != seen)
    }
}

#[derive(Debug)]
struct State {
    snapshot: SharedSnapshot,
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Lease {
    holder: String,
    until: UnixTime,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store (version 0, no tokens, no lease).
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::new(State {
                snapshot: SharedSnapshot::empty(),
                lease: None,
            }),
            feed: Arc::default(),
        }
    }

    /// A feed of this store's changes (tokens written or cleared, a lease released), heard
    /// from now on: one per replica, each waiting on its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tokenflow::shared::{MemoryStore, SharedTokenStore, StoreChanges, StoreVersion};
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let mut changes = store.changes();
    /// let writer = Arc::clone(&store);
    /// // Another replica clears the tokens, on a thread of its own.
    /// std::thread::spawn(move || writer.compare_and_set(StoreVersion::EMPTY, None));
    /// assert!(changes.wait_for_change(Duration::from_secs(60)).unwrap());
    /// ```
    pub fn changes(&self) -> MemoryChanges {
        let seen = *self.feed.count();
        MemoryChanges {
            feed: Arc::clone(&self.feed),
            seen,
        }
    }

    /// Who holds a running lease at `now`, if anyone.
    pub fn lease_holder(&self, now: UnixTime) -> Option<String> {
        let state = self.lock();
        state
            .lease
            .as_ref()
            .filter(|lease| now < lease.until)
            .map(|lease| lease.holder.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data: every change
        // below is a single assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SharedTokenStore for MemoryStore {
    type Error = Infallible;

    fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
        now: UnixTime,
    ) -> Result<LeaseAnswer, Infallible> {
        let mut state = self.lock();
        let taken = state
            .lease
            .as_ref()
            .is_some_and(|lease| lease.holder != holder && now < lease.until);
        if taken {
            return Ok(LeaseAnswer::Busy(state.snapshot.clone()));
        }
        state.lease = Some(Lease {
            holder: holder.to_owned(),
            until: now.saturating_add(duration),
        });
        Ok(LeaseAnswer::Granted(state.snapshot.clone()))
    }

    fn snapshot(&self) -> Result<SharedSnapshot, Infallible> {
        Ok(self.lock().snapshot.clone())
    }

    fn mark_in_flight(
        &self,
        holder: &str,
        since: UnixTime,
        now: UnixTime,
    ) -> Result<MarkOutcome, Infallible> {
        let mut state = self.lock();
        let held = state
            .lease
            .as_ref()
            .is_some_and(|lease| lease.holder == holder && now < lease.until);
        if !held {
            return Ok(MarkOutcome::LeaseLost);
        }
        state.snapshot.in_flight = Some(InFlightRefresh { since });
        Ok(MarkOutcome::Marked)
    }

    fn compare_and_set(
        &self,
        expected: StoreVersion,
        tokens: Option<&StoredTokens>,
    ) -> Result<CasOutcome, Infallible> {
        let mut state = self.lock();
        if state.snapshot.version != expected {
            return Ok(CasOutcome::Conflict(state.snapshot.clone()));
        }
        let version = expected.next();
        state.snapshot = SharedSnapshot {
            version,
            tokens: tokens.cloned(),
            in_flight: None,
        };
        drop(state);
        self.feed.announce();
        Ok(CasOutcome::Written(version))
    }

    fn release_lease(&self, holder: &str, clear_in_flight: bool) -> Result<(), Infallible> {
        let mut state = self.lock();
        if state
            .lease
            .as_ref()
            .is_some_and(|lease| lease.holder == holder)
        {
            state.lease = None;
            if clear_in_flight {
                state.snapshot.in_flight = None;
            }
            drop(state);
            self.feed.announce();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantKind;

    fn tokens(n: u64) -> StoredTokens {
        StoredTokens {
            version: crate::token::STORED_TOKENS_VERSION,
            grant: GrantKind::Password,
            access_token: Some(crate::secret::AccessToken::new(format!("at-{n}"))),
            expires_at: None,
            refresh_token: None,
            refresh_token_expires_at: None,
            scope: None,
            id_token: None,
            issued_at: UnixTime::from_secs(n),
            extra: serde_json::Map::new(),
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn one_live_holder_at_a_time_and_a_dead_one_is_freed_by_time() {
        let store = MemoryStore::new();
        let t0 = UnixTime::from_secs(1_000);
        let first = store.acquire_lease("a", MINUTE, t0).unwrap();
        assert!(matches!(first, LeaseAnswer::Granted(_)));
        let second = store.acquire_lease("b", MINUTE, t0).unwrap();
        assert!(matches!(second, LeaseAnswer::Busy(_)));
        // "a" dies without releasing: its lease runs out.
        let later = t0.saturating_add(MINUTE);
        assert!(matches!(
            store.acquire_lease("b", MINUTE, later).unwrap(),
            LeaseAnswer::Granted(_)
        ));
        assert_eq!(store.lease_holder(later), Some("b".to_owned()));
        // The old holder can no longer mark, nor release the new holder's lease.
        assert_eq!(
            store.mark_in_flight("a", later, later).unwrap(),
            MarkOutcome::LeaseLost
        );
        store.release_lease("a", true).unwrap();
        assert_eq!(store.lease_holder(later), Some("b".to_owned()));
    }

    #[test]
    fn a_mark_stays_until_a_write_or_a_release_that_clears_it() {
        let store = MemoryStore::new();
        let t0 = UnixTime::from_secs(1_000);
        store.acquire_lease("a", MINUTE, t0).unwrap();
        assert_eq!(
            store.mark_in_flight("a", t0, t0).unwrap(),
            MarkOutcome::Marked
        );
        store.release_lease("a", false).unwrap();
        let snapshot = store.snapshot().unwrap();
        assert_eq!(snapshot.in_flight, Some(InFlightRefresh { since: t0 }));
        assert_eq!(
            store
                .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
                .unwrap(),
            CasOutcome::Written(StoreVersion::new(1))
        );
        assert_eq!(store.snapshot().unwrap().in_flight, None);
    }

    #[test]
    fn a_feed_hears_the_writes_and_releases_made_since_it_was_made() {
        let store = MemoryStore::new();
        let t0 = UnixTime::from_secs(1_000);
        store
            .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
            .unwrap();
        let mut changes = store.changes();
        let mut changed = || changes.wait_for_change(Duration::ZERO).unwrap();
        assert!(!changed(), "a write before the feed existed");

        // Taking a lease, a stale write and a release by a non-holder change nothing.
        store.acquire_lease("a", MINUTE, t0).unwrap();
        store
            .compare_and_set(StoreVersion::EMPTY, Some(&tokens(2)))
            .unwrap();
        store.release_lease("b", true).unwrap();
        assert!(!changed());

        // The holder's release is one.
        store.release_lease("a", false).unwrap();
        assert!(changed());

        // Two changes while nobody waits: kept, and merged into one.
        store.compare_and_set(StoreVersion::new(1), None).unwrap();
        store.acquire_lease("a", MINUTE, t0).unwrap();
        store.release_lease("a", true).unwrap();
        assert!(changed());
        assert!(!changed());

        // A waiting feed wakes when another thread writes.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                store
                    .compare_and_set(StoreVersion::new(2), Some(&tokens(3)))
                    .unwrap();
            });
            assert!(changes.wait_for_change(Duration::from_secs(30)).unwrap());
        });
    }

    #[test]
    fn compare_and_set_writes_only_over_the_expected_version() {
        let store = MemoryStore::new();
        store
            .compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
            .unwrap();
        let CasOutcome::Conflict(held) = store
            .compare_and_set(StoreVersion::EMPTY, Some(&tokens(2)))
            .unwrap()
        else {
            panic!("a stale version was written over");
        };
        assert_eq!(held.version, StoreVersion::new(1));
        assert_eq!(held.tokens, Some(tokens(1)));
        assert_eq!(
            store.compare_and_set(held.version, None).unwrap(),
            CasOutcome::Written(StoreVersion::new(2))
        );
        assert_eq!(store.snapshot().unwrap().tokens, None);
    }
}
