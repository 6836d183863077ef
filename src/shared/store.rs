//! The interface a host implements over the store its replicas share.

use std::sync::Arc;
use std::time::Duration;

use crate::time::UnixTime;
use crate::token::StoredTokens;

use super::protocol::LeaseAnswer;
use super::snapshot::{SharedSnapshot, StoreVersion};

/// The outcome of [`SharedTokenStore::compare_and_set`].
#[derive(Debug, Clone, PartialEq)]
pub enum CasOutcome {
    /// Written; the store now holds this version.
    Written(StoreVersion),
    /// The store held another version; this is what it holds.
    Conflict(SharedSnapshot),
}

/// The outcome of [`SharedTokenStore::mark_in_flight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The mark is written.
    Marked,
    /// The caller does not hold the lease (it expired, or another replica took it): nothing
    /// was written.
    LeaseLost,
}

/// A token store shared by the replicas of one client, with the pieces the renewal protocol
/// of [`crate::shared`] needs: a versioned token set, an in-flight mark, and one renewal lease.
///
/// The flow never calls it; a host does, translating each [`StoreRequest`](super::StoreRequest)
/// into a call and each result into a [`StoreReport`](super::StoreReport). Every operation is
/// atomic. Holders are named by the host (one name per replica, for example a process id
/// and a random part); `now` is the caller's reading of the wall clock, which an
/// implementation with a clock of its own (a database server's) may use instead, as long as
/// it uses one clock for every lease. A PostgreSQL implementation gets the lease from a row
/// lock or an advisory lock held by a live connection (freed when the holder's connection
/// dies) or from a holder column with an expiry, and the compare-and-set from
/// `UPDATE … SET version = version + 1 … WHERE version = $expected`.
pub trait SharedTokenStore {
    /// What can go wrong reaching the store.
    type Error;

    /// Takes the renewal lease for `holder` until `now + duration`, unless another holder's
    /// lease is still running; taking it again while holding it extends it. Returns the
    /// snapshot read under the lease, or the snapshot and [`LeaseAnswer::Busy`].
    fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
        now: UnixTime,
    ) -> Result<LeaseAnswer, Self::Error>;

    /// What the store holds now.
    fn snapshot(&self) -> Result<SharedSnapshot, Self::Error>;

    /// Marks the stored refresh token as in flight since `since`, if `holder` holds a running
    /// lease at `now`.
    fn mark_in_flight(
        &self,
        holder: &str,
        since: UnixTime,
        now: UnixTime,
    ) -> Result<MarkOutcome, Self::Error>;

    /// Writes `tokens` (or removes them, with `None`) if the store holds `expected`; the
    /// store then holds `expected.next()` and no in-flight mark. No lease is needed: the
    /// version alone decides.
    fn compare_and_set(
        &self,
        expected: StoreVersion,
        tokens: Option<&StoredTokens>,
    ) -> Result<CasOutcome, Self::Error>;

    /// Releases `holder`'s lease, and with `clear_in_flight` the in-flight mark. Does nothing
    /// when `holder` does not hold the lease (the mark then belongs to someone else).
    fn release_lease(&self, holder: &str, clear_in_flight: bool) -> Result<(), Self::Error>;
}

/// Implements [`SharedTokenStore`] for a pointer type by forwarding every call to the store
/// it points to.
macro_rules! forward_shared_token_store {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<S: SharedTokenStore + ?Sized> SharedTokenStore for $pointer {
            type Error = S::Error;

            fn acquire_lease(
                &self,
                holder: &str,
                duration: Duration,
                now: UnixTime,
            ) -> Result<LeaseAnswer, Self::Error> {
                (**self).acquire_lease(holder, duration, now)
            }

            fn snapshot(&self) -> Result<SharedSnapshot, Self::Error> {
                (**self).snapshot()
            }

            fn mark_in_flight(
                &self,
                holder: &str,
                since: UnixTime,
                now: UnixTime,
            ) -> Result<MarkOutcome, Self::Error> {
                (**self).mark_in_flight(holder, since, now)
            }

            fn compare_and_set(
                &self,
                expected: StoreVersion,
                tokens: Option<&StoredTokens>,
            ) -> Result<CasOutcome, Self::Error> {
                (**self).compare_and_set(expected, tokens)
            }

            fn release_lease(&self, holder: &str, clear_in_flight: bool) -> Result<(), Self::Error> {
                (**self).release_lease(holder, clear_in_flight)
            }
        }
    };
}

forward_shared_token_store!(
    /// A store shared by reference: one [`MemoryStore`](super::MemoryStore) serving every
    /// replica of a simulation, for example.
    &S
);
forward_shared_token_store!(
    /// A store shared through an `Arc`: several clients of one process (each given a clone)
    /// sharing one [`MemoryStore`](super::MemoryStore), for example.
    Arc<S>
);
