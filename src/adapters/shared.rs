//! What the clones of one client share, and everything the two clients do alike around the
//! [`Engine`]: starting a wait, performing store writes, shared-store requests and questions
//! to the credentials source, reporting outcomes (or their abandonment), watching a shared
//! store's changes ([`watch_changes`]), and dressing API requests.
//!
//! A client is an `Arc<Shared>` plus the way it waits ([`Wake`]: a condition variable for the
//! blocking client, a `tokio::sync::Notify` for the async one) and the way it sends token
//! requests; nothing else differs between the two.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use http::{Request, Response};

use crate::adapters::approved_origin::ApprovedOrigin;
use crate::adapters::builder::{ApiSettings, Client, ClientBuilder};
use crate::adapters::cache::TokenCache;
use crate::adapters::driver::{deadline, now};
use crate::adapters::engine::{Engine, Performed, StoreOp, Taken, Ticket, Want, Work};
use crate::adapters::error::Error;
use crate::adapters::log;
use crate::adapters::off_runtime::off_runtime;
use crate::adapters::replica::{ChangeFeed, Replica, ReplicaSetupError};
use crate::adapters::store::{StoreError, TokenStore};
use crate::input::{TransportError, TransportErrorKind};
use crate::output::Bearer;
use crate::{Config, TokenInfo};

/// How long the change waiter waits on its feed before it looks whether the client is still
/// there, and how long it pauses after the feed failed.
pub(crate) const CHANGE_WAIT: Duration = Duration::from_secs(1);

/// Wakes every caller waiting for the engine to change.
pub(crate) trait Wake {
    /// Called after every change a waiting caller may be interested in.
    fn wake_all(&self);
}

/// The state behind every clone of a client.
pub(crate) struct Shared<T, W> {
    hub: Arc<Hub<W>>,
    /// The engine's token at hand, read without its lock.
    cache: Arc<TokenCache>,
    pub(crate) transport: T,
    store: Arc<dyn TokenStore>,
    api: ApiSettings,
    /// The configuration's limit for token-endpoint bodies.
    pub(crate) token_max_body: usize,
    /// The configuration, for the check of where the access token may go.
    config: Config,
    /// The API origin the check approved first.
    approved: ApprovedOrigin,
}

/// The part of a client its change waiter needs: the engine, the waiting callers and the
/// shared store, without the transport (so that waiting on a thread of its own asks nothing
/// of the transport's type). Held strongly by the client only; the waiter holds it weakly.
pub(crate) struct Hub<W> {
    engine: Mutex<Engine>,
    waiters: W,
    /// The shared store, for a replica.
    replica: Option<Replica>,
}

impl<W: Wake> Hub<W> {
    /// The engine. A panic elsewhere never leaves it half-updated (it performs no IO and
    /// calls no application code), so a poisoned lock is taken over as it is.
    fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the shared store after its feed announced a change, reports what it holds and
    /// wakes the callers. False when the client has shut down and nobody needs to hear.
    fn store_changed(&self) -> bool {
        let Some(replica) = &self.replica else {
            return false;
        };
        match replica.snapshot() {
            Ok(snapshot) => {
                let mut engine = self.lock();
                if engine.is_shut_down() {
                    return false;
                }
                engine.store_changed(now(), snapshot);
            }
            Err(error) => log::store_failure("reading the store after a change", &error),
        }
        self.waiters.wake_all();
        true
    }
}

impl<T, W: Wake> Shared<T, W> {
    /// Restores the tokens in the builder's store, if any, or with
    /// [`replicas`](ClientBuilder::replicas) reads what the shared store holds. Returns the
    /// change feed to watch, if one was given.
    pub(crate) fn new<C: Client<Transport = T>>(
        builder: ClientBuilder<C>,
        waiters: W,
    ) -> Result<(Self, Option<ChangeFeed>), Error> {
        builder.check_replicas().map_err(Error::ReplicaSetup)?;
        let ClientBuilder {
            config,
            transport,
            store,
            replica,
            changes,
            credentials,
            api,
            ..
        } = builder;
        let token_max_body = config.max_body_bytes();
        let engine = match &replica {
            Some(replica) => {
                // The store may be a blocking database client, which must not block a
                // thread driving async tasks.
                let snapshot = off_runtime(|| replica.snapshot()).map_err(Error::store)?;
                Engine::replica(config.clone(), snapshot, credentials)
            }
            None => {
                let stored = store.load().map_err(Error::store)?;
                Engine::new(config.clone(), stored, credentials)?
            }
        };
        let shared = Shared {
            cache: Arc::clone(engine.cache()),
            hub: Arc::new(Hub {
                engine: Mutex::new(engine),
                waiters,
                replica,
            }),
            transport,
            store,
            api,
            token_max_body,
            config,
            approved: ApprovedOrigin::default(),
        };
        Ok((shared, changes))
    }

    /// How callers wait for the engine to change.
    pub(crate) fn waiters(&self) -> &W {
        &self.hub.waiters
    }

    /// What the change waiter holds of the client: nothing that keeps it alive.
    pub(crate) fn hub(&self) -> Weak<Hub<W>> {
        Arc::downgrade(&self.hub)
    }

    /// Whether the access token may be attached to a request for `uri`
    /// ([`Config::check_api_request`]); checked before any IO, a token request included, so
    /// that a refused request costs nothing and the token goes nowhere.
    pub(crate) fn check_api_request(&self, uri: &http::Uri) -> Result<(), Error> {
        self.approved
            .check(uri, |uri| self.config.check_api_request(uri))
            .map_err(Error::ApiRequestRefused)
    }

    /// What the client holds, without a secret.
    pub(crate) fn token_info(&self) -> Option<TokenInfo> {
        self.lock().token_info()
    }

    /// The engine (see [`Hub::lock`]).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        self.hub.lock()
    }

    /// The token at hand, if there is one: the whole of `bearer()` while a token is held.
    #[inline]
    pub(crate) fn cached(&self) -> Option<Bearer> {
        self.cache.get()
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
        self.waiters().wake_all();
        result.map(|result| (ticket, result))
    }

    /// Performs the work both clients do alike, blocking: a store write, a shared-store
    /// request or a question to the credentials source. `None` for a token request, which
    /// only the client's own transport sends.
    pub(crate) fn perform_locally(&self, work: Work) -> Option<Performed> {
        Some(match work {
            Work::Send(..) => return None,
            Work::Save(number, tokens) => Performed::Saved(number, self.store.save(&tokens)),
            Work::Clear => Performed::Cleared(self.store.clear()),
            Work::Ask(number, source) => Performed::Given(number, source()),
            Work::Store(number, request) => {
                let result = match &self.hub.replica {
                    Some(replica) => replica.perform(&request),
                    // Not reached: only a replica's flow asks for store work. Answered all
                    // the same, so that nothing waits for it.
                    None => Err(StoreError::shared(
                        crate::adapters::replica::during(&request),
                        ReplicaSetupError::NoSharedStore,
                    )),
                };
                Performed::Stored(number, StoreOp::of(&request), result)
            }
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
        self.shared.waiters().wake_all();
    }
}

impl<T, W: Wake> Drop for Assignment<T, W> {
    fn drop(&mut self) {
        if let Some(taken) = self.taken.take() {
            self.shared.lock().abandoned(now(), taken);
            self.shared.waiters().wake_all();
        }
    }
}

/// The change waiter of a replica client ([`ClientBuilder::store_changes`]): waits on `feed`,
/// and after each change reads the shared store, reports what it holds and wakes the callers.
/// Runs on a thread of its own (the async client's: a task of tokio's blocking pool) until
/// the client is gone, which it sees within [`CHANGE_WAIT`], or shut down, or `ended` says
/// so (the async client's runtime shutting down). A failing feed is logged, and waited on
/// again after a pause.
pub(crate) fn watch_changes<W: Wake>(
    hub: Weak<Hub<W>>,
    mut feed: ChangeFeed,
    ended: impl Fn() -> bool,
) {
    loop {
        let changed = feed.wait(CHANGE_WAIT);
        if ended() {
            return;
        }
        // Held only while reporting: the client's last clone may go meanwhile, and the hub
        // then ends here.
        let Some(client) = hub.upgrade() else {
            return;
        };
        let going_on = match changed {
            Ok(true) => client.store_changed(),
            Ok(false) => !client.lock().is_shut_down(),
            Err(error) => {
                log::store_failure("waiting for a change", &error);
                drop(client);
                thread::sleep(CHANGE_WAIT);
                true
            }
        };
        if !going_on {
            return;
        }
    }
}
