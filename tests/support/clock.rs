//! A virtual clock for tests: monotonic and wall time that move only when told to.

use std::time::{Duration, Instant};

/// Wall-clock milliseconds since the Unix epoch at offset zero.
pub const WALL_BASE_MS: u64 = 1_700_000_000_000;

/// Monotonic time (`Instant`) and wall time (epoch milliseconds) that advance together, only
/// when the test says so.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    base: Instant,
    offset: Duration,
    wall_base_ms: u64,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock at offset zero; reads `Instant::now()` once, for its base.
    pub fn new() -> Self {
        VirtualClock {
            base: Instant::now(),
            offset: Duration::ZERO,
            wall_base_ms: WALL_BASE_MS,
        }
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.base + self.offset
    }

    /// The current virtual wall time: `1_700_000_000_000` plus the offset, in milliseconds.
    pub fn wall_millis(&self) -> u64 {
        self.wall_base_ms + u64::try_from(self.offset.as_millis()).expect("offset fits in u64")
    }

    /// How far the clock has moved since it was created.
    pub fn offset(&self) -> Duration {
        self.offset
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.offset += by;
    }

    /// Sets the distance from the base (may move the clock backwards).
    pub fn set_offset(&mut self, offset: Duration) {
        self.offset = offset;
    }
}
