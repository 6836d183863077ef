//! What both adapters share for interactive logins, logout and discovery: the logout report,
//! how a device login ended, and reading a metadata document.

use std::time::Duration;

use crate::discovery::{DiscoveryError, MetadataKind, ProviderMetadata};
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
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// The documents tried, in order: OpenID Connect Discovery, then RFC 8414 when the first is
/// not found.
pub(crate) const METADATA_KINDS: [MetadataKind; 2] =
    [MetadataKind::OpenIdConnect, MetadataKind::OAuth];

/// Whether the next kind of document is worth trying after `error`.
pub(crate) fn try_next_kind(error: &DiscoveryError) -> bool {
    matches!(error, DiscoveryError::Status { status, .. } if *status == http::StatusCode::NOT_FOUND)
}

/// The transport error for a metadata document over [`METADATA_MAX_BODY`], if it is one.
pub(crate) fn oversized_metadata(response: &http::Response<Vec<u8>>) -> Option<TransportError> {
    (response.body().len() > METADATA_MAX_BODY).then(|| {
        TransportError::new(
            TransportErrorKind::BodyTooLarge,
            format!("the metadata document is larger than {METADATA_MAX_BODY} bytes"),
        )
    })
}

/// Reads a metadata response for `issuer`. A redirect is refused, not followed: a document
/// from wherever it points would name the endpoints the credentials are sent to.
pub(crate) fn read_metadata(
    issuer: &str,
    response: &http::Response<Vec<u8>>,
) -> Result<ProviderMetadata, DiscoveryError> {
    if let Some(redirect) = RefusedRedirect::from_response(Endpoint::Metadata, response) {
        return Err(DiscoveryError::Redirect(redirect));
    }
    ProviderMetadata::from_response(issuer, response.status(), response.body())
}
