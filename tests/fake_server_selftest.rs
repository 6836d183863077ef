//! The test doubles in `tests/support` behave like the providers they stand for.

mod support;

use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;

use support::clock::VirtualClock;
use support::fake_api::{CHALLENGE_INVALID, CHALLENGE_MISSING, FakeApi};
use support::fake_auth::{
    ClientAuthStyle, FakeAuthServer, Fault, GATEWAY_EPOCH_BASE_MS, Outcome, Reply, ServerConfig,
    basic_auth, basic_auth_unencoded, form_urlencode,
};

const TOKEN_URI: &str = "https://auth.example/token";
const SECRET: &str = "a:b/c+d%e&f=gü x";

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

fn post(uri: &str, authorization: Option<&str>, body: &str) -> Request<Vec<u8>> {
    let mut builder = Request::builder().method(Method::POST).uri(uri).header(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded; charset=UTF-8",
    );
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(body.as_bytes().to_vec()).unwrap()
}

fn api_call(token: Option<&str>) -> Request<Vec<u8>> {
    let mut builder = Request::builder().uri("https://api.example/things");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Vec::new()).unwrap()
}

fn json(response: &Response<Vec<u8>>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn error_code(response: &Response<Vec<u8>>) -> String {
    json(response)["error"].as_str().unwrap().to_owned()
}

fn str_field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap()
}

/// A standard server with a Post client `app`/`s3cret` and user `alice`/`pw`.
fn standard(config: ServerConfig) -> (VirtualClock, FakeAuthServer) {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new_at(config, clock.now());
    server.add_client("app", Some("s3cret"), ClientAuthStyle::Post);
    server.add_user("alice", "pw");
    (clock, server)
}

fn password_login(server: &mut FakeAuthServer, clock: &VirtualClock, scope: &str) -> Value {
    let body = form(&[
        ("grant_type", "password"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("username", "alice"),
        ("password", "pw"),
        ("scope", scope),
    ]);
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &body));
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(response.body())
    );
    json(&response)
}

fn refresh(server: &mut FakeAuthServer, clock: &VirtualClock, token: &str) -> Response<Vec<u8>> {
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("refresh_token", token),
    ]);
    server.handle(clock.now(), &post(TOKEN_URI, None, &body))
}

#[test]
fn form_encoding_helpers_round_trip() {
    let encoded = form_urlencode(SECRET);
    assert_eq!(encoded, "a%3Ab%2Fc%2Bd%25e%26f%3Dg%C3%BC+x");
    assert_eq!(support::fake_auth::form_urldecode(&encoded), SECRET);
    assert_eq!(support::fake_auth::form_urldecode("100%"), "100%");
}

#[test]
fn basic_client_needs_form_encoded_credentials() {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new(ServerConfig::standard());
    server.add_client("my app", Some(SECRET), ClientAuthStyle::Basic);
    let body = form(&[("grant_type", "client_credentials")]);

    let good = server.handle(
        clock.now(),
        &post(TOKEN_URI, Some(&basic_auth("my app", SECRET)), &body),
    );
    assert_eq!(good.status(), StatusCode::OK);
    let good = json(&good);
    assert_eq!(str_field(&good, "token_type"), "Bearer");
    assert!(
        good.get("refresh_token").is_none(),
        "client credentials: no refresh token"
    );
    assert_eq!(server.requests()[0].client_id.as_deref(), Some("my app"));

    let raw = basic_auth_unencoded("my app", SECRET);
    let bad = server.handle(clock.now(), &post(TOKEN_URI, Some(&raw), &body));
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"fake\""
    );
    assert_eq!(error_code(&bad), "invalid_client");
    assert_eq!(
        server.requests()[1].outcome,
        Outcome::Error("invalid_client".into())
    );
}

#[test]
fn basic_unencoded_client_needs_raw_credentials() {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new(ServerConfig::standard());
    server.add_client("my app", Some(SECRET), ClientAuthStyle::BasicUnencoded);
    let body = form(&[("grant_type", "client_credentials")]);

    let raw = basic_auth_unencoded("my app", SECRET);
    let good = server.handle(clock.now(), &post(TOKEN_URI, Some(&raw), &body));
    assert_eq!(good.status(), StatusCode::OK);

    let encoded = basic_auth("my app", SECRET);
    let bad = server.handle(clock.now(), &post(TOKEN_URI, Some(&encoded), &body));
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&bad), "invalid_client");
}

#[test]
fn post_client_authentication() {
    let (clock, mut server) = standard(ServerConfig::standard());
    let ok = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
    ]);
    assert_eq!(
        server
            .handle(clock.now(), &post(TOKEN_URI, None, &ok))
            .status(),
        StatusCode::OK
    );

    let wrong = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "nope"),
    ]);
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &wrong));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    assert_eq!(error_code(&response), "invalid_client");

    // A Post client may not use the Basic header.
    let basic = basic_auth("app", "s3cret");
    let body = form(&[("grant_type", "client_credentials")]);
    let response = server.handle(clock.now(), &post(TOKEN_URI, Some(&basic), &body));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&response), "invalid_client");

    // No client authentication at all.
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &body));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response), "invalid_client");
}

#[test]
fn two_authentication_methods_are_refused() {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new(ServerConfig::standard());
    server.add_client("app", Some("s3cret"), ClientAuthStyle::Basic);
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
    ]);
    let response = server.handle(
        clock.now(),
        &post(TOKEN_URI, Some(&basic_auth("app", "s3cret")), &body),
    );
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response), "invalid_request");

    // A client_id in the body that matches the header is only identification (§3.2.1).
    let body = form(&[("grant_type", "client_credentials"), ("client_id", "app")]);
    let response = server.handle(
        clock.now(),
        &post(TOKEN_URI, Some(&basic_auth("app", "s3cret")), &body),
    );
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn public_client_sends_only_its_id() {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new(ServerConfig::standard());
    server.add_client("spa", None, ClientAuthStyle::None);
    server.add_user("alice", "pw");
    let body = form(&[
        ("grant_type", "password"),
        ("client_id", "spa"),
        ("username", "alice"),
        ("password", "pw"),
    ]);
    assert_eq!(
        server
            .handle(clock.now(), &post(TOKEN_URI, None, &body))
            .status(),
        StatusCode::OK
    );

    let body = form(&[("grant_type", "client_credentials"), ("client_id", "spa")]);
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &body));
    assert_eq!(error_code(&response), "unauthorized_client");
}

#[test]
fn password_grant_with_enterprise_pin_username() {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new(ServerConfig::single_use_refresh());
    server.add_client("acme_resowner", Some("cb818203"), ClientAuthStyle::Post);
    server.add_user("1234/joe.bloggs@acme.com", "secret1234");

    // Sent the way the provider's PHP sample builds it: nothing encoded, `+` between scopes.
    let raw = "client_id=acme_resowner&client_secret=cb818203&username=1234/joe.bloggs@acme.com\
               &password=secret1234&scope=qflowapi+openid+offline_access&grant_type=password";
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, raw));
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(&response);
    assert_eq!(str_field(&body, "scope"), "qflowapi openid offline_access");
    assert_eq!(body["expires_in"], 3600);
    assert!(str_field(&body, "access_token").starts_with("AT.secret."));
    assert!(str_field(&body, "refresh_token").starts_with("RT.secret."));
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");

    let encoded = form(&[
        ("client_id", "acme_resowner"),
        ("client_secret", "cb818203"),
        ("username", "1234/joe.bloggs@acme.com"),
        ("password", "secret1234"),
        ("grant_type", "password"),
    ]);
    assert_eq!(
        server
            .handle(clock.now(), &post(TOKEN_URI, None, &encoded))
            .status(),
        StatusCode::OK
    );

    let wrong = encoded.replace("secret1234", "secret1235");
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &wrong));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response), "invalid_grant");
    let other_user = encoded.replace("1234%2F", "9999%2F");
    assert_eq!(
        error_code(&server.handle(clock.now(), &post(TOKEN_URI, None, &other_user))),
        "invalid_grant"
    );
}

#[test]
fn identity_server_issues_refresh_tokens_only_for_offline_access() {
    let (clock, mut server) = standard(ServerConfig::identity_server());
    let without = password_login(&mut server, &clock, "datahub-api");
    assert!(without.get("refresh_token").is_none());
    assert_eq!(server.live_refresh_tokens(), 0);

    let with = password_login(&mut server, &clock, "datahub-api offline_access");
    let first = str_field(&with, "refresh_token").to_owned();
    assert_eq!(server.live_refresh_tokens(), 1);

    let refreshed = refresh(&mut server, &clock, &first);
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed = json(&refreshed);
    assert_ne!(str_field(&refreshed, "refresh_token"), first);
    assert_eq!(str_field(&refreshed, "scope"), "datahub-api offline_access");
    assert_eq!(server.live_refresh_tokens(), 1);
}

#[test]
fn rotated_refresh_token_is_single_use() {
    let (clock, mut server) = standard(ServerConfig::single_use_refresh());
    let login = password_login(&mut server, &clock, "read");
    let first = str_field(&login, "refresh_token").to_owned();

    let second = json(&refresh(&mut server, &clock, &first));
    let second_rt = str_field(&second, "refresh_token").to_owned();
    assert_ne!(second_rt, first);

    let reused = refresh(&mut server, &clock, &first);
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reused), "invalid_grant");

    // Without family revocation the newest token still works.
    assert_eq!(
        refresh(&mut server, &clock, &second_rt).status(),
        StatusCode::OK
    );
    assert_eq!(server.live_refresh_tokens(), 1);
}

#[test]
fn reuse_of_a_superseded_refresh_token_revokes_the_grant() {
    let config = ServerConfig {
        revoke_family_on_reuse: true,
        ..ServerConfig::single_use_refresh()
    };
    let (clock, mut server) = standard(config);
    let other = password_login(&mut server, &clock, "read");
    let login = password_login(&mut server, &clock, "read");
    let first = str_field(&login, "refresh_token").to_owned();
    let second = json(&refresh(&mut server, &clock, &first));
    let second_at = str_field(&second, "access_token").to_owned();
    let second_rt = str_field(&second, "refresh_token").to_owned();
    assert!(server.is_access_token_valid(&second_at, clock.now()));

    assert_eq!(
        error_code(&refresh(&mut server, &clock, &first)),
        "invalid_grant"
    );
    assert!(!server.is_access_token_valid(&second_at, clock.now()));
    assert_eq!(
        error_code(&refresh(&mut server, &clock, &second_rt)),
        "invalid_grant"
    );

    // Other grants are untouched.
    assert!(server.is_access_token_valid(str_field(&other, "access_token"), clock.now()));
    assert_eq!(server.live_refresh_tokens(), 1);
    // One reuse, one family revoked; a token of the revoked family is no reuse.
    assert_eq!(server.reuses_detected(), 1);
    assert_eq!(server.families_revoked(), 1);
}

#[test]
fn a_grace_window_accepts_a_superseded_refresh_token_only_while_it_lasts() {
    let config = ServerConfig {
        revoke_family_on_reuse: true,
        ..ServerConfig::single_use_refresh()
    };
    let (mut clock, mut server) = standard(config);
    server.set_reuse_grace(Duration::from_secs(10));
    let login = password_login(&mut server, &clock, "read");
    let first = str_field(&login, "refresh_token").to_owned();
    let second = json(&refresh(&mut server, &clock, &first));
    let second_rt = str_field(&second, "refresh_token").to_owned();

    // Inside the window the spent token works again, and a fresh pair comes back.
    clock.advance(Duration::from_secs(9));
    let again = json(&refresh(&mut server, &clock, &first));
    assert_ne!(str_field(&again, "refresh_token"), second_rt);
    assert_eq!((server.grace_refreshes(), server.reuses_detected()), (1, 0));

    // The window does not move with each use: past it, a reuse, and the family goes.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        error_code(&refresh(&mut server, &clock, &first)),
        "invalid_grant"
    );
    assert_eq!(
        (server.reuses_detected(), server.families_revoked()),
        (1, 1)
    );
    assert_eq!(
        error_code(&refresh(&mut server, &clock, &second_rt)),
        "invalid_grant"
    );
}

#[test]
fn refresh_without_rotation_keeps_the_token_and_may_only_narrow_scope() {
    let (mut clock, mut server) = standard(ServerConfig {
        refresh_ttl: Some(Duration::from_secs(600)),
        ..ServerConfig::standard()
    });
    let login = password_login(&mut server, &clock, "read write");
    let rt = str_field(&login, "refresh_token").to_owned();

    let response = refresh(&mut server, &clock, &rt);
    let body = json(&response);
    assert!(
        body.get("refresh_token").is_none(),
        "no new refresh token: keep the old one"
    );
    assert_eq!(refresh(&mut server, &clock, &rt).status(), StatusCode::OK);

    let narrower = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("refresh_token", &rt),
        ("scope", "read"),
    ]);
    let body = json(&server.handle(clock.now(), &post(TOKEN_URI, None, &narrower)));
    assert_eq!(str_field(&body, "scope"), "read");

    let wider = narrower.replace("scope=read", "scope=read+admin");
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &wider));
    assert_eq!(error_code(&response), "invalid_scope");

    clock.advance(Duration::from_secs(600));
    assert_eq!(
        error_code(&refresh(&mut server, &clock, &rt)),
        "invalid_grant"
    );
    assert_eq!(
        error_code(&refresh(&mut server, &clock, "RT.secret.999")),
        "invalid_grant"
    );
}

#[test]
fn revoke_all_forces_invalid_grant() {
    let (clock, mut server) = standard(ServerConfig::standard());
    let login = password_login(&mut server, &clock, "read");
    server.revoke_all();
    assert!(!server.is_access_token_valid(str_field(&login, "access_token"), clock.now()));
    assert_eq!(
        error_code(&refresh(
            &mut server,
            &clock,
            str_field(&login, "refresh_token")
        )),
        "invalid_grant"
    );
    assert_eq!(server.live_refresh_tokens(), 0);
    password_login(&mut server, &clock, "read");
}

#[test]
fn gateway_style_sends_every_value_as_a_string() {
    let mut clock = VirtualClock::new();
    let mut server = FakeAuthServer::new_at(ServerConfig::gateway(), clock.now());
    server.add_client("key", Some("secret"), ClientAuthStyle::Post);
    clock.advance(Duration::from_millis(1_500));

    let uri = format!("{TOKEN_URI}?grant_type=client_credentials");
    let body = form(&[("client_id", "key"), ("client_secret", "secret")]);
    let response = server.handle(clock.now(), &post(&uri, None, &body));
    assert_eq!(response.status(), StatusCode::OK);
    let json = json(&response);
    let object = json.as_object().unwrap();
    for (name, value) in object {
        assert!(value.is_string(), "{name} is not a string: {value}");
    }
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "access_token",
            "expires_in",
            "refresh_count",
            "refresh_token",
            "refresh_token_expires_in",
            "refresh_token_issued_at",
            "scope",
            "status",
            "token_type",
        ]
    );
    assert_eq!(str_field(&json, "token_type"), "BearerToken");
    assert_eq!(str_field(&json, "expires_in"), "86399");
    assert_eq!(str_field(&json, "scope"), "");
    assert_eq!(str_field(&json, "status"), "approved");
    assert_eq!(str_field(&json, "refresh_count"), "0");
    assert_eq!(str_field(&json, "refresh_token_expires_in"), "1799");
    let issued_at = (GATEWAY_EPOCH_BASE_MS + 1_500).to_string();
    assert_eq!(str_field(&json, "refresh_token_issued_at"), issued_at);

    // Refresh: the same refresh token comes back, the count goes up.
    let rt = str_field(&json, "refresh_token").to_owned();
    clock.advance(Duration::from_secs(99));
    let uri = format!("{TOKEN_URI}?grant_type=refresh_token");
    let body = form(&[
        ("client_id", "key"),
        ("client_secret", "secret"),
        ("refresh_token", &rt),
    ]);
    let refreshed = ok_json(server.handle(clock.now(), &post(&uri, None, &body)));
    assert_eq!(str_field(&refreshed, "refresh_token"), rt);
    assert_eq!(str_field(&refreshed, "refresh_count"), "1");
    assert_eq!(str_field(&refreshed, "refresh_token_expires_in"), "1700");
    assert_eq!(str_field(&refreshed, "refresh_token_issued_at"), issued_at);
}

fn ok_json(response: Response<Vec<u8>>) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    json(&response)
}

#[test]
fn gateway_takes_grant_type_from_the_query() {
    let clock = VirtualClock::new();
    let mut server = FakeAuthServer::new(ServerConfig::gateway());
    server.add_client("key", Some("secret"), ClientAuthStyle::Post);
    let creds = [("client_id", "key"), ("client_secret", "secret")];

    let body_only = form(&[creds[0], creds[1], ("grant_type", "client_credentials")]);
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &body_only));
    assert_eq!(error_code(&response), "invalid_request");

    let uri = format!("{TOKEN_URI}?grant_type=client_credentials");
    let response = server.handle(clock.now(), &post(&uri, None, &body_only));
    assert_eq!(response.status(), StatusCode::OK, "the body may repeat it");
    assert_eq!(
        server.requests()[1].grant_type.as_deref(),
        Some("client_credentials")
    );

    let disagree = form(&[creds[0], creds[1], ("grant_type", "password")]);
    let response = server.handle(clock.now(), &post(&uri, None, &disagree));
    assert_eq!(error_code(&response), "invalid_request");

    let uri = format!("{TOKEN_URI}?grant_type=authorization_code");
    let response = server.handle(clock.now(), &post(&uri, None, &form(&creds)));
    assert_eq!(error_code(&response), "unsupported_grant_type");
}

#[test]
fn malformed_requests_are_invalid_requests() {
    let (clock, mut server) = standard(ServerConfig::standard());
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
    ]);

    let get = Request::builder()
        .method(Method::GET)
        .uri(TOKEN_URI)
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        error_code(&server.handle(clock.now(), &get)),
        "invalid_request"
    );

    let mut as_json = post(TOKEN_URI, None, &body);
    as_json
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    assert_eq!(
        error_code(&server.handle(clock.now(), &as_json)),
        "invalid_request"
    );

    let repeated = format!("{body}&grant_type=client_credentials");
    assert_eq!(
        error_code(&server.handle(clock.now(), &post(TOKEN_URI, None, &repeated))),
        "invalid_request"
    );

    let no_grant = form(&[("client_id", "app"), ("client_secret", "s3cret")]);
    assert_eq!(
        error_code(&server.handle(clock.now(), &post(TOKEN_URI, None, &no_grant))),
        "invalid_request"
    );

    let unknown = body.replace("client_credentials", "urn:example:magic");
    let response = server.handle(clock.now(), &post(TOKEN_URI, None, &unknown));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response), "unsupported_grant_type");
    assert_eq!(server.token_requests(), 5);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Error(_)))
    );
}

#[test]
fn faults_replace_answers_in_order() {
    let (clock, mut server) = standard(ServerConfig::standard());
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
    ]);
    let request = post(TOKEN_URI, None, &body);

    server.inject(Fault::Status(500));
    server.inject(Fault::Status(502));
    server.inject(Fault::Status(503));
    server.inject(Fault::TooManyRequests {
        retry_after: "7".into(),
    });
    server.inject(Fault::ServiceUnavailable {
        retry_after: "Wed, 21 Oct 2015 07:28:00 GMT".into(),
    });
    server.inject(Fault::HtmlPage(504));
    server.inject(Fault::Body {
        status: 200,
        content_type: "text/plain",
        body: b"access_token=x&token_type=bearer".to_vec(),
    });

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&r), "server_error");

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html");
    assert!(String::from_utf8_lossy(r.body()).contains("502 Bad Gateway"));

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&r), "temporarily_unavailable");
    assert!(r.headers().get(header::RETRY_AFTER).is_none());

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[header::RETRY_AFTER], "7");

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.headers()[header::RETRY_AFTER],
        "Wed, 21 Oct 2015 07:28:00 GMT"
    );

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(r.body().starts_with(b"<html>"));

    let r = server.handle(clock.now(), &request);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
    assert_eq!(r.body(), b"access_token=x&token_type=bearer");

    assert_eq!(server.pending_faults(), 0);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.outcome == Outcome::Fault)
    );
    assert_eq!(
        server.handle(clock.now(), &request).status(),
        StatusCode::OK
    );
    assert_eq!(server.token_requests(), 8);
    assert_eq!(server.requests()[7].outcome, Outcome::Issued);
}

#[test]
fn apply_then_lose_rotates_the_refresh_token() {
    let (clock, mut server) = standard(ServerConfig::single_use_refresh());
    let login = password_login(&mut server, &clock, "read");
    let rt = str_field(&login, "refresh_token").to_owned();

    server.inject(Fault::ApplyThenLose);
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", "app"),
        ("client_secret", "s3cret"),
        ("refresh_token", &rt),
    ]);
    let reply = server.handle_with_faults(clock.now(), &post(TOKEN_URI, None, &body));
    assert!(matches!(reply, Reply::Lost));
    let record = server.requests().last().unwrap();
    assert!(record.lost);
    assert_eq!(record.outcome, Outcome::Issued);
    assert_eq!(record.grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(record.client_id.as_deref(), Some("app"));
    assert_eq!(
        server.live_refresh_tokens(),
        1,
        "a new token exists that the client never saw"
    );

    // The retry presents the superseded token.
    let retry = server.handle_with_faults(clock.now(), &post(TOKEN_URI, None, &body));
    let retry = retry.unwrap_response();
    assert_eq!(error_code(&retry), "invalid_grant");
}

#[test]
#[should_panic(expected = "handle_with_faults")]
fn handle_refuses_to_hide_a_lost_answer() {
    let (clock, mut server) = standard(ServerConfig::standard());
    server.inject(Fault::ApplyThenLose);
    let body = form(&[("grant_type", "client_credentials")]);
    server.handle(clock.now(), &post(TOKEN_URI, None, &body));
}

#[test]
fn api_refuses_expired_and_revoked_tokens() {
    let (mut clock, mut server) = standard(ServerConfig {
        access_ttl: Duration::from_secs(60),
        ..ServerConfig::standard()
    });
    let mut api = FakeApi::new();

    let missing = api.handle(clock.now(), &server, &api_call(None));
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.headers()[header::WWW_AUTHENTICATE],
        CHALLENGE_MISSING
    );

    let login = password_login(&mut server, &clock, "read");
    let at = str_field(&login, "access_token").to_owned();
    let ok = api.handle(clock.now(), &server, &api_call(Some(&at)));
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(json(&ok)["ok"], true);

    clock.advance(Duration::from_secs(59));
    assert_eq!(
        api.handle(clock.now(), &server, &api_call(Some(&at)))
            .status(),
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    let expired = api.handle(clock.now(), &server, &api_call(Some(&at)));
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        expired.headers()[header::WWW_AUTHENTICATE],
        CHALLENGE_INVALID
    );

    let fresh = json(&refresh(
        &mut server,
        &clock,
        str_field(&login, "refresh_token"),
    ));
    let fresh_at = str_field(&fresh, "access_token").to_owned();
    assert_eq!(
        api.handle(clock.now(), &server, &api_call(Some(&fresh_at)))
            .status(),
        StatusCode::OK
    );
    server.revoke_access_token(&fresh_at);
    let revoked = api.handle(clock.now(), &server, &api_call(Some(&fresh_at)));
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        revoked.headers()[header::WWW_AUTHENTICATE],
        CHALLENGE_INVALID
    );

    assert_eq!(api.calls(), 6);
    assert_eq!(api.unauthorized(), 3);
    assert_eq!(api.tokens_seen().len(), 5);
}

#[test]
fn virtual_clock_moves_only_when_told() {
    let mut clock = VirtualClock::new();
    let start = clock.now();
    assert_eq!(clock.now(), start);
    assert_eq!(clock.wall_millis(), 1_700_000_000_000);
    clock.advance(Duration::from_millis(2_500));
    assert_eq!(clock.now() - start, Duration::from_millis(2_500));
    assert_eq!(clock.wall_millis(), 1_700_000_002_500);
    clock.set_offset(Duration::from_secs(1));
    assert_eq!(clock.now() - start, Duration::from_secs(1));
    assert_eq!(clock.wall_millis(), 1_700_000_001_000);
}
