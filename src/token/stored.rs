//! The tokens a host persists between runs: versioned, with absolute wall-clock times.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::grant::GrantKind;
use crate::scope::Scope;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::time::UnixTime;

/// The current format version of [`StoredTokens`].
pub const STORED_TOKENS_VERSION: u32 = 1;

/// Everything needed to carry on after a restart without logging in again.
///
/// Emitted as [`Event::TokensUpdated`](crate::Event::TokensUpdated) each time the tokens
/// change; a host writes it to durable storage and hands it back to
/// [`TokenFlow::restore`](crate::TokenFlow::restore). Times are absolute (Unix epoch
/// milliseconds) because monotonic instants mean nothing to the next process.
///
/// Serialized, it holds the tokens in clear: store it where only the application can read it.
/// `Debug` redacts them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTokens {
    /// The format version, [`STORED_TOKENS_VERSION`].
    pub version: u32,
    /// The grant that first obtained these tokens; it decides how they are renewed when no
    /// refresh token is left (client credentials simply ask again).
    pub grant: GrantKind,
    /// The access token, if one is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessToken>,
    /// When the access token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<UnixTime>,
    /// The refresh token, if one is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// When the refresh token expires, when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_at: Option<UnixTime>,
    /// The granted scope, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The raw OpenID Connect ID token, if one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
    /// When these tokens were issued.
    pub issued_at: UnixTime,
    /// Fields of the token response outside RFC 6749, as sent.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, Value>,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("version", &self.version)
            .field("grant", &self.grant)
            .field("access_token", &self.access_token)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token)
            .field("issued_at", &self.issued_at)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StoredTokens {
    /// Serializes to JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads stored tokens from JSON and checks them. Errors never quote the file's content.
    pub fn from_json(bytes: &[u8]) -> Result<StoredTokens, RestoreError> {
        let version = serde_json::from_slice::<VersionOnly>(bytes)
            .map_err(RestoreError::from_json_error)?
            .version;
        if version != STORED_TOKENS_VERSION {
            return Err(RestoreError::UnsupportedVersion(version));
        }
        let stored: StoredTokens =
            serde_json::from_slice(bytes).map_err(RestoreError::from_json_error)?;
        stored.validate()?;
        Ok(stored)
    }

    /// Checks what serde cannot: tokens that could not be sent, a version from the future.
    pub fn validate(&self) -> Result<(), RestoreError> {
        if self.version != STORED_TOKENS_VERSION {
            return Err(RestoreError::UnsupportedVersion(self.version));
        }
        let sendable = |t: &str| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if let Some(token) = &self.access_token {
            if !sendable(token.expose_secret()) {
                return Err(RestoreError::InvalidToken("access_token"));
            }
        }
        if let Some(token) = &self.refresh_token {
            if !sendable(token.expose_secret()) {
                return Err(RestoreError::InvalidToken("refresh_token"));
            }
        }
        if self.access_token.is_none() && self.refresh_token.is_none() {
            return Err(RestoreError::NoTokens);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Why stored tokens could not be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The stored data is not valid JSON, or not of the expected shape.
    Json {
        /// What kind of problem: `syntax`, `data`, `eof` or `io`.
        kind: &'static str,
        /// The line where reading stopped.
        line: usize,
        /// The column where reading stopped.
        column: usize,
    },
    /// The data was written by a format version this build does not know.
    UnsupportedVersion(u32),
    /// A token holds characters that cannot be sent.
    InvalidToken(&'static str),
    /// Neither an access token nor a refresh token is stored.
    NoTokens,
}

impl RestoreError {
    fn from_json_error(error: serde_json::Error) -> RestoreError {
        use serde_json::error::Category;
        RestoreError::Json {
            kind: match error.classify() {
                Category::Io => "io",
                Category::Syntax => "syntax",
                Category::Data => "data",
                Category::Eof => "eof",
            },
            line: error.line(),
            column: error.column(),
        }
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Json { kind, line, column } => write!(
                f,
                "stored tokens are unreadable ({kind} error at line {line}, column {column})"
            ),
            RestoreError::UnsupportedVersion(version) => write!(
                f,
                "stored tokens use format version {version}; this build reads version {STORED_TOKENS_VERSION}"
            ),
            RestoreError::InvalidToken(field) => {
                write!(f, "the stored {field} holds characters that cannot be sent")
            }
            RestoreError::NoTokens => f.write_str("the stored data holds no token"),
        }
    }
}

impl std::error::Error for RestoreError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredTokens {
        StoredTokens {
            version: STORED_TOKENS_VERSION,
            grant: GrantKind::Password,
            access_token: Some(AccessToken::new("AT-1")),
            expires_at: Some(UnixTime::from_secs(1_700_000_600)),
            refresh_token: Some(RefreshToken::new("RT-1")),
            refresh_token_expires_at: None,
            scope: Some("datahub-api offline_access".into()),
            id_token: None,
            issued_at: UnixTime::from_secs(1_700_000_000),
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let stored = sample();
        assert_eq!(StoredTokens::from_json(&stored.to_json()).unwrap(), stored);
    }

    #[test]
    fn errors_never_quote_the_content() {
        let broken = br#"{"version":1,"grant":"password","access_token":42,"refresh_token":"RT-SECRET","issued_at":0}"#;
        let error = StoredTokens::from_json(broken).unwrap_err();
        assert!(matches!(error, RestoreError::Json { kind: "data", .. }));
        let wrong = br#"{"version":1,"grant":"RT-SECRET","issued_at":0}"#;
        let error = StoredTokens::from_json(wrong).unwrap_err();
        assert!(!format!("{error} {error:?}").contains("RT-SECRET"));
    }

    #[test]
    fn future_versions_are_refused() {
        let future = br#"{"version":2,"whatever":true}"#;
        assert_eq!(
            StoredTokens::from_json(future).unwrap_err(),
            RestoreError::UnsupportedVersion(2)
        );
    }

    #[test]
    fn debug_redacts() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("AT-1") && !text.contains("RT-1"));
    }
}
