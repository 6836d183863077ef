//! # tokenflow
//!
//! Keeps an OAuth 2.0 client holding a valid access token — login, proactive refresh,
//! refresh-token rotation, retries with backoff, and the API's 401 — as a pure state machine
//! that never does IO.
//!
//! ## What sans-IO means here
//!
//! [`TokenFlow`] never opens a socket, reads a clock, draws randomness, reads the environment
//! or touches a file. It consumes events — a command from the application, an HTTP response
//! from the token endpoint, a 401 from an API, the passing of time — and produces the HTTP
//! requests to perform and the events the host must act on. Every method takes the current
//! monotonic time as a [`Timestamp`], a plain number of nanoseconds; the seed for retry jitter
//! and one reading of the wall clock are given at construction. The same flow therefore runs
//! under any HTTP client and runtime, in a simulation with a virtual clock, under a fuzzer, in
//! WebAssembly, or behind a foreign-language binding, and behaves identically given the same
//! inputs.
//!
//! The [`adapters`] (features `blocking` and `tokio`) are thin run loops over real HTTP
//! clients, for applications that do not want to drive the flow themselves; they drive the
//! [`shared`] store of replicas too ([`adapters::ClientBuilder::replicas`]).
//!
//! ## The run loop: a contract
//!
//! 1. Create the flow with [`TokenFlow::new`] (or [`TokenFlow::restore`] from stored tokens).
//! 2. After **every** command ([`login`](TokenFlow::login), [`access`](TokenFlow::access),
//!    [`logout`](TokenFlow::logout)) and every input ([`handle_input`](TokenFlow::handle_input)),
//!    call [`poll_output`](TokenFlow::poll_output) until it returns [`Output::Idle`]:
//!    - [`Output::Send`]: perform the request (concurrently if you like) and report the result
//!      with [`Input::Response`] or [`Input::Failed`], carrying the request's id;
//!    - [`Output::Event`]: act on it. [`Event::TokensUpdated`] must be stored durably
//!      **before** the next call to `poll_output`: the new access token is released only
//!      then, so a rotated refresh token is always safe before it is relied upon.
//!    - [`Event::Store`] (only with [`ConfigBuilder::shared_store`]): an operation on the
//!      store shared with other replicas; perform it and report with [`Input::Store`] as
//!      [`shared`] states. Its `TokensUpdated` and `MarkInFlight` must be written before the
//!      next call to `poll_output`, like [`Event::TokensUpdated`].
//!    - [`Output::Idle`]: nothing more to do. Sleep until `until` (then feed
//!      [`Input::Timeout`]) or until the next response, 401 or command.
//! 3. A drain always ends in `Idle` after a small, bounded number of outputs; no input, however
//!    malformed, makes the flow panic.
//!
//! ## Time and persistence
//!
//! Deadlines and lifetimes run on the monotonic clock you pass in as [`Timestamp`]s:
//! nanoseconds since an origin **you** choose (boot, process start, the moment the flow was
//! built; Python's `time.monotonic_ns()` can be passed as it is). The origin must stay the
//! same for the life of the flow, and the clock must be monotonic, never the wall clock, so
//! that wall-clock jumps do not stretch deadlines; a timestamp earlier than one already seen
//! is read as the latest seen. [`Output::Idle`]'s `until` is on the same clock. Absolute times
//! that must survive a restart ([`StoredTokens`]) are Unix milliseconds, converted with the
//! wall-clock reading given at construction, so a restored flow may count from a new origin.
//! Tokens are renewed at expiry minus a margin
//! ([`ConfigBuilder::refresh_margin`], capped at a tenth of the lifetime so very short tokens
//! still work); the API's 401 is the safety net for clock drift and suspended machines.
//!
//! ## 401 handling
//!
//! Every access token has a [`Generation`]. When an API answers 401, report it with
//! [`Input::Unauthorized`] and the generation of the token you used, then ask
//! [`access`](TokenFlow::access) again and retry once if the generation changed. A 401 for an
//! old generation costs nothing; any number of 401s for the current one cost one refresh. A
//! `Bearer error="insufficient_scope"` challenge is not a token problem and triggers nothing.
//!
//! ## Errors
//!
//! Token requests that fail transiently (5xx, 429, 408, transport) are retried with
//! exponential backoff and seeded jitter, honouring `Retry-After`; after the last retry the
//! flow emits [`Event::Failed`] with a [`FlowError`]. A refresh token the server rejects
//! (`invalid_grant`) is cleared ([`Event::TokensCleared`]) and [`Event::LoginRequired`]
//! follows. A refresh that got no answer may have rotated the token: it is presented again
//! only as [`ConfigBuilder::refresh_token_reuse`] allows (by default never: a
//! [`LoginRequiredReason::RefreshTokenMayBeSpent`] instead), and a late answer to it is still
//! adopted. A redirect (`3xx`) from the authorization server is never followed nor retried:
//! it ends the request with [`FailureCause::Redirect`]. No error, `Debug` or `Display` output
//! ever contains a secret.
//!
//! ## Where the access token goes
//!
//! [`Config::check_api_request`] says whether a URL may receive the access token: `https`
//! only (cleartext `http://` on loopback, or with
//! [`allow_insecure_http`](ConfigBuilder::allow_insecure_http)), and only the origins given to
//! [`allow_api_origin`](ConfigBuilder::allow_api_origin) when there are any. The adapters'
//! `send` checks every request with it before any IO and never follows an API's redirect.
//!
//! ## ID tokens
//!
//! When a server issues an OpenID Connect ID token, the flow keeps it raw
//! ([`StoredTokens::id_token`], [`TokenResponse::id_token`]) and carries it over refreshes that
//! do not return a new one. It does **not** validate it: no signature, `iss`, `aud`, `exp` or
//! `nonce` check, since that needs the provider's keys and a JOSE library. An application that
//! relies on the ID token's claims validates it itself, with the `nonce` from
//! [`AuthorizationRequest::nonce`]. The access token is what the flow manages.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `blocking` | yes | [`adapters::blocking`]: a blocking client over `ureq` |
//! | `tokio` | no | [`adapters::tokio`]: an async client over `reqwest` on tokio |
//! | `tokio-rustls` | no | `tokio` with reqwest's rustls TLS backend |
//! | `tracing` | no | logs of requests, state changes and retries (never a secret) |
//!
//! With `default-features = false` the crate is the pure core: no IO, no runtime.
//!
//! ## Driving a whole exchange by hand
//!
//! ```
//! use std::time::Duration;
//! use tokenflow::{
//!     Access, Config, Credentials, Event, Input, Output, Timestamp, TokenFlow, UnixTime,
//! };
//!
//! let config = Config::builder("https://identity.example/connect/token", "datahub-backend")
//!     .client_secret("client-secret")
//!     .scope("datahub-api offline_access")
//!     .build()?;
//! // Any monotonic clock, counted from an origin of your choice: here, 5 s after it.
//! let now = Timestamp::from_secs(5);
//! let mut flow = TokenFlow::new(config, 42u64, now, UnixTime::from_secs(1_700_000_000));
//!
//! flow.login(now, Credentials::password("svc@acme.com", "password"));
//! let Output::Send(request) = flow.poll_output() else { unreachable!() };
//! assert_eq!(request.request.method(), "POST");
//!
//! // … send `request.request` with any HTTP client, then report the answer:
//! let response = tokenflow::http::Response::builder()
//!     .status(200)
//!     .body(br#"{"access_token":"AT1","token_type":"Bearer","expires_in":3600,
//!                "refresh_token":"RT1"}"#.to_vec())?;
//! flow.handle_input(now, Input::Response { id: request.id, response });
//!
//! let Output::Event(Event::TokensUpdated(tokens)) = flow.poll_output() else { unreachable!() };
//! // Store `tokens` durably here, before polling again.
//! assert!(tokens.refresh_token.is_some());
//! let Output::Event(Event::AccessReady { .. }) = flow.poll_output() else { unreachable!() };
//! let Output::Idle { until } = flow.poll_output() else { unreachable!() };
//! assert_eq!(until, Some(now + Duration::from_secs(3600 - 30)), "proactive refresh");
//!
//! let Access::Ready(bearer) = flow.access(now) else { unreachable!() };
//! assert_eq!(bearer.header_value(), "Bearer AT1");
//!
//! // What the flow holds, without a secret in it.
//! let info = flow.token_info().expect("tokens are held");
//! let expiry = info.access_token.map(|access| access.expires_at);
//! assert_eq!(expiry, Some(now + Duration::from_secs(3600)));
//! assert!(info.refresh_token.is_some());
//!
//! // At `until`, the passing of time is the input: the flow asks for a refresh.
//! flow.handle_input(until.expect("a wake-up"), Input::Timeout);
//! let Output::Send(refresh) = flow.poll_output() else { unreachable!() };
//! assert!(refresh.request.body().starts_with(b"grant_type=refresh_token"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(any(feature = "blocking", feature = "tokio"))]
pub mod adapters;
mod api_origin;
pub mod challenge;
pub mod client_auth;
pub mod config;
pub mod discovery;
mod error;
mod flow;
mod form;
pub mod grant;
mod input;
pub mod interactive;
mod origin;
mod output;
mod redact;
pub mod refused_redirect;
pub mod retry_after;
mod reuse;
pub mod revocation;
mod scope;
pub mod secret;
mod seed;
pub mod shared;
mod snippet;
pub mod time;
pub mod token;

pub use api_origin::ApiRequestError;

/// The `http` crate, whose requests, responses and headers the flow takes and gives:
/// re-exported so that an application builds them with the very version the flow uses,
/// without a dependency of its own to keep in step.
pub use http;

pub use config::{ClientAuth, Config, ConfigBuilder, ConfigError, RetryPolicy};
pub use error::{FailureCause, FlowError};
pub use flow::{AccessTokenInfo, RefreshTokenInfo, TokenFlow, TokenInfo};
pub use grant::{Credentials, GrantKind};
pub use input::{Input, TransportError, TransportErrorKind};
pub use interactive::{AuthorizationError, AuthorizationRequest, DeviceAuthorization};
pub use origin::Origin;
pub use output::{
    Access, Bearer, Event, Generation, HttpRequest, LoginRequiredReason, Output, RequestId,
};
pub use refused_redirect::{RedirectTarget, RefusedRedirect};
pub use reuse::RefreshTokenReuse;
pub use revocation::TokenTypeHint;
pub use scope::Scope;
pub use secret::{AccessToken, ClientSecret, IdToken, Password, RefreshToken, SecretString};
pub use seed::Seed;
pub use time::{Timestamp, UnixTime};
pub use token::{StoredTokens, TokenResponse};

/// The README's Rust examples, compiled (and those not marked `no_run`, run) as doctests, so
/// that they keep up with the API.
#[cfg(all(doctest, feature = "blocking", feature = "tokio"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
