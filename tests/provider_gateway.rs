//! The gateway of provider document 002: client credentials with `grant_type` in the query
//! string and a response in which every value is a string (`"expires_in": "86399"`,
//! `"token_type": "BearerToken"`, epoch milliseconds for `refresh_token_issued_at`).

mod support;

use std::time::Duration;

use http::{StatusCode, header};
use support::fake_auth::{ClientAuthStyle, FakeAuthServer, ResponseStyle, ServerConfig};
use support::sim::Sim;
use tokenflow::{Access, ClientAuth, Config, Credentials, GrantKind};

fn gateway() -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: Duration::from_secs(86399),
        refresh_ttl: Some(Duration::from_secs(1799)),
        style: ResponseStyle::Gateway,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: false,
        revoke_family_on_reuse: false,
        require_query_grant_type: true,
    });
    server.add_client("APP-API-KEY", Some("APP-API-SECRET"), ClientAuthStyle::Post);
    server
}

fn sim() -> Sim {
    let config = Config::builder(
        "https://api.gateway.example/auth/v2/accesstoken?grant_type=client_credentials",
        "APP-API-KEY",
    )
    .client_secret("APP-API-SECRET")
    .client_auth(ClientAuth::SecretPost)
    .build()
    .unwrap();
    Sim::new(config, gateway())
}

#[test]
fn client_credentials_with_the_grant_type_in_the_query_and_a_quirky_answer() {
    let mut sim = sim();
    sim.login(Credentials::ClientCredentials);

    let request = &sim.server.requests()[0];
    assert_eq!(request.uri.query(), Some("grant_type=client_credentials"));
    assert_eq!(request.grant_type.as_deref(), Some("client_credentials"));
    assert!(
        request
            .form
            .contains(&("client_id".into(), "APP-API-KEY".into()))
    );

    let stored = sim.stored.clone().expect("tokens stored");
    assert_eq!(stored.grant, GrantKind::ClientCredentials);
    let lifetime = stored
        .expires_at
        .unwrap()
        .saturating_duration_since(stored.issued_at);
    assert_eq!(
        lifetime,
        Duration::from_secs(86399),
        "the string expires_in was understood"
    );
    assert_eq!(stored.extra["status"], "approved");
    assert_eq!(stored.extra["refresh_count"], "0");
    assert!(
        stored.refresh_token_expires_at.is_some(),
        "the refresh token's expiry is exposed"
    );

    let Access::Ready(bearer) = sim.access() else {
        panic!("a token is ready")
    };
    let value = bearer.header_value().to_str().unwrap().to_owned();
    assert!(
        value.starts_with("Bearer "),
        "BearerToken is sent as Bearer: {value}"
    );
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn the_refresh_token_expiry_comes_from_the_epoch_milliseconds() {
    let mut sim = sim();
    sim.login(Credentials::ClientCredentials);
    let stored = sim.stored.clone().unwrap();
    let expires = stored.refresh_token_expires_at.unwrap().as_millis();
    // The fake's clock base for refresh_token_issued_at is 1_521_035_756_257 ms.
    assert_eq!(expires, 1_521_035_756_257 + 1_799_000);
}

#[test]
fn renewal_asks_again_with_client_credentials() {
    let mut sim = sim();
    sim.login(Credentials::ClientCredentials);
    sim.advance(Duration::from_secs(86399));
    assert_eq!(sim.call_api(), StatusCode::OK);
    let grants: Vec<_> = sim
        .server
        .requests()
        .iter()
        .map(|r| r.grant_type.clone().unwrap_or_default())
        .collect();
    assert_eq!(grants, ["client_credentials", "client_credentials"]);
    let renewal = &sim.server.requests()[1];
    assert_eq!(renewal.uri.query(), Some("grant_type=client_credentials"));
    assert!(
        renewal.headers.get(header::AUTHORIZATION).is_none(),
        "client_secret_post only"
    );
}
