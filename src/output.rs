//! What the flow asks of its host: requests to send, events to act on, and when to wake it.

use std::fmt;

use http::HeaderValue;

use crate::error::{FailureCause, FlowError};
use crate::interactive::DeviceAuthorization;
use crate::revocation::TokenTypeHint;
use crate::shared::StoreRequest;
use crate::time::Timestamp;
use crate::token::{OAuthError, StoredTokens};

/// Identifies one request the flow asked the host to send; the answer must carry it back.
///
/// Only the flow issues ids. A host that carries one across a boundary as a plain number (a
/// foreign-language binding, a message queue, another process) sends [`get`](Self::get) and
/// rebuilds the id with [`from_raw`](Self::from_raw) when the answer comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The id whose raw number is `raw`, for a host that carried an id as a number.
    ///
    /// Any number is accepted, and none can harm the flow: an answer or failure for an id it
    /// did not issue, or no longer waits for, is ignored, exactly like a duplicate answer. The
    /// number means something only to the flow that issued it; another flow (say, one restored
    /// in a new process) issues its own from 1 again.
    pub const fn from_raw(raw: u64) -> Self {
        RequestId(raw)
    }

    /// The raw number, for logs and for a host that carries the id as a number
    /// ([`from_raw`](Self::from_raw) rebuilds it).
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Numbers each access token the flow hands out, starting at 1. A 401 for an older
/// generation means the caller used a stale token and should retry with the current one; only
/// a 401 for the current generation makes the flow renew.
///
/// A host that carries a generation across a boundary as a plain number (a foreign-language
/// binding, say) sends [`get`](Self::get) and rebuilds it with [`from_raw`](Self::from_raw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub(crate) u64);

impl Generation {
    /// The generation whose raw number is `raw`, for a host that carried one as a number.
    ///
    /// Any number is accepted, and none can harm the flow: a 401 reported for a generation
    /// other than the current, released one is ignored, so a number the flow never issued
    /// renews nothing. The number means something only to the flow that issued it; another
    /// flow (say, one restored in a new process) numbers its tokens from 1 again.
    pub const fn from_raw(raw: u64) -> Self {
        Generation(raw)
    }

    /// The raw number, for logs and for a host that carries the generation as a number
    /// ([`from_raw`](Self::from_raw) rebuilds it).
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// A usable access token: the ready-made `Authorization` header value and its generation.
///
/// Cloning is cheap (a reference count). `Debug` shows only the generation.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer {
    pub(crate) header: HeaderValue,
    pub(crate) generation: Generation,
}

impl Bearer {
    /// `Bearer <token>` (RFC 6750 §2.1), marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// The token's generation, to report with a 401.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Sets the `Authorization` header of `request`.
    pub fn authorize<B>(&self, request: &mut http::Request<B>) {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.header.clone());
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("generation", &self.generation)
            .field("header", &"[redacted]")
            .finish()
    }
}

/// The answer to [`TokenFlow::access`](crate::TokenFlow::access).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A valid token: use it now.
    Ready(Bearer),
    /// A token request is under way; wait for [`Event::AccessReady`] (or
    /// [`Event::Failed`] / [`Event::LoginRequired`]) and ask again.
    Pending,
    /// No token can be had without a new [`login`](crate::TokenFlow::login).
    LoginRequired,
}

/// An HTTP request the host must send, then report with
/// [`Input::Response`](crate::Input::Response) or [`Input::Failed`](crate::Input::Failed).
///
/// `Debug` shows the method, the URL, the header names and the body's size: the body holds
/// credentials.
pub struct HttpRequest {
    /// Carry it back with the answer.
    pub id: RequestId,
    /// The request. Its body holds secrets: do not log it.
    pub request: http::Request<Vec<u8>>,
    /// After this timestamp the flow no longer waits for the answer; a transport can use it as
    /// its timeout.
    pub deadline: Timestamp,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("id", &self.id)
            .field("method", self.request.method())
            .field("uri", self.request.uri())
            .field(
                "headers",
                &self.request.headers().keys().collect::<Vec<_>>(),
            )
            .field("body_len", &self.request.body().len())
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Why the flow cannot get a token without a new login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginRequiredReason {
    /// The access token ended and no refresh token was issued (for example without the
    /// `offline_access` scope).
    NoRefreshToken,
    /// The server refused the refresh token (`invalid_grant`): it expired, was revoked, or was
    /// already used. The tokens were cleared.
    RefreshTokenRejected(OAuthError),
    /// The refresh token's announced lifetime has passed.
    RefreshTokenExpired,
    /// Two refreshes went out and no answer came back, on a server configured as
    /// [`RefreshTokenReuse::Reusable`](crate::RefreshTokenReuse::Reusable). The flow stops
    /// presenting the token rather than keep sending into silence. The stored tokens are left
    /// as they are.
    RefreshOutcomeUnknown,
    /// A refresh with this token went out and no answer came back, so the server may have
    /// rotated it; presenting it again would be a reuse, which the configured
    /// [`RefreshTokenReuse`](crate::RefreshTokenReuse) does not allow (strict, or past the
    /// grace window) and which could make the server revoke the whole grant. A new login is
    /// needed. The stored tokens are left as they are: should the lost answer still arrive,
    /// its tokens are adopted.
    RefreshTokenMayBeSpent,
}

impl fmt::Display for LoginRequiredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginRequiredReason::NoRefreshToken => {
                f.write_str("the access token ended and there is no refresh token")
            }
            LoginRequiredReason::RefreshTokenRejected(error) => {
                write!(f, "the refresh token was rejected ({error})")
            }
            LoginRequiredReason::RefreshTokenExpired => f.write_str("the refresh token expired"),
            LoginRequiredReason::RefreshOutcomeUnknown => f.write_str(
                "two refresh requests went unanswered, so the refresh token may be spent",
            ),
            LoginRequiredReason::RefreshTokenMayBeSpent => f.write_str(
                "a refresh went unanswered and the server does not accept a refresh token twice",
            ),
        }
    }
}

/// Something the host must know or do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// New tokens: store them durably **before** the next call to
    /// [`poll_output`](crate::TokenFlow::poll_output). The new access token is released only
    /// then, so a rotated refresh token is never used before it is safe.
    TokensUpdated(StoredTokens),
    /// The tokens are gone (logout, or a rejected refresh token): delete the stored copy.
    TokensCleared,
    /// A new access token is available: callers waiting on [`Access::Pending`] can ask again.
    AccessReady {
        /// The new token's generation.
        generation: Generation,
    },
    /// A new login is needed. Emitted once each time the flow gets into that state.
    LoginRequired {
        /// Why.
        reason: LoginRequiredReason,
    },
    /// A token request failed for good (after its retries). Callers waiting on
    /// [`Access::Pending`] should be given this error; the next
    /// [`access`](crate::TokenFlow::access) starts a new attempt.
    Failed(FlowError),
    /// A device login started: show the user where to go and which code to enter. The flow
    /// polls the token endpoint until the user approves, refuses, or the code expires.
    DeviceAuthorization(DeviceAuthorization),
    /// The server confirmed a revocation (RFC 7009).
    Revoked {
        /// Which token.
        token_type: TokenTypeHint,
    },
    /// A revocation failed for good. The tokens were forgotten locally all the same.
    RevocationFailed {
        /// Which token.
        token_type: TokenTypeHint,
        /// How many times the request was sent.
        attempts: u32,
        /// What went wrong the last time.
        cause: FailureCause,
    },
    /// With a shared store ([`ConfigBuilder::shared_store`](crate::ConfigBuilder::shared_store)):
    /// an operation on the store, to perform and report as [`crate::shared`] states.
    Store(StoreRequest),
}

/// The next thing the host must do; see [`TokenFlow::poll_output`](crate::TokenFlow::poll_output).
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Send this request.
    Send(HttpRequest),
    /// Act on this event.
    Event(Event),
    /// Nothing more for now: wait for the next input, or until `until` and then feed
    /// [`Input::Timeout`](crate::Input::Timeout).
    Idle {
        /// When the flow next needs to act on its own; `None` when only an input can wake it.
        until: Option<Timestamp>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Config, Credentials, Input, TokenFlow, UnixTime};

    const NOW: Timestamp = Timestamp::from_secs(10);

    fn flow() -> TokenFlow {
        let config = Config::builder("https://id.example/token", "app")
            .build()
            .unwrap();
        TokenFlow::new(config, 7, NOW, UnixTime::from_secs(1_700_000_000))
    }

    fn tokens() -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(
                br#"{"access_token":"at","token_type":"Bearer","expires_in":600,"refresh_token":"rt"}"#
                    .to_vec(),
            )
            .unwrap()
    }

    /// Drains the flow; returns the ids it asked to send and whether it raised any event.
    fn drain(flow: &mut TokenFlow) -> (Vec<RequestId>, bool) {
        let (mut sent, mut events) = (Vec::new(), false);
        loop {
            match flow.poll_output() {
                Output::Send(request) => sent.push(request.id),
                Output::Event(_) => events = true,
                Output::Idle { .. } => return (sent, events),
            }
        }
    }

    #[test]
    fn ids_carried_as_numbers_work_and_ones_never_issued_are_ignored() {
        let mut flow = flow();
        flow.login(NOW, Credentials::password("joe", "pw"));
        let (sent, _) = drain(&mut flow);
        let [issued] = sent[..] else {
            panic!("one token request, got {sent:?}")
        };

        // Answers for ids the flow never issued change nothing.
        for raw in [0, issued.get() + 1, u64::MAX] {
            let id = RequestId::from_raw(raw);
            flow.handle_input(
                NOW,
                Input::Response {
                    id,
                    response: tokens(),
                },
            );
            let error = crate::TransportError::new(crate::TransportErrorKind::Other, "x");
            flow.handle_input(NOW, Input::Failed { id, error });
        }
        assert_eq!(drain(&mut flow), (Vec::new(), false));
        assert_eq!(flow.request_in_flight(), Some(issued));
        assert!(matches!(flow.access(NOW), Access::Pending));

        // The issued id, carried as a number, is the flow's own.
        let id = RequestId::from_raw(issued.get());
        assert_eq!(id, issued);
        flow.handle_input(
            NOW,
            Input::Response {
                id,
                response: tokens(),
            },
        );
        let (sent, events) = drain(&mut flow);
        assert!(sent.is_empty() && events, "the tokens are announced");
        let generation = flow.generation().expect("a token is held");
        assert_eq!(Generation::from_raw(generation.get()), generation);

        // A 401 for a generation never issued renews nothing.
        for raw in [0, generation.get() + 1, u64::MAX] {
            let generation = Generation::from_raw(raw);
            let www_authenticate = Vec::new();
            flow.handle_input(
                NOW,
                Input::Unauthorized {
                    generation,
                    www_authenticate,
                },
            );
        }
        assert_eq!(drain(&mut flow), (Vec::new(), false));
        assert!(matches!(flow.access(NOW), Access::Ready(_)));

        // A 401 for the current one, carried as a number, starts a renewal.
        let generation = Generation::from_raw(generation.get());
        let www_authenticate = Vec::new();
        flow.handle_input(
            NOW,
            Input::Unauthorized {
                generation,
                www_authenticate,
            },
        );
        let (sent, _) = drain(&mut flow);
        assert_eq!(sent.len(), 1, "one refresh request");
    }
}
