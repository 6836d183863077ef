//! The IdentityServer deployment of provider document 000/001: client id and secret, the
//! `datahub-api` scope, resource-owner login, and API 401 → refresh → retry. Without
//! `offline_access` there is no refresh token and the client must log in again.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::fake_auth::{ClientAuthStyle, FakeAuthServer, ResponseStyle, ServerConfig};
use support::sim::Sim;
use tokenflow::{Config, Credentials, Event, GrantKind, LoginRequiredReason};

fn identity_server() -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: None,
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: true,
        revoke_family_on_reuse: false,
        require_query_grant_type: false,
    });
    server.add_client(
        "datahub-backend",
        Some("ids-secret"),
        ClientAuthStyle::Basic,
    );
    server.add_user("svc-datahub@acme.com", "pw-datahub");
    server
}

fn config(scope: &str) -> Config {
    Config::builder("https://identity.example/connect/token", "datahub-backend")
        .client_secret("ids-secret")
        .scope(scope)
        .build()
        .unwrap()
}

fn logged_in(scope: &str) -> Sim {
    let mut sim = Sim::new(config(scope), identity_server());
    sim.login(Credentials::password("svc-datahub@acme.com", "pw-datahub"));
    sim
}

#[test]
fn password_login_then_401_makes_exactly_one_refresh_and_the_retry_succeeds() {
    let mut sim = logged_in("datahub-api offline_access");
    assert_eq!(sim.call_api(), StatusCode::OK);
    assert_eq!(sim.server.token_requests(), 1);
    let stored = sim.stored.clone().unwrap();
    assert_eq!(stored.grant, GrantKind::Password);
    assert!(
        stored.refresh_token.is_some(),
        "offline_access brings a refresh token"
    );
    assert_eq!(stored.scope.as_deref(), Some("datahub-api offline_access"));

    // The API stops accepting the token before the client thinks it expired.
    let token = sim.current_access_token().unwrap();
    sim.server.revoke_access_token(&token);
    assert_eq!(
        sim.call_api(),
        StatusCode::OK,
        "the call is retried with the new token"
    );

    assert_eq!(sim.server.token_requests(), 2, "one login, one refresh");
    let refresh = &sim.server.requests()[1];
    assert_eq!(refresh.grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(sim.api.unauthorized(), 1);
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokensUpdated(_))),
        2
    );
    assert_ne!(sim.current_access_token().unwrap(), token);
}

#[test]
fn without_offline_access_a_401_means_login_again() {
    let mut sim = logged_in("datahub-api");
    assert!(sim.stored.as_ref().unwrap().refresh_token.is_none());
    assert_eq!(sim.call_api(), StatusCode::OK);

    let token = sim.current_access_token().unwrap();
    sim.server.revoke_access_token(&token);
    assert_eq!(sim.call_api(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.server.token_requests(), 1, "nothing to refresh with");
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::LoginRequired {
            reason: LoginRequiredReason::NoRefreshToken
        }
    )));

    // Starting over at step 1 works.
    sim.login(Credentials::password("svc-datahub@acme.com", "pw-datahub"));
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn without_offline_access_expiry_also_means_login_again() {
    let mut sim = logged_in("datahub-api");
    sim.advance(Duration::from_secs(3601));
    assert_eq!(sim.call_api(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::LoginRequired { .. })),
        1,
        "announced once"
    );
}

#[test]
fn a_wrong_password_is_a_clear_failure_not_a_loop() {
    let mut sim = Sim::new(config("datahub-api offline_access"), identity_server());
    sim.login(Credentials::password("svc-datahub@acme.com", "wrong"));
    let failed: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Failed(error) => Some(error.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("invalid_grant"), "{}", failed[0]);
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::LoginRequired { .. })),
        0
    );
    assert_eq!(sim.server.token_requests(), 1);
}
