//! The one error type of both clients.

use std::fmt;
use std::sync::Arc;

use crate::adapters::interactive::{DeviceEnd, device_end};
use crate::adapters::replica::ReplicaSetupError;
use crate::adapters::store::StoreError;
use crate::api_origin::ApiRequestError;
use crate::discovery::DiscoveryError;
use crate::error::FlowError;
use crate::input::TransportError;
use crate::interactive::AuthorizationError;
use crate::output::LoginRequiredReason;
use crate::token::RestoreError;

/// Why a client ([`BlockingClient`](crate::adapters::blocking::BlockingClient) or
/// [`AsyncClient`](crate::adapters::tokio::AsyncClient)) could not give a caller what it asked
/// for. `Display` never shows a token, a password or a secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// No token can be had without a new login, and no credentials source supplied one: call
    /// `login` (or one of the interactive logins).
    LoginRequired {
        /// Why the flow asked for a login; `None` when there are no tokens at all (never
        /// logged in, or logged out).
        reason: Option<LoginRequiredReason>,
    },
    /// The token request failed for good, after its retries.
    TokenRequest(FlowError),
    /// The token store failed (or the shared store of
    /// [`replicas`](crate::adapters::ClientBuilder::replicas):
    /// [`StoreError::Shared`]). When a save (or a write to the shared store) failed, the new
    /// tokens are held back until a later call manages to save them.
    Store(Arc<StoreError>),
    /// The tokens in the store could not be restored.
    Restore(RestoreError),
    /// An API request (or the fetch of a metadata document) failed in transport.
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
    /// A `logout` ended the wait.
    LoggedOut,
    /// The client was shut down.
    Shutdown,
    /// An async client was built outside a tokio runtime.
    NoRuntime,
    /// The default HTTP client could not be built.
    HttpClient(Arc<dyn std::error::Error + Send + Sync>),
    /// `send` refused to attach the access token to the request, before any IO: cleartext
    /// `http://` off loopback, or an origin the configuration does not allow.
    ApiRequestRefused(ApiRequestError),
    /// `build` refused the replica settings
    /// ([`replicas`](crate::adapters::ClientBuilder::replicas) and what goes with it).
    ReplicaSetup(ReplicaSetupError),
}

impl Error {
    /// Turns a device login's refusal or expiry into its own variant.
    pub(crate) fn for_device_login(self) -> Error {
        match self {
            Error::TokenRequest(error) => match device_end(&error) {
                Some(DeviceEnd::Denied) => Error::DeviceDenied(error),
                Some(DeviceEnd::Expired) => Error::DeviceExpired(error),
                None => Error::TokenRequest(error),
            },
            other => other,
        }
    }

    /// A store failure, shared by every caller it concerns.
    pub(crate) fn store(error: StoreError) -> Error {
        Error::Store(Arc::new(error))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LoginRequired {
                reason: Some(reason),
            } => write!(f, "login required: {reason}"),
            Error::LoginRequired { reason: None } => f.write_str("login required: no tokens"),
            Error::TokenRequest(error) => write!(f, "token request failed: {error}"),
            Error::Store(error) => write!(f, "token store failed: {error}"),
            Error::Restore(error) => write!(f, "cannot restore the stored tokens: {error}"),
            Error::Transport(error) => write!(f, "request failed: {error}"),
            Error::Authorization(error) => write!(f, "authorization failed: {error}"),
            Error::DeviceDenied(_) => f.write_str("the device login was denied by the user"),
            Error::DeviceExpired(_) => {
                f.write_str("the device code expired before the login was approved")
            }
            Error::Discovery(error) => write!(f, "discovery failed: {error}"),
            Error::LoggedOut => f.write_str("logged out while waiting"),
            Error::Shutdown => f.write_str("the token client has shut down"),
            Error::NoRuntime => {
                f.write_str("the async token client must be built within a tokio runtime")
            }
            Error::HttpClient(error) => write!(f, "cannot build the HTTP client: {error}"),
            Error::ApiRequestRefused(error) => error.fmt(f),
            Error::ReplicaSetup(error) => write!(f, "cannot build the client: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::TokenRequest(error)
            | Error::DeviceDenied(error)
            | Error::DeviceExpired(error) => Some(error),
            Error::Store(error) => Some(error.as_ref()),
            Error::Restore(error) => Some(error),
            Error::Transport(error) => Some(error),
            Error::Authorization(error) => Some(error),
            Error::Discovery(error) => Some(error),
            Error::HttpClient(error) => Some(error.as_ref()),
            Error::ApiRequestRefused(error) => Some(error),
            Error::ReplicaSetup(error) => Some(error),
            Error::LoginRequired { .. } | Error::LoggedOut | Error::Shutdown | Error::NoRuntime => {
                None
            }
        }
    }
}

// Errors cross threads and tasks, and are handed to every caller a failure concerns.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Error>();
};
