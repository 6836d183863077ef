//! A [`SharedTokenStore`] in memory, for tests and simulations of many replicas.

use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::time::UnixTime;
use crate::token::StoredTokens;

use super::protocol::LeaseAnswer;
use super::snapshot::{InFlightRefresh, SharedSnapshot, StoreVersion};
use super::store::{CasOutcome, MarkOutcome, SharedTokenStore};

/// A shared token store in one process's memory: the replicas of a simulation share it by
/// reference. Leases expire by the `now` each call is given; nothing reads a clock.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
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
