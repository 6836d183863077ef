//! A deterministic protected resource that accepts the tokens of a [`FakeAuthServer`].

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::json;
use tokenflow::Timestamp;

use super::fake_auth::FakeAuthServer;

/// The `WWW-Authenticate` challenge sent when a request carries no bearer token.
pub const CHALLENGE_MISSING: &str = "Bearer realm=\"api\"";
/// The `WWW-Authenticate` challenge sent when the bearer token is invalid, expired or revoked.
pub const CHALLENGE_INVALID: &str = "Bearer error=\"invalid_token\"";

/// A protected resource (RFC 6750) backed by a [`FakeAuthServer`].
#[derive(Debug, Default)]
pub struct FakeApi {
    calls: usize,
    unauthorized: usize,
    tokens_seen: Vec<String>,
}

impl FakeApi {
    /// A resource that has seen no call yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `Authorization: Bearer <token>` against `server` at `now`: 200 with a small JSON
    /// body, 401 with `WWW-Authenticate: Bearer error="invalid_token"` for a bad token, or 401
    /// with `Bearer realm="api"` when no bearer token was sent.
    pub fn handle(
        &mut self,
        now: Timestamp,
        server: &FakeAuthServer,
        request: &Request<Vec<u8>>,
    ) -> Response<Vec<u8>> {
        self.calls += 1;
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let Some(token) = token else {
            return self.reject(CHALLENGE_MISSING);
        };
        self.tokens_seen.push(token.clone());
        if !server.is_access_token_valid(&token, now) {
            return self.reject(CHALLENGE_INVALID);
        }
        let body = json!({ "ok": true, "call": self.calls, "path": request.uri().path() });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).expect("JSON serializes"))
            .expect("valid response")
    }

    /// Requests handled.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Requests answered with 401.
    pub fn unauthorized(&self) -> usize {
        self.unauthorized
    }

    /// Every bearer token presented, in order.
    pub fn tokens_seen(&self) -> &[String] {
        &self.tokens_seen
    }

    fn reject(&mut self, challenge: &'static str) -> Response<Vec<u8>> {
        self.unauthorized += 1;
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(br#"{"error":"unauthorized"}"#.to_vec())
            .expect("valid response")
    }
}
