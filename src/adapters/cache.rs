//! The token at hand: what lets a caller holding a valid token skip the engine altogether.
//!
//! The [`Engine`](super::engine::Engine) writes it, always with its own lock held, so a write
//! never races another write and the cache never outlives what the engine knows: it is
//! filled when the flow hands a token out with nothing left to do, bounded by the flow's next
//! deadline (a proactive renewal, say) and the token's expiry, and emptied whenever work is
//! queued, a token is refused or replaced, or the tokens are forgotten.
//!
//! Readers on different threads must not slow each other down: `bearer()` is called on every
//! API request, from every worker thread. A single shared slot makes every read write two
//! shared cache lines (the lock's reader count, and the reference count of the one header all
//! callers clone), and at two threads those lines bouncing between cores cost more than the
//! read itself (the bearer benchmark measured half the speed of a plain `RwLock` cache). So
//! each thread keeps its own copy of the entry of the cache it read last, with a header of its
//! own (its own reference count), and serves itself from it without any lock: the engine's
//! entry is read, and copied, only on the first read after a change. Entries are stamped with
//! the cache's epoch, which every write of the engine advances, so a thread's copy is served
//! only while it is still the engine's. A stale copy stays in its thread until that thread
//! next reads a cache (it is replaced then), or ends.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use http::HeaderValue;

use super::coarse_clock::CoarseDeadline;
use crate::output::Bearer;

/// A token and until when it may be handed out without asking the engine.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    /// Advanced by every write of the engine; an entry stamped with another epoch is stale.
    epoch: AtomicU64,
    /// The engine's entry, the source every shard copies from.
    source: RwLock<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    bearer: Bearer,
    valid_until: CoarseDeadline,
    epoch: u64,
}

impl Cached {
    /// Whether this entry may be handed out when the cache is at `epoch` and `ahead` says
    /// whether a deadline is still to come.
    #[inline]
    fn serves(&self, epoch: u64, ahead: impl Fn(&CoarseDeadline) -> bool) -> bool {
        self.epoch == epoch && ahead(&self.valid_until)
    }

    /// A copy sharing no reference count with this one.
    fn detached(&self) -> Option<Cached> {
        let mut header = HeaderValue::from_bytes(self.bearer.header.as_bytes()).ok()?;
        header.set_sensitive(true);
        Some(Cached {
            bearer: Bearer {
                header,
                generation: self.bearer.generation,
            },
            ..*self
        })
    }
}

impl TokenCache {
    /// The cached token, if it may still be handed out.
    #[inline]
    pub(crate) fn get(self: &Arc<Self>) -> Option<Bearer> {
        self.lookup(CoarseDeadline::is_ahead)
    }

    /// The cached token, if it may still be handed out at `now`.
    #[cfg(test)]
    pub(crate) fn get_at(self: &Arc<Self>, now: Instant) -> Option<Bearer> {
        self.lookup(|deadline| deadline.is_ahead_of(now))
    }

    #[inline]
    fn lookup(self: &Arc<Self>, ahead: impl Fn(&CoarseDeadline) -> bool + Copy) -> Option<Bearer> {
        let epoch = self.epoch.load(Ordering::Acquire);
        // A thread whose storage is already gone (a call made from a thread-local's
        // destructor) is served from the engine's entry every time.
        let hit = LOCAL
            .try_with(|local| {
                let local = local.borrow();
                match &*local {
                    Some(slot) if Weak::as_ptr(&slot.owner) == Arc::as_ptr(self) => slot
                        .entry
                        .serves(epoch, ahead)
                        .then(|| slot.entry.bearer.clone()),
                    _ => None,
                }
            })
            .ok()
            .flatten();
        match hit {
            Some(bearer) => Some(bearer),
            None => self.refill(epoch, ahead),
        }
    }

    /// Copies the engine's entry into the thread's slot and hands it out, if it serves.
    #[cold]
    fn refill(
        self: &Arc<Self>,
        epoch: u64,
        ahead: impl Fn(&CoarseDeadline) -> bool,
    ) -> Option<Bearer> {
        let copy = {
            let source = self.source.read().unwrap_or_else(|e| e.into_inner());
            match &*source {
                Some(cached) if cached.serves(epoch, ahead) => cached.detached()?,
                _ => return None,
            }
        };
        let bearer = copy.bearer.clone();
        let _kept = LOCAL.try_with(|local| {
            if let Ok(mut local) = local.try_borrow_mut() {
                *local = Some(Local {
                    owner: Arc::downgrade(self),
                    entry: copy,
                });
            }
        });
        Some(bearer)
    }

    /// Keeps `bearer` at hand until `valid_until`.
    pub(crate) fn set(&self, bearer: Bearer, valid_until: Instant) {
        let valid_until = CoarseDeadline::new(valid_until);
        let mut source = self.source.write().unwrap_or_else(|e| e.into_inner());
        let epoch = self.advance();
        *source = Some(Cached {
            bearer,
            valid_until,
            epoch,
        });
    }

    /// Sends every caller back to the engine.
    pub(crate) fn clear(&self) {
        let mut source = self.source.write().unwrap_or_else(|e| e.into_inner());
        if source.is_some() {
            self.advance();
            *source = None;
        }
    }

    /// Makes every entry written so far stale; the new epoch.
    fn advance(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }
}

thread_local! {
    /// This thread's copy of the entry of the cache it read last.
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// A thread's copy, and whose it is.
struct Local {
    owner: Weak<TokenCache>,
    entry: Cached,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::output::Generation;

    fn bearer(token: &str, generation: u64) -> Bearer {
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        header.set_sensitive(true);
        Bearer {
            header,
            generation: Generation::from_raw(generation),
        }
    }

    #[test]
    fn a_token_is_served_until_its_bound_and_not_after() {
        let cache = Arc::new(TokenCache::default());
        let now = Instant::now();
        assert!(cache.get_at(now).is_none());
        cache.set(bearer("one", 1), now + Duration::from_secs(1));
        let served = cache.get_at(now).unwrap();
        assert_eq!(served.header_value(), "Bearer one");
        assert!(served.header_value().is_sensitive());
        assert!(cache.get_at(now + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn on_the_clock_a_token_is_served_before_its_bound_and_not_after() {
        let cache = Arc::new(TokenCache::default());
        cache.set(bearer("one", 1), Instant::now() + Duration::from_secs(3600));
        assert_eq!(cache.get().unwrap().header_value(), "Bearer one");
        cache.set(bearer("two", 2), Instant::now() + Duration::from_millis(20));
        assert_eq!(cache.get().unwrap().header_value(), "Bearer two");
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get().is_none());
        cache.set(bearer("three", 3), Instant::now());
        assert!(cache.get().is_none());
    }

    #[test]
    fn a_shard_never_serves_a_token_the_engine_replaced_or_cleared() {
        let cache = Arc::new(TokenCache::default());
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        cache.set(bearer("one", 1), later);
        assert_eq!(
            cache.get_at(now).unwrap().generation(),
            Generation::from_raw(1)
        );
        cache.set(bearer("two", 2), later);
        assert_eq!(cache.get_at(now).unwrap().header_value(), "Bearer two");
        cache.clear();
        assert!(cache.get_at(now).is_none());
        cache.set(bearer("three", 3), later);
        assert_eq!(cache.get_at(now).unwrap().header_value(), "Bearer three");
    }

    #[test]
    fn threads_served_from_their_shards_see_every_change() {
        let cache = Arc::new(TokenCache::default());
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for generation in 1..=4u64 {
            cache.set(bearer(&format!("t{generation}"), generation), later);
            std::thread::scope(|scope| {
                for _ in 0..6 {
                    scope.spawn(|| {
                        for _ in 0..3 {
                            let served = cache.get_at(now).unwrap();
                            assert_eq!(served.generation(), Generation::from_raw(generation));
                        }
                    });
                }
            });
            cache.clear();
            std::thread::scope(|scope| {
                for _ in 0..6 {
                    scope.spawn(|| assert!(cache.get_at(now).is_none()));
                }
            });
        }
    }

    #[test]
    fn a_copy_made_across_a_write_is_never_served() {
        let cache = Arc::new(TokenCache::default());
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        cache.set(bearer("old", 1), later);
        let stale_epoch = cache.epoch.load(Ordering::Acquire);
        cache.set(bearer("new", 2), later);
        // A reader that loaded the epoch before the second write and copied after it.
        assert!(
            cache
                .refill(stale_epoch, |deadline| deadline.is_ahead_of(now))
                .is_none()
        );
        assert_eq!(cache.get_at(now).unwrap().header_value(), "Bearer new");
    }
}
