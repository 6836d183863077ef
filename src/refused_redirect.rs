//! Redirects from the authorization server are answers, never directions to follow.
//!
//! A token request carries a password, a client secret, a refresh token or a code; a client
//! that follows a `307` or `308` re-sends all of it to wherever the `Location` points, and one
//! that follows a `302` or `303` takes whatever the other host answers for tokens. So no
//! request the flow emits is followed: the adapters' transports are set never to follow, and a
//! `3xx` that reaches the flow ends the request with a [`RefusedRedirect`], which is not
//! retried.

use std::fmt;

use http::{Response, StatusCode, Uri, header};

use crate::origin::Origin;

/// Which of the authorization server's endpoints answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint.
    Token,
    /// The device authorization endpoint (RFC 8628).
    DeviceAuthorization,
    /// The revocation endpoint (RFC 7009).
    Revocation,
    /// A metadata document (RFC 8414, OpenID Connect Discovery).
    Metadata,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "the token endpoint",
            Endpoint::DeviceAuthorization => "the device authorization endpoint",
            Endpoint::Revocation => "the revocation endpoint",
            Endpoint::Metadata => "the metadata endpoint",
        }
    }

    fn requests(self) -> &'static str {
        match self {
            Endpoint::Token => "token requests",
            Endpoint::DeviceAuthorization => "device authorization requests",
            Endpoint::Revocation => "revocation requests",
            Endpoint::Metadata => "metadata requests",
        }
    }
}

/// Where a refused redirect pointed, as far as it is safe to say: the origin only, never the
/// path or query (which may carry a code or a token).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedirectTarget {
    /// An absolute `http` or `https` location.
    Origin(Origin),
    /// A relative reference: somewhere on the same origin.
    SameOrigin,
    /// No `Location`, or one that is not a usable URL.
    Unknown,
}

/// A `3xx` answer from the authorization server, refused rather than followed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefusedRedirect {
    /// The endpoint that answered.
    pub endpoint: Endpoint,
    /// The status (`301`, `302`, `303`, `307`, `308`, …).
    pub status: StatusCode,
    /// Where it pointed.
    pub target: RedirectTarget,
}

impl RefusedRedirect {
    /// The refusal for `response` from `endpoint` when its status is a redirection (`3xx`),
    /// `None` for any other status.
    pub fn from_response<B>(endpoint: Endpoint, response: &Response<B>) -> Option<Self> {
        let status = response.status();
        if !status.is_redirection() {
            return None;
        }
        let target = match response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<Uri>().ok())
        {
            Some(uri) if uri.scheme().is_none() && uri.authority().is_none() => {
                RedirectTarget::SameOrigin
            }
            Some(uri) => Origin::of(&uri).map_or(RedirectTarget::Unknown, RedirectTarget::Origin),
            None => RedirectTarget::Unknown,
        };
        Some(RefusedRedirect {
            endpoint,
            status,
            target,
        })
    }
}

/// One line of bounded length: the host in the origin is cut at 100 characters.
impl fmt::Display for RefusedRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered a redirect ({}) ",
            self.endpoint.name(),
            self.status.as_u16()
        )?;
        match &self.target {
            RedirectTarget::Origin(origin) => write!(f, "to {origin}")?,
            RedirectTarget::SameOrigin => f.write_str("to another path on the same origin")?,
            RedirectTarget::Unknown => f.write_str("without a usable location")?,
        }
        write!(
            f,
            "; redirects are never followed for {}",
            self.endpoint.requests()
        )
    }
}

impl std::error::Error for RefusedRedirect {}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, location: Option<&str>) -> Response<Vec<u8>> {
        let mut builder = Response::builder().status(status);
        if let Some(location) = location {
            builder = builder.header(header::LOCATION, location);
        }
        builder.body(Vec::new()).unwrap()
    }

    #[test]
    fn every_redirection_status_is_refused_and_nothing_else() {
        for status in [300, 301, 302, 303, 307, 308] {
            assert!(
                RefusedRedirect::from_response(Endpoint::Token, &answer(status, None)).is_some(),
                "{status}"
            );
        }
        for status in [200, 204, 400, 401, 500] {
            assert!(
                RefusedRedirect::from_response(Endpoint::Token, &answer(status, None)).is_none(),
                "{status}"
            );
        }
    }

    #[test]
    fn the_message_names_the_origin_only() {
        let response = answer(
            307,
            Some("http://user:pw@127.0.0.1:9999/steal?code=SECRET-CODE#frag"),
        );
        let refused = RefusedRedirect::from_response(Endpoint::Token, &response).unwrap();
        assert_eq!(
            refused.to_string(),
            "the token endpoint answered a redirect (307) to http://127.0.0.1:9999; \
             redirects are never followed for token requests"
        );
    }

    #[test]
    fn relative_missing_and_unusable_locations() {
        let relative = answer(302, Some("/elsewhere?x=1"));
        let refused = RefusedRedirect::from_response(Endpoint::Revocation, &relative).unwrap();
        assert_eq!(refused.target, RedirectTarget::SameOrigin);
        assert!(refused.to_string().contains("same origin"));

        for location in [None, Some("javascript:alert(1)"), Some("\u{7f}bad")] {
            let response = answer(303, None);
            let mut response = response;
            if let Some(location) = location {
                if let Ok(value) = http::HeaderValue::from_str(location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
            }
            let refused = RefusedRedirect::from_response(Endpoint::Metadata, &response).unwrap();
            assert_eq!(refused.target, RedirectTarget::Unknown, "{location:?}");
        }
    }

    #[test]
    fn a_hostile_location_gives_a_short_message() {
        let location = format!("https://{}.example/", "x".repeat(5000));
        let response = answer(308, Some(&location));
        let refused =
            RefusedRedirect::from_response(Endpoint::DeviceAuthorization, &response).unwrap();
        assert!(refused.to_string().len() < 300, "{refused}");
    }
}
