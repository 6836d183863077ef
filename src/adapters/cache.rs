//! The token at hand: what lets a caller holding a valid token skip the engine altogether.
//!
//! The [`Engine`](super::engine::Engine) writes it, always with its own lock held, so a write
//! never races another write and the cache never outlives what the engine knows: it is
//! filled when the flow hands a token out with nothing left to do, bounded by the flow's next
//! deadline (a proactive renewal, say) and the token's expiry, and emptied whenever work is
//! queued, a token is refused or replaced, or the tokens are forgotten. Callers only read it,
//! under a shared lock that readers never contend on with the engine's mutex.

use std::sync::RwLock;
use std::time::Instant;

use crate::output::Bearer;

/// A token and until when it may be handed out without asking the engine.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slot: RwLock<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    bearer: Bearer,
    valid_until: Instant,
}

impl TokenCache {
    /// The cached token, if it may still be handed out at `now`.
    #[inline]
    pub(crate) fn get(&self, now: Instant) -> Option<Bearer> {
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(cached) if now < cached.valid_until => Some(cached.bearer.clone()),
            _ => None,
        }
    }

    /// Keeps `bearer` at hand until `valid_until`.
    pub(crate) fn set(&self, bearer: Bearer, valid_until: Instant) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            bearer,
            valid_until,
        });
    }

    /// Sends every caller back to the engine.
    pub(crate) fn clear(&self) {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            *slot = None;
        }
    }
}
