//! The entropy a flow is given: the core never draws its own.

use std::fmt;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// 32 bytes of entropy for a [`TokenFlow`](crate::TokenFlow): they key a ChaCha20 generator
/// that draws retry jitter and — for interactive logins — PKCE verifiers, `state` and `nonce`.
///
/// In production take them from the operating system (`getrandom`, `/dev/urandom`, the
/// `rand` crate). [`Seed::from_u64`] is for tests and simulations, where replaying a run
/// exactly matters more than unpredictability. `Debug` does not show the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl Seed {
    /// A seed from 32 bytes of real entropy.
    pub const fn from_bytes(bytes: [u8; 32]) -> Seed {
        Seed(bytes)
    }

    /// A seed expanded from a number: reproducible, and only as unpredictable as the number.
    /// Use it for tests, never for flows that start interactive logins in production.
    pub fn from_u64(seed: u64) -> Seed {
        let digest = Sha256::digest(seed.to_le_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&digest);
        Seed(bytes)
    }

    pub(crate) fn rng(&self) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.0)
    }
}

impl From<[u8; 32]> for Seed {
    fn from(bytes: [u8; 32]) -> Seed {
        Seed::from_bytes(bytes)
    }
}

impl From<u64> for Seed {
    fn from(seed: u64) -> Seed {
        Seed::from_u64(seed)
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed([redacted])")
    }
}
