//! Reading a token endpoint response (RFC 6749 §5.1, §5.2), forgiving what real providers send.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::redact::{Redactor, Secrets};
use crate::scope::Scope;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::time::UnixTime;
use crate::token::error::{ErrorCode, Malformation, OAuthError, ResponseError, excerpt, printable};
use crate::token::fields::{Fields, NumberProblem};
use crate::token::wire::{Raw, Wire, read_wire};

/// The kind of access token issued. Only bearer tokens (RFC 6750) are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// `Bearer`, however the server spelled it (`bearer`, `BearerToken`, or not at all).
    Bearer,
}

/// A successful token response.
///
/// Fields outside RFC 6749 that providers add (`status`, `refresh_count`, …) are kept in
/// [`TokenResponse::extra`]. `Debug` shows no token and only the names of extra fields.
#[derive(Clone, PartialEq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// The token type, always [`TokenType::Bearer`] for now.
    pub token_type: TokenType,
    /// The access token's lifetime, when the server said (clamped to ten years).
    pub expires_in: Option<Duration>,
    /// A refresh token, when one was issued (an empty string counts as none).
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, space-separated; `None` means the requested scope (§5.1).
    pub scope: Option<Scope>,
    /// An OpenID Connect ID token, raw and not validated.
    pub id_token: Option<IdToken>,
    /// The refresh token's lifetime (`refresh_token_expires_in` or `refresh_expires_in`).
    /// Zero, which Keycloak sends for offline tokens that do not expire, counts as no stated
    /// lifetime and gives `None`.
    pub refresh_token_expires_in: Option<Duration>,
    /// When the refresh token was issued (`refresh_token_issued_at`), read as epoch seconds
    /// when below 10^11 and as epoch milliseconds from there on: 10^11 seconds is the year
    /// 5138 and 10^11 milliseconds March 1973, so every plausible time reads right in either
    /// unit. Zero counts as not given.
    pub refresh_token_issued_at: Option<UnixTime>,
    /// Every other field, as sent.
    pub extra: serde_json::Map<String, Value>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token)
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .field("refresh_token_issued_at", &self.refresh_token_issued_at)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenResponse {
    /// When the refresh token expires: its issue time (or `received_at` when the server gave
    /// none) plus its lifetime. `None` when the server gave no lifetime.
    pub fn refresh_token_expires_at(&self, received_at: UnixTime) -> Option<UnixTime> {
        let lifetime = self.refresh_token_expires_in?;
        let issued = self.refresh_token_issued_at.unwrap_or(received_at);
        Some(issued.saturating_add(lifetime))
    }
}

/// Reads a token endpoint response.
///
/// Forgiving where providers differ and nothing is at stake: `expires_in` as a number, a
/// string or a float; `token_type` in any case, `BearerToken`, or missing; `scope` as a string
/// or an array; a form-encoded body when the server says so. Strict where a mistake would
/// send a wrong token: a missing or unsendable `access_token`, a duplicated field, an unknown
/// token type. A `200` carrying an `error` is an error. A body that contradicts itself — an
/// `error` given twice, or an `error` beside an access token, whatever the status — is
/// [`ResponseError::Malformed`], never an OAuth error: it is no verdict on the tokens held.
///
/// This function knows no secrets, so the text of an error is only cleaned and cut; a
/// [`TokenFlow`](crate::TokenFlow) reading the same response scrubs the secrets it holds too.
pub fn parse_token_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    max_body_bytes: usize,
) -> Result<TokenResponse, ResponseError> {
    parse_token_response_to(status, headers, body, max_body_bytes, None, &())
}

/// [`parse_token_response`] for a request that asked for `requested`: a granted scope equal
/// to it shares its buffer instead of being copied. The text of an error has the secrets of
/// `secrets` scrubbed from it; they are only visited when there is an error.
pub(crate) fn parse_token_response_to(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    max_body_bytes: usize,
    requested: Option<&Scope>,
    secrets: &dyn Secrets,
) -> Result<TokenResponse, ResponseError> {
    if body.len() > max_body_bytes {
        return Err(ResponseError::TooLarge {
            limit: max_body_bytes,
            size: body.len(),
        });
    }
    let malformed = |problem| ResponseError::Malformed { status, problem };
    let wire = match read_body(headers, body) {
        Ok(wire) => wire,
        // The typed reading stops at a field given twice; whether the body is still an
        // error, or contradicts itself, is judged on its whole field list.
        Err(Malformation::DuplicateField(_)) => {
            return Err(judge_field_list(status, headers, body, secrets));
        }
        Err(problem) if status.is_success() => return Err(malformed(problem)),
        Err(_) => return Err(not_an_oauth_error(status, body, secrets)),
    };
    // A body that says two things is no verdict: clearing the tokens on an `invalid_grant`
    // it also contradicts would lose a grant the server may still honour.
    if is_error(wire.error.as_ref()) && is_token(wire.access_token.as_ref()) {
        return Err(malformed(Malformation::ErrorBesideAccessToken));
    }
    if let Some(Raw::Text(code)) = &wire.error {
        let redactor = Redactor::new(secrets);
        return Err(ResponseError::OAuth(OAuthError {
            status,
            code: ErrorCode::read(code, &redactor),
            description: wire
                .error_description
                .as_ref()
                .and_then(Raw::text)
                .map(|t| printable(t, 200, &redactor)),
            uri: wire
                .error_uri
                .as_ref()
                .and_then(Raw::text)
                .map(|t| printable(t, 200, &redactor)),
        }));
    }
    if !status.is_success() {
        return Err(ResponseError::Status {
            status,
            excerpt: String::new(),
        });
    }
    token_response(wire, requested).map_err(|error| error.at(status, secrets))
}

/// The answer to a body with a field given twice, read as a list of fields: an error when it
/// carries one and does not contradict itself, else malformed.
fn judge_field_list(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &dyn Secrets,
) -> ResponseError {
    let malformed = |problem| ResponseError::Malformed { status, problem };
    let fields = match read_fields(headers, body) {
        Ok(fields) => fields,
        Err(problem) if status.is_success() => return malformed(problem),
        Err(_) => return not_an_oauth_error(status, body, secrets),
    };
    if let Some(problem) = contradiction(&fields) {
        return malformed(problem);
    }
    if let Some(error) = oauth_error(status, &fields, secrets) {
        return ResponseError::OAuth(error);
    }
    if !status.is_success() {
        return ResponseError::Status {
            status,
            excerpt: String::new(),
        };
    }
    let name = fields.duplicate().unwrap_or_default();
    malformed(Malformation::DuplicateField(printable(
        name,
        64,
        &Redactor::new(secrets),
    )))
}

/// A non-success answer whose body is not an OAuth error: an excerpt of it, unless it looks
/// like JSON (which might hold a token; it is not quoted).
fn not_an_oauth_error(status: StatusCode, body: &[u8], secrets: &dyn Secrets) -> ResponseError {
    ResponseError::Status {
        status,
        excerpt: if looks_like_json(body) {
            String::new()
        } else {
            excerpt(body, &Redactor::new(secrets))
        },
    }
}

/// An `error` that counts: a string.
fn is_error(error: Option<&Raw<'_>>) -> bool {
    matches!(error, Some(Raw::Text(_)))
}

/// An access token that counts for noticing a contradiction: anything but an empty string.
fn is_token(token: Option<&Raw<'_>>) -> bool {
    match token {
        Some(Raw::Text(token)) => !token.is_empty(),
        Some(Raw::Json(value)) => !value.is_null(),
        None => false,
    }
}

fn read_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Wire<'a>, Malformation> {
    let trimmed = trim_start(body);
    if trimmed.is_empty() {
        return Err(Malformation::Empty);
    }
    read_wire(trimmed, trimmed.first() != Some(&b'{') && is_form(headers))
}

/// After a success response that could not be read, the refresh token it carries, if any.
///
/// A server that rotates refresh tokens has already retired the old one by the time it
/// answers; keeping the new one (when it is readable) is the only way not to lose the grant.
pub(crate) fn salvage_refresh_token(headers: &HeaderMap, body: &[u8]) -> Option<RefreshToken> {
    let fields = read_fields(headers, body).ok()?;
    // A body that contradicts itself is trusted for nothing: the tokens held are kept.
    if fields.duplicate() == Some("refresh_token") || contradiction(&fields).is_some() {
        return None;
    }
    match fields.get("refresh_token")? {
        Value::String(token) if is_sendable(token) => Some(RefreshToken::new(token.as_str())),
        _ => None,
    }
}

fn read_fields<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Fields<'a>, Malformation> {
    let trimmed = trim_start(body);
    if trimmed.is_empty() {
        return Err(Malformation::Empty);
    }
    if trimmed.first() != Some(&b'{') && is_form(headers) {
        return Ok(Fields::from_form(trimmed));
    }
    Fields::from_json(trimmed)
}

fn trim_start(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    body.get(start..).unwrap_or_default()
}

fn looks_like_json(body: &[u8]) -> bool {
    matches!(trim_start(body).first(), Some(b'{' | b'['))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// What makes a body contradict itself, if anything: an `error` given more than once (which
/// one counts?), or an `error` beside an access token (refused or granted?).
fn contradiction(fields: &Fields) -> Option<Malformation> {
    if fields.appears_more_than_once("error") {
        return Some(Malformation::DuplicateField("error".to_owned()));
    }
    let error = matches!(fields.get("error"), Some(Value::String(_)));
    let access_token = match fields.get("access_token") {
        Some(Value::String(token)) => !token.is_empty(),
        Some(_) => true,
        None => false,
    };
    (error && access_token).then_some(Malformation::ErrorBesideAccessToken)
}

fn oauth_error(status: StatusCode, fields: &Fields, secrets: &dyn Secrets) -> Option<OAuthError> {
    let Value::String(code) = fields.get("error")? else {
        return None;
    };
    let redactor = Redactor::new(secrets);
    let text = |name| match fields.get(name) {
        Some(Value::String(text)) => Some(printable(text, 200, &redactor)),
        _ => None,
    };
    Some(OAuthError {
        status,
        code: ErrorCode::read(code, &redactor),
        description: text("error_description"),
        uri: text("error_uri"),
    })
}

enum Problem {
    Malformed(Malformation),
    /// The token type as sent, not yet scrubbed.
    TokenType(String),
}

impl Problem {
    fn at(self, status: StatusCode, secrets: &dyn Secrets) -> ResponseError {
        match self {
            Problem::Malformed(problem) => ResponseError::Malformed { status, problem },
            Problem::TokenType(token_type) => ResponseError::UnsupportedTokenType {
                token_type: printable(&token_type, 32, &Redactor::new(secrets)),
            },
        }
    }
}

impl From<Malformation> for Problem {
    fn from(problem: Malformation) -> Self {
        Problem::Malformed(problem)
    }
}

/// The response described by its known fields and the others, each known field judged on
/// its own.
fn token_response(wire: Wire<'_>, requested: Option<&Scope>) -> Result<TokenResponse, Problem> {
    let Wire {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        scope,
        id_token,
        refresh_token_expires_in,
        refresh_expires_in,
        refresh_token_issued_at,
        error,
        error_description,
        error_uri,
        extra,
    } = wire;
    let access_token = match access_token {
        None => return Err(Malformation::MissingField("access_token").into()),
        Some(Raw::Text(token)) if token.is_empty() => {
            return Err(Malformation::MissingField("access_token").into());
        }
        Some(Raw::Text(token)) if !is_sendable(&token) => {
            return Err(Malformation::UnsendableToken("access_token").into());
        }
        Some(Raw::Text(token)) => AccessToken::new(token),
        Some(Raw::Json(_)) => return Err(wrong_type("access_token", "a string").into()),
    };
    let token_type = match token_type {
        None => TokenType::Bearer,
        Some(Raw::Text(kind)) if is_bearer(&kind) => TokenType::Bearer,
        Some(Raw::Text(kind)) => return Err(Problem::TokenType(kind.into_owned())),
        Some(Raw::Json(_)) => return Err(wrong_type("token_type", "a string").into()),
    };
    let expires_in = match expires_in.as_ref().map(Raw::seconds) {
        None => None,
        Some(Ok(lifetime)) => lifetime,
        Some(Err(NumberProblem::Negative | NumberProblem::NotANumber)) => {
            return Err(Malformation::InvalidExpiresIn.into());
        }
    };
    let refresh_token = match refresh_token {
        None => None,
        Some(Raw::Text(token)) if token.is_empty() => None,
        Some(Raw::Text(token)) if !is_sendable(&token) => {
            return Err(Malformation::UnsendableToken("refresh_token").into());
        }
        Some(Raw::Text(token)) => Some(RefreshToken::new(token)),
        Some(Raw::Json(_)) => return Err(wrong_type("refresh_token", "a string").into()),
    };
    let scope = match scope {
        None => None,
        Some(Raw::Text(scope)) => Some(match requested {
            // The requested scope is tidy: the configuration joined it with single spaces.
            Some(requested) if *requested == *scope => requested.clone(),
            _ => Scope::new(tidy_scope(scope.into_owned())),
        }),
        Some(Raw::Json(Value::Array(items))) => {
            let mut scopes = Vec::with_capacity(items.len());
            for item in &items {
                match item {
                    Value::String(scope) => scopes.push(scope.as_str()),
                    _ => return Err(wrong_type("scope", "a string or an array of strings").into()),
                }
            }
            Some(Scope::new(normalize_scope(scopes.into_iter())))
        }
        Some(Raw::Json(_)) => {
            return Err(wrong_type("scope", "a string or an array of strings").into());
        }
    };
    let id_token = match id_token {
        None => None,
        Some(Raw::Text(token)) => Some(IdToken::new(token)),
        Some(Raw::Json(_)) => return Err(wrong_type("id_token", "a string").into()),
    };
    // Extension fields are informative only: a value that cannot be read leaves the typed
    // field empty rather than failing a response whose tokens are fine. A lifetime of zero
    // states none: Keycloak sends `"refresh_expires_in": 0` for offline tokens, which do not
    // expire, and taking it literally would throw a good refresh token away unused.
    let refresh_token_expires_in = refresh_token_expires_in
        .or(refresh_expires_in)
        .and_then(|raw| raw.seconds().ok().flatten())
        .filter(|lifetime| !lifetime.is_zero());
    let refresh_token_issued_at = refresh_token_issued_at.and_then(|raw| raw.epoch_time());
    // The error fields of a success are none of its business: kept as sent, with the others.
    let mut extra = extra.0;
    for (name, value) in [
        ("error", error),
        ("error_description", error_description),
        ("error_uri", error_uri),
    ] {
        if let Some(value) = value {
            extra.insert(name.to_owned(), value.into_json());
        }
    }
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        scope,
        id_token,
        refresh_token_expires_in,
        refresh_token_issued_at,
        extra,
    })
}

fn wrong_type(field: &'static str, expected: &'static str) -> Malformation {
    Malformation::WrongType { field, expected }
}

/// RFC 6749 §5.1: the type is case-insensitive. `BearerToken` is what Apigee-style gateways
/// call a bearer token; it is used exactly like one.
fn is_bearer(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("bearer") || kind.eq_ignore_ascii_case("bearertoken")
}

/// A token is sent in an `Authorization` header or a form body; it must be visible ASCII.
fn is_sendable(token: &str) -> bool {
    // Folded without an early exit so that the compiler can judge many bytes at once: tokens
    // are hundreds of bytes long and nearly always fine.
    !token.is_empty()
        && token
            .bytes()
            .fold(true, |fine, b| fine & (b.wrapping_sub(0x21) < 0x7f - 0x21))
}

/// The scope with one space between its tokens. Servers nearly always write it so already,
/// and then the string is kept as it came.
fn tidy_scope(scope: String) -> String {
    let tidy = !scope.starts_with(' ')
        && !scope.ends_with(' ')
        && !scope.contains("  ")
        && !scope.bytes().any(|b| b != b' ' && b.is_ascii_whitespace());
    if tidy {
        scope
    } else {
        normalize_scope(scope.split_ascii_whitespace())
    }
}

fn normalize_scope<'a>(scopes: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for scope in scopes.filter(|s| !s.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(scope);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 64 * 1024;

    fn parse(status: u16, body: &str) -> Result<TokenResponse, ResponseError> {
        parse_token_response(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            LIMIT,
        )
    }

    #[test]
    fn gateway_quirks_are_understood() {
        let body = r#"{
          "token_type" : "BearerToken",
          "access_token" : "Axqx362CnSmLABgzqcBasG0pxBj9",
          "scope" : "",
          "status" : "approved",
          "refresh_token" : "U71FUIsqADNqpaqhh4pNsqE2YYfPwbUV",
          "refresh_token_expires_in" : "1799",
          "refresh_token_issued_at" : "1521035756257",
          "expires_in" : "86399",
          "refresh_count" : "0"
        }"#;
        let response = parse(200, body).unwrap();
        assert_eq!(response.token_type, TokenType::Bearer);
        assert_eq!(response.expires_in, Some(Duration::from_secs(86399)));
        assert_eq!(response.scope.as_deref(), Some(""));
        assert_eq!(
            response.refresh_token_expires_at(UnixTime::EPOCH),
            Some(UnixTime::from_millis(1_521_035_756_257 + 1_799_000))
        );
        assert_eq!(response.extra["status"], "approved");
        assert_eq!(response.extra["refresh_count"], "0");
        assert!(!format!("{response:?}").contains("Axqx362"));
    }

    #[test]
    fn missing_token_type_is_bearer_and_unknown_types_are_refused() {
        assert!(parse(200, r#"{"access_token":"a"}"#).is_ok());
        assert!(parse(200, r#"{"access_token":"a","token_type":"bearer"}"#).is_ok());
        assert_eq!(
            parse(200, r#"{"access_token":"a","token_type":"mac"}"#).unwrap_err(),
            ResponseError::UnsupportedTokenType {
                token_type: "mac".into()
            }
        );
    }

    #[test]
    fn errors_in_a_200_are_errors() {
        let error = parse(
            200,
            r#"{"error":"invalid_grant","error_description":"expired"}"#,
        )
        .unwrap_err();
        assert_eq!(error.code(), Some(&ErrorCode::InvalidGrant));
        assert_eq!(error.status(), Some(StatusCode::OK));
    }

    #[test]
    fn a_refresh_lifetime_of_zero_states_none() {
        for body in [
            r#"{"access_token":"a","refresh_token":"r","refresh_expires_in":0}"#,
            r#"{"access_token":"a","refresh_token":"r","refresh_token_expires_in":0}"#,
            r#"{"access_token":"a","refresh_token":"r","refresh_token_expires_in":"0"}"#,
            r#"{"access_token":"a","refresh_token":"r","refresh_expires_in":0.0}"#,
        ] {
            let response = parse(200, body).unwrap();
            assert_eq!(response.refresh_token_expires_in, None, "{body}");
            assert_eq!(
                response.refresh_token_expires_at(UnixTime::from_secs(1_700_000_000)),
                None,
                "{body}"
            );
        }
        let keycloak = parse(
            200,
            r#"{"access_token":"a","refresh_token":"r","refresh_expires_in":1800}"#,
        )
        .unwrap();
        assert_eq!(
            keycloak.refresh_token_expires_in,
            Some(Duration::from_secs(1800))
        );
    }

    #[test]
    fn a_refresh_issue_time_in_seconds_is_not_read_as_milliseconds() {
        let expires_at = |issued_at: &str| {
            let body = format!(
                r#"{{"access_token":"a","refresh_token":"r","refresh_token_expires_in":"1799","refresh_token_issued_at":{issued_at}}}"#
            );
            parse(200, &body)
                .unwrap()
                .refresh_token_expires_at(UnixTime::EPOCH)
        };
        let in_2018 = Some(UnixTime::from_millis(1_521_035_756_000 + 1_799_000));
        assert_eq!(expires_at("1521035756"), in_2018);
        assert_eq!(expires_at(r#""1521035756""#), in_2018);
        assert_eq!(expires_at("1521035756000"), in_2018);
        assert_eq!(expires_at(r#""1521035756000""#), in_2018);
        // No usable issue time: the lifetime counts from the reception.
        assert_eq!(expires_at("0"), Some(UnixTime::from_secs(1_799)));
    }

    #[test]
    fn a_body_that_contradicts_itself_is_malformed_not_a_verdict() {
        let duplicate_error = |e: &ResponseError| {
            matches!(
                e,
                ResponseError::Malformed { problem: Malformation::DuplicateField(field), .. }
                    if field == "error"
            )
        };
        let beside = |e: &ResponseError| {
            matches!(
                e,
                ResponseError::Malformed {
                    problem: Malformation::ErrorBesideAccessToken,
                    ..
                }
            )
        };
        type Check = fn(&ResponseError) -> bool;
        let cases: [(u16, &str, Check); 7] = [
            (
                400,
                r#"{"error":"invalid_grant","error":"server_error"}"#,
                duplicate_error,
            ),
            (
                400,
                r#"{"error":"server_error","error":"invalid_grant"}"#,
                duplicate_error,
            ),
            (
                400,
                r#"{"error":"invalid_grant","error":"invalid_grant"}"#,
                duplicate_error,
            ),
            (
                200,
                r#"{"error":"invalid_grant","error":"server_error"}"#,
                duplicate_error,
            ),
            (
                200,
                r#"{"access_token":"SECRET-AT","error":"invalid_grant"}"#,
                beside,
            ),
            (
                200,
                r#"{"error":"invalid_grant","access_token":"SECRET-AT","refresh_token":"SECRET-RT"}"#,
                beside,
            ),
            (
                400,
                r#"{"access_token":"SECRET-AT","error":"invalid_grant"}"#,
                beside,
            ),
        ];
        for (status, body, expected) in cases {
            let error = parse(status, body).unwrap_err();
            assert!(expected(&error), "{status} {body}: {error:?}");
            assert_eq!(error.code(), None, "{body}");
            assert_eq!(error.status(), StatusCode::from_u16(status).ok(), "{body}");
            let text = format!("{error} {error:?}");
            assert!(
                text.contains("contradicts itself") || text.contains("more than once"),
                "{text}"
            );
            assert!(!text.contains("SECRET"), "{text}");
        }
        // A contradicting body yields no refresh token to keep either.
        let body = br#"{"access_token":"a","refresh_token":"RT2","error":"invalid_grant"}"#;
        assert!(salvage_refresh_token(&HeaderMap::new(), body).is_none());
        // Without the contradiction, errors stay errors and empty tokens are no tokens.
        for body in [
            r#"{"error":"invalid_grant","access_token":null}"#,
            r#"{"error":"invalid_grant","access_token":""}"#,
        ] {
            assert_eq!(
                parse(200, body).unwrap_err().code(),
                Some(&ErrorCode::InvalidGrant)
            );
        }
    }

    #[test]
    fn html_error_pages_give_an_excerpt() {
        let error = parse(502, "<html><body><h1>502 Bad Gateway</h1></body></html>").unwrap_err();
        assert_eq!(
            error,
            ResponseError::Status {
                status: StatusCode::BAD_GATEWAY,
                excerpt: "502 Bad Gateway".into()
            }
        );
    }

    #[test]
    fn malformed_success_bodies_never_quote_the_token() {
        let cases = [
            r#"{"access_token":"SECRET-AT","expires_in":"later"}"#,
            r#"{"access_token":"SECRET-AT","access_token":"SECRET-AT2"}"#,
            r#"{"access_token":"SECRET AT"}"#,
            r#"{"access_token":["SECRET-AT"]}"#,
            r#"{"access_token":"SECRET-AT""#,
        ];
        for body in cases {
            let error = parse(200, body).unwrap_err();
            assert!(!format!("{error} {error:?}").contains("SECRET"), "{body}");
        }
    }

    #[test]
    fn form_encoded_bodies_are_read_when_declared() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let response = parse_token_response(
            StatusCode::OK,
            &headers,
            b"access_token=abc&token_type=bearer&expires_in=60&scope=a+b",
            LIMIT,
        )
        .unwrap();
        assert_eq!(response.expires_in, Some(Duration::from_secs(60)));
        assert_eq!(response.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn scope_arrays_and_size_limit() {
        let response = parse(200, r#"{"access_token":"a","scope":["x","y"]}"#).unwrap();
        assert_eq!(response.scope.as_deref(), Some("x y"));
        let big = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(LIMIT));
        assert!(matches!(
            parse(200, &big),
            Err(ResponseError::TooLarge { .. })
        ));
    }

    /// The typed fields: what a success response reads into its own fields rather than `extra`.
    const TYPED: [&str; 9] = [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "id_token",
        "refresh_token_expires_in",
        "refresh_expires_in",
        "refresh_token_issued_at",
    ];

    /// The answer to `body` agrees with what its field list (serde_json's plain reading of the
    /// top level, repeated names kept) says it must be.
    fn agrees_with_its_field_list(status: StatusCode, body: &[u8]) -> Result<(), String> {
        let headers = HeaderMap::new();
        let answer = parse_token_response(status, &headers, body, usize::MAX);
        let fields = read_fields(&headers, body);
        let text = |name: &str, fields: &Fields| match fields.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            _ => None,
        };
        let fine = match (&answer, &fields) {
            (Ok(response), Ok(fields)) => {
                let mut names: Vec<&str> = fields_names(fields);
                names.retain(|name| !TYPED.contains(name));
                names.sort_unstable();
                names.dedup();
                let mut extra: Vec<&str> = response.extra.keys().map(String::as_str).collect();
                extra.sort_unstable();
                fields.duplicate().is_none()
                    && text("access_token", fields).as_deref()
                        == Some(response.access_token.expose_secret())
                    && text("refresh_token", fields).as_deref()
                        == response.refresh_token.as_ref().map(|t| t.expose_secret())
                    && fields
                        .get("expires_in")
                        .map(|v| crate::token::fields::lenient_seconds(v).ok().flatten())
                        == response.expires_in.map(Some)
                    && names == extra
            }
            (
                Err(ResponseError::Malformed {
                    problem: Malformation::DuplicateField(name),
                    ..
                }),
                Ok(fields),
            ) => fields.appears_more_than_once(name),
            (Err(ResponseError::Malformed { problem, .. }), Err(general)) => problem == general,
            (Err(ResponseError::OAuth(error)), Ok(fields)) => matches!(
                fields.get("error"),
                Some(Value::String(code)) if ErrorCode::parse(code) == error.code
            ),
            (
                Err(ResponseError::Malformed {
                    problem: Malformation::ErrorBesideAccessToken,
                    ..
                }),
                Ok(fields),
            ) => {
                matches!(fields.get("error"), Some(Value::String(_)))
                    && fields.get("access_token").is_some()
            }
            (
                Err(ResponseError::Malformed { .. } | ResponseError::UnsupportedTokenType { .. }),
                Ok(_),
            ) => status.is_success(),
            (Err(ResponseError::Status { .. }), Ok(fields)) => {
                !status.is_success() && !matches!(fields.get("error"), Some(Value::String(_)))
            }
            (Err(ResponseError::Status { .. }), Err(_)) => !status.is_success(),
            _ => false,
        };
        if fine {
            Ok(())
        } else {
            Err(format!(
                "{:?}: {answer:?} but its field list {fields:?}",
                String::from_utf8_lossy(body)
            ))
        }
    }

    fn fields_names<'f>(fields: &'f Fields<'_>) -> Vec<&'f str> {
        fields.names().collect()
    }

    #[test]
    fn typical_responses_read_as_their_field_lists_say() {
        for body in [
            br#"{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r","scope":"x y"}"#
                .as_slice(),
            br#"{"token_type":"BearerToken","access_token":"A","expires_in":"86399","status":"approved","refresh_count":"0","refresh_token_issued_at":"1521035756257"}"#,
            br#"{"access_token":"a","id_token":"h.p.s","refresh_token":null,"not_before":0}"#,
            br#"{"access_token":"a","error_description":null,"error":7}"#,
            br#"{"error":"invalid_grant"}"#,
            br#"{"access_token":"a","access_token":null}"#,
            br#"{"access_token":"a","x":1,"x":2}"#,
            br#"{"error":"invalid_grant","error_description":"a","error_description":"b"}"#,
        ] {
            agrees_with_its_field_list(StatusCode::OK, body).unwrap();
            agrees_with_its_field_list(StatusCode::BAD_REQUEST, body).unwrap();
        }
    }

    #[test]
    fn a_repeated_field_beside_an_error_leaves_the_error() {
        let body = r#"{"error":"invalid_client","error_description":"a","error_description":"b"}"#;
        let error = parse(401, body).unwrap_err();
        assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
        let body = r#"{"message":"a","message":"b"}"#;
        assert_eq!(
            parse(400, body).unwrap_err(),
            ResponseError::Status {
                status: StatusCode::BAD_REQUEST,
                excerpt: String::new()
            }
        );
    }

    #[test]
    fn the_fuzz_corpora_read_as_their_field_lists_say() {
        for body in crate::token::corpus_bodies::corpus_bodies() {
            agrees_with_its_field_list(StatusCode::OK, &body).unwrap();
        }
    }

    #[test]
    fn a_scope_granted_as_requested_shares_the_requested_buffer() {
        let requested = Scope::from("api offline_access");
        let parse = |body: &str| {
            parse_token_response_to(
                StatusCode::OK,
                &HeaderMap::new(),
                body.as_bytes(),
                LIMIT,
                Some(&requested),
                &(),
            )
            .unwrap()
            .scope
            .unwrap()
        };
        let same = parse(r#"{"access_token":"a","scope":"api offline_access"}"#);
        assert!(std::ptr::eq(same.as_str(), requested.as_str()));
        let narrower = parse(r#"{"access_token":"a","scope":"api"}"#);
        assert_eq!(narrower, "api");
        let untidy = parse(r#"{"access_token":"a","scope":" api  offline_access"}"#);
        assert_eq!(untidy, requested);
        assert!(!std::ptr::eq(untidy.as_str(), requested.as_str()));
    }

    #[test]
    fn scopes_are_kept_with_one_space_between_tokens() {
        for (given, kept) in [
            ("api offline_access", "api offline_access"),
            ("", ""),
            (" api", "api"),
            ("api ", "api"),
            ("api  openid", "api openid"),
            ("api\topenid\n", "api openid"),
            ("   ", ""),
        ] {
            assert_eq!(tidy_scope(given.to_owned()), kept, "{given:?}");
        }
    }

    proptest! {
        #[test]
        fn tidying_a_scope_normalizes_its_whitespace(scope in "[a b\t\n\r\u{1}\u{b}\u{c}]{0,8}") {
            prop_assert_eq!(
                tidy_scope(scope.clone()),
                normalize_scope(scope.split_ascii_whitespace())
            );
        }
    }

    proptest! {
        #[test]
        fn generated_responses_read_as_their_field_lists_say(
            fields in proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(TYPED.to_vec()).prop_map(str::to_owned),
                        Just("error".to_owned()),
                        Just("error_description".to_owned()),
                        "[a-z_]{1,6}",
                    ],
                    prop_oneof![
                        "[ -~&&[^\"\\\\]]{0,12}".prop_map(|s| format!("\"{s}\"")),
                        "[0-9]{1,4}".prop_map(|s| format!("\"{s}\"")),
                        any::<u64>().prop_map(|n| n.to_string()),
                        Just("-1".to_owned()),
                        Just("1.5".to_owned()),
                        Just("null".to_owned()),
                        Just("true".to_owned()),
                        Just("[\"a\",\"b\"]".to_owned()),
                        Just("\"b\\u00e9\"".to_owned()),
                    ],
                ),
                0..8,
            ),
            status in prop_oneof![Just(200u16), Just(400u16), Just(503u16)],
        ) {
            let body = format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(name, value)| format!("\"{name}\":{value}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            agrees_with_its_field_list(StatusCode::from_u16(status).unwrap(), body.as_bytes())
                .map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn a_rotated_refresh_token_is_salvaged_from_an_unusable_response() {
        let body = br#"{"access_token":"a","token_type":"mac","refresh_token":"RT2"}"#;
        let salvaged = salvage_refresh_token(&HeaderMap::new(), body).unwrap();
        assert_eq!(salvaged.expose_secret(), "RT2");
    }
}
