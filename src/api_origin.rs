//! Where the access token may be sent: the check every host makes before attaching
//! `Authorization: Bearer …` to an API request.
//!
//! Two rules, both in the [`Config`](crate::Config) so that every adapter and binding applies
//! the same ones:
//!
//! * a bearer token travels only over TLS (RFC 6750 §5.3): `http://` is refused unless the
//!   host is loopback or [`allow_insecure_http`](crate::ConfigBuilder::allow_insecure_http)
//!   is set, the very rule that applies to the token endpoint;
//! * when API origins are configured
//!   ([`allow_api_origin`](crate::ConfigBuilder::allow_api_origin)), every other origin is
//!   refused.

use std::fmt;

use http::Uri;

use crate::origin::{Origin, OriginOf};

/// Why an API request may not carry the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiRequestError {
    /// The URL is not an absolute `http` or `https` URL with a host.
    NotHttp,
    /// `http://` to a host that is not loopback, without
    /// [`allow_insecure_http`](crate::ConfigBuilder::allow_insecure_http).
    Cleartext {
        /// Where the request was going.
        origin: Origin,
    },
    /// Not one of the configured API origins.
    OriginNotAllowed {
        /// Where the request was going.
        origin: Origin,
    },
}

impl fmt::Display for ApiRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiRequestError::NotHttp => f.write_str(
                "refused to send the access token: the API URL is not an absolute http(s) URL",
            ),
            ApiRequestError::Cleartext { origin } => write!(
                f,
                "refused to send the access token to {origin} over cleartext http \
                 (RFC 6750 section 5.3); use https, or allow_insecure_http(true) for a \
                 closed test network"
            ),
            ApiRequestError::OriginNotAllowed { origin } => write!(
                f,
                "refused to send the access token to {origin}: not one of the configured \
                 API origins"
            ),
        }
    }
}

impl std::error::Error for ApiRequestError {}

/// The check itself: `uri` may carry the token when it is `https` (or cleartext allowed by
/// `cleartext_allowed`, the configuration's own rule) and, when `allowed` is not empty, its
/// origin is one of them.
pub(crate) fn check_api_uri(
    uri: &Uri,
    allowed: &[Origin],
    cleartext_allowed: impl Fn(&str) -> bool,
) -> Result<(), ApiRequestError> {
    // Borrowed: this runs on every API call, and an owned origin is only needed to report one.
    let origin = OriginOf::uri(uri).ok_or(ApiRequestError::NotHttp)?;
    if !origin.https && !cleartext_allowed(origin.host) {
        return Err(ApiRequestError::Cleartext {
            origin: origin.to_owned(),
        });
    }
    if !allowed.is_empty() && !allowed.iter().any(|allowed| origin.is(allowed)) {
        return Err(ApiRequestError::OriginNotAllowed {
            origin: origin.to_owned(),
        });
    }
    Ok(())
}
