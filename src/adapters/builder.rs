//! How both clients are configured: [`ClientBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Config;
use crate::adapters::engine::CredentialsSource;
use crate::adapters::replica::{ChangeFeed, Replica, ReplicaSetupError};
use crate::adapters::store::{MemoryStore, TokenStore};
use crate::grant::Credentials;
use crate::shared::{SharedTokenStore, StoreChanges};

/// The default timeout of an API request made with `send`.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// The default largest API response body read by `send`.
pub const DEFAULT_API_MAX_BODY: usize = 16 * 1024 * 1024;

/// A client a [`ClientBuilder`] builds: [`BlockingClient`](crate::adapters::blocking::BlockingClient)
/// or [`AsyncClient`](crate::adapters::tokio::AsyncClient).
pub trait Client: sealed::Sealed {
    /// What the client sends its requests through.
    type Transport;
}

pub(crate) mod sealed {
    /// Only this crate's clients are built by [`ClientBuilder`](super::ClientBuilder).
    pub trait Sealed {}
}

/// Settings of the API requests made by `send`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiSettings {
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
}

/// Configures a client; made by `BlockingClient::builder` or `AsyncClient::builder`, finished
/// with `build`. Both clients take the same settings.
#[must_use]
pub struct ClientBuilder<C: Client> {
    pub(crate) config: Config,
    pub(crate) transport: C::Transport,
    pub(crate) store: Arc<dyn TokenStore>,
    /// Whether `store` was given (rather than the default), which `replicas` refuses.
    pub(crate) store_given: bool,
    pub(crate) replica: Option<Replica>,
    pub(crate) changes: Option<ChangeFeed>,
    pub(crate) credentials: Option<CredentialsSource>,
    pub(crate) api: ApiSettings,
}

impl<C: Client> fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("replica", &self.replica)
            .field("changes", &self.changes.is_some())
            .field("credentials", &self.credentials.is_some())
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl<C: Client> ClientBuilder<C> {
    pub(crate) fn new(config: Config, transport: C::Transport) -> Self {
        ClientBuilder {
            config,
            transport,
            store: Arc::new(MemoryStore::new()),
            store_given: false,
            replica: None,
            changes: None,
            credentials: None,
            api: ApiSettings {
                timeout: DEFAULT_API_TIMEOUT,
                max_body: DEFAULT_API_MAX_BODY,
            },
        }
    }

    /// Keeps the tokens in `store` (default: a [`MemoryStore`]). `build` restores what it
    /// holds; every new set is saved before its access token is used, and deleted when the
    /// tokens are cleared.
    ///
    /// Not with [`replicas`](Self::replicas), whose tokens live in the shared store: `build`
    /// refuses the two together.
    pub fn store(self, store: impl TokenStore) -> Self {
        self.store_arc(Arc::new(store))
    }

    /// Keeps the tokens in a store held through an `Arc`, which other code may hold too (or
    /// another client, one at a time: two clients using one refresh token at once would
    /// spend it twice; clients that run at the same time share a login with
    /// [`replicas`](Self::replicas)).
    pub fn store_arc(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self.store_given = true;
        self
    }

    /// Makes this client one of several replicas sharing one login through `store`, under
    /// the name `holder` (one name per replica: a host name and a process id, say).
    ///
    /// The client then drives the shared-store protocol of [`crate::shared`] (it sets the
    /// configuration's [`shared_store`](crate::ConfigBuilder::shared_store) mode itself):
    /// `build` reads what the store holds, so a replica starts from a login another one
    /// made; a renewal takes the store's lease first, adopts what another replica renewed
    /// meanwhile, marks its refresh in flight before sending it, and writes the new tokens
    /// with a compare-and-set, so that a refresh token is never presented by two replicas.
    /// Store calls are made outside every lock (the async client makes them on tokio's
    /// blocking pool, the store being blocking), with the wall clock's time and leases of
    /// [`Config::renewal_lease_duration`].
    ///
    /// A replica waiting for another one's renewal hears of it through
    /// [`store_changes`](Self::store_changes); without a feed it asks again for the lease
    /// after the request timeout.
    ///
    /// What a failing store means to callers: a lease that cannot be had makes the renewal
    /// back off and retry like a failed request (then
    /// [`Error::TokenRequest`](crate::adapters::Error::TokenRequest) with
    /// [`FailureCause::SharedStoreUnavailable`](crate::FailureCause::SharedStoreUnavailable));
    /// a refresh that cannot be marked is not sent; tokens that cannot be written are held
    /// back, their callers get [`Error::Store`](crate::adapters::Error::Store), and the next
    /// call writes them again; a lease that cannot be released runs out by itself.
    ///
    /// `build` refuses a [`store`](Self::store) given as well, and an empty `holder`
    /// ([`Error::ReplicaSetup`](crate::adapters::Error::ReplicaSetup)); it fails with
    /// [`Error::Store`](crate::adapters::Error::Store) when the store cannot be read.
    ///
    /// ```no_run
    /// # #[cfg(feature = "blocking")]
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
    /// use tokenflow::shared::MemoryStore;
    /// use tokenflow::{Config, Credentials};
    ///
    /// // Two clients of one process sharing a login; replicas in several processes share a
    /// // database instead (`tokenflow_postgres::PgStore` and its `PgChangeListener`).
    /// let store = Arc::new(MemoryStore::new());
    /// let config = Config::builder("https://login.example.com/connect/token", "my-client")
    ///     .client_secret("my-secret")
    ///     .build()?;
    /// let replica = |name: &str| {
    ///     BlockingClient::builder(config.clone(), UreqTransport::new())
    ///         .replicas(Arc::clone(&store), name)
    ///         .store_changes(store.changes())
    ///         .credentials(|| Some(Credentials::password("service-user", "its-password")))
    ///         .build()
    /// };
    /// let (first, second) = (replica("replica-1")?, replica("replica-2")?);
    /// # let _ = (first, second);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "blocking"))]
    /// # fn main() {}
    /// ```
    pub fn replicas<S>(mut self, store: S, holder: impl Into<String>) -> Self
    where
        S: SharedTokenStore + Send + Sync + 'static,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        self.config.shared_store = true;
        let lease = self.config.renewal_lease_duration();
        self.replica = Some(Replica::new(store, holder.into(), lease));
        self
    }

    /// Hears the changes of the [`replicas`](Self::replicas) store through `changes` (made
    /// before the store's first use, so that no change is missed), so that a replica waiting
    /// for another one's renewal adopts its tokens as soon as they are written.
    ///
    /// The client runs one waiter for it: a thread of its own (blocking client) or a task of
    /// tokio's blocking pool (async client). It waits on the feed, reads the store's
    /// snapshot after each change and reports it to the flow, and wakes the callers. It
    /// keeps the client alive no longer than its callers do: it stops within a second of
    /// the last clone of the client being dropped, or of the async client's runtime
    /// starting to shut down (which waits that long for it). A failing feed is logged and
    /// waited on again a second later.
    ///
    /// `build` refuses it without [`replicas`](Self::replicas)
    /// ([`Error::ReplicaSetup`](crate::adapters::Error::ReplicaSetup)).
    pub fn store_changes<F>(mut self, changes: F) -> Self
    where
        F: StoreChanges + Send + 'static,
        F::Error: std::error::Error + Send + Sync + 'static,
    {
        self.changes = Some(ChangeFeed::new(changes));
        self
    }

    /// The replica settings' mistakes `build` refuses.
    pub(crate) fn check_replicas(&self) -> Result<(), ReplicaSetupError> {
        match &self.replica {
            Some(_) if self.store_given => Err(ReplicaSetupError::StoreBesideReplicas),
            Some(replica) if replica.holder().is_empty() => Err(ReplicaSetupError::EmptyHolder),
            Some(_) => Ok(()),
            None if self.config.shared_store() => Err(ReplicaSetupError::NoSharedStore),
            None if self.changes.is_some() => Err(ReplicaSetupError::ChangesWithoutReplicas),
            None => Ok(()),
        }
    }

    /// Answers every need for a login (no tokens yet, a rejected or spent refresh token, no
    /// refresh token at all) by calling `source` and logging in with what it gives, so that
    /// a backend holding its own credentials never sees
    /// [`Error::LoginRequired`](crate::adapters::Error::LoginRequired). `None` means "no
    /// credentials now": the callers waiting then get that error.
    ///
    /// Callers needing a login share one call of `source`. It is never called with a lock
    /// held (the async client calls it on tokio's blocking pool), so it may read a file or a
    /// secret store; it must not wait for a token from the client it serves.
    pub fn credentials(
        mut self,
        source: impl Fn() -> Option<Credentials> + Send + Sync + 'static,
    ) -> Self {
        self.credentials = Some(Arc::new(source));
        self
    }

    /// How long an API request made with `send` may take (default 30 s). `Duration::MAX`
    /// sets no deadline of the client's own: the HTTP client's own timeouts, if any, apply,
    /// and the built-in transports spare each call their timer.
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api.timeout = timeout;
        self
    }

    /// The largest API response body `send` accepts (default 16 MiB); a larger one is a
    /// transport error of kind [`BodyTooLarge`](crate::TransportErrorKind::BodyTooLarge).
    pub fn api_max_body(mut self, bytes: usize) -> Self {
        self.api.max_body = bytes;
        self
    }
}
