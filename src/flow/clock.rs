//! The flow's view of time: never backwards, and convertible to wall-clock time.

use crate::time::{ClockAnchor, Timestamp, UnixTime};

/// Monotonic time as the host reports it. A host whose clock source steps back (or that
/// passes timestamps out of order from several threads) cannot make deadlines move backwards:
/// a timestamp earlier than one already seen is read as the latest seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    anchor: ClockAnchor,
    latest: Timestamp,
}

impl Clock {
    pub(crate) fn new(now: Timestamp, wall: UnixTime) -> Self {
        Clock {
            anchor: ClockAnchor::new(now, wall),
            latest: now,
        }
    }

    /// Records `now` and returns the time to act on.
    #[inline]
    pub(crate) fn observe(&mut self, now: Timestamp) -> Timestamp {
        if now > self.latest {
            self.latest = now;
        }
        self.latest
    }

    /// The latest timestamp seen.
    pub(crate) fn now(&self) -> Timestamp {
        self.latest
    }

    /// Wall-clock time at `at`.
    pub(crate) fn wall_at(&self, at: Timestamp) -> UnixTime {
        self.anchor.wall_at(at)
    }

    /// The timestamp of wall-clock time `wall`, or `None` when the host's clock cannot
    /// represent it (before its origin, or too far ahead).
    pub(crate) fn timestamp_at(&self, wall: UnixTime) -> Option<Timestamp> {
        self.anchor.timestamp_at(wall)
    }
}
