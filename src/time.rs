//! Time as plain values: a monotonic [`Timestamp`] for deadlines, a wall-clock [`UnixTime`]
//! for what must outlive the process, and the [`ClockAnchor`] that ties the two together.
//!
//! The core never reads a clock. Deadlines and lifetimes are kept as [`Timestamp`]s handed in
//! by the caller: nanoseconds on a monotonic clock whose origin the host picks, so that any
//! host (a Rust run loop, a WebAssembly module, a foreign-language binding) can pass its own
//! clock as a number. Absolute times that must outlive the process (a token's expiry, written
//! to disk) are kept as [`UnixTime`]. A [`ClockAnchor`] records one reading of both clocks,
//! taken by the caller at the same moment, and converts between them.

use std::ops::{Add, AddAssign, Sub};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A point on the host's monotonic clock: nanoseconds since an origin the host picks.
///
/// The origin is arbitrary — boot, process start, the moment the client was built — but must
/// stay the same for the life of a flow, and the clock must not go backwards (a reading earlier
/// than one already given is read as the latest). Python's `time.monotonic_ns()` fits
/// directly; in JavaScript, `performance.now()` is fractional milliseconds, so
/// `BigInt(Math.round(performance.now() * 1e6))` is nanoseconds; the Rust adapters count from a
/// reading of the standard library's monotonic clock taken when the client is built. A `u64` of
/// nanoseconds covers 584 years from the origin.
///
/// Arithmetic with a [`Duration`] saturates at the largest timestamp rather than wrapping or
/// panicking: a deadline that far away is never reached, which is what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

impl Timestamp {
    /// The origin of the host's clock.
    pub const ORIGIN: Timestamp = Timestamp(0);

    /// A timestamp from nanoseconds since the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp from milliseconds since the origin, saturating far in the future.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(NANOS_PER_MILLI))
    }

    /// A timestamp from whole seconds since the origin, saturating far in the future.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0 / NANOS_PER_MILLI
    }

    /// This timestamp moved forward by `duration`, or `None` past the largest timestamp.
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Timestamp)
    }

    /// This timestamp moved back by `duration`, or `None` before the origin.
    pub fn checked_sub(self, duration: Duration) -> Option<Self> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_sub(nanos).map(Timestamp)
    }

    /// This timestamp moved forward by `duration`, saturating at the largest timestamp.
    pub fn saturating_add(self, duration: Duration) -> Self {
        self.checked_add(duration).unwrap_or(Timestamp(u64::MAX))
    }

    /// How long after `earlier` this timestamp is, or `None` when it is before it.
    pub fn checked_duration_since(self, earlier: Timestamp) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }

    /// How long after `earlier` this timestamp is; zero when it is not after it.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Saturates at the largest timestamp, like [`Timestamp::saturating_add`].
impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, duration: Duration) -> Timestamp {
        self.saturating_add(duration)
    }
}

/// Saturates at the largest timestamp, like [`Timestamp::saturating_add`].
impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, duration: Duration) {
        *self = self.saturating_add(duration);
    }
}

/// The time from `earlier` to this timestamp; zero when it is not after it, like
/// [`Timestamp::saturating_duration_since`].
impl Sub<Timestamp> for Timestamp {
    type Output = Duration;

    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

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
    at: Timestamp,
    wall: UnixTime,
}

impl ClockAnchor {
    /// Anchors `at` to `wall`: both must describe the same moment.
    pub const fn new(at: Timestamp, wall: UnixTime) -> Self {
        ClockAnchor { at, wall }
    }

    /// The wall-clock time at `at`.
    pub fn wall_at(&self, at: Timestamp) -> UnixTime {
        match at.checked_duration_since(self.at) {
            Some(after) => self.wall.saturating_add(after),
            None => {
                let before = self.at.saturating_duration_since(at);
                let millis = u64::try_from(before.as_millis()).unwrap_or(u64::MAX);
                UnixTime(self.wall.0.saturating_sub(millis))
            }
        }
    }

    /// The monotonic timestamp at wall-clock time `wall`, or `None` when it lies before the
    /// host clock's origin or past the largest [`Timestamp`].
    pub fn timestamp_at(&self, wall: UnixTime) -> Option<Timestamp> {
        if wall >= self.wall {
            self.at
                .checked_add(wall.saturating_duration_since(self.wall))
        } else {
            self.at
                .checked_sub(self.wall.saturating_duration_since(wall))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_converts_both_ways() {
        let now = Timestamp::from_secs(86_400);
        let anchor = ClockAnchor::new(now, UnixTime::from_secs(1_700_000_000));
        let later = now + Duration::from_millis(1500);
        assert_eq!(
            anchor.wall_at(later),
            UnixTime::from_millis(1_700_000_001_500)
        );
        assert_eq!(
            anchor.timestamp_at(UnixTime::from_millis(1_700_000_001_500)),
            Some(later)
        );
        assert_eq!(
            anchor.timestamp_at(UnixTime::from_millis(1_699_999_999_000)),
            Some(Timestamp::from_secs(86_399))
        );
    }

    #[test]
    fn wall_before_the_anchor_and_before_the_epoch_saturate() {
        let now = Timestamp::from_secs(100);
        let anchor = ClockAnchor::new(now + Duration::from_secs(10), UnixTime::from_secs(5));
        assert_eq!(anchor.wall_at(now), UnixTime::EPOCH);
    }

    #[test]
    fn walls_beyond_the_host_clock_have_no_timestamp() {
        let anchor = ClockAnchor::new(Timestamp::from_secs(10), UnixTime::from_secs(1_000));
        assert_eq!(anchor.timestamp_at(UnixTime::from_secs(989)), None);
        assert_eq!(
            anchor.timestamp_at(UnixTime::from_secs(990)),
            Some(Timestamp::ORIGIN)
        );
        assert_eq!(anchor.timestamp_at(UnixTime::from_millis(u64::MAX)), None);
    }

    #[test]
    fn system_time_before_the_epoch_is_the_epoch() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(UnixTime::from_system_time(before), UnixTime::EPOCH);
        assert_eq!(UnixTime::from_secs(u64::MAX).as_millis(), u64::MAX);
    }

    #[test]
    fn timestamp_units_convert_and_saturate() {
        assert_eq!(Timestamp::from_secs(3).as_nanos(), 3_000_000_000);
        assert_eq!(Timestamp::from_millis(1_500).as_nanos(), 1_500_000_000);
        assert_eq!(Timestamp::from_nanos(2_999_999).as_millis(), 2);
        assert_eq!(Timestamp::from_secs(u64::MAX).as_nanos(), u64::MAX);
        assert_eq!(Timestamp::from_millis(u64::MAX).as_nanos(), u64::MAX);
        assert!(Timestamp::from_millis(1) < Timestamp::from_nanos(1_000_001));
    }

    #[test]
    fn timestamp_arithmetic_never_wraps() {
        let t = Timestamp::from_secs(10);
        let last = Timestamp::from_nanos(u64::MAX);
        assert_eq!(
            t + Duration::from_millis(1),
            Timestamp::from_nanos(10_001_000_000)
        );
        assert_eq!(t.checked_add(Duration::MAX), None);
        assert_eq!(last.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(last + Duration::from_secs(1), last);
        assert_eq!(t.saturating_add(Duration::MAX), last);
        let mut moved = t;
        moved += Duration::from_secs(5);
        assert_eq!(moved, Timestamp::from_secs(15));
        assert_eq!(
            t.checked_sub(Duration::from_secs(10)),
            Some(Timestamp::ORIGIN)
        );
        assert_eq!(t.checked_sub(Duration::from_nanos(10_000_000_001)), None);
    }

    #[test]
    fn durations_between_timestamps() {
        let early = Timestamp::from_millis(1_000);
        let late = Timestamp::from_millis(3_500);
        assert_eq!(
            late.checked_duration_since(early),
            Some(Duration::from_millis(2_500))
        );
        assert_eq!(early.checked_duration_since(late), None);
        assert_eq!(
            late.saturating_duration_since(early),
            Duration::from_millis(2_500)
        );
        assert_eq!(early.saturating_duration_since(late), Duration::ZERO);
        assert_eq!(early.checked_duration_since(early), Some(Duration::ZERO));
        assert_eq!(late - early, Duration::from_millis(2_500));
        assert_eq!(early - late, Duration::ZERO);
    }
}
