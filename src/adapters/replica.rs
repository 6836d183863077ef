//! A client that is one replica among several sharing one login
//! ([`ClientBuilder::replicas`](super::ClientBuilder::replicas)): the shared store and the
//! holder name the engine's store work is performed with, the change feed a background waiter
//! listens to, and the mistakes in setting them up that `build` refuses.
//!
//! Both are type-erased here, once, so that the clients stay generic over their transport
//! only; their errors become [`StoreError::Shared`].

use std::fmt;
use std::time::Duration;

use crate::adapters::clock::wall_now;
use crate::adapters::off_runtime::OffRuntime;
use crate::adapters::store::StoreError;
use crate::shared::{self, SharedSnapshot, SharedTokenStore, StoreChanges, StoreRequest};
use crate::time::UnixTime;

/// What the engine asks of a shared store, whatever its type.
trait ErasedStore: Send + Sync {
    fn perform(
        &self,
        holder: &str,
        lease: Duration,
        now: UnixTime,
        request: &StoreRequest,
    ) -> Result<shared::Performed, StoreError>;

    fn snapshot(&self) -> Result<SharedSnapshot, StoreError>;
}

impl<S> ErasedStore for S
where
    S: SharedTokenStore + Send + Sync,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    fn perform(
        &self,
        holder: &str,
        lease: Duration,
        now: UnixTime,
        request: &StoreRequest,
    ) -> Result<shared::Performed, StoreError> {
        shared::perform(self, holder, lease, now, request)
            .map_err(|error| StoreError::shared(during(request), error))
    }

    fn snapshot(&self) -> Result<SharedSnapshot, StoreError> {
        SharedTokenStore::snapshot(self).map_err(|error| StoreError::shared(READING, error))
    }
}

/// What a client does reading the store, in its errors.
const READING: &str = "reading the store";

/// What a client does performing `request`, in its errors.
pub(crate) fn during(request: &StoreRequest) -> &'static str {
    match request {
        StoreRequest::AcquireLease => "acquiring the lease",
        StoreRequest::MarkInFlight { .. } => "marking the refresh in flight",
        StoreRequest::TokensUpdated { .. } => "writing the tokens",
        StoreRequest::TokensCleared { .. } => "clearing the tokens",
        StoreRequest::ReleaseLease { .. } => "releasing the lease",
    }
}

/// The shared store of one replica, with its holder name and how long it takes leases for.
pub(crate) struct Replica {
    store: OffRuntime<Box<dyn ErasedStore>>,
    holder: String,
    lease: Duration,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Replica {
    pub(crate) fn new<S>(store: S, holder: String, lease: Duration) -> Self
    where
        S: SharedTokenStore + Send + Sync + 'static,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        Replica {
            store: OffRuntime::new(Box::new(store)),
            holder,
            lease,
        }
    }

    /// Performs `request` for this replica at the wall clock's time (blocking).
    pub(crate) fn perform(&self, request: &StoreRequest) -> Result<shared::Performed, StoreError> {
        self.store
            .perform(&self.holder, self.lease, wall_now(), request)
    }

    /// What the store holds now (blocking).
    pub(crate) fn snapshot(&self) -> Result<SharedSnapshot, StoreError> {
        self.store.snapshot()
    }

    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }
}

/// What the background waiter asks of a change feed, whatever its type.
trait ErasedChanges: Send {
    fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError>;
}

impl<C> ErasedChanges for C
where
    C: StoreChanges + Send,
    C::Error: std::error::Error + Send + Sync + 'static,
{
    fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        self.wait_for_change(timeout)
            .map_err(|error| StoreError::shared("waiting for a change", error))
    }
}

/// The change feed of a replica's shared store.
pub(crate) struct ChangeFeed(OffRuntime<Box<dyn ErasedChanges>>);

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangeFeed")
    }
}

impl ChangeFeed {
    pub(crate) fn new<C>(changes: C) -> Self
    where
        C: StoreChanges + Send + 'static,
        C::Error: std::error::Error + Send + Sync + 'static,
    {
        ChangeFeed(OffRuntime::new(Box::new(changes)))
    }

    /// Blocks until the store changes (`true`) or `timeout` passes.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        self.0.wait(timeout)
    }
}

/// Why `build` refused a client's replica settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaSetupError {
    /// The configuration asks for a shared store
    /// ([`ConfigBuilder::shared_store`](crate::ConfigBuilder::shared_store)) but the builder
    /// was given none: a client built so would wait for lease answers that never come. Give
    /// it one with [`replicas`](super::ClientBuilder::replicas).
    NoSharedStore,
    /// A token store ([`store`](super::ClientBuilder::store) or
    /// [`store_arc`](super::ClientBuilder::store_arc)) was given beside
    /// [`replicas`](super::ClientBuilder::replicas): a replica's tokens live in the shared
    /// store, and a second place for them would be out of date at once.
    StoreBesideReplicas,
    /// A change feed ([`store_changes`](super::ClientBuilder::store_changes)) was given
    /// without [`replicas`](super::ClientBuilder::replicas): there is no shared store to
    /// watch.
    ChangesWithoutReplicas,
    /// The holder name given to [`replicas`](super::ClientBuilder::replicas) is empty; each
    /// replica needs a name of its own.
    EmptyHolder,
}

impl fmt::Display for ReplicaSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplicaSetupError::NoSharedStore => {
                "the configuration asks for a shared token store, but the client was given none \
                 (ClientBuilder::replicas)"
            }
            ReplicaSetupError::StoreBesideReplicas => {
                "a token store was given beside a shared store (ClientBuilder::replicas): a \
                 replica keeps its tokens in the shared store only"
            }
            ReplicaSetupError::ChangesWithoutReplicas => {
                "a change feed was given without a shared store (ClientBuilder::replicas)"
            }
            ReplicaSetupError::EmptyHolder => "the replica's holder name is empty",
        })
    }
}

impl std::error::Error for ReplicaSetupError {}
