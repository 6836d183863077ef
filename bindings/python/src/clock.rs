//! Where the host's time meets the core's.
//!
//! Python hands the flow readings of `time.monotonic_ns()`; the core takes
//! `std::time::Instant`. The whole conversion lives here, so that moving the core to another
//! time type changes these two functions and nothing else.

use std::time::{Duration, Instant};

/// Maps `time.monotonic_ns()` readings to instants and back, anchored at the first reading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostClock {
    /// The instant that stands for `origin_ns`. Reading the clock here is what a binding does
    /// in place of its host: `Instant` cannot be built from a number, only offset from one.
    origin: Instant,
    origin_ns: u64,
}

impl HostClock {
    /// A clock anchored at the host's reading `now_ns`.
    pub(crate) fn new(now_ns: u64) -> HostClock {
        HostClock {
            origin: Instant::now(),
            origin_ns: now_ns,
        }
    }

    /// The instant of the host's reading `ns`. A reading before the first one maps to the
    /// first (the core reads an instant earlier than one already seen as the latest seen).
    pub(crate) fn to_core(self, ns: u64) -> Instant {
        let offset = Duration::from_nanos(ns.saturating_sub(self.origin_ns));
        self.origin.checked_add(offset).unwrap_or(self.origin)
    }

    /// The host's reading for an instant the core gives back (a deadline, a wake-up time).
    pub(crate) fn to_host(self, instant: Instant) -> u64 {
        let offset = instant.saturating_duration_since(self.origin).as_nanos();
        self.origin_ns
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_round_trip_and_earlier_ones_clamp_to_the_origin() {
        let clock = HostClock::new(5_000_000_000);
        let later = 5_000_000_000 + 1_234_567;
        assert_eq!(clock.to_host(clock.to_core(later)), later);
        assert_eq!(clock.to_core(1), clock.to_core(5_000_000_000));
    }
}
