//! Small pieces every run loop needs: the clock, a seed, a bound on one drain, and how long a
//! waiting caller sleeps.
//!
//! Adapters are the only part of the crate that reads clocks or gathers entropy; these
//! helpers (and [`HostClock`](super::clock::HostClock), where instants become the flow's
//! timestamps) keep that in one place.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime};

use crate::seed::Seed;
use crate::time::UnixTime;

/// The most outputs handled in one drain before the run loop gives other work a turn. The
/// flow reaches `Idle` in far fewer; the bound only keeps a misbehaving loop from spinning.
pub(crate) const DRAIN_BOUND: usize = 64;

/// The longest a waiting caller sleeps before looking at the flow again, even if no one wakes
/// it. Waking is prompt in practice; this only bounds the damage of a missed wake-up.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// The monotonic clock.
#[inline]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// How far ahead a deadline is as good as none: the built-in transports set no timer and no
/// timeout for a request whose deadline is this far or farther.
pub(crate) const UNBOUNDED: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `now` plus `duration`; a duration an `Instant` cannot reach (`Duration::MAX`, say) puts
/// the deadline twice [`UNBOUNDED`] ahead, which always fits.
pub(crate) fn deadline(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(UNBOUNDED * 2))
        .unwrap_or(now)
}

/// How long is left until `deadline`: `None` when it is [`UNBOUNDED`] or farther ahead.
pub(crate) fn time_left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (left < UNBOUNDED).then_some(left)
}

/// How long a caller told to wait `until` (at the latest) sleeps before asking again.
pub(crate) fn wait_for(now: Instant, until: Option<Instant>) -> Duration {
    until
        .map(|until| until.saturating_duration_since(now))
        .unwrap_or(MAX_WAIT)
        .clamp(Duration::from_millis(1), MAX_WAIT)
}

/// 32 bytes from the operating system's RNG for the flow's seed: they become PKCE verifiers
/// and `state` values, which must be unguessable. Should the OS refuse, the standard library's
/// randomly keyed hashers stand in, mixed with the time and the process id.
pub(crate) fn seed() -> Seed {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        let (now, wall) = (now(), UnixTime::from_system_time(SystemTime::now()));
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let word = RandomState::new().hash_one((i, wall.as_millis(), std::process::id(), now));
            chunk.copy_from_slice(&word.to_le_bytes());
        }
    }
    Seed::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_too_long_for_an_instant_is_a_deadline_as_good_as_none() {
        let now = Instant::now();
        let never = deadline(now, Duration::MAX);
        assert!(never >= now + UNBOUNDED);
        assert_eq!(time_left(never), None);
        assert_eq!(
            deadline(now, Duration::from_secs(30)),
            now + Duration::from_secs(30)
        );
        let left = time_left(deadline(Instant::now(), Duration::from_secs(30))).unwrap();
        assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(29));
        assert_eq!(time_left(now), Some(Duration::ZERO));
    }
}
