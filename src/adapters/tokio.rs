//! The async adapter: a [`TokenFlow`] driven on tokio, with a ready-made transport over
//! reqwest.
//!
//! [`AsyncClient`] is a cheap, cloneable handle. One driver task owns the flow and the
//! [`TokenStore`]; handles send it commands over a channel and wait on one-shot replies, so the
//! state never lives in a caller's future and dropping that future (a timeout, a `select!`, an
//! aborted task) cannot leave the flow half-updated. Token requests run as tasks of their own
//! and report back to the driver, so a slow token endpoint never holds up the driver, and the
//! current token is also kept in a lock the handles read directly: while it is valid,
//! [`AsyncClient::bearer`] never goes through the driver at all.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tokenflow::adapters::tokio::Error> {
//! use tokenflow::adapters::MemoryStore;
//! use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport};
//! use tokenflow::{Config, Credentials};
//!
//! let config = Config::builder("https://id.example.com/token", "my-client")
//!     .client_secret("my-secret")
//!     .scope("api offline_access")
//!     .build()
//!     .expect("a valid configuration");
//! let client = AsyncClient::builder(config, ReqwestTransport::new()?)
//!     .store(MemoryStore::new())
//!     .credentials(|| Some(Credentials::password("joe", "pw-joe")))
//!     .start()?;
//! let request = http::Request::get("https://api.example.com/resource")
//!     .body(Vec::new())
//!     .expect("a valid request");
//! let response = client.send(request).await?;
//! println!("{}", response.status());
//! client.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ::tokio::sync::{mpsc, oneshot};
use ::tokio::task::JoinSet;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::clock::HostClock;
use super::driver::{DRAIN_BOUND, seed};
use super::interactive::{
    DeviceEnd, LogoutReport, METADATA_KINDS, METADATA_MAX_BODY, METADATA_TIMEOUT, device_end,
    oversized_metadata, read_metadata, try_next_kind,
};
use super::store::{MemoryStore, StoreError, TokenStore};
use crate::discovery::{DiscoveryError, ProviderMetadata, metadata_request};
use crate::interactive::{AuthorizationError, AuthorizationRequest, DeviceAuthorization};
use crate::time::ClockAnchor;
use crate::token::RestoreError;
use crate::{
    Access, ApiRequestError, Bearer, Config, Credentials, Event, FlowError, Input,
    LoginRequiredReason, Output, RequestId, StoredTokens, TokenFlow, TransportError,
    TransportErrorKind,
};

/// Sends one HTTP request and reads its answer: what the adapter needs from an HTTP client.
///
/// The trait returns `impl Future + Send` rather than a boxed future, so an implementation is a
/// plain `async fn` or a closure and pays for no allocation of its own. The client stores the
/// transport behind one type-erased, boxing wrapper, which keeps [`AsyncClient`] free of a type
/// parameter; one small allocation per HTTP request is nothing next to the request itself.
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
/// The request's timeout is the time left until the deadline; the body is read chunk by chunk
/// and no further than `max_body + 1` bytes. Errors are mapped by what reqwest knows: a
/// connection failure is [`TransportErrorKind::NotSent`], a timeout
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
        let client = self.client.clone();
        async move {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::not_sent(
                    "the deadline passed before sending",
                ));
            }
            // One deadline for the whole exchange, body included, enforced below; a second
            // timer inside reqwest would only cost time on every call.
            let request = reqwest::Request::try_from(request)
                .map_err(|e| TransportError::not_sent(describe(&e)))?;
            let exchange = async {
                let mut response = client.execute(request).await.map_err(|e| map_error(&e))?;
                let mut head = http::Response::new(Vec::new());
                *head.status_mut() = response.status();
                *head.version_mut() = response.version();
                *head.headers_mut() = std::mem::take(response.headers_mut());
                let limit = max_body.saturating_add(1);
                let mut body = Vec::new();
                while body.len() < limit {
                    let Some(chunk) = response.chunk().await.map_err(|e| map_body_error(&e))?
                    else {
                        break;
                    };
                    let room = limit.saturating_sub(body.len());
                    body.extend(chunk.iter().take(room));
                }
                *head.body_mut() = body;
                Ok(head)
            };
            match ::tokio::time::timeout_at(deadline.into(), exchange).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::timed_out(
                    "no complete answer before the deadline",
                )),
            }
        }
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

/// Why an [`AsyncClient`] call failed. `Display` never shows a token, a password or a secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A token request failed for good, after its retries.
    Flow(FlowError),
    /// The tokens can no longer be renewed and no credentials source gave new credentials:
    /// call [`AsyncClient::login`].
    LoginRequired(LoginRequiredReason),
    /// There are no tokens (never logged in, or logged out) and no credentials source gave
    /// credentials: call [`AsyncClient::login`].
    NotLoggedIn,
    /// An API request made by [`AsyncClient::send`] (or the fetch of a metadata document)
    /// failed in transport.
    Transport(TransportError),
    /// An authorization-code login could not start, or its callback was refused (a wrong
    /// `state` or `iss`, an `error` from the server, no login waiting for it).
    Authorization(AuthorizationError),
    /// The user refused the device login (`access_denied`, RFC 8628 §3.5).
    DeviceDenied(FlowError),
    /// The device code expired before the user approved the login (`expired_token`, or its
    /// lifetime passed).
    DeviceExpired(FlowError),
    /// The authorization server's metadata could not be used.
    Discovery(DiscoveryError),
    /// The token store failed. The tokens stay usable in this process, but a rotated refresh
    /// token may not have been saved.
    Store(Arc<StoreError>),
    /// The tokens in the store could not be restored.
    Restore(RestoreError),
    /// A [`logout`](AsyncClient::logout) ended the wait.
    LoggedOut,
    /// The client was shut down (or its runtime ended).
    Shutdown,
    /// [`AsyncClientBuilder::start`] was called outside a tokio runtime.
    NoRuntime,
    /// The default HTTP client could not be built.
    HttpClient(Arc<reqwest::Error>),
    /// [`AsyncClient::send`] refused to attach the access token to the request, before any
    /// IO: cleartext `http://` off loopback, or an origin the configuration does not allow.
    ApiRequestRefused(ApiRequestError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Flow(error) => write!(f, "token request failed: {error}"),
            Error::LoginRequired(reason) => write!(f, "a new login is required: {reason}"),
            Error::NotLoggedIn => f.write_str("not logged in"),
            Error::Transport(error) => write!(f, "request failed: {error}"),
            Error::Authorization(error) => write!(f, "authorization failed: {error}"),
            Error::DeviceDenied(_) => f.write_str("the device login was denied by the user"),
            Error::DeviceExpired(_) => {
                f.write_str("the device code expired before the login was approved")
            }
            Error::Discovery(error) => write!(f, "discovery failed: {error}"),
            Error::Store(error) => write!(f, "token store failed: {error}"),
            Error::Restore(error) => write!(f, "cannot restore the stored tokens: {error}"),
            Error::LoggedOut => f.write_str("logged out while waiting for a token"),
            Error::Shutdown => f.write_str("the token client has shut down"),
            Error::NoRuntime => {
                f.write_str("the token client must be started within a tokio runtime")
            }
            Error::HttpClient(error) => write!(f, "cannot build the HTTP client: {error}"),
            Error::ApiRequestRefused(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Flow(error) => Some(error),
            Error::Transport(error) => Some(error),
            Error::Authorization(error) => Some(error),
            Error::DeviceDenied(error) | Error::DeviceExpired(error) => Some(error),
            Error::Discovery(error) => Some(error),
            Error::Store(error) => Some(error.as_ref()),
            Error::Restore(error) => Some(error),
            Error::HttpClient(error) => Some(error.as_ref()),
            Error::ApiRequestRefused(error) => Some(error),
            _ => None,
        }
    }
}

impl Error {
    /// Turns a device login's refusal or expiry into its own variant.
    fn for_device_login(self) -> Error {
        match self {
            Error::Flow(error) => match device_end(&error) {
                Some(DeviceEnd::Denied) => Error::DeviceDenied(error),
                Some(DeviceEnd::Expired) => Error::DeviceExpired(error),
                None => Error::Flow(error),
            },
            other => other,
        }
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
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tokenflow::adapters::tokio::{AsyncClient, ReqwestTransport, fetch_metadata};
///
/// let transport = ReqwestTransport::new()?;
/// let metadata = fetch_metadata(&transport, "https://id.example").await?;
/// let config = metadata.config_builder("my-device").scope("openid offline_access").build()?;
/// let client = AsyncClient::builder(config, transport).start()?;
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
    let mut last = Error::Discovery(DiscoveryError::InvalidIssuer("not an absolute URL"));
    for kind in METADATA_KINDS {
        let request = metadata_request(issuer, kind).map_err(Error::Discovery)?;
        let deadline = Instant::now()
            .checked_add(METADATA_TIMEOUT)
            .unwrap_or_else(Instant::now);
        let sent = transport.send(request, deadline, METADATA_MAX_BODY);
        let response = match ::tokio::time::timeout_at(deadline.into(), sent).await {
            Ok(result) => result.map_err(Error::Transport)?,
            Err(_) => {
                return Err(Error::Transport(TransportError::timed_out(
                    "no answer before the deadline",
                )));
            }
        };
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

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type TransportResult = Result<http::Response<Vec<u8>>, TransportError>;
/// The transport, type-erased so that neither the handle nor the driver is generic.
type SharedTransport =
    Arc<dyn Fn(http::Request<Vec<u8>>, Instant, usize) -> BoxFuture<TransportResult> + Send + Sync>;
/// Where credentials come from when the flow needs a login.
type CredentialsSource = Arc<dyn Fn() -> Option<Credentials> + Send + Sync>;

fn erase<T: AsyncTransport>(transport: T) -> SharedTransport {
    let transport = Arc::new(transport);
    Arc::new(move |request, deadline, max_body| {
        let transport = Arc::clone(&transport);
        Box::pin(async move { transport.send(request, deadline, max_body).await })
    })
}

/// How many commands may wait for the driver before senders wait for room.
const COMMAND_QUEUE: usize = 256;

/// Configures and starts an [`AsyncClient`].
#[must_use]
pub struct AsyncClientBuilder {
    config: Config,
    transport: SharedTransport,
    store: Arc<dyn TokenStore>,
    credentials: Option<CredentialsSource>,
    api_timeout: Duration,
    api_max_body: usize,
}

impl fmt::Debug for AsyncClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClientBuilder")
            .field("config", &self.config)
            .field("credentials", &self.credentials.is_some())
            .field("api_timeout", &self.api_timeout)
            .field("api_max_body", &self.api_max_body)
            .finish_non_exhaustive()
    }
}

impl AsyncClientBuilder {
    /// Keeps the tokens in `store` (default: a [`MemoryStore`]).
    pub fn store(self, store: impl TokenStore) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// Keeps the tokens in a store shared with other code (or with another client, one at a
    /// time: two clients using one refresh token at once would spend it twice).
    pub fn shared_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self
    }

    /// Answers every need for a login (no tokens yet, a rejected or expired refresh token, no
    /// refresh token at all) by calling `source` and logging in with what it gives, so a
    /// backend holding its own credentials never sees [`Error::LoginRequired`]. `None` means
    /// "no credentials now": waiting callers then get the error.
    ///
    /// It is called on tokio's blocking pool, so it may read a file or a secret store.
    pub fn credentials(
        mut self,
        source: impl Fn() -> Option<Credentials> + Send + Sync + 'static,
    ) -> Self {
        self.credentials = Some(Arc::new(source));
        self
    }

    /// How long an API request made by [`AsyncClient::send`] may take (default 30 s).
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// The largest API response body [`AsyncClient::send`] accepts (default 16 MiB); a larger
    /// one is an error of kind [`TransportErrorKind::BodyTooLarge`].
    pub fn api_max_body(mut self, bytes: usize) -> Self {
        self.api_max_body = bytes;
        self
    }

    /// Restores the tokens found in the store, if any, and starts the driver task on the
    /// current tokio runtime. The store is read once, here, on the calling thread.
    pub fn start(self) -> Result<AsyncClient, Error> {
        let runtime = ::tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let stored = self.store.load().map_err(|e| Error::Store(Arc::new(e)))?;
        let (clock, now, wall) = HostClock::start();
        let anchor = ClockAnchor::new(now, wall);
        let max_body = self.config.max_body_bytes();
        let api_config = self.config.clone();
        let (flow, expires_at) = match stored {
            Some(stored) => {
                let expires_at = access_expiry(&clock, &anchor, &stored);
                let flow = TokenFlow::restore(self.config, stored, seed(), now, wall)
                    .map_err(Error::Restore)?;
                (flow, expires_at)
            }
            None => (TokenFlow::new(self.config, seed(), now, wall), None),
        };
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let cache = Arc::new(RwLock::new(None));
        let driver = Driver {
            flow,
            clock,
            anchor,
            store: self.store,
            transport: Arc::clone(&self.transport),
            credentials: self.credentials,
            cache: Arc::clone(&cache),
            expires_at,
            max_body,
            bearer_waiters: Vec::new(),
            login_waiters: Vec::new(),
            device_waiters: Vec::new(),
            logout_waiters: Vec::new(),
            logout_report: LogoutReport::default(),
            logout_failure: None,
            store_failure: None,
            login_reason: None,
            login_events: 0,
            tasks: JoinSet::new(),
            task_requests: HashMap::new(),
            wake: None,
        };
        runtime.spawn(driver.run(inbox));
        Ok(AsyncClient {
            inner: Arc::new(Handle {
                config: api_config,
                commands,
                cache,
                transport: self.transport,
                api_timeout: self.api_timeout,
                api_max_body: self.api_max_body,
            }),
        })
    }
}

/// The access token's expiry on the monotonic clock, read from stored tokens.
fn access_expiry(
    clock: &HostClock,
    anchor: &ClockAnchor,
    stored: &StoredTokens,
) -> Option<Instant> {
    stored.access_token.as_ref()?;
    Some(clock.instant(anchor.timestamp_at(stored.expires_at?)?))
}

/// A handle on a token flow driven on tokio: ask it for a token, or let it make authorized
/// API requests. Clones share one flow; the flow stops when the last handle is dropped or at
/// [`shutdown`](Self::shutdown).
///
/// Any number of callers may ask at once: while a token is valid they get it without waiting
/// on anything but a lock read; when it must be renewed they all wait on one token request.
/// Dropping a caller's future at any point is harmless.
///
/// When [`Event::TokensUpdated`] cannot be saved, the flow carries on with the new tokens in
/// memory (it has no way back) and a [`login`](Self::login) waiting on them gets
/// [`Error::Store`]; a refresh waiting on them gets its token.
#[derive(Clone)]
pub struct AsyncClient {
    inner: Arc<Handle>,
}

struct Handle {
    /// The configuration, for the check of where the access token may go.
    config: Config,
    commands: mpsc::Sender<Command>,
    cache: Arc<RwLock<Option<Cached>>>,
    transport: SharedTransport,
    api_timeout: Duration,
    api_max_body: usize,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("running", &!self.inner.commands.is_closed())
            .field("api_timeout", &self.inner.api_timeout)
            .finish_non_exhaustive()
    }
}

/// The current token as handles see it, and until when it may be handed out without asking
/// the driver.
#[derive(Clone)]
struct Cached {
    bearer: Bearer,
    valid_until: Instant,
}

enum Command {
    Bearer(oneshot::Sender<Result<Bearer, Error>>),
    Unauthorized {
        generation: crate::Generation,
        www_authenticate: Vec<HeaderValue>,
        reply: oneshot::Sender<Result<Bearer, Error>>,
    },
    Login {
        credentials: Credentials,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    StartAuthorization(oneshot::Sender<Result<AuthorizationRequest, Error>>),
    CompleteAuthorization {
        callback: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    DeviceLogin {
        code: oneshot::Sender<DeviceAuthorization>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Logout(oneshot::Sender<Result<LogoutReport, Error>>),
    Shutdown(oneshot::Sender<()>),
}

impl AsyncClient {
    /// Starts a client with `transport` and `store` and no credentials source; see
    /// [`AsyncClient::builder`] for the other settings.
    pub fn start(
        config: Config,
        transport: impl AsyncTransport,
        store: impl TokenStore,
    ) -> Result<AsyncClient, Error> {
        AsyncClient::builder(config, transport).store(store).start()
    }

    /// A builder using `transport` for token requests and for [`send`](Self::send).
    pub fn builder(config: Config, transport: impl AsyncTransport) -> AsyncClientBuilder {
        AsyncClientBuilder {
            config,
            transport: erase(transport),
            store: Arc::new(MemoryStore::new()),
            credentials: None,
            api_timeout: Duration::from_secs(30),
            api_max_body: 16 * 1024 * 1024,
        }
    }

    /// Logs in with `credentials`, replacing any login or renewal under way. Resolves when the
    /// new tokens are stored and usable.
    pub async fn login(&self, credentials: Credentials) -> Result<(), Error> {
        self.ask(|reply| Command::Login { credentials, reply })
            .await
    }

    /// Starts an authorization-code login with PKCE (RFC 6749 §4.1, RFC 7636): returns the URL
    /// to open in the user's browser and the `state` it carries. Needs an authorization
    /// endpoint and a redirect URI in the configuration (see
    /// [`LoopbackRedirect`](crate::adapters::LoopbackRedirect) for desktop and command-line
    /// applications). A later call replaces a pending one.
    pub async fn start_authorization(&self) -> Result<AuthorizationRequest, Error> {
        self.ask(Command::StartAuthorization).await
    }

    /// Completes the authorization-code login with the URL the browser was redirected to (or
    /// its query). Resolves when the tokens are stored and usable.
    ///
    /// Fails at once with [`Error::Authorization`] when the callback is refused: a `state`
    /// that is not the one sent, an `iss` naming another issuer (RFC 9207), an `error` from
    /// the server, or no login waiting for it. Otherwise it fails like
    /// [`login`](Self::login) when the code exchange does.
    pub async fn complete_authorization(&self, callback: &str) -> Result<(), Error> {
        let callback = callback.to_owned();
        self.ask(|reply| Command::CompleteAuthorization { callback, reply })
            .await
    }

    /// Logs in with the device authorization grant (RFC 8628). `on_code` is called once with
    /// the code to show the user and where to enter it; the client then polls at the interval
    /// the server asks (5 s more after each `slow_down`). Resolves when the user has approved
    /// and the tokens are stored and usable.
    ///
    /// Fails with [`Error::DeviceDenied`] when the user refuses, [`Error::DeviceExpired`]
    /// when the code expires first, [`Error::Authorization`] when no device authorization
    /// endpoint is configured, and otherwise like [`login`](Self::login). Dropping the future
    /// does not stop the polling; a later login or [`logout`](Self::logout) does.
    pub async fn login_with_device(
        &self,
        on_code: impl FnOnce(&DeviceAuthorization) + Send,
    ) -> Result<(), Error> {
        let (code, shown) = oneshot::channel();
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::DeviceLogin { code, reply })
            .await
            .map_err(|_| Error::Shutdown)?;
        let mut answer = std::pin::pin!(answer);
        ::tokio::select! {
            biased;
            device = shown => {
                // The driver drops the sender when the login ends before a code was issued.
                if let Ok(device) = device {
                    on_code(&device);
                }
            }
            outcome = &mut answer => {
                return outcome
                    .unwrap_or(Err(Error::Shutdown))
                    .map_err(Error::for_device_login);
            }
        }
        answer
            .await
            .unwrap_or(Err(Error::Shutdown))
            .map_err(Error::for_device_login)
    }

    /// A valid access token: at once when one is held, otherwise after the one token request
    /// that every waiting caller shares (a renewal, or a login through the credentials
    /// source). Before attaching it to a request of one's own, check the request's URL with
    /// [`Config::check_api_request`], as [`send`](Self::send) does.
    pub async fn bearer(&self) -> Result<Bearer, Error> {
        if self.inner.commands.is_closed() {
            return Err(Error::Shutdown);
        }
        if let Some(bearer) = self.cached(Instant::now()) {
            return Ok(bearer);
        }
        self.ask(Command::Bearer).await
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
        let generation = bearer.generation();
        self.forget(generation);
        let www_authenticate = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .cloned()
            .collect();
        let current = self
            .ask(|reply| Command::Unauthorized {
                generation,
                www_authenticate,
                reply,
            })
            .await?;
        Ok((current.generation() > generation).then_some(current))
    }

    /// Sends an API request with the current token. After a 401 it reports the refusal and
    /// retries exactly once, and only with a newer token; otherwise the 401 is returned as it
    /// came. Uses the client's transport, with the builder's `api_timeout` and `api_max_body`.
    ///
    /// The retry is a clone of the request, extensions included. A redirect (`3xx`) is
    /// returned as it is, never followed, so the access token never goes anywhere but the
    /// request's own URL.
    ///
    /// Before any IO, the request's URL must pass [`Config::check_api_request`]: `https`
    /// (cleartext `http://` only where the token endpoint may use it) and, when the
    /// configuration names API origins, one of them; otherwise [`Error::ApiRequestRefused`].
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        // Before any IO, a token request included: the token must not go there at all.
        self.inner
            .config
            .check_api_request(request.uri())
            .map_err(Error::ApiRequestRefused)?;
        let bearer = self.bearer().await?;
        let retry = request.clone();
        let response = self.call(request, &bearer).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        match self.unauthorized(&bearer, response.headers()).await? {
            Some(newer) => self.call(retry, &newer).await,
            None => Ok(response),
        }
    }

    /// Forgets the tokens, in the store too. Callers waiting for a token get
    /// [`Error::LoggedOut`]. With a credentials source, the next call logs in again.
    ///
    /// With a revocation endpoint configured, the refresh token and then the access token are
    /// revoked (RFC 7009), and this resolves once both revocations are done, retries included;
    /// what became of them is in the [`LogoutReport`]. A failed revocation does not fail the
    /// logout: the tokens are gone locally all the same. Fails with [`Error::Store`] when the
    /// stored tokens could not be deleted.
    pub async fn logout(&self) -> Result<LogoutReport, Error> {
        self.ask(Command::Logout).await
    }

    /// Stops the driver: requests under way are abandoned, waiting callers get
    /// [`Error::Shutdown`], and so does every later call on any clone of this handle. The
    /// stored tokens stay for the next start. Returns once the driver has ended.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown(reply))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        self.clear_cache();
    }

    async fn call(
        &self,
        mut request: http::Request<Vec<u8>>,
        bearer: &Bearer,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        bearer.authorize(&mut request);
        let deadline = Instant::now()
            .checked_add(self.inner.api_timeout)
            .unwrap_or_else(Instant::now);
        let limit = self.inner.api_max_body;
        let response = (self.inner.transport)(request, deadline, limit)
            .await
            .map_err(Error::Transport)?;
        if response.body().len() > limit {
            return Err(Error::Transport(TransportError::new(
                TransportErrorKind::BodyTooLarge,
                format!("the API response body exceeds {limit} bytes"),
            )));
        }
        Ok(response)
    }

    /// Sends a command and waits for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(command(reply))
            .await
            .map_err(|_| Error::Shutdown)?;
        answer.await.unwrap_or(Err(Error::Shutdown))
    }

    fn cached(&self, now: Instant) -> Option<Bearer> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .as_ref()
            .filter(|cached| now < cached.valid_until)
            .map(|cached| cached.bearer.clone())
    }

    /// Stops handing out the token of `generation` from the cache; the driver decides what is
    /// handed out next.
    fn forget(&self, generation: crate::Generation) {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache
            .as_ref()
            .is_some_and(|cached| cached.bearer.generation() == generation)
        {
            *cache = None;
        }
    }

    fn clear_cache(&self) {
        *self
            .inner
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// Owns the flow and the store; the only place either is touched.
struct Driver {
    flow: TokenFlow,
    clock: HostClock,
    anchor: ClockAnchor,
    store: Arc<dyn TokenStore>,
    transport: SharedTransport,
    credentials: Option<CredentialsSource>,
    cache: Arc<RwLock<Option<Cached>>>,
    /// The expiry of the access token in the latest tokens handed out for storage.
    expires_at: Option<Instant>,
    max_body: usize,
    bearer_waiters: Vec<oneshot::Sender<Result<Bearer, Error>>>,
    login_waiters: Vec<oneshot::Sender<Result<(), Error>>>,
    /// Device logins waiting for their user code.
    device_waiters: Vec<oneshot::Sender<DeviceAuthorization>>,
    /// Logouts waiting for their revocations.
    logout_waiters: Vec<oneshot::Sender<Result<LogoutReport, Error>>>,
    /// The revocation outcomes since the last logout.
    logout_report: LogoutReport,
    /// The stored tokens could not be deleted at the last logout.
    logout_failure: Option<Arc<StoreError>>,
    /// A save that failed since the last release of a token.
    store_failure: Option<Arc<StoreError>>,
    /// Why a login is needed, as last announced; cleared when a token is released.
    login_reason: Option<LoginRequiredReason>,
    /// How many `LoginRequired` events were handled, to tell whether a drain saw one.
    login_events: u64,
    tasks: JoinSet<(RequestId, TransportResult)>,
    task_requests: HashMap<::tokio::task::Id, RequestId>,
    wake: Option<Instant>,
}

impl Driver {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        // Whatever the restored flow wants to do at once (a proactive renewal).
        self.flow.handle_input(self.clock.now(), Input::Timeout);
        self.drain().await;
        let shutdown = loop {
            let wake = self.wake;
            let timer = async move {
                match wake {
                    Some(at) => ::tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            ::tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    Some(command) => self.on_command(command).await,
                    None => break None,
                },
                Some(finished) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.on_finished(finished).await;
                }
                () = timer => {
                    self.flow.handle_input(self.clock.now(), Input::Timeout);
                    self.drain().await;
                }
            }
        };
        inbox.close();
        self.tasks.abort_all();
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = None;
        for waiter in self.bearer_waiters.drain(..) {
            let _ = waiter.send(Err(Error::Shutdown));
        }
        for waiter in self.login_waiters.drain(..) {
            let _ = waiter.send(Err(Error::Shutdown));
        }
        for waiter in self.logout_waiters.drain(..) {
            let _ = waiter.send(Err(Error::Shutdown));
        }
        self.device_waiters.clear();
        // Commands still queued are dropped with the inbox: their callers see `Shutdown`.
        drop(inbox);
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Bearer(reply) => self.answer_access(reply).await,
            Command::Unauthorized {
                generation,
                www_authenticate,
                reply,
            } => {
                self.flow.handle_input(
                    self.clock.now(),
                    Input::Unauthorized {
                        generation,
                        www_authenticate,
                    },
                );
                self.answer_access(reply).await;
            }
            Command::Login { credentials, reply } => {
                self.prune();
                self.login_waiters.push(reply);
                self.flow.login(self.clock.now(), credentials);
                self.drain().await;
            }
            Command::StartAuthorization(reply) => {
                let request = self
                    .flow
                    .start_authorization(self.clock.now())
                    .map_err(Error::Authorization);
                let _ = reply.send(request);
                self.drain().await;
            }
            Command::CompleteAuthorization { callback, reply } => {
                match self
                    .flow
                    .complete_authorization(self.clock.now(), &callback)
                {
                    Ok(()) => {
                        self.prune();
                        self.login_waiters.push(reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(Error::Authorization(error)));
                    }
                }
                self.drain().await;
            }
            Command::DeviceLogin { code, reply } => {
                match self.flow.start_device_authorization(self.clock.now()) {
                    Ok(()) => {
                        self.prune();
                        self.login_waiters.push(reply);
                        self.device_waiters.push(code);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(Error::Authorization(error)));
                    }
                }
                self.drain().await;
            }
            Command::Logout(reply) => {
                self.logout_report = LogoutReport::default();
                self.logout_failure = None;
                self.flow.logout(self.clock.now());
                self.login_reason = None;
                self.set_cache(None);
                for waiter in self.bearer_waiters.drain(..) {
                    let _ = waiter.send(Err(Error::LoggedOut));
                }
                for waiter in self.login_waiters.drain(..) {
                    let _ = waiter.send(Err(Error::LoggedOut));
                }
                self.device_waiters.clear();
                self.store_failure = None;
                self.logout_waiters.push(reply);
                self.drain().await;
            }
            // Handled by the loop.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// Asks the flow for a token for `reply`: answers at once, or queues it until the flow
    /// has news.
    async fn answer_access(&mut self, reply: oneshot::Sender<Result<Bearer, Error>>) {
        match self.flow.access(self.clock.now()) {
            Access::Ready(bearer) => {
                self.cache_bearer(&bearer);
                let _ = reply.send(Ok(bearer));
                self.drain().await;
            }
            Access::Pending => {
                self.set_cache(None);
                self.prune();
                self.bearer_waiters.push(reply);
                self.drain().await;
            }
            Access::LoginRequired => {
                self.set_cache(None);
                self.prune();
                self.bearer_waiters.push(reply);
                let seen = self.login_events;
                self.drain().await;
                // Not announced now (no tokens at all, or announced earlier): answer it here.
                if self.login_events == seen {
                    self.need_login().await;
                    self.drain().await;
                }
            }
        }
    }

    async fn on_finished(
        &mut self,
        finished: Result<
            (::tokio::task::Id, (RequestId, TransportResult)),
            ::tokio::task::JoinError,
        >,
    ) {
        let (id, result) = match finished {
            Ok((task, (id, result))) => {
                self.task_requests.remove(&task);
                (id, result)
            }
            Err(error) => {
                let Some(id) = self.task_requests.remove(&error.id()) else {
                    return;
                };
                (
                    id,
                    Err(TransportError::interrupted(
                        "the transport task ended abnormally",
                    )),
                )
            }
        };
        let input = match result {
            Ok(response) => Input::Response { id, response },
            Err(error) => Input::Failed { id, error },
        };
        self.flow.handle_input(self.clock.now(), input);
        self.drain().await;
    }

    /// Drains the flow until `Idle`, doing what each output asks.
    async fn drain(&mut self) {
        for _ in 0..DRAIN_BOUND {
            match self.flow.poll_output() {
                Output::Idle { until } => {
                    self.wake = until.map(|until| self.clock.instant(until));
                    self.settle_logouts();
                    return;
                }
                Output::Send(request) => {
                    let transport = Arc::clone(&self.transport);
                    let max_body = self.max_body;
                    let id = request.id;
                    let deadline = self.clock.instant(request.deadline);
                    let task = self.tasks.spawn(async move {
                        let sent = transport(request.request, deadline, max_body);
                        let result = match ::tokio::time::timeout_at(deadline.into(), sent).await {
                            Ok(result) => result,
                            Err(_) => {
                                Err(TransportError::timed_out("no answer before the deadline"))
                            }
                        };
                        (id, result)
                    });
                    self.task_requests.insert(task.id(), id);
                }
                Output::Event(event) => self.on_event(event).await,
            }
        }
        // Never expected: let commands and answers in, then carry on at once.
        self.wake = Some(Instant::now());
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::TokensUpdated(stored) => {
                self.expires_at = access_expiry(&self.clock, &self.anchor, &stored);
                let store = Arc::clone(&self.store);
                // The flow releases the new token at the next poll: the save must be done by
                // then, so the drain waits for it.
                let saved = ::tokio::task::spawn_blocking(move || store.save(&stored)).await;
                if let Some(error) = store_outcome(saved) {
                    self.store_failure = Some(error);
                }
            }
            Event::TokensCleared => {
                self.expires_at = None;
                self.set_cache(None);
                let store = Arc::clone(&self.store);
                let cleared = ::tokio::task::spawn_blocking(move || store.clear()).await;
                if let Some(error) = store_outcome(cleared) {
                    self.logout_failure = Some(Arc::clone(&error));
                    self.store_failure = Some(error);
                }
            }
            Event::AccessReady { .. } => {
                let Access::Ready(bearer) = self.flow.access(self.clock.now()) else {
                    return;
                };
                self.login_reason = None;
                self.cache_bearer(&bearer);
                for waiter in self.bearer_waiters.drain(..) {
                    let _ = waiter.send(Ok(bearer.clone()));
                }
                let outcome = match self.store_failure.take() {
                    Some(error) => Err(Error::Store(error)),
                    None => Ok(()),
                };
                for waiter in self.login_waiters.drain(..) {
                    let _ = waiter.send(outcome.clone());
                }
            }
            Event::LoginRequired { reason } => {
                self.login_events += 1;
                self.login_reason = Some(reason);
                self.need_login().await;
            }
            Event::Failed(error) => {
                // A device login that failed before its code was shown shows nothing.
                self.device_waiters.clear();
                for waiter in self.bearer_waiters.drain(..) {
                    let _ = waiter.send(Err(Error::Flow(error.clone())));
                }
                for waiter in self.login_waiters.drain(..) {
                    let _ = waiter.send(Err(Error::Flow(error.clone())));
                }
            }
            Event::DeviceAuthorization(device) => {
                for waiter in self.device_waiters.drain(..) {
                    let _ = waiter.send(device.clone());
                }
            }
            event @ (Event::Revoked { .. } | Event::RevocationFailed { .. }) => {
                self.logout_report.record(&event);
            }
            // The adapters do not configure a shared store yet.
            Event::Store(_) => {}
        }
    }

    /// Answers the logouts waiting once no revocation is left.
    fn settle_logouts(&mut self) {
        if self.logout_waiters.is_empty() || self.flow.revoking() {
            return;
        }
        let outcome = match self.logout_failure.take() {
            Some(error) => {
                self.store_failure = None;
                Err(Error::Store(error))
            }
            None => Ok(self.logout_report.clone()),
        };
        for waiter in self.logout_waiters.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// A login is needed: start one with the credentials source, or tell the waiting callers.
    async fn need_login(&mut self) {
        if let Some(source) = self.credentials.clone() {
            let given = ::tokio::task::spawn_blocking(move || source())
                .await
                .ok()
                .flatten();
            if let Some(credentials) = given {
                self.flow.login(self.clock.now(), credentials);
                return;
            }
        }
        let error = match &self.login_reason {
            Some(reason) => Error::LoginRequired(reason.clone()),
            None => Error::NotLoggedIn,
        };
        for waiter in self.bearer_waiters.drain(..) {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    fn cache_bearer(&self, bearer: &Bearer) {
        let cached = self.expires_at.map(|valid_until| Cached {
            bearer: bearer.clone(),
            valid_until,
        });
        self.set_cache(cached);
    }

    fn set_cache(&self, cached: Option<Cached>) {
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = cached;
    }

    /// Forgets callers that stopped waiting.
    fn prune(&mut self) {
        self.bearer_waiters.retain(|waiter| !waiter.is_closed());
        self.login_waiters.retain(|waiter| !waiter.is_closed());
        self.device_waiters.retain(|waiter| !waiter.is_closed());
    }
}

fn store_outcome(
    outcome: Result<Result<(), StoreError>, ::tokio::task::JoinError>,
) -> Option<Arc<StoreError>> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(Arc::new(error)),
        Err(_) => Some(Arc::new(StoreError::Io {
            path: std::path::PathBuf::new(),
            source: std::io::Error::other("the token store panicked"),
        })),
    }
}

// The handle is shared across tasks and threads.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<AsyncClient>();
};
