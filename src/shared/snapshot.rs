//! What a shared token store holds.

use std::fmt;

use crate::time::UnixTime;
use crate::token::StoredTokens;

/// The version of the tokens in a shared store: 0 for a store never written, one more after
/// each successful compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StoreVersion(u64);

impl StoreVersion {
    /// The version of a store never written.
    pub const EMPTY: StoreVersion = StoreVersion(0);

    /// A version from its number.
    pub const fn new(version: u64) -> Self {
        StoreVersion(version)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version a successful compare-and-set from this one writes.
    pub const fn next(self) -> Self {
        StoreVersion(self.0.saturating_add(1))
    }
}

impl fmt::Display for StoreVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A refresh with the stored refresh token was sent and its outcome was never written: the
/// server may have rotated the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InFlightRefresh {
    /// When the first unanswered presentation of the token was sent (the start of a grace
    /// window), on the wall clock of the replica that sent it.
    pub since: UnixTime,
}

/// What a shared store holds at one moment. `Debug` redacts the tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSnapshot {
    /// The version of `tokens`.
    pub version: StoreVersion,
    /// The tokens, if any login was ever written and not cleared since.
    pub tokens: Option<StoredTokens>,
    /// The mark left by a refresh sent and not written back, if any.
    pub in_flight: Option<InFlightRefresh>,
}

impl SharedSnapshot {
    /// A store never written.
    pub fn empty() -> Self {
        SharedSnapshot {
            version: StoreVersion::EMPTY,
            tokens: None,
            in_flight: None,
        }
    }
}
