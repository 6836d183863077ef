//! Exponential backoff with jitter drawn from a seeded generator.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng as _;

use crate::config::RetryPolicy;
use crate::seed::Seed;

/// The flow's only source of randomness: ChaCha20 keyed by the host's [`Seed`], so runs replay
/// exactly and, given a seed from the OS, PKCE verifiers and `state` values are unguessable.
#[derive(Clone)]
pub(crate) struct Rng(ChaCha20Rng);

impl Rng {
    pub(crate) fn new(seed: &Seed) -> Self {
        Rng(seed.rng())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub(crate) fn bytes32(&mut self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        self.0.fill_bytes(&mut bytes);
        bytes
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng([redacted])")
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
        let mut rng = Rng::new(&Seed::from_u64(7));
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
        let (mut a, mut b) = (Rng::new(&Seed::from_u64(42)), Rng::new(&Seed::from_u64(42)));
        for retry in 1..5 {
            assert_eq!(
                backoff(&policy, retry, &mut a),
                backoff(&policy, retry, &mut b)
            );
        }
    }
}
