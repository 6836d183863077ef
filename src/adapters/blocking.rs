//! A blocking run loop: [`BlockingClient`] for one thread, [`SharedBlockingClient`] for many,
//! over any [`Transport`] (a ready-made one on `ureq`: [`UreqTransport`]).
//!
//! ```no_run
//! use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
//! use tokenflow::adapters::FileStore;
//! use tokenflow::{Config, Credentials};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://login.example.com/connect/token", "my-client")
//!     .client_secret("my-secret")
//!     .scope("api offline_access")
//!     .build()?;
//! let client = BlockingClient::new(config, UreqTransport::new(), FileStore::new("tokens.json"))?
//!     // A backend with a dedicated user logs in again by itself when it must.
//!     .with_credentials(|| Some(Credentials::password("service-user", "its-password")))
//!     .into_shared();
//! let request = http::Request::get("https://api.example.com/things").body(Vec::new())?;
//! let response = client.send(request)?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! # How callers share one flow
//!
//! The flow, and the bookkeeping around it, sit behind one mutex that is never held across
//! IO. Each caller locks, asks the flow for a token and gets one of:
//!
//! * a ready token: it takes it and goes, without waiting for anyone;
//! * work (a token request to send, tokens to save or delete) while no one else performs
//!   any: it becomes the one thread that performs IO. It marks itself as such, unlocks,
//!   performs that one item, locks again, reports the result to the flow, clears the mark
//!   and wakes everyone waiting on the condition variable;
//! * nothing to do yet (someone else performs the IO, or a retry is backing off): it waits on
//!   the condition variable, at most until the flow's next deadline, then asks again.
//!
//! So a herd of callers hitting an expired token makes one token request; the others wait for
//! its outcome (`AccessReady`, or the failure, which each of them gets). A proactive renewal
//! is performed by the first caller that finds it due; the others keep using the current
//! token meanwhile. Work is performed one item at a time, in the order the flow asked for it,
//! so the tokens are saved before their access token is released and store writes never
//! overtake each other.
//!
//! There is no background thread: the flow moves when callers call. A credentials source is
//! called with the lock held, so it must return quickly and must not call the client.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};

use crate::Config;
use crate::adapters::engine::{CredentialsSource, Engine, Step, Ticket, Want, Work};
use crate::adapters::interactive::{
    LogoutReport, METADATA_KINDS, METADATA_MAX_BODY, METADATA_TIMEOUT, oversized_metadata,
    read_metadata, try_next_kind,
};
use crate::adapters::log;
use crate::adapters::store::{StoreError, TokenStore};
use crate::discovery::{DiscoveryError, ProviderMetadata, metadata_request};
use crate::grant::Credentials;
use crate::input::{TransportError, TransportErrorKind};
use crate::interactive::{AuthorizationRequest, DeviceAuthorization};
use crate::output::{Bearer, RequestId};

pub use crate::adapters::engine::Error;

/// The longest a waiting caller sleeps before looking at the flow again, even if no one wakes
/// it. Waking is prompt in practice; this only bounds the damage of a missed wake-up.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// The default timeout of an API request made with [`BlockingClient::send`].
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// The default largest API response body read by [`BlockingClient::send`].
pub const DEFAULT_API_MAX_BODY: usize = 16 * 1024 * 1024;

/// Performs one HTTP exchange, blocking.
///
/// `deadline` is when the caller stops waiting (use it for the timeout); `max_body` is the
/// largest body the caller wants: read at most `max_body + 1` bytes, so that a larger body is
/// recognised without reading it all. Any status, 4xx and 5xx included, is a response, not an
/// error. Report failures with the [`TransportErrorKind`] that says whether the request may
/// have reached the server ([`TransportError::not_sent`] only when it cannot have).
///
/// A transport must never follow a redirect: it returns the `3xx` as it is (following it
/// would carry the request's credentials, or the access token, to wherever `Location`
/// points).
///
/// Closures `Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError>` are
/// transports too; they are responsible for their own timeout and body limit (the client
/// still refuses an oversized API body, and the flow an oversized token response).
pub trait Transport {
    /// Sends `request` and returns the response with its body.
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError>;
}

impl<F> Transport for F
where
    F: Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError>,
{
    fn send(
        &self,
        request: Request<Vec<u8>>,
        _deadline: Instant,
        _max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        self(request)
    }
}

/// A [`Transport`] over a `ureq` 3 agent (rustls with the ring provider).
///
/// Every request gets a global timeout running to its deadline, statuses are never errors,
/// and redirects are never followed, whatever the agent's own settings: a `3xx` is returned
/// as it is. Following one would re-send a token request's password, client secret or
/// refresh token, or an API request's access token, to wherever `Location` points (and take
/// whatever that host answers); the flow reports a redirect from the authorization server as
/// [`FailureCause::Redirect`](crate::FailureCause::Redirect), and `send` hands an API's
/// redirect to the caller.
///
/// A transport of one's own must not follow redirects either.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    /// A transport with a new agent with ureq's defaults (which honour the proxy environment
    /// variables).
    pub fn new() -> Self {
        Self::with_agent(ureq::Agent::new_with_defaults())
    }

    /// A transport over `agent`, sharing its connection pool and settings. Whatever the
    /// agent's own settings (`max_redirects` included), each request is sent with statuses as
    /// responses, no redirects followed and a timeout running to its deadline: ureq lets each
    /// request override the agent's configuration, and this transport does.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        UreqTransport { agent }
    }

    /// The agent.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

impl Transport for UreqTransport {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TransportError::not_sent(
                "the deadline passed before the request was sent",
            ));
        }
        let sends_body = !request.body().is_empty()
            || !matches!(
                *request.method(),
                http::Method::GET
                    | http::Method::HEAD
                    | http::Method::OPTIONS
                    | http::Method::DELETE
            );
        let response = if sends_body {
            let request = self.configure(request, remaining);
            self.agent.run(request)
        } else {
            let request = self.configure(request.map(|_| ()), remaining);
            self.agent.run(request)
        }
        .map_err(ureq_error)?;
        read_response(response, max_body)
    }
}

impl UreqTransport {
    fn configure<B: ureq::AsSendBody>(&self, request: Request<B>, timeout: Duration) -> Request<B> {
        self.agent
            .configure_request(request)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build()
    }
}

fn read_response(
    response: Response<ureq::Body>,
    max_body: usize,
) -> Result<Response<Vec<u8>>, TransportError> {
    use std::io::Read;
    let (parts, body) = response.into_parts();
    let limit = u64::try_from(max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    body.into_reader()
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(io_error_while_reading)?;
    Ok(Response::from_parts(parts, bytes))
}

/// A failure reading the body: the request was sent, so at best it timed out.
fn io_error_while_reading(error: std::io::Error) -> TransportError {
    if error.kind() == std::io::ErrorKind::TimedOut {
        return TransportError::timed_out(error.to_string());
    }
    match error
        .into_inner()
        .map(|inner| inner.downcast::<ureq::Error>())
    {
        Some(Ok(ureq)) => match ureq_error(*ureq) {
            e if e.kind() == TransportErrorKind::NotSent => {
                TransportError::interrupted(e.message())
            }
            e => e,
        },
        Some(Err(other)) => TransportError::interrupted(other.to_string()),
        None => TransportError::interrupted("the connection failed while reading the response"),
    }
}

/// Maps a ureq error to the kind that says whether the request may have reached the server.
fn ureq_error(error: ureq::Error) -> TransportError {
    use std::io::ErrorKind as Io;
    use ureq::Timeout;
    let message = error.to_string();
    match error {
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => {
            TransportError::not_sent(message)
        }
        ureq::Error::Timeout(_) => TransportError::timed_out(message),
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::Tls(_) => TransportError::not_sent(message),
        ureq::Error::Io(io) => match io.kind() {
            Io::ConnectionRefused
            | Io::AddrNotAvailable
            | Io::NetworkUnreachable
            | Io::HostUnreachable
            | Io::NotFound => TransportError::not_sent(message),
            Io::TimedOut | Io::WouldBlock => TransportError::timed_out(message),
            _ => TransportError::interrupted(message),
        },
        ureq::Error::Protocol(_) => TransportError::interrupted(message),
        _ => TransportError::new(TransportErrorKind::Other, message),
    }
}

/// Fetches the metadata of `issuer` through `transport`: the OpenID Connect document
/// (`/.well-known/openid-configuration`), or the RFC 8414 one when that is not found. The
/// document's `issuer` must be exactly `issuer` (RFC 8414 §3.3).
///
/// Build the client's configuration from it with [`ProviderMetadata::config_builder`], which
/// fills in the endpoints and the issuer that authorization responses are checked against:
///
/// ```no_run
/// use tokenflow::adapters::blocking::{BlockingClient, UreqTransport, fetch_metadata};
/// use tokenflow::adapters::MemoryStore;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = UreqTransport::new();
/// let metadata = fetch_metadata(&transport, "https://id.example")?;
/// let config = metadata.config_builder("my-device").scope("openid offline_access").build()?;
/// let client = BlockingClient::new(config, transport, MemoryStore::new())?;
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
///
/// Fails with [`Error::Discovery`] (an invalid issuer, an error status, a redirect, which is
/// never followed, a document that is not valid metadata or names another issuer) or
/// [`Error::Transport`].
pub fn fetch_metadata<T: Transport>(
    transport: &T,
    issuer: &str,
) -> Result<ProviderMetadata, Error> {
    let mut last = Error::Discovery(DiscoveryError::InvalidIssuer("not an absolute URL"));
    for kind in METADATA_KINDS {
        let request = metadata_request(issuer, kind).map_err(Error::Discovery)?;
        let deadline = Instant::now()
            .checked_add(METADATA_TIMEOUT)
            .unwrap_or_else(Instant::now);
        let response = transport
            .send(request, deadline, METADATA_MAX_BODY)
            .map_err(Error::Transport)?;
        if let Some(error) = oversized_metadata(&response) {
            return Err(Error::Transport(error));
        }
        match read_metadata(issuer, &response) {
            Ok(metadata) => return Ok(metadata),
            Err(error) if try_next_kind(&error) => last = Error::Discovery(error),
            Err(error) => return Err(Error::Discovery(error)),
        }
    }
    Err(last)
}

/// Settings of the API requests made by `send`.
#[derive(Debug, Clone, Copy)]
struct ApiSettings {
    timeout: Duration,
    max_body: usize,
}

struct State {
    engine: Engine,
    /// A caller is performing IO for the flow.
    performing: bool,
}

/// What both clients share: the flow behind a mutex that is never held across IO.
struct Inner<T, S> {
    state: Mutex<State>,
    /// Signalled whenever performed IO was reported, and after commands.
    changed: Condvar,
    transport: T,
    store: S,
    /// The configuration's limit for token-endpoint bodies.
    token_max_body: usize,
    /// The configuration, for the check of where the access token may go.
    config: Config,
    api: ApiSettings,
}

impl<T: Transport, S: TokenStore> Inner<T, S> {
    fn new(config: Config, transport: T, store: S) -> Result<Self, Error> {
        let stored = store.load().map_err(|e| Error::Store(Arc::new(e)))?;
        let token_max_body = config.max_body_bytes();
        Ok(Inner {
            config: config.clone(),
            state: Mutex::new(State {
                engine: Engine::new(config, stored)?,
                performing: false,
            }),
            changed: Condvar::new(),
            transport,
            store,
            token_max_body,
            api: ApiSettings {
                timeout: DEFAULT_API_TIMEOUT,
                max_body: DEFAULT_API_MAX_BODY,
            },
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_credentials(&self, source: CredentialsSource) {
        self.lock().engine.set_credentials(source);
    }

    fn login(&self, credentials: Credentials) -> Result<(), Error> {
        let mut state = self.lock();
        let ticket = state.engine.ticket(Want::Login);
        state.engine.login(Instant::now(), credentials);
        self.changed.notify_all();
        self.run(state, ticket, None).map(|_| ())
    }

    fn start_authorization(&self) -> Result<AuthorizationRequest, Error> {
        let mut state = self.lock();
        state
            .engine
            .start_authorization(Instant::now())
            .map_err(Error::Authorization)
    }

    fn complete_authorization(&self, callback: &str) -> Result<(), Error> {
        let mut state = self.lock();
        let ticket = state.engine.ticket(Want::Login);
        state
            .engine
            .complete_authorization(Instant::now(), callback)
            .map_err(Error::Authorization)?;
        self.changed.notify_all();
        self.run(state, ticket, None).map(|_| ())
    }

    fn login_with_device(&self, on_code: impl FnOnce(&DeviceAuthorization)) -> Result<(), Error> {
        let mut state = self.lock();
        let ticket = state.engine.ticket(Want::Login);
        state
            .engine
            .start_device_authorization(Instant::now())
            .map_err(Error::Authorization)?;
        self.changed.notify_all();
        let mut on_code = Some(on_code);
        let mut show = |device: &DeviceAuthorization| {
            if let Some(on_code) = on_code.take() {
                on_code(device);
            }
        };
        self.run(state, ticket, Some(&mut show))
            .map(|_| ())
            .map_err(Error::for_device_login)
    }

    fn bearer(&self) -> Result<Bearer, Error> {
        let mut state = self.lock();
        let ticket = state.engine.ticket(Want::Bearer);
        match self.run(state, ticket, None)? {
            Some(bearer) => Ok(bearer),
            // A bearer wait ends with a token or an error; this only keeps the types honest.
            None => Err(Error::LoginRequired { reason: None }),
        }
    }

    fn logout(&self) -> Result<LogoutReport, Error> {
        let mut state = self.lock();
        let ticket = state.engine.ticket(Want::Settled);
        state.engine.logout(Instant::now());
        self.changed.notify_all();
        self.run(state, ticket, None)?;
        Ok(self.lock().engine.logout_report())
    }

    fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        // Before any IO, a token request included: the token must not go there at all.
        self.config
            .check_api_request(request.uri())
            .map_err(Error::ApiRequestRefused)?;
        let bearer = self.bearer()?;
        let response = self.call_api(request.clone(), &bearer)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        {
            let mut state = self.lock();
            state
                .engine
                .unauthorized(Instant::now(), bearer.generation(), response.headers());
        }
        self.changed.notify_all();
        let newer = self.bearer()?;
        if newer.generation() == bearer.generation() {
            // The flow kept the token (`insufficient_scope`, say): the 401 is the answer.
            return Ok(response);
        }
        log::api_retry(bearer.generation(), newer.generation());
        self.call_api(request, &newer)
    }

    fn call_api(
        &self,
        mut request: Request<Vec<u8>>,
        bearer: &Bearer,
    ) -> Result<Response<Vec<u8>>, Error> {
        bearer.authorize(&mut request);
        log::api_request(request.method(), request.uri());
        let deadline = Instant::now()
            .checked_add(self.api.timeout)
            .unwrap_or_else(Instant::now);
        let response = self
            .transport
            .send(request, deadline, self.api.max_body)
            .map_err(Error::Transport)?;
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

    /// Steps the flow for `ticket` until it is done, performing work when no one else does and
    /// waiting otherwise. Returns the token for a bearer wait, `None` for the others. A device
    /// login's user code is handed to `on_device`, without the lock.
    fn run<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        mut ticket: Ticket,
        mut on_device: Option<&mut dyn FnMut(&DeviceAuthorization)>,
    ) -> Result<Option<Bearer>, Error> {
        loop {
            let now = Instant::now();
            let may_perform = !state.performing;
            match state.engine.step(now, &mut ticket, may_perform) {
                Step::Ready(bearer) => return Ok(Some(bearer)),
                Step::Done => return Ok(None),
                Step::Fail(error) => return Err(error),
                Step::Work(work) => state = self.perform(state, work),
                Step::Device(device) => {
                    if let Some(show) = on_device.as_mut() {
                        drop(state);
                        show(&device);
                        state = self.lock();
                    }
                }
                Step::Wait(until) => {
                    let wait = until
                        .map(|until| until.saturating_duration_since(now))
                        .unwrap_or(MAX_WAIT)
                        .clamp(Duration::from_millis(1), MAX_WAIT);
                    state = self
                        .changed
                        .wait_timeout(state, wait)
                        .map(|(state, _)| state)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
        }
    }

    /// Performs one work item without the lock, reports it, and wakes the waiting callers.
    fn perform<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        work: Work,
    ) -> MutexGuard<'a, State> {
        state.performing = true;
        drop(state);
        let mut guard = Performing {
            inner: self,
            save: match &work {
                Work::Save(number, _) => Some(*number),
                _ => None,
            },
            armed: true,
        };
        let done = match work {
            Work::Send(request, deadline) => Performed::Sent(
                request.id,
                self.transport
                    .send(request.request, deadline, self.token_max_body),
            ),
            Work::Save(number, tokens) => Performed::Saved(number, self.store.save(&tokens)),
            Work::Clear => Performed::Cleared(self.store.clear()),
        };
        guard.armed = false;
        let mut state = self.lock();
        let now = Instant::now();
        match done {
            Performed::Sent(id, result) => state.engine.sent(now, id, result),
            Performed::Saved(number, result) => state.engine.saved(now, number, result),
            Performed::Cleared(result) => state.engine.cleared(result),
        }
        state.performing = false;
        self.changed.notify_all();
        state
    }
}

/// The outcome of a work item, to report once the lock is taken again.
enum Performed {
    Sent(RequestId, Result<Response<Vec<u8>>, TransportError>),
    Saved(u64, Result<(), StoreError>),
    Cleared(Result<(), StoreError>),
}

/// Hands the right to perform IO back if its holder unwinds (a transport or store panicked),
/// so that the other callers are not left waiting for it.
struct Performing<'a, T: Transport, S: TokenStore> {
    inner: &'a Inner<T, S>,
    save: Option<u64>,
    armed: bool,
}

impl<T: Transport, S: TokenStore> Drop for Performing<'_, T, S> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.inner.lock();
            state.engine.abandoned(Instant::now(), self.save);
            state.performing = false;
            self.inner.changed.notify_all();
        }
    }
}

/// Keeps a valid access token for one owner, blocking the calling thread for token requests.
///
/// Restores the tokens in its [`TokenStore`] when created, saves every new set before using
/// it, and deletes them when they are cleared. To share one client between threads, turn it
/// into a [`SharedBlockingClient`].
pub struct BlockingClient<T: Transport, S: TokenStore> {
    inner: Inner<T, S>,
}

impl<T: Transport, S: TokenStore> std::fmt::Debug for BlockingClient<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish_non_exhaustive()
    }
}

impl<T: Transport, S: TokenStore> BlockingClient<T, S> {
    /// A client for `config` sending through `transport` and keeping tokens in `store`. When
    /// the store holds tokens, the client carries on with them without logging in.
    ///
    /// Fails with [`Error::Store`] when the store cannot be read (a corrupt file included:
    /// it is left for the application to look at, or to delete before trying again) and with
    /// [`Error::Restore`] when its tokens cannot be used.
    pub fn new(config: Config, transport: T, store: S) -> Result<Self, Error> {
        Ok(BlockingClient {
            inner: Inner::new(config, transport, store)?,
        })
    }

    /// Answers the flow's need for a login (no tokens yet, a refresh token rejected or spent)
    /// with credentials from `source`, so that a backend with a dedicated user or with client
    /// credentials never needs a person. `source` returning `None` leaves callers with
    /// [`Error::LoginRequired`]. It is called with the client's lock held: keep it quick, and
    /// do not call the client from it.
    pub fn with_credentials(
        self,
        source: impl FnMut() -> Option<Credentials> + Send + 'static,
    ) -> Self {
        self.inner.set_credentials(Box::new(source));
        self
    }

    /// The timeout of API requests made with [`send`](Self::send) (default 30 s).
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.inner.api.timeout = timeout;
        self
    }

    /// The largest API response body [`send`](Self::send) accepts (default 16 MiB); a larger
    /// one is a [`TransportErrorKind::BodyTooLarge`] error.
    pub fn with_api_max_body(mut self, bytes: usize) -> Self {
        self.inner.api.max_body = bytes;
        self
    }

    /// Logs in and blocks until the new tokens are saved, or the login fails
    /// ([`Error::TokenRequest`], [`Error::Store`]). Tokens held before stay in use until then.
    pub fn login(&self, credentials: Credentials) -> Result<(), Error> {
        self.inner.login(credentials)
    }

    /// Starts an authorization-code login with PKCE (RFC 6749 §4.1, RFC 7636): returns the URL
    /// to open in the user's browser and the `state` it carries. Needs an authorization
    /// endpoint and a redirect URI in the configuration (see
    /// [`LoopbackRedirect`](crate::adapters::LoopbackRedirect) for desktop and command-line
    /// applications). A later call replaces a pending one.
    pub fn start_authorization(&self) -> Result<AuthorizationRequest, Error> {
        self.inner.start_authorization()
    }

    /// Completes the authorization-code login with the URL the browser was redirected to (or
    /// its query), and blocks until the tokens are saved and usable.
    ///
    /// Fails at once with [`Error::Authorization`] when the callback is refused: a `state`
    /// that is not the one sent, an `iss` naming another issuer (RFC 9207), an `error` from
    /// the server, or no login waiting for it. Otherwise it fails like
    /// [`login`](Self::login) when the code exchange does.
    pub fn complete_authorization(&self, callback: &str) -> Result<(), Error> {
        self.inner.complete_authorization(callback)
    }

    /// Logs in with the device authorization grant (RFC 8628) and blocks until the user has
    /// approved it and the tokens are saved. `on_code` is called once, without the client's
    /// lock, with the code to show the user and where to enter it; the client then polls at
    /// the interval the server asks (5 s more after each `slow_down`).
    ///
    /// Fails with [`Error::DeviceDenied`] when the user refuses, [`Error::DeviceExpired`]
    /// when the code expires first, [`Error::Authorization`] when no device authorization
    /// endpoint is configured, and otherwise like [`login`](Self::login).
    pub fn login_with_device(
        &self,
        on_code: impl FnOnce(&DeviceAuthorization),
    ) -> Result<(), Error> {
        self.inner.login_with_device(on_code)
    }

    /// A valid access token, blocking through a renewal (and its retries) when one is needed.
    /// Before attaching it to a request of one's own, check the request's URL with
    /// [`Config::check_api_request`], as [`send`](Self::send) does.
    ///
    /// Fails with [`Error::LoginRequired`] when only a new login can help and the credentials
    /// source (if any) gave none, [`Error::TokenRequest`] when the token request failed after
    /// its retries, and [`Error::Store`] when the new tokens could not be saved.
    pub fn bearer(&self) -> Result<Bearer, Error> {
        self.inner.bearer()
    }

    /// Sends an API request with the access token. On `401 Unauthorized` it reports the
    /// refusal to the flow, gets a newer token (renewing if needed) and sends the request
    /// again, once, if the token changed; otherwise the 401 response is returned.
    ///
    /// Any other status is returned as it is, a redirect (`3xx`) included: it is never
    /// followed, so the access token never goes anywhere but the request's own URL.
    ///
    /// Before any IO, the request's URL must pass [`Config::check_api_request`]: `https`
    /// (cleartext `http://` only where the token endpoint may use it) and, when the
    /// configuration names API origins, one of them; otherwise [`Error::ApiRequestRefused`].
    /// Other errors are those of [`bearer`](Self::bearer), and [`Error::Transport`] when the
    /// request itself failed.
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.inner.send(request)
    }

    /// Forgets the tokens and deletes them from the store. A token request under way is
    /// abandoned. With a revocation endpoint configured, it then revokes the refresh token
    /// and the access token (RFC 7009) and blocks until both revocations are done, retries
    /// included; what became of them is in the [`LogoutReport`]. A failed revocation does not
    /// fail the logout: the tokens are gone locally all the same.
    ///
    /// Fails only with [`Error::Store`] when the stored tokens could not be deleted.
    pub fn logout(&self) -> Result<LogoutReport, Error> {
        self.inner.logout()
    }

    /// Turns this client into one that can be cloned and shared between threads.
    pub fn into_shared(self) -> SharedBlockingClient<T, S> {
        SharedBlockingClient {
            inner: Arc::new(self.inner),
        }
    }
}

/// A [`BlockingClient`] that threads share: `Clone` (a reference count), and `Send + Sync`
/// when the transport is.
///
/// The flow sits behind a mutex never held across IO: one caller at a time performs the
/// token request while the others wait on a condition variable, and callers finding a ready
/// token take it without waiting (see the [module documentation](self)).
pub struct SharedBlockingClient<T: Transport, S: TokenStore> {
    inner: Arc<Inner<T, S>>,
}

impl<T: Transport, S: TokenStore> Clone for SharedBlockingClient<T, S> {
    fn clone(&self) -> Self {
        SharedBlockingClient {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Transport, S: TokenStore> std::fmt::Debug for SharedBlockingClient<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBlockingClient")
            .finish_non_exhaustive()
    }
}

impl<T: Transport, S: TokenStore> SharedBlockingClient<T, S> {
    /// A shared client; see [`BlockingClient::new`]. Configure it through
    /// [`BlockingClient`] and [`into_shared`](BlockingClient::into_shared) to set a
    /// credentials source or API settings.
    pub fn new(config: Config, transport: T, store: S) -> Result<Self, Error> {
        BlockingClient::new(config, transport, store).map(BlockingClient::into_shared)
    }

    /// Sets (or replaces) the credentials source; see [`BlockingClient::with_credentials`].
    pub fn set_credentials(&self, source: impl FnMut() -> Option<Credentials> + Send + 'static) {
        self.inner.set_credentials(Box::new(source));
    }

    /// See [`BlockingClient::login`].
    pub fn login(&self, credentials: Credentials) -> Result<(), Error> {
        self.inner.login(credentials)
    }

    /// See [`BlockingClient::start_authorization`].
    pub fn start_authorization(&self) -> Result<AuthorizationRequest, Error> {
        self.inner.start_authorization()
    }

    /// See [`BlockingClient::complete_authorization`].
    pub fn complete_authorization(&self, callback: &str) -> Result<(), Error> {
        self.inner.complete_authorization(callback)
    }

    /// See [`BlockingClient::login_with_device`].
    pub fn login_with_device(
        &self,
        on_code: impl FnOnce(&DeviceAuthorization),
    ) -> Result<(), Error> {
        self.inner.login_with_device(on_code)
    }

    /// See [`BlockingClient::bearer`].
    pub fn bearer(&self) -> Result<Bearer, Error> {
        self.inner.bearer()
    }

    /// See [`BlockingClient::send`].
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.inner.send(request)
    }

    /// See [`BlockingClient::logout`].
    pub fn logout(&self) -> Result<LogoutReport, Error> {
        self.inner.logout()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;
    use crate::adapters::store::MemoryStore;
    use crate::token::StoredTokens;

    fn config() -> Config {
        Config::builder("http://127.0.0.1:9/token", "client")
            .client_secret("secret")
            .request_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    }

    fn token_response(n: usize) -> Response<Vec<u8>> {
        let body = format!(
            r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{n}"}}"#
        );
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap()
    }

    /// A token endpoint numbering its tokens, and an API accepting `AT-n` for `n >= accept`.
    #[derive(Default)]
    struct World {
        token_requests: AtomicUsize,
        api_calls: AtomicUsize,
        accept_from: AtomicUsize,
    }

    impl World {
        fn handle(&self, request: Request<Vec<u8>>, delay: Duration) -> Response<Vec<u8>> {
            if request.uri().path() == "/token" {
                thread::sleep(delay);
                let n = self.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
                return token_response(n);
            }
            self.api_calls.fetch_add(1, Ordering::SeqCst);
            let presented = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer AT-"))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let status = if presented >= self.accept_from.load(Ordering::SeqCst) {
                200
            } else {
                401
            };
            Response::builder()
                .status(status)
                .header("www-authenticate", r#"Bearer error="invalid_token""#)
                .body(Vec::new())
                .unwrap()
        }
    }

    fn api_request() -> Request<Vec<u8>> {
        Request::get("http://127.0.0.1:9/api")
            .body(Vec::new())
            .unwrap()
    }

    #[test]
    fn a_herd_of_callers_makes_one_token_request() {
        let world = Arc::new(World::default());
        let seen = Arc::clone(&world);
        let transport = move |request| Ok(seen.handle(request, Duration::from_millis(200)));
        let client = BlockingClient::new(config(), transport, MemoryStore::new())
            .unwrap()
            .with_credentials(|| Some(Credentials::ClientCredentials))
            .into_shared();
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                thread::spawn(move || client.bearer().map(|b| b.generation()))
            })
            .collect();
        let generations: Vec<_> = callers
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .collect();
        assert!(generations.iter().all(|g| *g == generations[0]));
        assert_eq!(world.token_requests.load(Ordering::SeqCst), 1);
    }

    /// Fails the first `failures` saves.
    struct FlakyStore {
        failures: AtomicUsize,
        inner: MemoryStore,
    }

    impl TokenStore for FlakyStore {
        fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
            self.inner.load()
        }
        fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(StoreError::Io {
                    path: "tokens.json".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            self.inner.save(tokens)
        }
        fn clear(&self) -> Result<(), StoreError> {
            self.inner.clear()
        }
    }

    #[test]
    fn tokens_are_not_used_until_saved() {
        let world = Arc::new(World::default());
        let seen = Arc::clone(&world);
        let transport = move |request| Ok(seen.handle(request, Duration::ZERO));
        let store = FlakyStore {
            failures: AtomicUsize::new(1),
            inner: MemoryStore::new(),
        };
        let client = BlockingClient::new(config(), transport, store).unwrap();
        let error = client.login(Credentials::ClientCredentials).unwrap_err();
        assert!(matches!(error, Error::Store(_)), "{error:?}");
        assert!(client.inner.store.load().unwrap().is_none());
        // The next call saves them again, and only then uses them.
        let bearer = client.bearer().unwrap();
        assert_eq!(bearer.generation().get(), 1);
        assert!(client.inner.store.load().unwrap().is_some());
        assert_eq!(world.token_requests.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_401_is_retried_once_and_only_with_a_newer_token() {
        let world = Arc::new(World::default());
        world.accept_from.store(2, Ordering::SeqCst);
        let seen = Arc::clone(&world);
        let transport = move |request| Ok(seen.handle(request, Duration::ZERO));
        let client = BlockingClient::new(config(), transport, MemoryStore::new())
            .unwrap()
            .with_credentials(|| Some(Credentials::ClientCredentials));
        assert_eq!(client.send(api_request()).unwrap().status(), 200);
        assert_eq!(world.token_requests.load(Ordering::SeqCst), 2);
        assert_eq!(world.api_calls.load(Ordering::SeqCst), 2);

        // An API refusing every token: one renewal, one retry, then the 401 is the answer.
        world.accept_from.store(usize::MAX, Ordering::SeqCst);
        assert_eq!(client.send(api_request()).unwrap().status(), 401);
        assert_eq!(world.token_requests.load(Ordering::SeqCst), 3);
        assert_eq!(world.api_calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_panicking_transport_does_not_stall_the_others() {
        let world = Arc::new(World::default());
        let seen = Arc::clone(&world);
        let panics = Arc::new(AtomicUsize::new(1));
        let left = Arc::clone(&panics);
        let transport = move |request: Request<Vec<u8>>| {
            if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                panic!("transport bug");
            }
            Ok(seen.handle(request, Duration::ZERO))
        };
        let client = BlockingClient::new(config(), transport, MemoryStore::new())
            .unwrap()
            .with_credentials(|| Some(Credentials::ClientCredentials))
            .into_shared();
        let first = client.clone();
        assert!(thread::spawn(move || first.bearer()).join().is_err());
        // The lost request ends at its deadline and is retried.
        let started = Instant::now();
        assert!(client.bearer().is_ok());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A one-connection server on loopback: reads the request, then answers `reply` (or
    /// nothing) and holds the connection for `hold`.
    fn serve_once(reply: Option<&'static [u8]>, hold: Duration) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            if let Some(reply) = reply {
                let _ = stream.write_all(reply);
            }
            thread::sleep(hold);
        });
        port
    }

    fn ureq_get(
        port: u16,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let request = Request::post(format!("http://127.0.0.1:{port}/token"))
            .body(b"grant_type=client_credentials".to_vec())
            .unwrap();
        UreqTransport::new().send(request, Instant::now() + timeout, max_body)
    }

    #[test]
    fn ureq_errors_say_whether_the_request_went_out() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = ureq_get(closed, Duration::from_secs(5), 100).unwrap_err();
        assert_eq!(refused.kind(), TransportErrorKind::NotSent, "{refused}");

        let port = serve_once(None, Duration::ZERO);
        let dropped = ureq_get(port, Duration::from_secs(5), 100).unwrap_err();
        assert!(dropped.is_ambiguous(), "{dropped}");

        let port = serve_once(None, Duration::from_secs(3));
        let silent = ureq_get(port, Duration::from_millis(300), 100).unwrap_err();
        assert_eq!(silent.kind(), TransportErrorKind::TimedOut, "{silent}");
    }

    #[test]
    fn ureq_returns_error_statuses_and_reads_one_byte_past_the_limit() {
        let reply: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
            content-length: 38\r\nconnection: close\r\n\r\n{\"error\":\"invalid_grant\",\"x\":\"123456\"}";
        let port = serve_once(Some(reply), Duration::ZERO);
        let response = ureq_get(port, Duration::from_secs(5), 10).unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(response.body().len(), 11);
    }
}
