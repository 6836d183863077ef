//! The blocking client: [`BlockingClient`], over any [`Transport`] (a ready-made one on
//! `ureq`: [`UreqTransport`]).
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
//!     .allow_api_origin("https://api.example.com") // the token goes there and nowhere else
//!     .build()?;
//! let client = BlockingClient::builder(config, UreqTransport::new())
//!     .store(FileStore::new("tokens.json"))
//!     // A backend with a dedicated user logs in again by itself when it must.
//!     .credentials(|| Some(Credentials::password("service-user", "its-password")))
//!     .build()?;
//! let request = http::Request::get("https://api.example.com/things").body(Vec::new())?;
//! let response = client.send(request)?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! # How callers share one flow
//!
//! All the bookkeeping is the [engine](super)'s; this client only performs IO and waits. A
//! caller holding a valid token takes it from the token at hand without any lock but a shared
//! read. Otherwise it locks the engine and gets one of:
//!
//! * a ready token: it takes it and goes, without waiting for anyone;
//! * work (a token request to send, tokens to save or delete, a request to the shared store
//!   of [replicas](ClientBuilder::replicas), the credentials source to ask): it unlocks,
//!   performs that one item, locks again and reports the outcome, then wakes everyone
//!   waiting on the condition variable;
//! * nothing to do yet (someone else performs the IO, or a retry is backing off): it waits on
//!   the condition variable, at most until the flow's next deadline, then asks again.
//!
//! So a herd of callers hitting an expired token makes one token request; the others wait for
//! its outcome (`AccessReady`, or the failure, which each of them gets). A proactive renewal
//! is performed by the first caller that finds it due; the others keep using the current
//! token meanwhile. Tokens are saved before their access token is released, and store writes
//! are performed one at a time, in order. A caller that panics while performing an item
//! reports it abandoned as it unwinds.
//!
//! There is no background thread: the flow moves when callers call. The one exception is a
//! replica's change feed ([`store_changes`](ClientBuilder::store_changes)), waited on by a
//! thread of its own that reports each change of the shared store and wakes the callers; it
//! ends within a second of the client's last clone.

use std::sync::{Arc, Condvar};
use std::thread;
use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response, StatusCode};

use crate::adapters::builder::{Client, ClientBuilder, sealed};
use crate::adapters::driver::wait_for;
use crate::adapters::engine::{Performed, Step, Ticket, Want, Work};
use crate::adapters::interactive::{LogoutReport, METADATA_MAX_BODY, MetadataFetch};
use crate::adapters::log;
use crate::adapters::shared::{Assignment, Shared, Wake, watch_changes};
use crate::adapters::store::StoreError;
use crate::discovery::ProviderMetadata;
use crate::grant::Credentials;
use crate::input::TransportError;
use crate::interactive::{AuthorizationRequest, DeviceAuthorization};
use crate::output::Bearer;
use crate::{Config, TokenInfo};

pub use crate::adapters::error::Error;
pub use crate::adapters::ureq_transport::UreqTransport;

/// Performs one HTTP exchange, blocking.
///
/// `deadline` is when the caller stops waiting (use it for the timeout); `max_body` is the
/// largest body the caller wants: read at most `max_body + 1` bytes, so that a larger body is
/// recognised without reading it all. Any status, 4xx and 5xx included, is a response, not an
/// error. Report failures with the [`TransportErrorKind`](crate::TransportErrorKind) that says
/// whether the request may have reached the server ([`TransportError::not_sent`] only when it
/// cannot have).
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

    /// Told once, when a client is built over this transport, how long each of its API
    /// requests may take ([`ClientBuilder::api_timeout`]; `Duration::MAX` for no deadline).
    /// `send` is still given each request's deadline; a transport may prepare for this one
    /// ([`UreqTransport`] sets its agent's timeouts to it, so that API requests need no
    /// configuration of their own). The default does nothing.
    fn set_api_timeout(&mut self, timeout: Duration) {
        let _ = timeout;
    }
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

/// Fetches the metadata of `issuer` through `transport`: the OpenID Connect document
/// (`/.well-known/openid-configuration`), or the RFC 8414 one when that is not found. The
/// document's `issuer` must be exactly `issuer` (RFC 8414 §3.3).
///
/// Build the client's configuration from it with [`ProviderMetadata::config_builder`], which
/// fills in the endpoints and the issuer that authorization responses are checked against:
///
/// ```no_run
/// use tokenflow::adapters::blocking::{BlockingClient, UreqTransport, fetch_metadata};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = UreqTransport::new();
/// let metadata = fetch_metadata(&transport, "https://id.example")?;
/// let config = metadata.config_builder("my-device").scope("openid offline_access").build()?;
/// let client = BlockingClient::builder(config, transport).build()?;
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
    let mut fetch = MetadataFetch::new(issuer);
    while let Some((request, deadline)) = fetch.next_request()? {
        if let Some(outcome) = fetch.answer(transport.send(request, deadline, METADATA_MAX_BODY)) {
            return outcome;
        }
    }
    Err(fetch.failure())
}

impl Wake for Condvar {
    fn wake_all(&self) {
        self.notify_all();
    }
}

/// Keeps a valid access token for any number of threads, blocking the calling thread for
/// token requests. `Clone` (a reference count), and `Send + Sync` when the transport is.
///
/// Made with [`builder`](Self::builder). Restores the tokens in its
/// [`TokenStore`](crate::adapters::TokenStore) when built, saves every new set before using
/// it, and deletes them when they are cleared. See the [module documentation](self) for how
/// callers share it.
pub struct BlockingClient<T = UreqTransport> {
    shared: Arc<Shared<T, Condvar>>,
}

impl<T> Clone for BlockingClient<T> {
    fn clone(&self) -> Self {
        BlockingClient {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> std::fmt::Debug for BlockingClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish_non_exhaustive()
    }
}

impl<T: Transport> sealed::Sealed for BlockingClient<T> {}

impl<T: Transport> Client for BlockingClient<T> {
    type Transport = T;
}

impl<T: Transport> ClientBuilder<BlockingClient<T>> {
    /// Restores the tokens found in the store, if any, and makes the client. When the store
    /// holds tokens, the client carries on with them without logging in.
    ///
    /// Fails with [`Error::Store`] when the store cannot be read (a corrupt file included:
    /// it is left for the application to look at, or to delete before trying again) and with
    /// [`Error::Restore`] when its tokens cannot be used.
    ///
    /// With [`replicas`](ClientBuilder::replicas) it reads the shared store instead, and
    /// fails with [`Error::ReplicaSetup`] on the mistakes that method names. A change feed
    /// ([`store_changes`](ClientBuilder::store_changes)) gets a thread of its own, named
    /// `tokenflow-store-changes`; [`Error::Store`] if it cannot be started.
    pub fn build(mut self) -> Result<BlockingClient<T>, Error> {
        self.transport.set_api_timeout(self.api.timeout);
        let (shared, changes) = Shared::new(self, Condvar::new())?;
        let shared = Arc::new(shared);
        if let Some(feed) = changes {
            let hub = shared.hub();
            thread::Builder::new()
                .name("tokenflow-store-changes".into())
                .spawn(move || watch_changes(hub, feed, || false))
                .map_err(|error| {
                    Error::store(StoreError::shared("starting the change waiter", error))
                })?;
        }
        Ok(BlockingClient { shared })
    }
}

impl<T: Transport> BlockingClient<T> {
    /// Configures a client for `config`, sending through `transport` (token requests and
    /// [`send`](Self::send) alike).
    pub fn builder(config: Config, transport: T) -> ClientBuilder<Self> {
        ClientBuilder::new(config, transport)
    }

    /// Logs in and blocks until the new tokens are saved, or the login fails
    /// ([`Error::TokenRequest`], [`Error::Store`]). Tokens held before stay in use until then.
    pub fn login(&self, credentials: Credentials) -> Result<(), Error> {
        let (ticket, ()) = self.shared.begin(Want::Login, |engine, now| {
            engine.login(now, credentials);
            Ok(())
        })?;
        self.run(ticket, None).map(|_| ())
    }

    /// Starts an authorization-code login with PKCE (RFC 6749 §4.1, RFC 7636): returns the URL
    /// to open in the user's browser and the `state` it carries. Needs an authorization
    /// endpoint and a redirect URI in the configuration (see
    /// [`LoopbackRedirect`](crate::adapters::LoopbackRedirect) for desktop and command-line
    /// applications). A later call replaces a pending one.
    pub fn start_authorization(&self) -> Result<AuthorizationRequest, Error> {
        let (_, request) = self.shared.begin(Want::Login, |engine, now| {
            engine
                .start_authorization(now)
                .map_err(Error::Authorization)
        })?;
        Ok(request)
    }

    /// Completes the authorization-code login with the URL the browser was redirected to (or
    /// its query), and blocks until the tokens are saved and usable.
    ///
    /// Fails at once with [`Error::Authorization`] when the callback is refused: a `state`
    /// that is not the one sent, an `iss` naming another issuer (RFC 9207), an `error` from
    /// the server, or no login waiting for it. Otherwise it fails like
    /// [`login`](Self::login) when the code exchange does.
    pub fn complete_authorization(&self, callback: &str) -> Result<(), Error> {
        let (ticket, ()) = self.shared.begin(Want::Login, |engine, now| {
            engine
                .complete_authorization(now, callback)
                .map_err(Error::Authorization)
        })?;
        self.run(ticket, None).map(|_| ())
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
        let (ticket, ()) = self.shared.begin(Want::Login, |engine, now| {
            engine
                .start_device_authorization(now)
                .map_err(Error::Authorization)
        })?;
        let mut on_code = Some(on_code);
        let mut show = |device: &DeviceAuthorization| {
            if let Some(on_code) = on_code.take() {
                on_code(device);
            }
        };
        self.run(ticket, Some(&mut show))
            .map(|_| ())
            .map_err(Error::for_device_login)
    }

    /// A valid access token: at once when one is held, otherwise after the one token request
    /// that every waiting caller shares (a renewal, or a login through the credentials
    /// source), blocking through its retries. Before attaching it to a request of one's own,
    /// check the request's URL with [`Config::check_api_request`], as [`send`](Self::send)
    /// does.
    ///
    /// Fails with [`Error::LoginRequired`] when only a new login can help and the credentials
    /// source (if any) gave none, [`Error::TokenRequest`] when the token request failed after
    /// its retries, and [`Error::Store`] when the new tokens could not be saved.
    #[inline]
    pub fn bearer(&self) -> Result<Bearer, Error> {
        match self.shared.cached() {
            Some(bearer) => Ok(bearer),
            None => self.wait_for_bearer(),
        }
    }

    /// Reports that an API refused `bearer` with a 401 whose headers are `headers`, and waits
    /// for what the flow makes of it: `Some` newer token to retry with, or `None` when there is
    /// no newer one (the 401 was not about the token, for example `insufficient_scope`).
    ///
    /// For applications that make API requests with their own HTTP client; [`send`](Self::send)
    /// does this itself. Retry at most once per request.
    pub fn unauthorized(
        &self,
        bearer: &Bearer,
        headers: &HeaderMap,
    ) -> Result<Option<Bearer>, Error> {
        let refused = bearer.generation();
        let (ticket, ()) = self.shared.begin(Want::Bearer, |engine, now| {
            engine.unauthorized(now, refused, headers);
            Ok(())
        })?;
        let current = self.run_for_bearer(ticket)?;
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
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        // Before any IO, a token request included: the token must not go there at all.
        self.shared.check_api_request(request.uri())?;
        let bearer = self.bearer()?;
        let retry = request.clone();
        let response = self.call(request, &bearer)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        match self.unauthorized(&bearer, response.headers())? {
            Some(newer) => {
                log::api_retry(bearer.generation(), newer.generation());
                self.call(retry, &newer)
            }
            None => Ok(response),
        }
    }

    /// Forgets the tokens and deletes them from the store; callers waiting for a token get
    /// [`Error::LoggedOut`], and with a credentials source the next call logs in again. A
    /// token request under way is abandoned. With a revocation endpoint configured, it then
    /// revokes the refresh token and the access token (RFC 7009) and blocks until both
    /// revocations are done, retries included; what became of them is in the
    /// [`LogoutReport`]. A failed revocation does not fail the logout: the tokens are gone
    /// locally all the same.
    ///
    /// Fails only with [`Error::Store`] when the stored tokens could not be deleted.
    pub fn logout(&self) -> Result<LogoutReport, Error> {
        let (ticket, ()) = self.shared.begin(Want::Settled, |engine, now| {
            engine.logout(now);
            Ok(())
        })?;
        self.run(ticket, None)?;
        Ok(self.shared.lock().logout_report())
    }

    /// What the client holds — whether it has an access and a refresh token, when they
    /// expire, their scope and generation — without a secret; `None` before any login and
    /// after a logout. It never starts a token request. Its monotonic times (`expires_at`)
    /// count from when the client was built; the `_unix` ones are wall-clock times.
    pub fn token_info(&self) -> Option<TokenInfo> {
        self.shared.token_info()
    }

    #[cold]
    fn wait_for_bearer(&self) -> Result<Bearer, Error> {
        let (ticket, ()) = self.shared.begin(Want::Bearer, |_, _| Ok(()))?;
        self.run_for_bearer(ticket)
    }

    fn run_for_bearer(&self, ticket: Ticket) -> Result<Bearer, Error> {
        match self.run(ticket, None)? {
            Some(bearer) => Ok(bearer),
            // A bearer wait ends with a token or an error; this only keeps the types honest.
            None => Err(Error::LoginRequired { reason: None }),
        }
    }

    fn call(&self, request: Request<Vec<u8>>, bearer: &Bearer) -> Result<Response<Vec<u8>>, Error> {
        let (request, deadline) = self.shared.api_request(request, bearer);
        let result = self
            .shared
            .transport
            .send(request, deadline, self.shared.api_max_body());
        self.shared.api_response(result)
    }

    /// Steps the engine for `ticket` until it is done, performing work and waiting. Returns
    /// the token for a bearer wait, `None` for the others. A device login's user code is
    /// handed to `on_device`, without the lock.
    fn run(
        &self,
        mut ticket: Ticket,
        mut on_device: Option<&mut dyn FnMut(&DeviceAuthorization)>,
    ) -> Result<Option<Bearer>, Error> {
        let mut engine = self.shared.lock();
        loop {
            let now = crate::adapters::driver::now();
            match engine.step(now, &mut ticket) {
                Step::Ready(bearer) => return Ok(Some(bearer)),
                Step::Done => return Ok(None),
                Step::Fail(error) => return Err(error),
                Step::Work(work) => {
                    drop(engine);
                    self.perform(work);
                    engine = self.shared.lock();
                }
                Step::Device(device) => {
                    if let Some(show) = on_device.as_mut() {
                        drop(engine);
                        show(&device);
                        engine = self.shared.lock();
                    }
                }
                Step::Wait(until) => {
                    engine = self
                        .shared
                        .waiters()
                        .wait_timeout(engine, wait_for(now, until))
                        .map(|(engine, _)| engine)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
        }
    }

    /// Performs one work item on this thread and reports it.
    fn perform(&self, work: Work) {
        let assignment = Assignment::new(&self.shared, &work);
        let performed = match work {
            Work::Send(request, deadline) => {
                let shared = assignment.shared();
                // An answer arriving after the deadline is reported all the same: the flow
                // decides what a late answer is worth (a renewal's may carry the only
                // successor of a rotated refresh token).
                let result =
                    shared
                        .transport
                        .send(request.request, deadline, shared.token_max_body);
                Some(Performed::Sent(request.id, result))
            }
            local => assignment.shared().perform_locally(local),
        };
        // `None` cannot happen (a token request is sent above); dropped, the assignment would
        // report the item abandoned.
        if let Some(performed) = performed {
            assignment.done(performed);
        }
    }
}

// The client is shared across threads.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<BlockingClient>();
};

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;

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
        let client = BlockingClient::builder(config(), transport)
            .credentials(|| Some(Credentials::ClientCredentials))
            .build()
            .unwrap();
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

    #[test]
    fn a_401_is_retried_once_and_only_with_a_newer_token() {
        let world = Arc::new(World::default());
        world.accept_from.store(2, Ordering::SeqCst);
        let seen = Arc::clone(&world);
        let transport = move |request| Ok(seen.handle(request, Duration::ZERO));
        let client = BlockingClient::builder(config(), transport)
            .credentials(|| Some(Credentials::ClientCredentials))
            .build()
            .unwrap();
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
        let client = BlockingClient::builder(config(), transport)
            .credentials(|| Some(Credentials::ClientCredentials))
            .build()
            .unwrap();
        let first = client.clone();
        assert!(thread::spawn(move || first.bearer()).join().is_err());
        // The lost request ends at its deadline and is retried.
        let started = Instant::now();
        assert!(client.bearer().is_ok());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
