//! Secret values: client secrets, passwords and tokens.
//!
//! Every secret lives in a newtype whose `Debug` prints `[redacted]`, that has no `Display`,
//! and whose memory is zeroed when its last holder drops it. The value is reached only through an
//! explicit `expose_secret()`, so a stray `{:?}` in a log line cannot leak it. `Serialize` does
//! write the value: serialization exists for persistence ([`StoredTokens`](crate::StoredTokens)),
//! which needs it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// A string that must not be shown: redacted in `Debug`, zeroed on drop.
///
/// Clones share one buffer. Handing a token to the host for storage therefore neither copies
/// the secret nor leaves a second copy in memory; the buffer is zeroed when its last holder
/// drops it.
#[derive(Clone, Default)]
pub struct SecretString(Arc<Wiped>);

/// The buffer behind a secret, zeroed when dropped. A clone is a copy, zeroed in its turn.
#[derive(Clone, Default, PartialEq, Eq)]
struct Wiped(String);

impl Wiped {
    fn new(value: impl Into<String>) -> Self {
        Wiped(value.into())
    }

    fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Serialize for Wiped {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Wiped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Wiped)
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        // With the length at zero the whole allocation is spare capacity, which `zeroize`
        // clears in one bulk write and an optimisation barrier. `String::zeroize` would write
        // the characters one volatile byte at a time.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.clear();
        bytes.spare_capacity_mut().zeroize();
    }
}

impl SecretString {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(Arc::new(Wiped::new(value)))
    }

    /// The secret itself. Call it only where the value is sent or stored.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose_secret().is_empty()
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString::new(value)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Wiped::deserialize(deserializer).map(|wiped| SecretString(Arc::new(wiped)))
    }
}

/// Declares a named secret type, so that an access token cannot be passed where a refresh
/// token is expected: over [`SecretString`], whose clones share one buffer, or over a buffer of
/// its own (`Wiped`) for a secret that is never shared.
macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        secret_type!($(#[$doc])* $name over $crate::secret::SecretString);
    };
    ($(#[$doc:meta])* $name:ident over $inner:ty) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name($inner);

        impl $name {
            /// Wraps `value`.
            pub fn new(value: impl Into<String>) -> Self {
                $name(<$inner>::new(value))
            }

            /// The secret itself. Call it only where the value is sent or stored.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}([redacted])", stringify!($name))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name::new(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name::new(value)
            }
        }
    };
}

secret_type!(
    /// The client secret issued to this client by the authorization server.
    ClientSecret
);
secret_type!(
    /// A resource owner's password (RFC 6749 §4.3). Kept only while its token request is
    /// under way (§4.3.1), then dropped and zeroed.
    ///
    /// Never handed to the host, so it holds its buffer alone, without the shared count of
    /// the other secrets: a clone is a copy, zeroed in its turn.
    Password over Wiped
);
secret_type!(
    /// An access token (RFC 6749 §1.4).
    AccessToken
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// An OpenID Connect ID token, kept raw and not validated.
    IdToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let token = AccessToken::new("AT-very-secret");
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        assert_eq!(format!("{:?}", SecretString::new("pw")), "[redacted]");
        assert_eq!(token.expose_secret(), "AT-very-secret");
    }

    #[test]
    fn clones_share_one_buffer() {
        let token = AccessToken::new("AT");
        let copy = token.clone();
        assert!(std::ptr::eq(token.expose_secret(), copy.expose_secret()));
        drop(token);
        assert_eq!(copy.expose_secret(), "AT");
        assert_eq!(copy, AccessToken::new("AT"));
    }

    #[test]
    fn a_password_is_held_alone() {
        let password = Password::new("pw");
        let copy = password.clone();
        assert!(!std::ptr::eq(
            password.expose_secret(),
            copy.expose_secret()
        ));
        assert_eq!(copy, password);
        assert_eq!(format!("{password:?}"), "Password([redacted])");
    }

    #[test]
    fn serializes_the_value_for_persistence() {
        let token = RefreshToken::new("rt");
        let json = serde_json::to_string(&token).unwrap();
        assert_eq!(json, "\"rt\"");
        let back: RefreshToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back, token);
    }
}
