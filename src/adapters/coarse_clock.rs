//! Deadlines that the per-call path checks without reading the precise clock.
//!
//! `bearer()` checks the held token's deadline on every API call, and reading `Instant::now()`
//! was a third of that call (about 22 ns on the machine of `BENCHMARKS.md`). Linux (and
//! FreeBSD) keep a coarse copy of the same monotonic clock, advanced at every timer tick
//! (1–10 ms) and read through the vDSO in about 7 ns. It runs at the precise clock's rate,
//! never ahead of it, and behind it by at most a tick or so (5 ms was the most seen there, with
//! a 4 ms tick, under load).
//!
//! A [`CoarseDeadline`] keeps its instant both ways. Until [`MARGIN`] before it the coarse
//! clock answers; in the last stretch, where a lagging coarse reading could answer "before"
//! when it is already after, the precise clock answers. So a deadline is never taken for ahead
//! once it has passed unless the coarse clock lags by more than the margin, which is two
//! hundred ticks of the slowest kernel. Elsewhere the precise clock answers always.

use std::time::Instant;

/// How far before the deadline the precise clock takes over. It bounds the coarse clock's lag
/// that a deadline tolerates; the cost of a wide margin is only that the last second of each
/// token's time at hand is checked at the precise clock's price.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// A point in time to compare the present against, cheaply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoarseDeadline {
    at: Instant,
    /// The coarse clock's reading (in nanoseconds) before which `at` is surely ahead; zero
    /// when the deadline is too near for the coarse clock to be trusted with it.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    coarse_before: u64,
}

impl CoarseDeadline {
    /// The deadline `at`.
    pub(crate) fn new(at: Instant) -> CoarseDeadline {
        CoarseDeadline {
            at,
            #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
            coarse_before: {
                // The coarse clock is read first: at the precise reading it is at most where it
                // was, so the bound below is never later than `at - MARGIN`, whatever the lag.
                let coarse = coarse_nanos();
                let remaining = at.saturating_duration_since(Instant::now());
                remaining
                    .checked_sub(MARGIN)
                    .and_then(|ahead| u64::try_from(ahead.as_nanos()).ok())
                    .zip(coarse)
                    .and_then(|(ahead, coarse)| coarse.checked_add(ahead))
                    .unwrap_or(0)
            },
        }
    }

    /// Whether the deadline is still ahead.
    #[inline]
    pub(crate) fn is_ahead(&self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if coarse_nanos().is_some_and(|coarse| coarse < self.coarse_before) {
            return true;
        }
        self.is_ahead_of(Instant::now())
    }

    /// Whether the deadline is ahead of `now`.
    #[inline]
    pub(crate) fn is_ahead_of(&self, now: Instant) -> bool {
        now < self.at
    }
}

/// The coarse monotonic clock, in nanoseconds since an origin of the kernel's; `None` if it
/// cannot be read (a sandbox that refuses it, say), and the precise clock answers instead.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[inline]
fn coarse_nanos() -> Option<u64> {
    use rustix::time::{ClockId, DynamicClockId, clock_gettime_dynamic};
    // The fallible call: the infallible one panics should the kernel refuse.
    let now = clock_gettime_dynamic(DynamicClockId::Known(ClockId::MonotonicCoarse)).ok()?;
    // A monotonic clock never reads negative; were it to, the precise clock answers.
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(seconds.saturating_mul(1_000_000_000).saturating_add(nanos))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_deadline_an_hour_away_is_ahead() {
        let deadline = CoarseDeadline::new(Instant::now() + Duration::from_secs(3600));
        assert!(deadline.is_ahead());
    }

    #[test]
    fn a_passed_deadline_is_never_ahead() {
        let now = Instant::now();
        for deadline in [
            now,
            now - Duration::from_millis(1),
            now - Duration::from_secs(5),
        ] {
            assert!(!CoarseDeadline::new(deadline).is_ahead());
        }
    }

    #[test]
    fn a_deadline_within_the_margin_is_judged_by_the_precise_clock() {
        // Far enough ahead not to pass during the test, near enough for the precise clock.
        let soon = Instant::now() + Duration::from_millis(500);
        let deadline = CoarseDeadline::new(soon);
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        assert_eq!(deadline.coarse_before, 0);
        assert!(deadline.is_ahead());
        assert!(!deadline.is_ahead_of(soon));
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[test]
    fn the_coarse_bound_is_never_later_than_the_margin_before_the_deadline() {
        // Whatever the coarse clock's lag at construction, its bound leaves the margin: by the
        // time the coarse clock reaches it, the precise clock is at most at `at - MARGIN` plus
        // the lag at that moment.
        let at = Instant::now() + Duration::from_secs(10);
        let deadline = CoarseDeadline::new(at);
        let coarse_now = coarse_nanos().expect("the coarse clock, on this machine");
        let precise_left = at.saturating_duration_since(Instant::now());
        let coarse_left = Duration::from_nanos(deadline.coarse_before - coarse_now);
        assert!(coarse_left + MARGIN <= precise_left + Duration::from_millis(50));
        assert!(coarse_left > Duration::from_secs(8));
    }

    #[test]
    fn a_deadline_beyond_the_margin_is_ahead_until_it_passes() {
        // Far enough for the coarse clock to answer at first, near enough to wait for.
        let at = Instant::now() + Duration::from_millis(1_300);
        let deadline = CoarseDeadline::new(at);
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        assert!(deadline.coarse_before > 0, "the coarse clock answers first");
        assert!(deadline.is_ahead());
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        assert!(!deadline.is_ahead(), "not a moment after it passed");
    }

    #[test]
    fn a_deadline_centuries_away_is_ahead() {
        let far = Instant::now()
            .checked_add(Duration::from_secs(300 * 365 * 24 * 3600))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        assert!(CoarseDeadline::new(far).is_ahead());
    }
}
