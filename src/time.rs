//! Wall-clock time as a plain value, and the anchor that ties it to the monotonic clock.
//!
//! The core never reads a clock. Deadlines and lifetimes are kept as [`Instant`]s handed in by
//! the caller; absolute times that must outlive the process (a token's expiry, written to disk)
//! are kept as [`UnixTime`]. A [`ClockAnchor`] records one reading of both clocks, taken by the
//! caller at the same moment, and converts between them.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// A point in wall-clock time: milliseconds since the Unix epoch (1970-01-01T00:00:00Z).
///
/// Serialized as a plain integer of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The Unix epoch itself.
    pub const EPOCH: UnixTime = UnixTime(0);

    /// A time from milliseconds since the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        UnixTime(millis)
    }

    /// A time from whole seconds since the epoch, saturating far in the future.
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(secs.saturating_mul(1000))
    }

    /// Converts a [`SystemTime`] reading (taken by the caller); times before the epoch become
    /// the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        UnixTime(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// This time moved forward by `duration`, saturating at the largest representable time.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        UnixTime(self.0.saturating_add(millis))
    }

    /// How long after `earlier` this time is; zero when it is not after it.
    pub fn saturating_duration_since(self, earlier: UnixTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// One simultaneous reading of the monotonic and the wall clock, used to convert between them.
///
/// Deadlines run on the monotonic clock, so a wall clock that jumps does not stretch or shrink
/// them; the anchor only matters when an absolute time crosses the process boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAnchor {
    instant: Instant,
    wall: UnixTime,
}

impl ClockAnchor {
    /// Anchors `instant` to `wall`: both must describe the same moment.
    pub const fn new(instant: Instant, wall: UnixTime) -> Self {
        ClockAnchor { instant, wall }
    }

    /// The wall-clock time at `instant`.
    pub fn wall_at(&self, instant: Instant) -> UnixTime {
        match instant.checked_duration_since(self.instant) {
            Some(after) => self.wall.saturating_add(after),
            None => {
                let before = self.instant.saturating_duration_since(instant);
                let millis = u64::try_from(before.as_millis()).unwrap_or(u64::MAX);
                UnixTime(self.wall.0.saturating_sub(millis))
            }
        }
    }

    /// The monotonic instant at wall-clock time `wall`, or `None` when it lies too far from the
    /// anchor to be represented as an [`Instant`].
    pub fn instant_at(&self, wall: UnixTime) -> Option<Instant> {
        if wall >= self.wall {
            self.instant
                .checked_add(wall.saturating_duration_since(self.wall))
        } else {
            self.instant
                .checked_sub(self.wall.saturating_duration_since(wall))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_converts_both_ways() {
        let now = Instant::now();
        let anchor = ClockAnchor::new(now, UnixTime::from_secs(1_700_000_000));
        let later = now + Duration::from_millis(1500);
        assert_eq!(
            anchor.wall_at(later),
            UnixTime::from_millis(1_700_000_001_500)
        );
        assert_eq!(
            anchor.instant_at(UnixTime::from_millis(1_700_000_001_500)),
            Some(later)
        );
    }

    #[test]
    fn wall_before_the_anchor_and_before_the_epoch_saturate() {
        let now = Instant::now();
        let anchor = ClockAnchor::new(now + Duration::from_secs(10), UnixTime::from_secs(5));
        assert_eq!(anchor.wall_at(now), UnixTime::EPOCH);
    }

    #[test]
    fn system_time_before_the_epoch_is_the_epoch() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(UnixTime::from_system_time(before), UnixTime::EPOCH);
        assert_eq!(UnixTime::from_secs(u64::MAX).as_millis(), u64::MAX);
    }
}
