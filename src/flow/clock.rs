//! The flow's view of time: never backwards, and convertible to wall-clock time.

use std::time::Instant;

use crate::time::{ClockAnchor, UnixTime};

/// Monotonic time as the host reports it. A host whose clock source steps back (or that
/// passes instants out of order from several threads) cannot make deadlines move backwards:
/// an earlier instant than one already seen is read as the latest seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    anchor: ClockAnchor,
    latest: Instant,
}

impl Clock {
    pub(crate) fn new(now: Instant, wall: UnixTime) -> Self {
        Clock {
            anchor: ClockAnchor::new(now, wall),
            latest: now,
        }
    }

    /// Records `now` and returns the time to act on.
    #[inline]
    pub(crate) fn observe(&mut self, now: Instant) -> Instant {
        if now > self.latest {
            self.latest = now;
        }
        self.latest
    }

    /// The latest instant seen.
    pub(crate) fn now(&self) -> Instant {
        self.latest
    }

    /// Wall-clock time at `instant`.
    pub(crate) fn wall_at(&self, instant: Instant) -> UnixTime {
        self.anchor.wall_at(instant)
    }

    /// The instant of wall-clock time `wall`, saturating at the instants representable.
    pub(crate) fn instant_at(&self, wall: UnixTime) -> Option<Instant> {
        self.anchor.instant_at(wall)
    }
}
