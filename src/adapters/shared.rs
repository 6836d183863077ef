//! What the clones of one client share, and everything the two clients do alike around the
//! [`Engine`]: starting a wait, performing store writes and questions to the credentials
//! source, reporting outcomes (or their abandonment), and dressing API requests.
//!
//! A client is an `Arc<Shared>` plus the way it waits ([`Wake`]: a condition variable for the
//! blocking client, a `tokio::sync::Notify` for the async one) and the way it sends token
//! requests; nothing else differs between the two.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http::{Request, Response};

use crate::adapters::builder::{ApiSettings, Client, ClientBuilder};
use crate::adapters::cache::TokenCache;
use crate::adapters::driver::{deadline, now};
use crate::adapters::engine::{Engine, Performed, Taken, Ticket, Want, Work};
use crate::adapters::error::Error;
use crate::adapters::log;
use crate::adapters::store::TokenStore;
use crate::input::{TransportError, TransportErrorKind};
use crate::output::Bearer;
use crate::{Config, TokenInfo};

/// Wakes every caller waiting for the engine to change.
pub(crate) trait Wake {
    /// Called after every change a waiting caller may be interested in.
    fn wake_all(&self);
}

/// The state behind every clone of a client.
pub(crate) struct Shared<T, W> {
    engine: Mutex<Engine>,
    /// The engine's token at hand, read without its lock.
    cache: Arc<TokenCache>,
    pub(crate) waiters: W,
    pub(crate) transport: T,
    store: Arc<dyn TokenStore>,
    api: ApiSettings,
    /// The configuration's limit for token-endpoint bodies.
    pub(crate) token_max_body: usize,
    /// The configuration, for the check of where the access token may go.
    config: Config,
}

impl<T, W: Wake> Shared<T, W> {
    /// Restores the tokens in the builder's store, if any.
    pub(crate) fn new<C: Client<Transport = T>>(
        builder: ClientBuilder<C>,
        waiters: W,
    ) -> Result<Self, Error> {
        let stored = builder.store.load().map_err(Error::store)?;
        let token_max_body = builder.config.max_body_bytes();
        let config = builder.config.clone();
        let engine = Engine::new(builder.config, stored, builder.credentials)?;
        Ok(Shared {
            cache: Arc::clone(engine.cache()),
            engine: Mutex::new(engine),
            waiters,
            transport: builder.transport,
            store: builder.store,
            api: builder.api,
            token_max_body,
            config,
        })
    }

    /// Whether the access token may be attached to a request for `uri`
    /// ([`Config::check_api_request`]); checked before any IO, a token request included, so
    /// that a refused request costs nothing and the token goes nowhere.
    pub(crate) fn check_api_request(&self, uri: &http::Uri) -> Result<(), Error> {
        self.config
            .check_api_request(uri)
            .map_err(Error::ApiRequestRefused)
    }

    /// What the client holds, without a secret.
    pub(crate) fn token_info(&self) -> Option<TokenInfo> {
        self.lock().token_info()
    }

    /// The engine. A panic elsewhere never leaves it half-updated (it performs no IO and
    /// calls no application code), so a poisoned lock is taken over as it is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token at hand, if there is one: the whole of `bearer()` while a token is held.
    #[inline]
    pub(crate) fn cached(&self, now: Instant) -> Option<Bearer> {
        self.cache.get(now)
    }

    /// Starts a wait for `want`, running `command` on the engine first under the same lock,
    /// and wakes the callers already waiting.
    pub(crate) fn begin<R>(
        &self,
        want: Want,
        command: impl FnOnce(&mut Engine, Instant) -> Result<R, Error>,
    ) -> Result<(Ticket, R), Error> {
        let mut engine = self.lock();
        if engine.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let ticket = engine.ticket(want);
        let result = command(&mut engine, now());
        drop(engine);
        self.waiters.wake_all();
        result.map(|result| (ticket, result))
    }

    /// Performs the work both clients do alike, blocking: a store write or a question to the
    /// credentials source. `None` for a token request, which only the client's own transport
    /// sends.
    pub(crate) fn perform_locally(&self, work: Work) -> Option<Performed> {
        Some(match work {
            Work::Send(..) => return None,
            Work::Save(number, tokens) => Performed::Saved(number, self.store.save(&tokens)),
            Work::Clear => Performed::Cleared(self.store.clear()),
            Work::Ask(number, source) => Performed::Given(number, source()),
        })
    }

    /// `request` with the token, and when its answer is due.
    pub(crate) fn api_request(
        &self,
        mut request: Request<Vec<u8>>,
        bearer: &Bearer,
    ) -> (Request<Vec<u8>>, Instant) {
        bearer.authorize(&mut request);
        log::api_request(request.method(), request.uri());
        (request, deadline(now(), self.api.timeout))
    }

    /// The largest API response body accepted.
    #[inline]
    pub(crate) fn api_max_body(&self) -> usize {
        self.api.max_body
    }

    /// What an API request's transport outcome means to the caller.
    pub(crate) fn api_response(
        &self,
        result: Result<Response<Vec<u8>>, TransportError>,
    ) -> Result<Response<Vec<u8>>, Error> {
        let response = result.map_err(Error::Transport)?;
        if response.body().len() > self.api.max_body {
            return Err(Error::Transport(TransportError::new(
                TransportErrorKind::BodyTooLarge,
                format!(
                    "the API response is larger than {} bytes",
                    self.api.max_body
                ),
            )));
        }
        Ok(response)
    }
}

/// A work item handed out: report it with [`done`](Self::done); dropped without that (a
/// panic, a dropped task), it reports itself abandoned, so no caller waits for it forever.
pub(crate) struct Assignment<T, W: Wake> {
    shared: Arc<Shared<T, W>>,
    taken: Option<Taken>,
}

impl<T, W: Wake> Assignment<T, W> {
    pub(crate) fn new(shared: &Arc<Shared<T, W>>, work: &Work) -> Self {
        Assignment {
            shared: Arc::clone(shared),
            taken: Some(work.taken()),
        }
    }

    /// The client's shared state.
    pub(crate) fn shared(&self) -> &Shared<T, W> {
        &self.shared
    }

    /// Reports the outcome and wakes the waiting callers.
    pub(crate) fn done(mut self, performed: Performed) {
        self.taken = None;
        self.shared.lock().report(now(), performed);
        self.shared.waiters.wake_all();
    }
}

impl<T, W: Wake> Drop for Assignment<T, W> {
    fn drop(&mut self) {
        if let Some(taken) = self.taken.take() {
            self.shared.lock().abandoned(now(), taken);
            self.shared.waiters.wake_all();
        }
    }
}
