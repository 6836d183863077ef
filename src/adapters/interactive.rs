//! What both clients share for interactive logins, logout and discovery: the logout report,
//! how a device login ended, and fetching a metadata document.

use std::time::{Duration, Instant};

use crate::adapters::driver::{deadline, now};
use crate::adapters::error::Error;
use crate::discovery::{DiscoveryError, MetadataKind, ProviderMetadata, metadata_request};
use crate::error::{FailureCause, FlowError};
use crate::grant::GrantKind;
use crate::input::{TransportError, TransportErrorKind};
use crate::output::Event;
use crate::refused_redirect::{Endpoint, RefusedRedirect};
use crate::revocation::TokenTypeHint;
use crate::token::ErrorCode;

/// What became of the revocations a logout asked for (RFC 7009).
///
/// The tokens are forgotten locally whatever the server says; a failed revocation only means
/// the server may still honour them until they expire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutReport {
    /// The tokens the server confirmed as revoked, in the order they were revoked (refresh
    /// token first).
    pub revoked: Vec<TokenTypeHint>,
    /// The revocations that failed after their retries.
    pub failures: Vec<RevocationFailure>,
}

impl LogoutReport {
    /// Whether every revocation asked for was confirmed (also true when there was nothing to
    /// revoke, or no revocation endpoint is configured).
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// Records a revocation outcome; other events are ignored.
    pub(crate) fn record(&mut self, event: &Event) {
        match event {
            Event::Revoked { token_type } => self.revoked.push(*token_type),
            Event::RevocationFailed {
                token_type,
                attempts,
                cause,
            } => self.failures.push(RevocationFailure {
                token_type: *token_type,
                attempts: *attempts,
                cause: cause.clone(),
            }),
            _ => {}
        }
    }
}

/// A revocation that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationFailure {
    /// Which token.
    pub token_type: TokenTypeHint,
    /// How many times the request was sent.
    pub attempts: u32,
    /// What went wrong the last time.
    pub cause: FailureCause,
}

impl std::fmt::Display for RevocationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "revoking the {} failed after {} attempt(s): {}",
            self.token_type, self.attempts, self.cause
        )
    }
}

/// How a device login ended without tokens, when the user or time ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceEnd {
    /// `access_denied` (RFC 8628 §3.5).
    Denied,
    /// `expired_token`, or the code's lifetime passed before approval.
    Expired,
}

/// Whether `error` is the end of a device login by refusal or expiry.
pub(crate) fn device_end(error: &FlowError) -> Option<DeviceEnd> {
    if error.grant != GrantKind::DeviceCode {
        return None;
    }
    match &error.cause {
        FailureCause::DeviceCodeExpired => Some(DeviceEnd::Expired),
        FailureCause::Endpoint(response) => match response.code() {
            Some(ErrorCode::AccessDenied) => Some(DeviceEnd::Denied),
            Some(ErrorCode::ExpiredToken) => Some(DeviceEnd::Expired),
            _ => None,
        },
        _ => None,
    }
}

/// The largest metadata document read.
pub(crate) const METADATA_MAX_BODY: usize = 1024 * 1024;

/// How long fetching one metadata document may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// A request for a metadata document, and when its answer is due.
pub(crate) type MetadataRequest = (http::Request<Vec<u8>>, Instant);

/// Fetching an issuer's metadata, for a client's `fetch_metadata` to send: the OpenID Connect
/// document, then the RFC 8414 one when the first is not found.
pub(crate) struct MetadataFetch<'a> {
    issuer: &'a str,
    kinds: std::array::IntoIter<MetadataKind, 2>,
    last: Error,
}

impl<'a> MetadataFetch<'a> {
    pub(crate) fn new(issuer: &'a str) -> Self {
        MetadataFetch {
            issuer,
            kinds: [MetadataKind::OpenIdConnect, MetadataKind::OAuth].into_iter(),
            last: Error::Discovery(DiscoveryError::InvalidIssuer("not an absolute URL")),
        }
    }

    /// The next document to ask for and its deadline; `None` when none is left.
    pub(crate) fn next_request(&mut self) -> Result<Option<MetadataRequest>, Error> {
        let Some(kind) = self.kinds.next() else {
            return Ok(None);
        };
        let request = metadata_request(self.issuer, kind).map_err(Error::Discovery)?;
        Ok(Some((request, deadline(now(), METADATA_TIMEOUT))))
    }

    /// What the answer to the last request means: the outcome, or `None` to try the next
    /// document.
    pub(crate) fn answer(
        &mut self,
        result: Result<http::Response<Vec<u8>>, TransportError>,
    ) -> Option<Result<ProviderMetadata, Error>> {
        let response = match result {
            Ok(response) => response,
            Err(error) => return Some(Err(Error::Transport(error))),
        };
        if response.body().len() > METADATA_MAX_BODY {
            return Some(Err(Error::Transport(TransportError::new(
                TransportErrorKind::BodyTooLarge,
                format!("the metadata document is larger than {METADATA_MAX_BODY} bytes"),
            ))));
        }
        // A redirect is refused, not followed: a document from wherever it points would name
        // the endpoints the credentials are sent to.
        if let Some(redirect) = RefusedRedirect::from_response(Endpoint::Metadata, &response) {
            return Some(Err(Error::Discovery(DiscoveryError::Redirect(redirect))));
        }
        match ProviderMetadata::from_response(self.issuer, response.status(), response.body()) {
            Ok(metadata) => Some(Ok(metadata)),
            // Not found: the other kind of document may be there.
            Err(error @ DiscoveryError::Status { status, .. })
                if status == http::StatusCode::NOT_FOUND =>
            {
                self.last = Error::Discovery(error);
                None
            }
            Err(error) => Some(Err(Error::Discovery(error))),
        }
    }

    /// The failure once every document was tried.
    pub(crate) fn failure(self) -> Error {
        self.last
    }
}
