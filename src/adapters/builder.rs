//! How both clients are configured: [`ClientBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Config;
use crate::adapters::engine::CredentialsSource;
use crate::adapters::store::{MemoryStore, TokenStore};
use crate::grant::Credentials;

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
    pub(crate) credentials: Option<CredentialsSource>,
    pub(crate) api: ApiSettings,
}

impl<C: Client> fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
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
    pub fn store(self, store: impl TokenStore) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// Keeps the tokens in a store shared with other code (or with another client, one at a
    /// time: two clients using one refresh token at once would spend it twice).
    pub fn shared_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self
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

    /// How long an API request made with `send` may take (default 30 s).
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
