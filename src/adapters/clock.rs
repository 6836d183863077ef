//! Where the standard library's monotonic clock meets the flow's [`Timestamp`]s.
//!
//! The flow counts time in nanoseconds from an origin its host picks; for the adapters that
//! origin is an [`Instant`] read when the client is built. Both run loops read the time and
//! turn the flow's deadlines back into instants to sleep until through this one type.

use std::time::{Duration, Instant, SystemTime};

use crate::adapters::driver;
use crate::time::{Timestamp, UnixTime};

/// The wall clock now: the `now` of shared-store calls, by which the leases of replicas on
/// other machines are judged (a store with a clock of its own, a database server's, may use
/// that instead).
pub(crate) fn wall_now() -> UnixTime {
    UnixTime::from_system_time(SystemTime::now())
}

/// A client's monotonic clock: the time since an origin taken when the client was built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostClock {
    origin: Instant,
}

impl HostClock {
    /// A clock whose origin is now, with a reading of the monotonic and the wall clock taken
    /// together, for constructing the flow.
    pub(crate) fn start() -> (HostClock, Timestamp, UnixTime) {
        let clock = HostClock {
            origin: Instant::now(),
        };
        (clock, clock.now(), wall_now())
    }

    /// The current time.
    pub(crate) fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// The timestamp of `instant`; an instant before the origin is the origin.
    pub(crate) fn at(&self, instant: Instant) -> Timestamp {
        let since = instant.saturating_duration_since(self.origin);
        Timestamp::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The instant of `at`, to sleep until or to give a transport as its deadline. A timestamp
    /// the platform's `Instant` cannot represent is centuries away: it becomes a deadline the
    /// adapters treat as none.
    pub(crate) fn instant(&self, at: Timestamp) -> Instant {
        driver::deadline(self.origin, Duration::from_nanos(at.as_nanos()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_timestamps_convert_both_ways() {
        let (clock, start, _) = HostClock::start();
        let origin = clock.instant(Timestamp::ORIGIN);
        assert!(
            start < Timestamp::from_secs(1),
            "the origin is when the clock started"
        );
        let later = origin + Duration::from_millis(1_234);
        assert_eq!(clock.at(later), Timestamp::from_millis(1_234));
        assert_eq!(clock.instant(Timestamp::from_millis(1_234)), later);
        assert!(clock.now() >= start);
    }

    #[test]
    fn instants_before_the_origin_are_the_origin() {
        let (clock, _, _) = HostClock::start();
        let origin = clock.instant(Timestamp::ORIGIN);
        let before = origin
            .checked_sub(Duration::from_secs(1))
            .expect("the monotonic clock started more than a second ago");
        assert_eq!(clock.at(before), Timestamp::ORIGIN);
    }

    #[test]
    fn the_last_timestamp_is_far_ahead() {
        let (clock, _, _) = HostClock::start();
        let origin = clock.instant(Timestamp::ORIGIN);
        let last = clock.instant(Timestamp::from_nanos(u64::MAX));
        assert!(last.duration_since(origin) >= driver::UNBOUNDED);
    }
}
