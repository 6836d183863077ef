//! Interactive logins and logout on a virtual clock: the authorization-code grant with PKCE,
//! the device grant with its polling rules, and revocation at logout. The fake authorization
//! server has neither an authorization nor a device endpoint, so these drive the flow with
//! hand-built responses; time is a `Timestamp` the test moves by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokenflow::interactive::s256;
use tokenflow::token::ErrorCode;
use tokenflow::{
    AuthorizationError, Config, Event, FailureCause, GrantKind, Input, Output, Seed, Timestamp,
    TokenFlow, TokenTypeHint, UnixTime,
};

const ISSUER: &str = "https://id.example";
const REDIRECT: &str = "http://127.0.0.1:49152/callback";
/// The host clock's reading when a test starts: any origin will do.
const START: Timestamp = Timestamp::from_secs(1_000);

fn config(scope: &str) -> Config {
    Config::builder(format!("{ISSUER}/token"), "native-app")
        .issuer(ISSUER)
        .authorization_endpoint(format!("{ISSUER}/authorize"))
        .device_authorization_endpoint(format!("{ISSUER}/device"))
        .revocation_endpoint(format!("{ISSUER}/revoke"))
        .redirect_uri(REDIRECT)
        .scope(scope)
        .build()
        .expect("a valid configuration")
}

fn flow(seed: Seed, scope: &str, now: Timestamp) -> TokenFlow {
    TokenFlow::new(config(scope), seed, now, UnixTime::from_secs(1_700_000_000))
}

/// What one drain produced: the requests, the events and the instant to wake at.
#[derive(Debug, Default)]
struct Drained {
    sent: Vec<(tokenflow::RequestId, Request<Vec<u8>>)>,
    events: Vec<Event>,
    until: Option<Timestamp>,
}

fn drain(flow: &mut TokenFlow) -> Drained {
    let mut drained = Drained::default();
    for _ in 0..64 {
        match flow.poll_output() {
            Output::Send(request) => drained.sent.push((request.id, request.request)),
            Output::Event(event) => drained.events.push(event),
            Output::Idle { until } => {
                drained.until = until;
                return drained;
            }
        }
    }
    panic!("the flow did not become idle");
}

fn form(request: &Request<Vec<u8>>) -> HashMap<String, String> {
    form_urlencoded::parse(request.body())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query(url: &str) -> HashMap<String, String> {
    let (_, query) = url.split_once('?').expect("a query");
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json(status: u16, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .expect("a response")
}

fn tokens(n: u32) -> Response<Vec<u8>> {
    json(
        200,
        &format!(
            r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{n}","scope":"openid offline_access"}}"#
        ),
    )
}

fn oauth_error(code: &str) -> Response<Vec<u8>> {
    json(400, &format!(r#"{{"error":"{code}"}}"#))
}

fn respond(
    flow: &mut TokenFlow,
    now: Timestamp,
    id: tokenflow::RequestId,
    response: Response<Vec<u8>>,
) -> Drained {
    flow.handle_input(now, Input::Response { id, response });
    drain(flow)
}

/// Feeds `Timeout` at `now` and returns the one request the flow then sends.
fn wake(flow: &mut TokenFlow, now: Timestamp) -> (tokenflow::RequestId, Request<Vec<u8>>) {
    flow.handle_input(now, Input::Timeout);
    let mut drained = drain(flow);
    assert_eq!(drained.sent.len(), 1, "{drained:?}");
    drained.sent.remove(0)
}

fn failure(drained: &Drained) -> &tokenflow::FlowError {
    drained
        .events
        .iter()
        .find_map(|e| match e {
            Event::Failed(error) => Some(error),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure in {:?}", drained.events))
}

// --- the authorization-code grant with PKCE

#[test]
fn the_authorization_url_is_deterministic_under_a_fixed_seed() {
    let now = START;
    let mut first = flow(Seed::from_u64(1), "openid offline_access", now);
    let request = first
        .start_authorization(now)
        .expect("an authorization URL");
    insta::assert_snapshot!(request.url);

    let again = flow(Seed::from_u64(1), "openid offline_access", now)
        .start_authorization(now)
        .expect("an authorization URL");
    assert_eq!(again, request, "the same seed gives the same URL");
    let other = flow(Seed::from_u64(2), "openid offline_access", now)
        .start_authorization(now)
        .expect("an authorization URL");
    assert_ne!(other.url, request.url);
    assert_ne!(other.state, request.state);

    let params = query(&request.url);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], "native-app");
    assert_eq!(params["redirect_uri"], REDIRECT);
    assert_eq!(params["state"], request.state);
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);
    assert!(request.state.len() >= 22, "128 bits of state");
    assert!(params.contains_key("nonce"), "openid asks for a nonce");

    // A second start replaces the first: a new state and a new verifier.
    let second = first
        .start_authorization(now)
        .expect("an authorization URL");
    assert_ne!(second.state, request.state);
    assert_ne!(
        query(&second.url)["code_challenge"],
        params["code_challenge"]
    );
}

#[test]
fn without_openid_there_is_no_nonce() {
    let now = START;
    let request = flow(Seed::from_u64(1), "api offline_access", now)
        .start_authorization(now)
        .expect("an authorization URL");
    assert!(!query(&request.url).contains_key("nonce"));
}

#[test]
fn the_code_is_exchanged_with_its_verifier() {
    let now = START;
    let mut flow = flow(Seed::from_u64(1), "openid offline_access", now);
    let request = flow.start_authorization(now).expect("an authorization URL");
    let challenge = query(&request.url)["code_challenge"].clone();
    let callback = format!(
        "{REDIRECT}?code=CODE-1&state={}&iss={}",
        request.state,
        form_urlencoded::byte_serialize(ISSUER.as_bytes()).collect::<String>()
    );
    flow.complete_authorization(now, &callback)
        .expect("a valid callback");
    let mut drained = drain(&mut flow);
    let (id, exchange) = drained.sent.remove(0);
    assert_eq!(exchange.uri(), "https://id.example/token");
    let body = form(&exchange);
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "CODE-1");
    assert_eq!(body["redirect_uri"], REDIRECT);
    assert_eq!(body["client_id"], "native-app");
    assert_eq!(s256(&body["code_verifier"]), challenge, "RFC 7636 §4.6");

    let done = respond(&mut flow, now, id, tokens(1));
    assert!(
        matches!(done.events[0], Event::TokensUpdated(_)),
        "{done:?}"
    );
    assert!(
        matches!(done.events[1], Event::AccessReady { .. }),
        "{done:?}"
    );

    // The same callback again finds nothing to complete.
    assert_eq!(
        flow.complete_authorization(now, &callback),
        Err(AuthorizationError::NoPendingAuthorization)
    );
}

#[test]
fn a_callback_with_another_state_is_refused() {
    let now = START;
    let mut flow = flow(Seed::from_u64(1), "openid", now);
    let request = flow.start_authorization(now).expect("an authorization URL");
    let forged = format!("{REDIRECT}?code=EVIL&state={}x", request.state);
    assert_eq!(
        flow.complete_authorization(now, &forged),
        Err(AuthorizationError::StateMismatch)
    );
    assert!(drain(&mut flow).sent.is_empty(), "no code was exchanged");
    // An error response with a missing state is refused the same way.
    let mut flow = self::flow(Seed::from_u64(1), "openid", now);
    flow.start_authorization(now).expect("an authorization URL");
    assert_eq!(
        flow.complete_authorization(now, "error=access_denied"),
        Err(AuthorizationError::StateMismatch)
    );
}

#[test]
fn a_callback_from_another_issuer_is_refused() {
    let now = START;
    let mut flow = flow(Seed::from_u64(1), "openid", now);
    let request = flow.start_authorization(now).expect("an authorization URL");
    let mixed_up = format!(
        "{REDIRECT}?code=C&state={}&iss=https%3A%2F%2Fattacker.example",
        request.state
    );
    let error = flow
        .complete_authorization(now, &mixed_up)
        .expect_err("a mix-up");
    assert!(
        matches!(&error, AuthorizationError::IssuerMismatch { expected, found }
            if expected == ISSUER && found == "https://attacker.example"),
        "{error:?}"
    );
    assert!(drain(&mut flow).sent.is_empty(), "no code was exchanged");
}

// --- the device grant

const DEVICE_RESPONSE: &str = r#"{"device_code":"DEVICE-CODE","user_code":"WDJB-MJHT",
    "verification_uri":"https://id.example/device","verification_uri_complete":"https://id.example/device?user_code=WDJB-MJHT",
    "expires_in":EXPIRES,"interval":5}"#;

/// Starts a device login answered with a code valid for `expires_in` seconds; returns the
/// instant the first poll is due.
fn start_device(flow: &mut TokenFlow, now: Timestamp, expires_in: u64) -> Timestamp {
    flow.start_device_authorization(now)
        .expect("a device endpoint");
    let mut drained = drain(flow);
    let (id, request) = drained.sent.remove(0);
    assert_eq!(request.uri(), "https://id.example/device");
    assert_eq!(form(&request)["scope"], "openid offline_access");
    let body = DEVICE_RESPONSE.replace("EXPIRES", &expires_in.to_string());
    let shown = respond(flow, now, id, json(200, &body));
    let Some(Event::DeviceAuthorization(device)) = shown.events.first() else {
        panic!("no device authorization in {shown:?}");
    };
    assert_eq!(device.user_code, "WDJB-MJHT");
    assert_eq!(device.interval, Duration::from_secs(5));
    assert!(shown.sent.is_empty(), "no poll before the interval");
    shown.until.expect("a first poll")
}

#[test]
fn slow_down_adds_five_seconds_to_every_later_poll() {
    let t0 = START;
    let mut flow = flow(Seed::from_u64(3), "openid offline_access", t0);
    let first = start_device(&mut flow, t0, 600);
    assert_eq!(first, t0 + Duration::from_secs(5));

    let mut polls = Vec::new();
    let mut now = first;
    let answers = [
        "authorization_pending",
        "slow_down",
        "authorization_pending",
        "slow_down",
        "authorization_pending",
    ];
    for answer in answers {
        let (id, poll) = wake(&mut flow, now);
        assert_eq!(
            form(&poll)["grant_type"],
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(form(&poll)["device_code"], "DEVICE-CODE");
        polls.push(now.saturating_duration_since(t0).as_secs());
        let next = respond(&mut flow, now, id, oauth_error(answer));
        assert!(next.events.is_empty(), "{next:?}");
        now = next.until.expect("another poll");
    }
    let (id, _) = wake(&mut flow, now);
    polls.push(now.saturating_duration_since(t0).as_secs());
    // 5 s apart, then 10 s after the first slow_down, then 15 s after the second.
    assert_eq!(polls, [5, 10, 20, 30, 45, 60]);
    let done = respond(&mut flow, now, id, tokens(1));
    assert!(
        matches!(done.events[0], Event::TokensUpdated(_)),
        "{done:?}"
    );
    assert!(
        matches!(done.events[1], Event::AccessReady { .. }),
        "{done:?}"
    );
}

#[test]
fn access_denied_ends_the_device_login() {
    let t0 = START;
    let mut flow = flow(Seed::from_u64(3), "openid offline_access", t0);
    let first = start_device(&mut flow, t0, 600);
    let (id, _) = wake(&mut flow, first);
    let ended = respond(&mut flow, first, id, oauth_error("access_denied"));
    let error = failure(&ended);
    assert_eq!(error.grant, GrantKind::DeviceCode);
    assert!(
        matches!(&error.cause, FailureCause::Endpoint(e) if e.code() == Some(&ErrorCode::AccessDenied)),
        "{error:?}"
    );
    assert_eq!(ended.until, None, "no more polls");
}

#[test]
fn expired_token_ends_the_device_login() {
    let t0 = START;
    let mut flow = flow(Seed::from_u64(3), "openid offline_access", t0);
    let first = start_device(&mut flow, t0, 600);
    let (id, _) = wake(&mut flow, first);
    let ended = respond(&mut flow, first, id, oauth_error("expired_token"));
    let error = failure(&ended);
    assert!(
        matches!(&error.cause, FailureCause::Endpoint(e) if e.code() == Some(&ErrorCode::ExpiredToken)),
        "{error:?}"
    );
    assert_eq!(ended.until, None, "no more polls");
}

#[test]
fn the_device_login_ends_when_the_code_expires() {
    let t0 = START;
    let mut flow = flow(Seed::from_u64(3), "openid offline_access", t0);
    let mut now = start_device(&mut flow, t0, 12);
    let mut polls = 0;
    let ended = loop {
        let (id, _) = wake(&mut flow, now);
        polls += 1;
        let next = respond(&mut flow, now, id, oauth_error("authorization_pending"));
        match next.until {
            Some(until) => now = until,
            None => break next,
        }
    };
    // Polls at 5 s and 10 s; one at 15 s would be past the code's 12 s.
    assert_eq!(polls, 2);
    assert_eq!(now.saturating_duration_since(t0), Duration::from_secs(10));
    assert_eq!(failure(&ended).cause, FailureCause::DeviceCodeExpired);
}

// --- revocation at logout

/// A flow logged in (with the code grant) holding `AT-1` and `RT-1`.
fn logged_in(now: Timestamp) -> TokenFlow {
    let mut flow = flow(Seed::from_u64(5), "openid offline_access", now);
    let request = flow.start_authorization(now).expect("an authorization URL");
    flow.complete_authorization(now, &format!("code=C&state={}", request.state))
        .expect("a valid callback");
    let mut drained = drain(&mut flow);
    let (id, _) = drained.sent.remove(0);
    respond(&mut flow, now, id, tokens(1));
    flow
}

#[test]
fn logout_revokes_the_refresh_token_first_and_retries_a_503() {
    let t0 = START;
    let mut flow = logged_in(t0);
    flow.logout(t0);
    let mut drained = drain(&mut flow);
    assert_eq!(drained.events, [Event::TokensCleared]);
    assert!(flow.revoking());
    assert_eq!(drained.sent.len(), 1, "one revocation at a time");
    let (id, first) = drained.sent.remove(0);
    assert_eq!(first.uri(), "https://id.example/revoke");
    assert_eq!(form(&first)["token"], "RT-1");
    assert_eq!(form(&first)["token_type_hint"], "refresh_token");
    assert_eq!(form(&first)["client_id"], "native-app");

    let mut next = respond(&mut flow, t0, id, Response::new(Vec::new()));
    assert_eq!(
        next.events,
        [Event::Revoked {
            token_type: TokenTypeHint::RefreshToken
        }]
    );
    let (id, second) = next.sent.remove(0);
    assert_eq!(form(&second)["token"], "AT-1");
    assert_eq!(form(&second)["token_type_hint"], "access_token");

    // RFC 7009 §2.2.1: 503 with Retry-After means come back later.
    let unavailable = Response::builder()
        .status(503)
        .header("retry-after", "3")
        .body(Vec::new())
        .expect("a response");
    let waiting = respond(&mut flow, t0, id, unavailable);
    assert!(
        waiting.events.is_empty() && waiting.sent.is_empty(),
        "{waiting:?}"
    );
    let retry_at = waiting.until.expect("a retry");
    assert!(
        retry_at >= t0 + Duration::from_secs(3),
        "Retry-After honoured"
    );
    assert!(retry_at <= t0 + Duration::from_secs(4), "and not much more");
    assert!(flow.revoking());

    flow.handle_input(t0 + Duration::from_secs(1), Input::Timeout);
    assert!(drain(&mut flow).sent.is_empty(), "not before Retry-After");
    let (id, again) = wake(&mut flow, retry_at);
    assert_eq!(form(&again)["token"], "AT-1");
    let done = respond(&mut flow, retry_at, id, Response::new(Vec::new()));
    assert_eq!(
        done.events,
        [Event::Revoked {
            token_type: TokenTypeHint::AccessToken
        }]
    );
    assert!(!flow.revoking());
    assert_eq!(done.until, None);
}

#[test]
fn a_revocation_refused_for_good_is_reported_and_the_next_one_goes_on() {
    let t0 = START;
    let mut flow = logged_in(t0);
    flow.logout(t0);
    let mut drained = drain(&mut flow);
    let (id, _) = drained.sent.remove(0);
    let mut next = respond(&mut flow, t0, id, oauth_error("invalid_client"));
    assert!(
        matches!(
            &next.events[..],
            [Event::RevocationFailed {
                token_type: TokenTypeHint::RefreshToken,
                attempts: 1,
                ..
            }]
        ),
        "{next:?}"
    );
    let (id, second) = next.sent.remove(0);
    assert_eq!(form(&second)["token_type_hint"], "access_token");
    respond(&mut flow, t0, id, Response::new(Vec::new()));
    assert!(!flow.revoking());
}

// --- the blocking adapter's logout waits for the revocations, retries included

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_logout_waits_for_a_retried_revocation() {
    use tokenflow::StoredTokens;
    use tokenflow::adapters::blocking::BlockingClient;
    use tokenflow::adapters::{MemoryStore, TokenStore};

    let seen: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let transport = move |request: Request<Vec<u8>>| {
        let hint = form(&request)["token_type_hint"].clone();
        let mut log = log.lock().unwrap();
        // The access token's first revocation meets a 503 with Retry-After: 1.
        let status = if hint == "access_token" && !log.iter().any(|(h, _)| h == &hint) {
            503
        } else {
            200
        };
        log.push((hint, status));
        Ok(Response::builder()
            .status(status)
            .header("retry-after", "1")
            .body(Vec::new())
            .unwrap())
    };
    let store = MemoryStore::new();
    let stored = StoredTokens::from_json(
        br#"{"version":1,"grant":"authorization_code","access_token":"AT-1",
            "expires_at":4102444800000,"refresh_token":"RT-1","issued_at":1700000000000}"#,
    )
    .expect("stored tokens");
    store.save(&stored).unwrap();
    let client = BlockingClient::builder(config("openid"), transport)
        .store(store)
        .build()
        .unwrap();
    let started = Instant::now();
    let report = client.logout().expect("a logout");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the retry"
    );
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        report.revoked,
        [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("refresh_token".to_owned(), 200),
            ("access_token".to_owned(), 503),
            ("access_token".to_owned(), 200)
        ]
    );
}
