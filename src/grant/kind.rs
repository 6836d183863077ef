//! Which grant obtained a set of tokens, and what a login hands to the flow.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::secret::Password;

/// An OAuth 2.0 grant type (RFC 6749 §4, §6; RFC 8628).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantKind {
    /// Resource owner password credentials (RFC 6749 §4.3).
    Password,
    /// Client credentials (RFC 6749 §4.4).
    ClientCredentials,
    /// Refresh token (RFC 6749 §6).
    RefreshToken,
    /// Authorization code (RFC 6749 §4.1).
    AuthorizationCode,
    /// Device authorization (RFC 8628).
    DeviceCode,
}

impl GrantKind {
    /// The `grant_type` value sent to the token endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Password => "password",
            GrantKind::ClientCredentials => "client_credentials",
            GrantKind::RefreshToken => "refresh_token",
            GrantKind::AuthorizationCode => "authorization_code",
            GrantKind::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    /// [`as_str`](Self::as_str) form-encoded, as it goes into a request body.
    pub(crate) fn form_value(self) -> &'static str {
        match self {
            GrantKind::DeviceCode => "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for GrantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`TokenFlow::login`](crate::TokenFlow::login) logs in with.
///
/// `Debug` shows the username but never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// A resource owner's username and password (RFC 6749 §4.3). The username is sent exactly
    /// as given: `1234/joe.bloggs@acme.com` arrives at the server as that string.
    Password {
        /// The username, verbatim.
        username: String,
        /// The password; dropped once its token request ends.
        password: Password,
    },
    /// The client's own credentials from the configuration (RFC 6749 §4.4).
    ClientCredentials,
}

impl Credentials {
    /// Resource-owner password credentials.
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Password {
            username: username.into(),
            password: Password::new(password),
        }
    }

    /// The grant these credentials use.
    pub fn grant_kind(&self) -> GrantKind {
        match self {
            Credentials::Password { .. } => GrantKind::Password,
            Credentials::ClientCredentials => GrantKind::ClientCredentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_the_grant_types_form_encoded() {
        for kind in [
            GrantKind::Password,
            GrantKind::ClientCredentials,
            GrantKind::RefreshToken,
            GrantKind::AuthorizationCode,
            GrantKind::DeviceCode,
        ] {
            assert_eq!(kind.form_value(), crate::form::encode(kind.as_str()));
        }
    }
}
