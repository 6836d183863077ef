//! What the flow asks of the host about the shared store, and what the host reports back.

use crate::time::UnixTime;
use crate::token::StoredTokens;

use super::snapshot::{SharedSnapshot, StoreVersion};

/// A store operation the flow asks of its host, in [`Event::Store`](crate::Event::Store).
/// The [module documentation](crate::shared) states the protocol.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StoreRequest {
    /// Try to take the renewal lease for this replica and answer with
    /// [`StoreReport::Lease`] (or [`StoreReport::Unavailable`]).
    AcquireLease,
    /// Mark the stored refresh token as in flight since `since`, before polling again (the
    /// refresh request comes next). Report [`StoreReport::LeaseLost`] if the lease is no
    /// longer this replica's.
    MarkInFlight {
        /// When the first unanswered presentation of the token was sent.
        since: UnixTime,
    },
    /// Write `tokens` if the store holds `expected_version` (it then holds
    /// `expected_version.next()`, with no in-flight mark), before polling again; otherwise
    /// report [`StoreReport::Conflict`] with what it holds. The shared-store form of
    /// [`Event::TokensUpdated`](crate::Event::TokensUpdated), with the same ordering contract.
    TokensUpdated {
        /// The new tokens.
        tokens: StoredTokens,
        /// The version the store must hold for the write to happen.
        expected_version: StoreVersion,
    },
    /// Remove the tokens with a compare-and-set, as for `TokensUpdated`: after a logout, or
    /// when the server refused the refresh token.
    TokensCleared {
        /// The version the store must hold for the write to happen.
        expected_version: StoreVersion,
    },
    /// Release the renewal lease. When `clear_in_flight` is true, remove the in-flight mark
    /// too (the server answered); when false, leave it for the next holder to judge.
    ReleaseLease {
        /// Whether the in-flight mark may go.
        clear_in_flight: bool,
    },
}

/// The store's answer to [`StoreRequest::AcquireLease`].
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseAnswer {
    /// The lease is this replica's; the snapshot was read under it.
    Granted(SharedSnapshot),
    /// Another live replica holds the lease; the snapshot is what the store holds now.
    Busy(SharedSnapshot),
}

/// What the host reports about the shared store, in [`Input::Store`](crate::Input::Store).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StoreReport {
    /// The answer to [`StoreRequest::AcquireLease`].
    Lease(LeaseAnswer),
    /// What the store holds now: after the flow was created, and whenever the store changes
    /// (another replica wrote tokens or released the lease).
    Changed(SharedSnapshot),
    /// A [`StoreRequest::TokensUpdated`] or [`StoreRequest::TokensCleared`] found another
    /// version; this is what the store holds.
    Conflict(SharedSnapshot),
    /// A [`StoreRequest::MarkInFlight`] found the lease held by another replica or expired.
    LeaseLost,
    /// The store could not be reached for [`StoreRequest::AcquireLease`].
    Unavailable,
}
