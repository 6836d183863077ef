//! Small pieces every run loop needs: a seed, a bound on one drain, and a copy of an API
//! request for its single retry after a 401.
//!
//! Adapters are the only part of the crate that reads clocks or gathers entropy; these
//! helpers (and [`HostClock`](super::clock::HostClock)) keep that in one place.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Instant, SystemTime};

use crate::seed::Seed;
use crate::time::UnixTime;

/// The most outputs handled in one drain before the run loop gives other work a turn. The
/// flow reaches `Idle` in far fewer; the bound only keeps a misbehaving loop from spinning.
pub(crate) const DRAIN_BOUND: usize = 64;

/// 32 bytes from the operating system's RNG for the flow's seed: they become PKCE verifiers
/// and `state` values, which must be unguessable. Should the OS refuse, the standard library's
/// randomly keyed hashers stand in, mixed with the time and the process id.
pub(crate) fn seed() -> Seed {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        let (now, wall) = (
            Instant::now(),
            UnixTime::from_system_time(SystemTime::now()),
        );
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let word = RandomState::new().hash_one((i, wall.as_millis(), std::process::id(), now));
            chunk.copy_from_slice(&word.to_le_bytes());
        }
    }
    Seed::from_bytes(bytes)
}
