//! The core's request ids and generations can only be made by the core: the host gets them
//! as numbers and carries the numbers back. This remembers the recent ones by number.
//!
//! Only recent ones matter: the core acts on the answer to its current request only, and on
//! a 401 for its current generation only; anything older is ignored by it anyway, so a
//! forgotten number is ignored here with the same effect.

use std::collections::BTreeMap;

use tokenflow::{Generation, RequestId};

/// How many of each are remembered.
const KEPT: usize = 16;

/// Recently handed-out request ids and generations, by number.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    requests: BTreeMap<u64, RequestId>,
    generations: BTreeMap<u64, Generation>,
}

impl Handles {
    /// Remembers a request id handed to the host.
    pub(crate) fn issued_request(&mut self, id: RequestId) {
        keep(&mut self.requests, id.get(), id);
    }

    /// The id for a number the host carries back, forgotten once answered.
    pub(crate) fn answered_request(&mut self, number: u64) -> Option<RequestId> {
        self.requests.remove(&number)
    }

    /// Remembers a generation handed to the host.
    pub(crate) fn issued_generation(&mut self, generation: Generation) {
        keep(&mut self.generations, generation.get(), generation);
    }

    /// The generation for a number the host carries back.
    pub(crate) fn generation(&self, number: u64) -> Option<Generation> {
        self.generations.get(&number).copied()
    }
}

fn keep<T>(map: &mut BTreeMap<u64, T>, number: u64, value: T) {
    map.insert(number, value);
    while map.len() > KEPT {
        map.pop_first();
    }
}
