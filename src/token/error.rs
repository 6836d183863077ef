//! Why a token endpoint answer could not be used: typed, printable, and free of secrets.

use std::fmt;

use http::StatusCode;

use crate::redact::{Redactor, cut};

/// An error code from the token endpoint (RFC 6749 §5.2, RFC 8628 §3.5, and the two codes of
/// §4.1.2.1 that some servers also send from the token endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`: the credentials, code or refresh token are invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `authorization_pending` (device flow)
    AuthorizationPending,
    /// `slow_down` (device flow)
    SlowDown,
    /// `access_denied`
    AccessDenied,
    /// `expired_token` (device flow)
    ExpiredToken,
    /// Any other code, as sent: the secrets the flow holds scrubbed, then control characters
    /// replaced and the code cut to 64 characters.
    Other(String),
}

impl ErrorCode {
    /// Reads an `error` value.
    pub fn parse(code: &str) -> ErrorCode {
        ErrorCode::read(code, &Redactor::NONE)
    }

    /// Reads an `error` value, scrubbing the secrets of `redactor` from an unknown one.
    pub(crate) fn read(code: &str, redactor: &Redactor) -> ErrorCode {
        match code {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "server_error" => ErrorCode::ServerError,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            "authorization_pending" => ErrorCode::AuthorizationPending,
            "slow_down" => ErrorCode::SlowDown,
            "access_denied" => ErrorCode::AccessDenied,
            "expired_token" => ErrorCode::ExpiredToken,
            other => ErrorCode::Other(printable(other, 64, redactor)),
        }
    }

    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::Other(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The HTTP status it came with (some servers send errors with 200).
    pub status: StatusCode,
    /// The `error` code.
    pub code: ErrorCode,
    /// `error_description`: the secrets the flow holds scrubbed, then control characters
    /// replaced and the text cut to 200 characters.
    pub description: Option<String>,
    /// `error_uri`, scrubbed, cleaned and cut like the description.
    pub uri: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token endpoint answered {} with error {}",
            self.status, self.code
        )?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

/// What is wrong with a success response's body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformation {
    /// The body is empty.
    Empty,
    /// The body is not JSON (nor a form-encoded body declared as such).
    NotJson {
        /// The line where parsing stopped (1-based; 0 when unknown).
        line: usize,
        /// The column where parsing stopped.
        column: usize,
    },
    /// The body is JSON but not an object.
    NotAnObject,
    /// A field the response must have is missing.
    MissingField(&'static str),
    /// A field has a type the response cannot use.
    WrongType {
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A field appears more than once, so which value counts is ambiguous. The name is
    /// scrubbed, cleaned and cut to 64 characters like an error code.
    DuplicateField(String),
    /// A token holds characters that cannot be sent in an HTTP header.
    UnsendableToken(&'static str),
    /// `expires_in` is negative, NaN, infinite or not a number.
    InvalidExpiresIn,
    /// The body carries an `error` and an access token: it both refuses and grants.
    ErrorBesideAccessToken,
}

impl fmt::Display for Malformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformation::Empty => f.write_str("the body is empty"),
            Malformation::NotJson { line, column } => {
                write!(
                    f,
                    "the body is not JSON (parsing stopped at line {line}, column {column})"
                )
            }
            Malformation::NotAnObject => f.write_str("the body is JSON but not an object"),
            Malformation::MissingField(field) => write!(f, "the `{field}` field is missing"),
            Malformation::WrongType { field, expected } => {
                write!(f, "the `{field}` field is not {expected}")
            }
            Malformation::DuplicateField(field) => {
                write!(f, "the `{field}` field appears more than once")
            }
            Malformation::UnsendableToken(field) => write!(
                f,
                "the `{field}` field holds characters that cannot be sent in an HTTP header"
            ),
            Malformation::InvalidExpiresIn => {
                f.write_str("`expires_in` is negative or not a number")
            }
            Malformation::ErrorBesideAccessToken => f.write_str(
                "the body carries both an `error` and an `access_token`, so it contradicts itself",
            ),
        }
    }
}

/// Why a token endpoint response could not be used.
///
/// Neither `Debug` nor `Display` ever contains a token: bodies of success responses are never
/// quoted, and excerpts of error pages are short and stripped of markup. The text a server sent
/// (descriptions, unknown codes, excerpts, field names, token types) has the secrets the flow
/// holds scrubbed from it, in every form the flow sends them, before it is cut to length.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The server answered with an OAuth error.
    OAuth(OAuthError),
    /// A non-success status without an OAuth error body: a gateway's HTML page, an empty body.
    Status {
        /// The status.
        status: StatusCode,
        /// A short, printable excerpt of a non-JSON body (empty when there is nothing to show).
        excerpt: String,
    },
    /// A body that is not a usable answer: a success whose body is not a usable token
    /// response, or an answer of any status that contradicts itself (an `error` given twice,
    /// or an `error` beside an access token). Such an answer is no verdict on the tokens held.
    Malformed {
        /// The status.
        status: StatusCode,
        /// What is wrong.
        problem: Malformation,
    },
    /// The token type is one this client does not understand (RFC 6749 §7.1).
    UnsupportedTokenType {
        /// The type as sent: scrubbed, cleaned and cut to 32 characters.
        token_type: String,
    },
    /// The body is larger than the configured limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The body's size in bytes.
        size: usize,
    },
}

impl ResponseError {
    /// The HTTP status when the error came from one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ResponseError::OAuth(error) => Some(error.status),
            ResponseError::Status { status, .. } | ResponseError::Malformed { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The OAuth error code, when the server sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            ResponseError::OAuth(error) => Some(&error.code),
            _ => None,
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::OAuth(error) => error.fmt(f),
            ResponseError::Status { status, excerpt } if excerpt.is_empty() => {
                write!(
                    f,
                    "the token endpoint answered {status} without an OAuth error"
                )
            }
            ResponseError::Status { status, excerpt } => write!(
                f,
                "the token endpoint answered {status} without an OAuth error: \"{excerpt}\""
            ),
            ResponseError::Malformed { status, problem } => write!(
                f,
                "the token endpoint answered {status} but not with a usable token response: {problem}"
            ),
            ResponseError::UnsupportedTokenType { token_type } => write!(
                f,
                "the token endpoint issued a token of type {token_type:?}, which this client cannot use"
            ),
            ResponseError::TooLarge { limit, size } => write!(
                f,
                "the token endpoint's response body has {size} bytes, more than the limit of {limit}"
            ),
        }
    }
}

impl std::error::Error for ResponseError {}

/// `text` for display: the secrets of `redactor` scrubbed, control characters replaced, cut to
/// `max` characters and marked with `…` when cut.
///
/// Scrubbing comes first: a secret straddling the cut, or holding a control character, would
/// no longer match afterwards. The cut never splits a scrubbed secret's marker.
pub(crate) fn printable(text: &str, max: usize, redactor: &Redactor) -> String {
    let scrubbed = redactor.redact(text);
    let (kept, more) = cut(&scrubbed, max);
    let mut out: String = kept
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if more {
        out.push('…');
    }
    out
}

/// A short excerpt of an error page: the secrets of `redactor` scrubbed, markup removed, white
/// space collapsed, 100 characters.
///
/// The page is scrubbed as it came: removing markup or collapsing white space first could join
/// or split a secret so that it no longer matches. Only the first 4 KiB are read; a secret
/// straddling that limit loses its end there, and the part left is scrubbed as a piece.
pub(crate) fn excerpt(body: &[u8], redactor: &Redactor) -> String {
    let head = body.get(..body.len().min(4096)).unwrap_or_default();
    let text = String::from_utf8_lossy(head);
    let text = redactor.redact(&text);
    let mut plain = String::with_capacity(128);
    let mut in_tag = false;
    let mut last_space = true;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                if !last_space {
                    plain.push(' ');
                    last_space = true;
                }
            }
            _ if in_tag => {}
            c if c.is_whitespace() || c.is_control() => {
                if !last_space {
                    plain.push(' ');
                    last_space = true;
                }
            }
            c => {
                plain.push(c);
                last_space = false;
            }
        }
    }
    printable(plain.trim(), 100, &Redactor::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_strip_markup_and_are_short() {
        let page = b"<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad   Gateway</h1></body></html>";
        assert_eq!(
            excerpt(page, &Redactor::NONE),
            "502 Bad Gateway Bad Gateway"
        );
        let long = "x".repeat(500);
        assert_eq!(
            excerpt(long.as_bytes(), &Redactor::NONE).chars().count(),
            101
        );
        assert_eq!(
            excerpt(&[0xff, 0xfe, b'a'], &Redactor::NONE),
            "\u{fffd}\u{fffd}a"
        );
    }

    #[test]
    fn unknown_codes_are_kept_printable() {
        assert_eq!(ErrorCode::parse("invalid_grant"), ErrorCode::InvalidGrant);
        assert_eq!(
            ErrorCode::parse("weird\ncode"),
            ErrorCode::Other("weird code".into())
        );
    }
}
