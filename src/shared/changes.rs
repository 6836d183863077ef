//! How a host hears that the shared store changed: a blocking feed of changes.

use std::time::Duration;

/// A blocking change feed of a [`SharedTokenStore`](super::SharedTokenStore): what a host
/// waits on to report [`StoreReport::Changed`](super::StoreReport::Changed) while another
/// replica renews (step 3 of the [protocol](crate::shared)).
///
/// A feed hears changes from the moment it is made: a change made while nobody waits is
/// kept for the next wait. After a change the host reads the store's
/// [`snapshot`](super::SharedTokenStore::snapshot) and reports it; the feed itself carries
/// no data, so several changes may be merged into one.
///
/// [`MemoryStore::changes`](super::MemoryStore::changes) is one for the store in memory;
/// `tokenflow-postgres` implements it for its `PgChangeListener` (`LISTEN`/`NOTIFY`). The
/// clients of [`adapters`](crate::adapters) take one with `ClientBuilder::store_changes`.
///
/// ```
/// use std::time::Duration;
/// use tokenflow::shared::{MemoryStore, SharedTokenStore, StoreChanges, StoreVersion};
///
/// let store = MemoryStore::new();
/// let mut changes = store.changes();
/// // Nothing happened yet: the wait times out.
/// assert!(!changes.wait_for_change(Duration::from_millis(1)).unwrap());
/// store.compare_and_set(StoreVersion::EMPTY, None).unwrap();
/// // The write was kept for this wait, which returns at once.
/// assert!(changes.wait_for_change(Duration::from_secs(5)).unwrap());
/// ```
pub trait StoreChanges {
    /// What can go wrong waiting.
    type Error;

    /// Blocks until the store changes or `timeout` passes; `Ok(true)` when it changed
    /// (several changes may be merged into one).
    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool, Self::Error>;
}
