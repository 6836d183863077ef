//! Malformed inputs fed through the flow: broken token responses (on login and on refresh),
//! broken `WWW-Authenticate` challenges and broken stored files. Each gives a typed error with
//! a clear message, and the stored tokens stay as they were.

mod support;

use std::time::Duration;

use http::{HeaderValue, StatusCode};
use support::fake_auth::{FakeAuthServer, Fault};
use support::fixtures::{app_config, rotating_server};
use support::sim::Sim;
use tokenflow::challenge::{ChallengeErrorKind, bearer_challenge, parse_challenges};
use tokenflow::token::{ErrorCode, Malformation, ResponseError, RestoreError};
use tokenflow::{
    Access, Config, Credentials, Event, FailureCause, FlowError, GrantKind, Input, RedirectTarget,
    RefusedRedirect, RetryPolicy, StoredTokens,
};

const JSON: &str = "application/json";
const HTML: &str = "text/html";
const FORM: &str = "application/x-www-form-urlencoded";
const BODY_LIMIT: usize = 4096;

fn server() -> FakeAuthServer {
    rotating_server(Duration::from_secs(600))
}

/// No retries, so that each bad answer ends its attempt; a small body limit.
fn config() -> Config {
    app_config()
        .proactive_refresh(false)
        .max_body_bytes(BODY_LIMIT)
        .retry(RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap()
}

type Check = fn(&ResponseError) -> bool;

struct Case {
    name: &'static str,
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// The error the flow must report.
    expect: Check,
    /// Words its message must hold.
    message: &'static str,
}

fn case(
    name: &'static str,
    status: u16,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    expect: Check,
    message: &'static str,
) -> Case {
    Case {
        name,
        status,
        content_type,
        body: body.into(),
        expect,
        message,
    }
}

fn malformed(error: &ResponseError) -> Option<&Malformation> {
    match error {
        ResponseError::Malformed {
            status: StatusCode::OK,
            problem,
        } => Some(problem),
        _ => None,
    }
}

fn not_json(e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::NotJson { .. }))
}

fn not_an_object(e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::NotAnObject))
}

fn empty(e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::Empty))
}

fn missing_access_token(e: &ResponseError) -> bool {
    matches!(
        malformed(e),
        Some(Malformation::MissingField("access_token"))
    )
}

fn invalid_expires_in(e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::InvalidExpiresIn))
}

fn wrong_type(field: &str, e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::WrongType { field: f, .. }) if *f == field)
}

fn unsendable(field: &str, e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::UnsendableToken(f)) if *f == field)
}

fn duplicate(field: &str, e: &ResponseError) -> bool {
    matches!(malformed(e), Some(Malformation::DuplicateField(f)) if f == field)
}

/// A body that contradicts itself: malformed at its own status, never an OAuth verdict.
fn contradiction(status: StatusCode, problem: Malformation, e: &ResponseError) -> bool {
    matches!(e, ResponseError::Malformed { status: s, problem: p } if *s == status && *p == problem)
}

fn oauth(code: ErrorCode, status: StatusCode, e: &ResponseError) -> bool {
    matches!(e, ResponseError::OAuth(error) if error.code == code && error.status == status)
}

fn cases() -> Vec<Case> {
    let big = format!(
        r#"{{"access_token":"AT.secret.big","pad":"{}"}}"#,
        "x".repeat(BODY_LIMIT)
    );
    let nested = format!(
        r#"{{"access_token":"AT.secret.n0","deep":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    vec![
        // Not JSON at all, or cut short.
        case(
            "truncated object",
            200,
            JSON,
            r#"{"access_token":"AT.secret.t1","token_"#,
            not_json,
            "not JSON",
        ),
        case(
            "truncated string",
            200,
            JSON,
            r#"{"access_token":"AT.secret.t2"#,
            not_json,
            "not JSON",
        ),
        case("lone brace", 200, JSON, "{", not_json, "not JSON"),
        case(
            "trailing garbage",
            200,
            JSON,
            r#"{"access_token":"AT.secret.t3"} and more"#,
            not_json,
            "not JSON",
        ),
        case(
            "single quotes",
            200,
            JSON,
            "{'access_token':'AT.secret.t4'}",
            not_json,
            "not JSON",
        ),
        case(
            "invalid UTF-8 in a string",
            200,
            JSON,
            b"{\"access_token\":\"AT.secret.\xff\xfe\"}".to_vec(),
            not_json,
            "not JSON",
        ),
        case(
            "leading invalid byte",
            200,
            JSON,
            b"\xff{\"access_token\":\"AT.secret.t5\"}".to_vec(),
            not_json,
            "not JSON",
        ),
        case("nested too deep", 200, JSON, nested, not_json, "not JSON"),
        case(
            "number out of range",
            200,
            JSON,
            r#"{"access_token":"AT.secret.t6","expires_in":1e400}"#,
            not_json,
            "not JSON",
        ),
        case(
            "gateway HTML in a 200",
            200,
            HTML,
            "<html><body><h1>Welcome</h1><p>Please sign in</p></body></html>",
            not_json,
            "not JSON",
        ),
        // Empty or not an object.
        case("empty 200", 200, JSON, "", empty, "empty"),
        case("blank 200", 200, JSON, " \r\n\t ", empty, "empty"),
        case(
            "byte-order mark only",
            200,
            JSON,
            b"\xEF\xBB\xBF".to_vec(),
            empty,
            "empty",
        ),
        case("null", 200, JSON, "null", not_an_object, "not an object"),
        case(
            "array",
            200,
            JSON,
            r#"[{"access_token":"AT.secret.a1"}]"#,
            not_an_object,
            "not an object",
        ),
        case(
            "string",
            200,
            JSON,
            r#""AT.secret.a2""#,
            not_an_object,
            "not an object",
        ),
        case("number", 200, JSON, "42", not_an_object, "not an object"),
        // The access token missing or unusable.
        case(
            "no access_token",
            200,
            JSON,
            r#"{"token_type":"Bearer","expires_in":3600}"#,
            missing_access_token,
            "`access_token` field is missing",
        ),
        case(
            "empty access_token",
            200,
            JSON,
            r#"{"access_token":""}"#,
            missing_access_token,
            "`access_token` field is missing",
        ),
        case(
            "null access_token",
            200,
            JSON,
            r#"{"access_token":null}"#,
            missing_access_token,
            "`access_token` field is missing",
        ),
        case(
            "numeric access_token",
            200,
            JSON,
            r#"{"access_token":12345678}"#,
            |e| wrong_type("access_token", e),
            "`access_token` field is not a string",
        ),
        case(
            "array access_token",
            200,
            JSON,
            r#"{"access_token":["AT.secret.w1"]}"#,
            |e| wrong_type("access_token", e),
            "`access_token` field is not a string",
        ),
        case(
            "object access_token",
            200,
            JSON,
            r#"{"access_token":{"value":"AT.secret.w2"}}"#,
            |e| wrong_type("access_token", e),
            "`access_token` field is not a string",
        ),
        case(
            "boolean access_token",
            200,
            JSON,
            r#"{"access_token":true}"#,
            |e| wrong_type("access_token", e),
            "`access_token` field is not a string",
        ),
        case(
            "access_token with a space",
            200,
            JSON,
            r#"{"access_token":"AT.secret. u1"}"#,
            |e| unsendable("access_token", e),
            "cannot be sent",
        ),
        case(
            "access_token with a NUL",
            200,
            JSON,
            r#"{"access_token":"AT.secret.\u0000u2"}"#,
            |e| unsendable("access_token", e),
            "cannot be sent",
        ),
        case(
            "access_token with a newline",
            200,
            JSON,
            r#"{"access_token":"AT.secret.\r\nX-Injected: 1"}"#,
            |e| unsendable("access_token", e),
            "cannot be sent",
        ),
        case(
            "non-ASCII access_token",
            200,
            JSON,
            r#"{"access_token":"AT.secret.é"}"#,
            |e| unsendable("access_token", e),
            "cannot be sent",
        ),
        // Other fields of the wrong type or value.
        case(
            "numeric token_type",
            200,
            JSON,
            r#"{"access_token":"AT.secret.y1","token_type":1}"#,
            |e| wrong_type("token_type", e),
            "`token_type` field is not a string",
        ),
        case(
            "negative expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e1","expires_in":-3600}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "negative expires_in as a string",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e2","expires_in":"-5"}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "negative fractional expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e3","expires_in":-0.5}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "word expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e4","expires_in":"soon"}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "NaN expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e5","expires_in":"NaN"}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "boolean expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e6","expires_in":true}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "object expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.e7","expires_in":{"s":1}}"#,
            invalid_expires_in,
            "negative or not a number",
        ),
        case(
            "numeric refresh_token",
            200,
            JSON,
            r#"{"access_token":"AT.secret.r1","refresh_token":42}"#,
            |e| wrong_type("refresh_token", e),
            "`refresh_token` field is not a string",
        ),
        case(
            "refresh_token with a space",
            200,
            JSON,
            r#"{"access_token":"AT.secret.r2","refresh_token":"RT.secret. r2"}"#,
            |e| unsendable("refresh_token", e),
            "cannot be sent",
        ),
        case(
            "numeric scope",
            200,
            JSON,
            r#"{"access_token":"AT.secret.s1","scope":7}"#,
            |e| wrong_type("scope", e),
            "`scope` field is not a string or an array",
        ),
        case(
            "scope array of numbers",
            200,
            JSON,
            r#"{"access_token":"AT.secret.s2","scope":["read",2]}"#,
            |e| wrong_type("scope", e),
            "`scope` field is not a string or an array",
        ),
        case(
            "numeric id_token",
            200,
            JSON,
            r#"{"access_token":"AT.secret.i1","id_token":1}"#,
            |e| wrong_type("id_token", e),
            "`id_token` field is not a string",
        ),
        // Ambiguous bodies.
        case(
            "duplicate access_token",
            200,
            JSON,
            r#"{"access_token":"AT.secret.d1","access_token":"AT.secret.d2"}"#,
            |e| duplicate("access_token", e),
            "appears more than once",
        ),
        case(
            "duplicate expires_in",
            200,
            JSON,
            r#"{"access_token":"AT.secret.d3","expires_in":60,"expires_in":3600}"#,
            |e| duplicate("expires_in", e),
            "appears more than once",
        ),
        case(
            "duplicate in a form body",
            200,
            FORM,
            "access_token=AT.secret.d4&refresh_token=RT.secret.d4&refresh_token=RT.secret.d5",
            |e| duplicate("refresh_token", e),
            "appears more than once",
        ),
        // Bodies that contradict themselves are no verdict: not an `invalid_grant` that would
        // clear the tokens.
        case(
            "error twice in a 400",
            400,
            JSON,
            r#"{"error":"invalid_grant","error":"server_error"}"#,
            |e| {
                contradiction(
                    StatusCode::BAD_REQUEST,
                    Malformation::DuplicateField("error".into()),
                    e,
                )
            },
            "answered 400 Bad Request but not with a usable token response: the `error` field appears more than once",
        ),
        case(
            "error twice in a 200",
            200,
            JSON,
            r#"{"error":"invalid_grant","error":"server_error"}"#,
            |e| duplicate("error", e),
            "the `error` field appears more than once",
        ),
        case(
            "invalid_grant beside an access token in a 200",
            200,
            JSON,
            r#"{"access_token":"AT.secret.c1","token_type":"Bearer","refresh_token":"RT.secret.c1","error":"invalid_grant"}"#,
            |e| contradiction(StatusCode::OK, Malformation::ErrorBesideAccessToken, e),
            "both an `error` and an `access_token`, so it contradicts itself",
        ),
        // Token types this client cannot use.
        case(
            "mac token type",
            200,
            JSON,
            r#"{"access_token":"AT.secret.m1","token_type":"mac"}"#,
            |e| matches!(e, ResponseError::UnsupportedTokenType { token_type } if token_type == "mac"),
            "cannot use",
        ),
        case(
            "DPoP token type",
            200,
            JSON,
            r#"{"access_token":"AT.secret.m2","token_type":"DPoP"}"#,
            |e| matches!(e, ResponseError::UnsupportedTokenType { token_type } if token_type == "DPoP"),
            "cannot use",
        ),
        case(
            "empty token type",
            200,
            JSON,
            r#"{"access_token":"AT.secret.m3","token_type":""}"#,
            |e| matches!(e, ResponseError::UnsupportedTokenType { token_type } if token_type.is_empty()),
            "cannot use",
        ),
        // Too large.
        case(
            "body over the limit",
            200,
            JSON,
            big,
            |e| matches!(e, ResponseError::TooLarge { limit: BODY_LIMIT, size } if *size > BODY_LIMIT),
            "more than the limit",
        ),
        // Errors where tokens were expected.
        case(
            "error in a 200",
            200,
            JSON,
            r#"{"error":"invalid_scope","error_description":"scope x is unknown"}"#,
            |e| oauth(ErrorCode::InvalidScope, StatusCode::OK, e),
            "answered 200 OK with error invalid_scope: scope x is unknown",
        ),
        case(
            "server_error in a 200",
            200,
            JSON,
            r#"{"error":"server_error"}"#,
            |e| oauth(ErrorCode::ServerError, StatusCode::OK, e),
            "error server_error",
        ),
        case(
            "unknown error code",
            400,
            JSON,
            r#"{"error":"policy_violation\u001b[2J"}"#,
            |e| {
                oauth(
                    ErrorCode::Other("policy_violation [2J".into()),
                    StatusCode::BAD_REQUEST,
                    e,
                )
            },
            "error policy_violation [2J",
        ),
        case(
            "invalid_client as 401",
            401,
            JSON,
            r#"{"error":"invalid_client"}"#,
            |e| oauth(ErrorCode::InvalidClient, StatusCode::UNAUTHORIZED, e),
            "answered 401 Unauthorized with error invalid_client",
        ),
        case(
            "gateway HTML 502",
            502,
            HTML,
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
            |e| matches!(e, ResponseError::Status { status: StatusCode::BAD_GATEWAY, excerpt } if excerpt == "502 Bad Gateway 502 Bad Gateway nginx"),
            "answered 502 Bad Gateway without an OAuth error: \"502 Bad Gateway",
        ),
        case(
            "plain-text 403",
            403,
            "text/plain",
            "Forbidden by policy",
            |e| matches!(e, ResponseError::Status { status: StatusCode::FORBIDDEN, excerpt } if excerpt == "Forbidden by policy"),
            "answered 403 Forbidden without an OAuth error",
        ),
        case(
            "JSON 400 without an error",
            400,
            JSON,
            r#"{"message":"bad request","access_token":"AT.secret.n1"}"#,
            |e| matches!(e, ResponseError::Status { status: StatusCode::BAD_REQUEST, excerpt } if excerpt.is_empty()),
            "answered 400 Bad Request without an OAuth error",
        ),
        case(
            "empty 500",
            500,
            JSON,
            "",
            |e| matches!(e, ResponseError::Status { status: StatusCode::INTERNAL_SERVER_ERROR, excerpt } if excerpt.is_empty()),
            "answered 500 Internal Server Error without an OAuth error",
        ),
    ]
}

fn failures(sim: &Sim) -> Vec<FlowError> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Failed(error) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn tokens(stored: Option<&StoredTokens>) -> (Option<String>, Option<String>) {
    (
        stored
            .and_then(|s| s.access_token.as_ref())
            .map(|t| t.expose_secret().to_owned()),
        stored
            .and_then(|s| s.refresh_token.as_ref())
            .map(|t| t.expose_secret().to_owned()),
    )
}

fn check_failure(case: &Case, sim: &Sim, grant: GrantKind) {
    let failed = failures(sim);
    assert_eq!(failed.len(), 1, "{}: {failed:?}", case.name);
    let error = &failed[0];
    assert_eq!(error.grant, grant, "{}", case.name);
    let FailureCause::Endpoint(cause) = &error.cause else {
        panic!("{}: not an endpoint error: {error:?}", case.name);
    };
    assert!((case.expect)(cause), "{}: {cause:?}", case.name);
    let message = error.to_string();
    assert!(
        message.contains(case.message),
        "{}: {message:?} does not say {:?}",
        case.name,
        case.message
    );
    let debug = format!("{error:?}");
    for text in [&message, &debug] {
        assert!(!text.contains(".secret."), "{}: {text}", case.name);
    }
}

fn inject(sim: &mut Sim, case: &Case) {
    sim.server.inject(Fault::Body {
        status: case.status,
        content_type: case.content_type,
        body: case.body.clone(),
    });
}

#[test]
fn bad_token_responses_to_a_refresh_fail_cleanly_and_keep_the_tokens() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for case in &cases {
        let mut sim = Sim::new(config(), server());
        sim.login(Credentials::password("joe", "pw"));
        let before = sim.stored.clone();
        assert!(before.is_some());
        sim.advance(Duration::from_secs(601));
        inject(&mut sim, case);
        assert_eq!(sim.access(), Access::Pending, "{}", case.name);
        check_failure(case, &sim, GrantKind::RefreshToken);
        assert_eq!(
            tokens(sim.stored.as_ref()),
            tokens(before.as_ref()),
            "{}: the stored tokens changed",
            case.name
        );
        assert_eq!(sim.server.token_requests(), 2, "{}: no retry", case.name);
        // The server answers properly again: the same refresh token still works.
        assert!(sim.ready_bearer().is_some(), "{}: no recovery", case.name);
    }
}

#[test]
fn bad_token_responses_to_a_login_fail_cleanly_and_store_nothing() {
    for case in &cases() {
        let mut sim = Sim::new(config(), server());
        inject(&mut sim, case);
        sim.login(Credentials::password("joe", "pw"));
        check_failure(case, &sim, GrantKind::Password);
        assert!(sim.stored.is_none(), "{}: something was stored", case.name);
        assert!(
            !sim.events
                .iter()
                .any(|e| matches!(e, Event::TokensUpdated(_) | Event::AccessReady { .. })),
            "{}",
            case.name
        );
        assert_eq!(sim.access(), Access::LoginRequired, "{}", case.name);
    }
}

/// A redirect (here to a login page, without even a `Location`) is not the endpoint's answer:
/// it is never read for tokens and never retried; on a refresh, the tokens stay.
#[test]
fn a_redirect_to_a_login_page_is_refused_not_read() {
    let redirect = Fault::Body {
        status: 302,
        content_type: HTML,
        body: "<a href=\"/login\">Found</a>".into(),
    };
    let check = |sim: &Sim, grant: GrantKind| {
        let failed = failures(sim);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].grant, grant);
        assert!(
            matches!(
                &failed[0].cause,
                FailureCause::Redirect(RefusedRedirect {
                    status: StatusCode::FOUND,
                    target: RedirectTarget::Unknown,
                    ..
                })
            ),
            "{failed:?}"
        );
        let message = failed[0].to_string();
        assert!(
            message.contains(
                "the token endpoint answered a redirect (302) without a usable location; \
                 redirects are never followed for token requests"
            ),
            "{message}"
        );
    };

    let mut sim = Sim::new(config(), server());
    sim.server.inject(redirect.clone());
    sim.login(Credentials::password("joe", "pw"));
    check(&sim, GrantKind::Password);
    assert!(sim.stored.is_none());

    let mut sim = Sim::new(config(), server());
    sim.login(Credentials::password("joe", "pw"));
    let before = sim.stored.clone();
    sim.advance(Duration::from_secs(601));
    sim.server.inject(redirect);
    assert_eq!(sim.access(), Access::Pending);
    check(&sim, GrantKind::RefreshToken);
    assert_eq!(tokens(sim.stored.as_ref()), tokens(before.as_ref()));
    assert_eq!(sim.server.token_requests(), 2, "no retry");
    assert!(
        sim.ready_bearer().is_some(),
        "the same refresh token still works"
    );
}

#[test]
fn a_huge_lifetime_is_clamped_not_refused() {
    for body in [
        r#"{"access_token":"AT.big1","expires_in":18446744073709551616}"#,
        r#"{"access_token":"AT.big2","expires_in":1e300}"#,
        r#"{"access_token":"AT.big3","expires_in":"99999999999999999999999"}"#,
    ] {
        let mut sim = Sim::new(config(), server());
        sim.server.inject(Fault::Body {
            status: 200,
            content_type: JSON,
            body: body.into(),
        });
        sim.login(Credentials::password("joe", "pw"));
        assert!(failures(&sim).is_empty(), "{body}");
        let stored = sim.stored.clone().expect("stored");
        let ten_years_ms = 10 * 365 * 24 * 3600 * 1000;
        let lifetime = stored.expires_at.unwrap().as_millis() - stored.issued_at.as_millis();
        assert!(lifetime <= ten_years_ms, "{body}: {lifetime} ms");
    }
}

/// Malformed `WWW-Authenticate` values: a typed error naming the problem and its place, and
/// to the flow a plain 401 (one renewal, no token lost).
#[test]
fn broken_challenges() {
    let cases: &[(&[u8], ChallengeErrorKind, &str)] = &[
        (
            b"Bearer error=\"invalid_token",
            ChallengeErrorKind::UnterminatedQuotedString,
            "quoted string is not closed at byte 13",
        ),
        (
            b"Bearer error=\"a\\",
            ChallengeErrorKind::UnterminatedQuotedString,
            "quoted string is not closed",
        ),
        (
            b"Bearer error=\"bad\x01\"",
            ChallengeErrorKind::ControlCharacter,
            "control character in a quoted string at byte 17",
        ),
        (
            b"Bearer realm=\"\xff\"",
            ChallengeErrorKind::InvalidUtf8,
            "not valid UTF-8 at byte 14",
        ),
        (
            b"Bearer realm=x y",
            ChallengeErrorKind::ExpectedSeparator,
            "expected ',' or the end",
        ),
        (
            b"Bearer realm=x, error=,",
            ChallengeErrorKind::ExpectedValue,
            "expected a parameter value",
        ),
        (
            b"Bearer realm x=1",
            ChallengeErrorKind::ExpectedEquals,
            "expected '=' after a parameter name",
        ),
        (
            b"Bearer\"realm\"",
            ChallengeErrorKind::ExpectedSeparator,
            "expected ',' or the end",
        ),
        (
            b"=Bearer",
            ChallengeErrorKind::ExpectedScheme,
            "expected an auth scheme at byte 0",
        ),
        (
            b"Bearer realm=\"x\", =y",
            ChallengeErrorKind::ExpectedParamName,
            "expected a parameter name",
        ),
    ];
    let mut too_long = b"Bearer realm=\"".to_vec();
    too_long.resize(10_000, b'a');
    let too_long: (&[u8], ChallengeErrorKind, &str) = (
        &too_long,
        ChallengeErrorKind::TooLong,
        "value is longer than 8192 bytes",
    );
    for (value, kind, message) in cases.iter().chain([&too_long]) {
        let error = parse_challenges(value).unwrap_err();
        assert_eq!(error.kind(), *kind, "{:?}", String::from_utf8_lossy(value));
        let text = error.to_string();
        assert!(
            text.starts_with("invalid WWW-Authenticate value: "),
            "{text}"
        );
        assert!(text.contains(message), "{text:?} does not say {message:?}");
        assert!(text.len() < 200, "{text}");
        assert!(bearer_challenge([*value]).is_err());

        // The flow treats the 401 as a refused token: one renewal, and the rotated refresh
        // token is stored before the new access token is used.
        let mut sim = Sim::new(config(), server());
        sim.login(Credentials::password("joe", "pw"));
        let generation = sim.flow.generation().unwrap();
        let requests = sim.server.token_requests();
        let now = sim.now();
        let mut headers = vec![];
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.push(value);
        }
        sim.flow.handle_input(
            now,
            Input::Unauthorized {
                generation,
                www_authenticate: headers,
            },
        );
        sim.settle();
        assert_eq!(sim.server.token_requests(), requests + 1);
        assert!(failures(&sim).is_empty());
        assert_eq!(
            tokens(sim.stored.as_ref()).1,
            tokens(sim.flow.stored_tokens().as_ref()).1
        );
        assert!(matches!(sim.access(), Access::Ready(b) if b.generation() > generation));
    }
}

/// A broken challenge next to a readable `insufficient_scope` one: the readable one counts,
/// and no renewal is made.
#[test]
fn a_broken_challenge_does_not_hide_a_good_one() {
    let mut sim = Sim::new(config(), server());
    sim.login(Credentials::password("joe", "pw"));
    let before = sim.stored.clone();
    let generation = sim.flow.generation().unwrap();
    let now = sim.now();
    sim.flow.handle_input(
        now,
        Input::Unauthorized {
            generation,
            www_authenticate: vec![
                HeaderValue::from_static("Bearer error=\"invalid_token"),
                HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"admin\""),
            ],
        },
    );
    sim.settle();
    assert_eq!(sim.server.token_requests(), 1);
    assert_eq!(tokens(sim.stored.as_ref()), tokens(before.as_ref()));
}

#[test]
fn broken_stored_files() {
    type Expect = fn(&RestoreError) -> bool;
    let cases: &[(&str, &[u8], Expect, &str)] = &[
        ("empty file", b"", |e| matches!(e, RestoreError::Json { kind: "eof", .. }), "unreadable (eof error at line 1"),
        ("truncated", br#"{"version":1,"grant":"password","access_token":"AT.secret.f1"#, |e| matches!(e, RestoreError::Json { kind: "eof", .. }), "unreadable"),
        ("not JSON", b"access_token=AT.secret.f2", |e| matches!(e, RestoreError::Json { kind: "syntax", .. }), "unreadable (syntax error"),
        ("not UTF-8", b"{\"version\":1,\"grant\":\"password\",\"access_token\":\"\xff\",\"issued_at\":0}", |e| matches!(e, RestoreError::Json { kind: "syntax", .. }), "syntax error"),
        ("an array", b"[1]", |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("no version", br#"{"grant":"password","access_token":"AT.secret.f3","issued_at":0}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("version as a string", br#"{"version":"1","grant":"password","access_token":"AT.secret.f4","issued_at":0}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("future version", br#"{"version":2,"grant":"password","access_token":"AT.secret.f5","issued_at":0}"#, |e| *e == RestoreError::UnsupportedVersion(2), "format version 2; this build reads version 1"),
        ("unknown grant", br#"{"version":1,"grant":"AT.secret.f6","access_token":"AT.secret.f6","issued_at":0}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("numeric token", br#"{"version":1,"grant":"password","access_token":123,"refresh_token":"RT.secret.f7","issued_at":0}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("negative time", br#"{"version":1,"grant":"password","access_token":"AT.secret.f8","expires_at":-1,"issued_at":0}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("time too large", br#"{"version":1,"grant":"password","access_token":"AT.secret.f9","issued_at":18446744073709551616}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("no issue time", br#"{"version":1,"grant":"password","access_token":"AT.secret.fa"}"#, |e| matches!(e, RestoreError::Json { kind: "data", .. }), "data error"),
        ("unsendable access token", br#"{"version":1,"grant":"password","access_token":"AT.secret. fb","issued_at":0}"#, |e| *e == RestoreError::InvalidToken("access_token"), "stored access_token holds characters that cannot be sent"),
        ("empty refresh token", br#"{"version":1,"grant":"password","refresh_token":"","issued_at":0}"#, |e| *e == RestoreError::InvalidToken("refresh_token"), "stored refresh_token holds characters"),
        ("no tokens", br#"{"version":1,"grant":"password","issued_at":0}"#, |e| *e == RestoreError::NoTokens, "holds no token"),
        ("null tokens", br#"{"version":1,"grant":"password","access_token":null,"refresh_token":null,"issued_at":0}"#, |e| *e == RestoreError::NoTokens, "holds no token"),
    ];
    for (name, bytes, expect, message) in cases {
        let error = StoredTokens::from_json(bytes).unwrap_err();
        assert!(expect(&error), "{name}: {error:?}");
        let text = error.to_string();
        assert!(
            text.contains(message),
            "{name}: {text:?} does not say {message:?}"
        );
        assert!(!format!("{text} {error:?}").contains(".secret."), "{name}");
    }
}
