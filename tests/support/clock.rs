//! A virtual clock for tests: monotonic and wall time that move only when told to.

use std::time::Duration;

use tokenflow::Timestamp;

/// Wall-clock milliseconds since the Unix epoch at offset zero.
pub const WALL_BASE_MS: u64 = 1_700_000_000_000;

/// The monotonic time at offset zero: a day after the host clock's origin, as a clock counting
/// from boot would read, so that nothing relies on the origin being zero.
pub const MONOTONIC_BASE: Timestamp = Timestamp::from_secs(86_400);

/// Monotonic time (a [`Timestamp`]) and wall time (epoch milliseconds) that advance together,
/// only when the test says so.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    base: Timestamp,
    offset: Duration,
    wall_base_ms: u64,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock at offset zero, at [`MONOTONIC_BASE`] and [`WALL_BASE_MS`].
    pub fn new() -> Self {
        VirtualClock {
            base: MONOTONIC_BASE,
            offset: Duration::ZERO,
            wall_base_ms: WALL_BASE_MS,
        }
    }

    /// The current virtual monotonic time.
    pub fn now(&self) -> Timestamp {
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
