//! The async client: [`AsyncClient`] on tokio, over any [`AsyncTransport`] (a ready-made one
//! on reqwest: [`ReqwestTransport`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tokenflow::adapters::Error> {
//! use tokenflow::adapters::MemoryStore;
//! use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
//! use tokenflow::{Config, Credentials};
//!
//! let config = Config::builder("https://id.example.com/token", "my-client")
//!     .client_secret("my-secret")
//!     .scope("api offline_access")
//!     .allow_api_origin("https://api.example.com") // the token goes there and nowhere else
//!     .build()
//!     .expect("a valid configuration");
//! let client = AsyncClient::builder(config, ReqwestTransport::new()?)
//!     .store(MemoryStore::new())
//!     .credentials(|| Some(Credentials::password("joe", "pw-joe")))
//!     .build()?;
//! let request = http::Request::get("https://api.example.com/resource")
//!     .body(Vec::new())
//!     .expect("a valid request");
//! let response = client.send(request).await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! # How callers share one flow
//!
//! All the bookkeeping is the [engine](super)'s; this client only performs IO and waits. A
//! caller holding a valid token takes it from the token at hand without any lock but a shared
//! read, and without going near the engine. Otherwise it locks the engine (a standard mutex,
//! never held across an `await`) and gets one of:
//!
//! * a ready token: it takes it and goes;
//! * work (a token request to send, tokens to save or delete, a request to the shared store
//!   of [replicas](ClientBuilder::replicas), the credentials source to ask): it hands the
//!   item to a task of its own — token requests to a tokio task, store writes, shared-store
//!   requests and the credentials source to the blocking pool — and asks again;
//! * nothing to do yet: it waits on a `tokio::sync::Notify`, which every reported outcome
//!   wakes, at most until the flow's next deadline, then asks again.
//!
//! Because work runs in tasks of its own, dropping a caller's future at any point (a timeout,
//! a `select!`, an aborted task) leaves nothing half-done: the token request it started goes
//! on and its outcome serves every other caller. A task that never completes (its runtime
//! shut down) reports its item abandoned as it is dropped.
//!
//! There is no background task: the flow moves when callers call (a proactive renewal is
//! started by the first caller that finds it due, which takes the current token meanwhile).
//! The one exception is a replica's change feed
//! ([`store_changes`](ClientBuilder::store_changes)), waited on by a task of the blocking
//! pool that reports each change of the shared store and wakes the callers; it ends within a
//! second of the client's last clone, or of the runtime starting to shut down (which waits
//! that long for it).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ::tokio::runtime::Handle;
use ::tokio::sync::Notify;
use http::{HeaderMap, StatusCode};

use super::builder::{Client, ClientBuilder, sealed};
use super::deadline_watch::until_deadline;
use super::driver::{now, time_left, wait_for};
use super::engine::{Performed, Step, Ticket, Want, Work};
use super::interactive::{LogoutReport, METADATA_MAX_BODY, MetadataFetch};
use super::log;
use super::reqwest_request::reqwest_request;
use super::shared::{Assignment, Shared, Wake, watch_changes};
#[cfg(doc)]
use crate::TransportErrorKind;
use crate::discovery::ProviderMetadata;
use crate::interactive::{AuthorizationRequest, DeviceAuthorization};
use crate::{Bearer, Config, Credentials, TokenInfo, TransportError};

pub use super::error::Error;

/// Sends one HTTP request and reads its answer: what the adapter needs from an HTTP client.
///
/// The trait returns `impl Future + Send` rather than a boxed future, so an implementation is a
/// plain `async fn` or a closure, and [`AsyncClient`] (generic over its transport) calls it
/// without boxing anything.
///
/// Implemented for [`ReqwestTransport`] and for any
/// `Fn(http::Request<Vec<u8>>, Instant, usize) -> impl Future<Output = Result<…>> + Send`
/// (an `async fn`, or a closure returning an `async move` block).
///
/// An implementation must:
/// - give up at `deadline` with [`TransportError::timed_out`] (the client also stops waiting
///   there);
/// - read at most `max_body + 1` bytes of the body and return them, so that an oversized
///   body is recognised without being read in full;
/// - report a failure before anything was sent (DNS, connection refused, TLS handshake) as
///   [`TransportErrorKind::NotSent`], and a failure after as `TimedOut` or `Interrupted`: the
///   flow uses the difference to decide whether a refresh token may have been spent;
/// - never put the request's body or headers in an error message: they carry credentials;
/// - never follow a redirect: return the `3xx` as it is (following it would carry the
///   request's credentials, or the access token, to wherever `Location` points).
pub trait AsyncTransport: Send + Sync + 'static {
    /// Sends `request`; answers with the response, whatever its status.
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;
}

impl<F, Fut> AsyncTransport for F
where
    F: Fn(http::Request<Vec<u8>>, Instant, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send,
{
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        self(request, deadline, max_body)
    }
}

/// An [`AsyncTransport`] over a [`reqwest::Client`] that never follows redirects.
///
/// The whole exchange, body included, ends at the deadline (unless that is a year or more
/// away); the body is read chunk by chunk and no further than `max_body + 1` bytes. The
/// deadlines of requests in flight are watched by one thread of the process
/// (`tokenflow-deadlines`), started with the first such request, rather than by a timer of the
/// runtime's per request: while any timer is pending, every idle worker of the runtime parks
/// with a timeout, which the kernel pays for on each park. Errors are mapped by what reqwest
/// knows: a connection failure is [`TransportErrorKind::NotSent`], a timeout
/// [`TransportErrorKind::TimedOut`], anything else [`TransportErrorKind::Interrupted`]. Their
/// messages never include the URL.
///
/// # Redirects
///
/// A `3xx` is returned as it is, never followed. Following one would re-send a token
/// request's password, client secret or refresh token, or an API request's access token, to
/// wherever `Location` points (an `https` → `http` hop included), and take whatever that host
/// answers; the flow reports a redirect from the authorization server as
/// [`FailureCause::Redirect`](crate::FailureCause::Redirect), and [`AsyncClient::send`] hands
/// an API's redirect to the caller.
///
/// reqwest sets the redirect policy on the client, once, and has no per-request override, so
/// a ready-made `reqwest::Client` cannot be trusted not to follow. That is why this transport
/// is built from a [`reqwest::ClientBuilder`] ([`from_builder`](Self::from_builder)), whose
/// redirect policy it sets to [`reqwest::redirect::Policy::none`] after every other setting,
/// and never from a `Client`. A transport of one's own must not follow redirects either.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport over a new `reqwest::Client` with reqwest's defaults, except that it never
    /// follows redirects. TLS comes from the reqwest features the application enables (or this
    /// crate's `tokio-rustls` feature).
    pub fn new() -> Result<Self, Error> {
        Self::from_builder(reqwest::Client::builder())
    }

    /// A transport over the client `builder` builds, with its proxy, TLS, pool and other
    /// settings, and its redirect policy replaced by [`reqwest::redirect::Policy::none`]:
    /// whatever policy the builder was given, no redirect is ever followed.
    ///
    /// Fails with [`Error::HttpClient`] when reqwest cannot build the client.
    pub fn from_builder(builder: reqwest::ClientBuilder) -> Result<Self, Error> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::HttpClient(Arc::new(e.without_url())))?;
        Ok(ReqwestTransport { client })
    }

    /// The underlying client (which never follows redirects), to share its connection pool.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl AsyncTransport for ReqwestTransport {
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        // The request is converted and handed to reqwest before the future is made, so that
        // the future holds reqwest's small pending handle, not the request twice over: an
        // API call's future is moved a few times per call, and its size is what each move
        // copies.
        let left = time_left(deadline);
        let pending = if left == Some(Duration::ZERO) {
            Err(TransportError::not_sent(
                "the deadline passed before sending",
            ))
        } else {
            reqwest_request(request)
                .map(|request| self.client.execute(request))
                .map_err(|e| TransportError::not_sent(describe(&e)))
        };
        // One deadline for the whole exchange, body included, watched (unless it is as good
        // as none); a timer inside reqwest would only cost time on every call.
        let exchange = async move {
            let mut response = pending?.await.map_err(|e| map_error(&e))?;
            let limit = max_body.saturating_add(1);
            let mut body = Vec::new();
            while body.len() < limit {
                let Some(chunk) = response.chunk().await.map_err(|e| map_body_error(&e))? else {
                    break;
                };
                let room = limit.saturating_sub(body.len());
                if body.is_empty() && chunk.len() <= room {
                    // Most bodies come in one chunk: its buffer becomes the body, uncopied
                    // when nothing else shares it.
                    body = Vec::from(chunk);
                } else {
                    body.extend_from_slice(chunk.get(..room).unwrap_or(&chunk));
                }
            }
            let mut head = http::Response::new(body);
            *head.status_mut() = response.status();
            *head.version_mut() = response.version();
            *head.headers_mut() = std::mem::take(response.headers_mut());
            Ok(head)
        };
        until_deadline(exchange, left.map(|_| deadline), || {
            Err(TransportError::timed_out(
                "no complete answer before the deadline",
            ))
        })
    }
}

/// reqwest's description of `error` and its causes, without the URL.
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn map_error(error: &reqwest::Error) -> TransportError {
    let stripped = describe_without_url(error);
    if error.is_connect() {
        TransportError::not_sent(stripped)
    } else if error.is_timeout() {
        TransportError::timed_out(stripped)
    } else {
        TransportError::interrupted(stripped)
    }
}

/// While reading the body the request has certainly gone out.
fn map_body_error(error: &reqwest::Error) -> TransportError {
    let stripped = describe_without_url(error);
    if error.is_timeout() {
        TransportError::timed_out(stripped)
    } else {
        TransportError::interrupted(stripped)
    }
}

fn describe_without_url(error: &reqwest::Error) -> String {
    // `reqwest::Error` displays its URL, which may carry query parameters; a message with the
    // URL's host alone would do, but the simplest safe message names no URL at all.
    let mut message = describe(error);
    if let Some(url) = error.url() {
        message = message.replace(url.as_str(), "<url>");
    }
    message
}

/// Fetches the metadata of `issuer` through `transport`: the OpenID Connect document
/// (`/.well-known/openid-configuration`), or the RFC 8414 one when that is not found. The
/// document's `issuer` must be exactly `issuer` (RFC 8414 §3.3).
///
/// Build the client's configuration from it with [`ProviderMetadata::config_builder`], which
/// fills in the endpoints and the issuer that authorization responses are checked against:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport, fetch_metadata};
///
/// let transport = ReqwestTransport::new()?;
/// let metadata = fetch_metadata(&transport, "https://id.example").await?;
/// let config = metadata.config_builder("my-device").scope("openid offline_access").build()?;
/// let client = AsyncClient::builder(config, transport).build()?;
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
///
/// Fails with [`Error::Discovery`] (an invalid issuer, an error status, a redirect, which is
/// never followed, a document that is not valid metadata or names another issuer) or
/// [`Error::Transport`].
pub async fn fetch_metadata(
    transport: &impl AsyncTransport,
    issuer: &str,
) -> Result<ProviderMetadata, Error> {
    let mut fetch = MetadataFetch::new(issuer);
    while let Some((request, deadline)) = fetch.next_request()? {
        let result = within(
            deadline,
            transport.send(request, deadline, METADATA_MAX_BODY),
        )
        .await;
        if let Some(outcome) = fetch.answer(result) {
            return outcome;
        }
    }
    Err(fetch.failure())
}

/// `exchange`, or a timeout at `deadline` should the transport overrun it.
async fn within(
    deadline: Instant,
    exchange: impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>>,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    match ::tokio::time::timeout_at(deadline.into(), exchange).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::timed_out("no answer before the deadline")),
    }
}

impl Wake for Notify {
    fn wake_all(&self) {
        self.notify_waiters();
    }
}

/// Keeps a valid access token for any number of tasks: `Clone` (a reference count),
/// `Send + Sync`.
///
/// Made with [`builder`](Self::builder), within a tokio runtime, whose tasks and blocking
/// pool then perform its IO. Restores the tokens in its
/// [`TokenStore`](crate::adapters::TokenStore) when built, saves every new set before using
/// it, and deletes them when they are cleared. See the [module documentation](self) for how
/// callers share it.
pub struct AsyncClient<T = ReqwestTransport> {
    shared: Arc<Shared<T, Notify>>,
    runtime: Handle,
}

impl<T> Clone for AsyncClient<T> {
    fn clone(&self) -> Self {
        AsyncClient {
            shared: Arc::clone(&self.shared),
            runtime: self.runtime.clone(),
        }
    }
}

impl<T> std::fmt::Debug for AsyncClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient").finish_non_exhaustive()
    }
}

impl<T: AsyncTransport> sealed::Sealed for AsyncClient<T> {}

impl<T: AsyncTransport> Client for AsyncClient<T> {
    type Transport = T;
}

impl<T: AsyncTransport> ClientBuilder<AsyncClient<T>> {
    /// Restores the tokens found in the store, if any, and makes the client. The store is
    /// read once, here, on the calling thread.
    ///
    /// Fails with [`Error::NoRuntime`] outside a tokio runtime, with [`Error::Store`] when
    /// the store cannot be read and with [`Error::Restore`] when its tokens cannot be used.
    ///
    /// With [`replicas`](ClientBuilder::replicas) it reads the shared store instead (on a
    /// thread of its own, the store being blocking), and fails with [`Error::ReplicaSetup`]
    /// on the mistakes that method names. A change feed
    /// ([`store_changes`](ClientBuilder::store_changes)) is waited on by a task of the
    /// runtime's blocking pool, which ends with the client or with the runtime.
    pub fn build(self) -> Result<AsyncClient<T>, Error> {
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (shared, changes) = Shared::new(self, Notify::new())?;
        let shared = Arc::new(shared);
        if let Some(feed) = changes {
            let hub = shared.hub();
            // A runtime shutting down waits for its blocking tasks, so the waiter also ends
            // with the runtime (a client may outlive it): it watches a token held by a task
            // that never completes, which the shutdown drops.
            let running = Arc::new(());
            let shutdown = Arc::downgrade(&running);
            runtime.spawn(async move {
                let _running = running;
                std::future::pending::<()>().await;
            });
            runtime.spawn_blocking(move || {
                watch_changes(hub, feed, move || shutdown.strong_count() == 0);
            });
        }
        Ok(AsyncClient { shared, runtime })
    }
}

impl<T: AsyncTransport> AsyncClient<T> {
    /// Configures a client for `config`, sending through `transport` (token requests and
    /// [`send`](Self::send) alike).
    pub fn builder(config: Config, transport: T) -> ClientBuilder<Self> {
        ClientBuilder::new(config, transport)
    }

    /// Logs in with `credentials`, replacing any login or renewal under way. Resolves when the
    /// new tokens are stored and usable; fails with [`Error::TokenRequest`] or
    /// [`Error::Store`]. Tokens held before stay in use until then.
    pub async fn login(&self, credentials: Credentials) -> Result<(), Error> {
        let (ticket, ()) = self.shared.begin(Want::Login, |engine, now| {
            engine.login(now, credentials);
            Ok(())
        })?;
        self.run(ticket, None::<fn(&DeviceAuthorization)>)
            .await
            .map(|_| ())
    }

    /// Starts an authorization-code login with PKCE (RFC 6749 §4.1, RFC 7636): returns the URL
    /// to open in the user's browser and the `state` it carries. Needs an authorization
    /// endpoint and a redirect URI in the configuration (see
    /// [`LoopbackRedirect`](crate::adapters::LoopbackRedirect) for desktop and command-line
    /// applications). A later call replaces a pending one.
    pub async fn start_authorization(&self) -> Result<AuthorizationRequest, Error> {
        let (_, request) = self.shared.begin(Want::Login, |engine, now| {
            engine
                .start_authorization(now)
                .map_err(Error::Authorization)
        })?;
        Ok(request)
    }

    /// Completes the authorization-code login with the URL the browser was redirected to (or
    /// its query). Resolves when the tokens are stored and usable.
    ///
    /// Fails at once with [`Error::Authorization`] when the callback is refused: a `state`
    /// that is not the one sent, an `iss` naming another issuer (RFC 9207), an `error` from
    /// the server, or no login waiting for it. Otherwise it fails like
    /// [`login`](Self::login) when the code exchange does.
    pub async fn complete_authorization(&self, callback: &str) -> Result<(), Error> {
        let (ticket, ()) = self.shared.begin(Want::Login, |engine, now| {
            engine
                .complete_authorization(now, callback)
                .map_err(Error::Authorization)
        })?;
        self.run(ticket, None::<fn(&DeviceAuthorization)>)
            .await
            .map(|_| ())
    }

    /// Logs in with the device authorization grant (RFC 8628). `on_code` is called once with
    /// the code to show the user and where to enter it; the client then polls at the interval
    /// the server asks (5 s more after each `slow_down`). Resolves when the user has approved
    /// and the tokens are stored and usable.
    ///
    /// Fails with [`Error::DeviceDenied`] when the user refuses, [`Error::DeviceExpired`]
    /// when the code expires first, [`Error::Authorization`] when no device authorization
    /// endpoint is configured, and otherwise like [`login`](Self::login). The polling goes on
    /// while someone waits on the client: after this future is dropped, the next caller
    /// waiting for a token carries it on; a later login or [`logout`](Self::logout) ends it.
    pub async fn login_with_device(
        &self,
        on_code: impl FnOnce(&DeviceAuthorization) + Send,
    ) -> Result<(), Error> {
        let (ticket, ()) = self.shared.begin(Want::Login, |engine, now| {
            engine
                .start_device_authorization(now)
                .map_err(Error::Authorization)
        })?;
        self.run(ticket, Some(on_code))
            .await
            .map(|_| ())
            .map_err(Error::for_device_login)
    }

    /// A valid access token: at once when one is held, otherwise after the one token request
    /// that every waiting caller shares (a renewal, or a login through the credentials
    /// source). Before attaching it to a request of one's own, check the request's URL with
    /// [`Config::check_api_request`], as [`send`](Self::send) does.
    ///
    /// Fails with [`Error::LoginRequired`] when only a new login can help and the credentials
    /// source (if any) gave none, [`Error::TokenRequest`] when the token request failed after
    /// its retries, and [`Error::Store`] when the new tokens could not be saved.
    pub fn bearer(&self) -> impl Future<Output = Result<Bearer, Error>> + Send + '_ {
        // The token at hand is looked up at once; the wait for a new one is boxed, so that the
        // future of the fast path is a few words, cheap to create and to move.
        match self.shared.cached() {
            Some(bearer) => BearerFuture {
                client: self,
                state: BearerState::Held(Some(bearer)),
            },
            None => BearerFuture {
                client: self,
                state: BearerState::Waiting(Box::pin(self.wait_for_bearer())),
            },
        }
    }

    /// Reports that an API refused `bearer` with a 401 whose headers are `headers`, and waits
    /// for what the flow makes of it: `Some` newer token to retry with, or `None` when there is
    /// no newer one (the 401 was not about the token, for example `insufficient_scope`).
    ///
    /// For applications that make API requests with their own HTTP client; [`send`](Self::send)
    /// does this itself. Retry at most once per request.
    pub async fn unauthorized(
        &self,
        bearer: &Bearer,
        headers: &HeaderMap,
    ) -> Result<Option<Bearer>, Error> {
        let refused = bearer.generation();
        let (ticket, ()) = self.shared.begin(Want::Bearer, |engine, now| {
            engine.unauthorized(now, refused, headers);
            Ok(())
        })?;
        let current = self.run_for_bearer(ticket).await?;
        Ok((current.generation() > refused).then_some(current))
    }

    /// Sends an API request with the access token. On `401 Unauthorized` it reports the
    /// refusal to the flow, gets a newer token (renewing if needed) and sends the request
    /// again, once, if the token changed; otherwise the 401 response is returned. The retry is
    /// a clone of the request, extensions included.
    ///
    /// Any other status is returned as it is, a redirect (`3xx`) included: it is never
    /// followed, so the access token never goes anywhere but the request's own URL.
    ///
    /// Before any IO, the request's URL must pass [`Config::check_api_request`]: `https`
    /// (cleartext `http://` only where the token endpoint may use it) and, when the
    /// configuration names API origins, one of them; otherwise [`Error::ApiRequestRefused`].
    /// Other errors are those of [`bearer`](Self::bearer), and [`Error::Transport`] when the
    /// request itself failed or its body was larger than the builder's `api_max_body`.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its argument twice, see below"
    )]
    pub fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, Error>> + Send + '_ {
        // An `async` block rather than an `async fn`, which would keep the request twice (as
        // its argument and as a local): the future is moved a few times per call.
        async move {
            // Before any IO, a token request included: the token must not go there at all.
            self.shared.check_api_request(request.uri())?;
            let bearer = self.bearer().await?;
            // A copy goes out; the request itself is kept for a retry, in the slot it has
            // anyway.
            let response = self
                .shared
                .api_response(self.call(request.clone(), &bearer).await)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // Boxed: a 401 is rare, and its wait and second call would otherwise make every
            // call's future twice as large.
            Box::pin(self.after_unauthorized(bearer, request, response)).await
        }
    }

    /// The rest of `send` after a 401: the refusal reported, and the request sent again with
    /// a newer token if there is one.
    async fn after_unauthorized(
        &self,
        bearer: Bearer,
        retry: http::Request<Vec<u8>>,
        response: http::Response<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        match self.unauthorized(&bearer, response.headers()).await? {
            Some(newer) => {
                log::api_retry(bearer.generation(), newer.generation());
                self.shared.api_response(self.call(retry, &newer).await)
            }
            None => Ok(response),
        }
    }

    /// Forgets the tokens, in the store too; callers waiting for a token get
    /// [`Error::LoggedOut`], and with a credentials source the next call logs in again. A
    /// token request under way is abandoned.
    ///
    /// With a revocation endpoint configured, the refresh token and then the access token are
    /// revoked (RFC 7009), and this resolves once both revocations are done, retries included;
    /// what became of them is in the [`LogoutReport`]. A failed revocation does not fail the
    /// logout: the tokens are gone locally all the same. Fails with [`Error::Store`] when the
    /// stored tokens could not be deleted.
    pub async fn logout(&self) -> Result<LogoutReport, Error> {
        let (ticket, ()) = self.shared.begin(Want::Settled, |engine, now| {
            engine.logout(now);
            Ok(())
        })?;
        self.run(ticket, None::<fn(&DeviceAuthorization)>).await?;
        Ok(self.shared.lock().logout_report())
    }

    /// Stops the client: callers waiting get [`Error::Shutdown`], and so does every later
    /// call on any clone of it. Requests under way end on their own, unheeded. The stored
    /// tokens stay for the next start.
    pub async fn shutdown(&self) {
        self.shared.lock().shut_down();
        self.shared.waiters().wake_all();
    }

    /// What the client holds — whether it has an access and a refresh token, when they
    /// expire, their scope and generation — without a secret; `None` before any login and
    /// after a logout. It never starts a token request. Its monotonic times (`expires_at`)
    /// count from when the client was built; the `_unix` ones are wall-clock times.
    pub fn token_info(&self) -> Option<TokenInfo> {
        self.shared.token_info()
    }

    #[cold]
    async fn wait_for_bearer(&self) -> Result<Bearer, Error> {
        let (ticket, ()) = self.shared.begin(Want::Bearer, |_, _| Ok(()))?;
        self.run_for_bearer(ticket).await
    }

    async fn run_for_bearer(&self, ticket: Ticket) -> Result<Bearer, Error> {
        match self.run(ticket, None::<fn(&DeviceAuthorization)>).await? {
            Some(bearer) => Ok(bearer),
            // A bearer wait ends with a token or an error; this only keeps the types honest.
            None => Err(Error::LoginRequired { reason: None }),
        }
    }

    /// Sends `request` with `bearer`: the transport's own future, whose outcome
    /// [`Shared::api_response`] reads. Not an `async fn`, nor wrapped in one: each would keep
    /// a second slot the size of what it awaits, and an API call's future is moved a few times
    /// per call.
    fn call(
        &self,
        request: http::Request<Vec<u8>>,
        bearer: &Bearer,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send + use<'_, T>
    {
        let (request, deadline) = self.shared.api_request(request, bearer);
        self.shared
            .transport
            .send(request, deadline, self.shared.api_max_body())
    }

    /// Steps the engine for `ticket` until it is done, handing work to tasks and waiting.
    /// Returns the token for a bearer wait, `None` for the others. A device login's user code
    /// is handed to `on_device`.
    async fn run(
        &self,
        mut ticket: Ticket,
        mut on_device: Option<impl FnOnce(&DeviceAuthorization)>,
    ) -> Result<Option<Bearer>, Error> {
        loop {
            // Registered before the engine is looked at, so that no wake-up in between is
            // missed.
            let mut changed = pin!(self.shared.waiters().notified());
            changed.as_mut().enable();
            let now = now();
            let step = self.shared.lock().step(now, &mut ticket);
            match step {
                Step::Ready(bearer) => return Ok(Some(bearer)),
                Step::Done => return Ok(None),
                Step::Fail(error) => return Err(error),
                Step::Work(work) => self.perform(work),
                Step::Device(device) => {
                    if let Some(show) = on_device.take() {
                        show(&device);
                    }
                }
                Step::Wait(until) => {
                    let _ = ::tokio::time::timeout(wait_for(now, until), changed).await;
                }
            }
        }
    }

    /// Hands one work item to a task of its own, which reports it.
    fn perform(&self, work: Work) {
        let assignment = Assignment::new(&self.shared, &work);
        match work {
            Work::Send(request, deadline) => {
                self.runtime.spawn(async move {
                    let shared = assignment.shared();
                    // Not cut short at the deadline: the flow gives up on the request there by
                    // itself, and an answer arriving later is still reported, for the flow to
                    // judge (a renewal's may carry the only successor of a rotated refresh
                    // token). The transport bounds the wait, as its contract says.
                    let result = shared
                        .transport
                        .send(request.request, deadline, shared.token_max_body)
                        .await;
                    assignment.done(Performed::Sent(request.id, result));
                });
            }
            local => {
                self.runtime.spawn_blocking(move || {
                    if let Some(performed) = assignment.shared().perform_locally(local) {
                        assignment.done(performed);
                    }
                });
            }
        }
    }
}

// The client is shared across tasks and threads.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<AsyncClient>();
};

/// The future of [`AsyncClient::bearer`]: the token at hand, or the wait for one.
///
/// Written out rather than an `async` block, for two reasons: polling it while a token is held
/// is one match and one move (the bearer benchmark measured 88–92 % of the hand-written cache
/// with the block, 91–95 % with this), and polled again after completing it asks the client
/// anew instead of panicking as a finished `async` block does.
struct BearerFuture<'a, T> {
    client: &'a AsyncClient<T>,
    state: BearerState<'a>,
}

enum BearerState<'a> {
    /// A token was at hand when the future was made; `None` once it is handed out.
    Held(Option<Bearer>),
    Waiting(Pin<Box<dyn Future<Output = Result<Bearer, Error>> + Send + 'a>>),
}

impl<T: AsyncTransport> Future for BearerFuture<'_, T> {
    type Output = Result<Bearer, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let BearerFuture { client, state } = self.get_mut();
        if let BearerState::Held(held) = state {
            match held.take() {
                Some(bearer) => return Poll::Ready(Ok(bearer)),
                None => *state = BearerState::Waiting(Box::pin(client.wait_for_bearer())),
            }
        }
        let BearerState::Waiting(wait) = state else {
            // Not reached: a held state without its token has just become a wait.
            return Poll::Pending;
        };
        let outcome = ready!(wait.as_mut().poll(cx));
        *state = BearerState::Held(None);
        Poll::Ready(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn client() -> AsyncClient<impl AsyncTransport> {
        let config = Config::builder("https://id.example/token", "client")
            .build()
            .unwrap();
        AsyncClient::builder(config, |_request, _deadline, _max_body| async {
            Ok::<_, TransportError>(
                http::Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(
                        br#"{"access_token":"AT","token_type":"Bearer","expires_in":3600}"#
                            .to_vec(),
                    )
                    .unwrap(),
            )
        })
        .build()
        .unwrap()
    }

    #[tokio::test]
    async fn the_bearer_future_polled_again_asks_again() {
        let client = client();
        client.login(Credentials::ClientCredentials).await.unwrap();
        client.bearer().await.unwrap();

        let mut future = pin!(client.bearer());
        let mut context = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            match future.as_mut().poll(&mut context) {
                Poll::Ready(Ok(bearer)) => {
                    assert_eq!(bearer.header_value(), "Bearer AT");
                }
                other => panic!("the held token at once, not {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_bearer_future_made_before_the_login_waits_for_it() {
        let client = client();
        let waiting = client.bearer();
        client.login(Credentials::ClientCredentials).await.unwrap();
        assert_eq!(waiting.await.unwrap().header_value(), "Bearer AT");
    }
}
