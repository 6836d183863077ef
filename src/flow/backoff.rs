//! Exponential backoff with jitter drawn from a seeded generator.

use std::time::Duration;

use crate::config::RetryPolicy;

/// SplitMix64: tiny, fast and good enough to spread retries; seeded by the host so that runs
/// replay exactly.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The wait before retry number `retry` (1 for the first): `initial · 2^(retry−1)`, capped,
/// then "equal jitter": a uniformly random point in its upper half, so that many clients that
/// failed together do not retry together, yet none retries sooner than half the nominal wait.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32, rng: &mut Rng) -> Duration {
    let doublings = retry.saturating_sub(1).min(30);
    let nominal = policy
        .initial_backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff);
    let half = nominal / 2;
    let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = rng.next_u64() % half_nanos.saturating_add(1);
    half + Duration::from_nanos(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let policy = RetryPolicy::default();
        let mut rng = Rng::new(7);
        for retry in 1..=40 {
            let nominal =
                (policy.initial_backoff * 2u32.pow((retry - 1).min(20))).min(policy.max_backoff);
            let wait = backoff(&policy, retry, &mut rng);
            assert!(
                wait >= nominal / 2 && wait <= nominal,
                "retry {retry}: {wait:?}"
            );
        }
    }

    #[test]
    fn same_seed_same_waits() {
        let policy = RetryPolicy::default();
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for retry in 1..5 {
            assert_eq!(
                backoff(&policy, retry, &mut a),
                backoff(&policy, retry, &mut b)
            );
        }
    }
}
