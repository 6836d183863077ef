//! The test servers themselves behave as the interop tests expect: raw HTTP only, no tokenflow.

#[path = "support/servers.rs"]
mod servers;

use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use servers::{
    BASIC_CLIENT, PIN_USER, POST_CLIENT, RunningServer, SPECIAL_CLIENT, ServerKind, form_encode,
};

struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    json: Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let response = response.expect("request to the test server");
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ASCII header").to_owned());
    let text = response.into_body().read_to_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"));
    Reply {
        status,
        www_authenticate,
        json,
    }
}

/// POSTs a form to the token endpoint, optionally with an `Authorization` header.
fn token_request(
    server: &RunningServer,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> Reply {
    let body = serde_urlencoded::to_string(form).expect("form");
    let mut request = agent()
        .post(server.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    reply(request.send(body.as_str()))
}

fn resource(server: &RunningServer, access_token: Option<&str>) -> Reply {
    let mut request = agent().get(server.resource_url());
    if let Some(token) = access_token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    reply(request.call())
}

/// RFC 6749 §2.3.1: form-encode the id and the secret, then base64 `id:secret`.
fn basic(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

fn str_field<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.json[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {} {}", reply.status, reply.json))
}

fn password_refresh_and_rotation(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({}));
    let secret = POST_CLIENT.secret.expect("confidential");

    // The pin-style username holds '/' and '@'; form-encoded on the way, verbatim on arrival.
    let login = token_request(
        &server,
        None,
        &[
            ("grant_type", "password"),
            ("client_id", POST_CLIENT.id),
            ("client_secret", secret),
            ("username", PIN_USER.username),
            ("password", PIN_USER.password),
            ("scope", "qflowapi openid offline_access"),
        ],
    );
    assert_eq!(login.status, 200, "{}", login.json);
    assert!(str_field(&login, "token_type").eq_ignore_ascii_case("bearer"));
    let access = str_field(&login, "access_token").to_owned();
    let first_refresh = str_field(&login, "refresh_token").to_owned();

    let call = resource(&server, Some(&access));
    assert_eq!(call.status, 200, "{}", call.json);
    assert_eq!(call.json["ok"], true);
    assert_eq!(call.json["sub"], PIN_USER.username);

    let refresh = |refresh_token: &str| {
        token_request(
            &server,
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", POST_CLIENT.id),
                ("client_secret", secret),
                ("refresh_token", refresh_token),
            ],
        )
    };
    let refreshed = refresh(&first_refresh);
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    let second_refresh = str_field(&refreshed, "refresh_token");
    assert_ne!(second_refresh, first_refresh, "the refresh token rotates");
    let call = resource(&server, Some(str_field(&refreshed, "access_token")));
    assert_eq!(call.status, 200, "{}", call.json);

    let replayed = refresh(&first_refresh);
    assert_eq!(replayed.status, 400, "{}", replayed.json);
    assert_eq!(replayed.json["error"], "invalid_grant");

    let wrong = token_request(
        &server,
        None,
        &[
            ("grant_type", "password"),
            ("client_id", POST_CLIENT.id),
            ("client_secret", secret),
            ("username", PIN_USER.username),
            ("password", "not-the-password"),
        ],
    );
    assert_eq!(wrong.status, 400, "{}", wrong.json);
    assert_eq!(wrong.json["error"], "invalid_grant");

    let stats = server.stats();
    assert_eq!(stats["token_requests"]["password"], 2, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 2, "{stats}");
    assert_eq!(stats["token_errors"]["invalid_grant"], 2, "{stats}");
    assert_eq!(stats["resource_ok"], 2, "{stats}");
}

fn client_secret_basic_is_form_encoded(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({}));
    let secret = SPECIAL_CLIENT.secret.expect("confidential");

    let encoded = basic(SPECIAL_CLIENT.id, secret);
    let granted = token_request(
        &server,
        Some(&encoded),
        &[("grant_type", "client_credentials"), ("scope", "api")],
    );
    assert_eq!(granted.status, 200, "{}", granted.json);
    let call = resource(&server, Some(str_field(&granted, "access_token")));
    assert_eq!(call.status, 200, "{}", call.json);
    assert_eq!(call.json["sub"], SPECIAL_CLIENT.id);

    // Without the form-encoding step the same secret does not authenticate.
    let raw = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{secret}", SPECIAL_CLIENT.id))
    );
    let refused = token_request(&server, Some(&raw), &[("grant_type", "client_credentials")]);
    assert_ne!(refused.status, 200, "{}", refused.json);
}

fn expired_and_missing_tokens(kind: ServerKind) {
    let server = RunningServer::start(kind, json!({ "accessTokenTtl": 1 }));
    let secret = BASIC_CLIENT.secret.expect("confidential");
    let granted = token_request(
        &server,
        Some(&basic(BASIC_CLIENT.id, secret)),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(granted.status, 200, "{}", granted.json);
    let access = str_field(&granted, "access_token").to_owned();

    thread::sleep(Duration::from_millis(2100));
    let expired = resource(&server, Some(&access));
    assert_eq!(expired.status, 401, "{}", expired.json);
    let challenge = expired.www_authenticate.expect("a challenge");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );

    let missing = resource(&server, None);
    assert_eq!(missing.status, 401, "{}", missing.json);
    let challenge = missing.www_authenticate.expect("a challenge");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");

    let stats = server.stats();
    assert_eq!(stats["resource_401"], 2, "{stats}");
    assert_eq!(stats["token_requests"]["client_credentials"], 1, "{stats}");
    server.reset_stats();
    assert_eq!(server.stats()["resource_401"], 0);
}

#[test]
fn oidc_provider_password_refresh_and_rotation() {
    password_refresh_and_rotation(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_password_refresh_and_rotation() {
    password_refresh_and_rotation(ServerKind::NodeOauth2Server);
}

#[test]
fn oidc_provider_client_secret_basic_is_form_encoded() {
    client_secret_basic_is_form_encoded(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_client_secret_basic_is_form_encoded() {
    client_secret_basic_is_form_encoded(ServerKind::NodeOauth2Server);
}

#[test]
fn oidc_provider_expired_and_missing_tokens() {
    expired_and_missing_tokens(ServerKind::OidcProvider);
}

#[test]
fn oauth2_server_expired_and_missing_tokens() {
    expired_and_missing_tokens(ServerKind::NodeOauth2Server);
}

#[test]
fn oidc_provider_device_flow_approve_and_deny() {
    let server = RunningServer::oidc(json!({}));
    let auth = basic(BASIC_CLIENT.id, BASIC_CLIENT.secret.expect("confidential"));
    let start = |scope: &str| {
        let body = serde_urlencoded::to_string([("scope", scope)]).expect("form");
        reply(
            agent()
                .post(server.url("/device/auth"))
                .header("authorization", &auth)
                .header("content-type", "application/x-www-form-urlencoded")
                .send(body.as_str()),
        )
    };
    let poll = |device_code: &str| {
        token_request(
            &server,
            Some(&auth),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
            ],
        )
    };

    let approved = start("api offline_access");
    assert_eq!(approved.status, 200, "{}", approved.json);
    let device_code = str_field(&approved, "device_code");
    let pending = poll(device_code);
    assert_eq!(pending.status, 400, "{}", pending.json);
    assert_eq!(pending.json["error"], "authorization_pending");
    server.approve_device(str_field(&approved, "user_code"));
    let tokens = poll(device_code);
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert!(tokens.json["refresh_token"].is_string(), "{}", tokens.json);
    let call = resource(&server, Some(str_field(&tokens, "access_token")));
    assert_eq!(call.json["sub"], "joe");

    let denied = start("api");
    server.deny_device(str_field(&denied, "user_code"));
    let refused = poll(str_field(&denied, "device_code"));
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.json["error"], "access_denied");
}
