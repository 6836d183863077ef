//! What happened, as the host reports it to the flow.

use std::fmt;

use http::{HeaderMap, HeaderValue, header};

use crate::output::{Generation, RequestId};
use crate::shared::StoreReport;

/// An input to [`TokenFlow::handle_input`](crate::TokenFlow::handle_input).
///
/// `Debug` shows a response's status, header names and body size, never its body: the body
/// of a token endpoint answer holds the tokens.
#[non_exhaustive]
pub enum Input {
    /// The answer to a request the flow asked for, whatever its status.
    Response {
        /// The id from [`HttpRequest::id`](crate::HttpRequest::id).
        id: RequestId,
        /// The response, with its body read up to the configured limit (plus one byte, so
        /// that an oversized body is recognised).
        response: http::Response<Vec<u8>>,
    },
    /// The request could not be completed.
    Failed {
        /// The id from [`HttpRequest::id`](crate::HttpRequest::id).
        id: RequestId,
        /// What went wrong.
        error: TransportError,
    },
    /// An API answered 401 to a request made with the token of `generation`.
    Unauthorized {
        /// The generation of the token that was refused.
        generation: Generation,
        /// The response's `WWW-Authenticate` values (RFC 6750 §3), possibly none.
        www_authenticate: Vec<HeaderValue>,
    },
    /// Time has passed (the `until` of [`Output::Idle`](crate::Output::Idle) was reached).
    Timeout,
    /// With a shared store: what the store said or holds (see [`crate::shared`]).
    Store(StoreReport),
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Response { id, response } => f
                .debug_struct("Response")
                .field("id", id)
                .field("status", &response.status())
                .field("headers", &response.headers().keys().collect::<Vec<_>>())
                .field("body_len", &response.body().len())
                .finish(),
            Input::Failed { id, error } => f
                .debug_struct("Failed")
                .field("id", id)
                .field("error", error)
                .finish(),
            Input::Unauthorized {
                generation,
                www_authenticate,
            } => f
                .debug_struct("Unauthorized")
                .field("generation", generation)
                .field("www_authenticate", www_authenticate)
                .finish(),
            Input::Timeout => f.write_str("Timeout"),
            Input::Store(report) => f.debug_tuple("Store").field(report).finish(),
        }
    }
}

impl Input {
    /// An [`Input::Unauthorized`] from the headers of the API's 401 response.
    pub fn unauthorized(generation: Generation, headers: &HeaderMap) -> Input {
        Input::Unauthorized {
            generation,
            www_authenticate: headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// How a transport failed, which decides whether retrying is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The request never reached the server (DNS, connection refused, TLS handshake): retrying
    /// cannot repeat anything.
    NotSent,
    /// No complete answer arrived in time; the server may have acted on the request.
    TimedOut,
    /// The connection failed after the request went out; the server may have acted on it.
    Interrupted,
    /// The response body was larger than the limit.
    BodyTooLarge,
    /// Anything else; treated like [`TransportErrorKind::Interrupted`].
    Other,
}

/// A transport failure reported by the host. Its message must not contain secrets; the
/// ready-made transports only ever put the underlying error's description there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
}

impl TransportError {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// The request never reached the server.
    pub fn not_sent(message: impl Into<String>) -> Self {
        Self::new(TransportErrorKind::NotSent, message)
    }

    /// No answer in time.
    pub fn timed_out(message: impl Into<String>) -> Self {
        Self::new(TransportErrorKind::TimedOut, message)
    }

    /// The connection failed after sending.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(TransportErrorKind::Interrupted, message)
    }

    /// What kind of failure.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The description.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the server may have received and acted on the request.
    pub fn is_ambiguous(&self) -> bool {
        self.kind != TransportErrorKind::NotSent
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            TransportErrorKind::NotSent => "request not sent",
            TransportErrorKind::TimedOut => "timed out",
            TransportErrorKind::Interrupted => "connection failed after sending",
            TransportErrorKind::BodyTooLarge => "response body too large",
            TransportErrorKind::Other => "transport error",
        };
        if self.message.is_empty() {
            f.write_str(kind)
        } else {
            write!(f, "{kind}: {}", self.message)
        }
    }
}

impl std::error::Error for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_response_body() {
        let body = br#"{"access_token":"AT-very-secret","refresh_token":"RT-very-secret"}"#;
        let response = http::Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .unwrap();
        let input = Input::Response {
            id: RequestId(3),
            response,
        };
        let text = format!("{input:?}");
        assert_eq!(
            text,
            "Response { id: RequestId(3), status: 200, headers: [\"content-type\"], body_len: 66 }"
        );
        // Neither as text nor as the list of numbers a byte slice prints as.
        let as_numbers = format!("{:?}", &b"AT-very"[..]);
        assert!(!text.contains("very-secret"));
        assert!(!text.contains(&as_numbers[1..as_numbers.len() - 1]));
    }
}
