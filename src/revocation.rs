//! Token revocation requests (RFC 7009).

use std::fmt;

use http::Request;

use crate::client_auth;
use crate::config::Config;
use crate::form::FormBody;
use crate::grant::form_post;

/// Which kind of token a revocation is about (RFC 7009 §2.1 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `refresh_token`: revoked first, since servers revoke the grant's access tokens with it.
    RefreshToken,
    /// `access_token`.
    AccessToken,
}

impl TokenTypeHint {
    /// The value sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::RefreshToken => "refresh_token",
            TokenTypeHint::AccessToken => "access_token",
        }
    }
}

impl fmt::Display for TokenTypeHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The revocation request for `token`, or `None` when no revocation endpoint is configured.
pub fn revocation_request(
    config: &Config,
    token: &str,
    hint: TokenTypeHint,
) -> Option<Request<Vec<u8>>> {
    let endpoint = config.revocation_endpoint.clone()?;
    let mut form = FormBody::with_capacity(96);
    form.pair("token", token);
    form.pair("token_type_hint", hint.as_str());
    client_auth::authenticate(config, &mut form);
    Some(form_post(config, endpoint, form.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_token_and_its_hint() {
        let config = Config::builder("https://id.example/token", "app")
            .client_secret("s")
            .revocation_endpoint("https://id.example/revoke")
            .build()
            .unwrap();
        let request = revocation_request(&config, "RT-1", TokenTypeHint::RefreshToken).unwrap();
        assert_eq!(request.uri(), "https://id.example/revoke");
        assert_eq!(request.body(), b"token=RT-1&token_type_hint=refresh_token");
        assert!(request.headers().contains_key(http::header::AUTHORIZATION));
    }
}
