//! What providers say about a refresh token's lifetime, and that the flow still uses the token:
//! Keycloak's `"refresh_expires_in": 0` for offline tokens ("does not expire"), a gateway's
//! `"refresh_token_expires_in": "0"`, and `refresh_token_issued_at` in epoch seconds rather
//! than milliseconds. Each must lead to a refresh at the renewal point, never to
//! `LoginRequired(RefreshTokenExpired)` without trying.

mod support;

use std::time::Duration;

use support::clock::WALL_BASE_MS;
use support::fake_auth::{ClientAuthStyle, EpochUnit, FakeAuthServer, ResponseStyle, ServerConfig};
use support::fixtures::app_config;
use support::sim::Sim;
use tokenflow::{Access, Credentials, Event, UnixTime};

const ACCESS_TTL: Duration = Duration::from_secs(300);

fn server(style: ResponseStyle, refresh_ttl: Option<Duration>) -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: ACCESS_TTL,
        refresh_ttl,
        style,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: false,
        revoke_family_on_reuse: true,
        require_query_grant_type: false,
    });
    server.add_client("app", Some("secret"), ClientAuthStyle::Basic);
    server.add_user("joe", "pw");
    server
}

fn logged_in(server: FakeAuthServer) -> Sim {
    let mut sim = Sim::new(app_config().build().unwrap(), server);
    sim.login(Credentials::password("joe", "pw"));
    assert!(sim.stored.is_some(), "the login stored tokens");
    sim
}

/// Past several renewal points: each one refreshes with the server, none asks for a login,
/// and a token is ready at the end.
fn assert_refreshes_through(sim: &mut Sim) {
    for _ in 0..3 {
        sim.advance(ACCESS_TTL);
    }
    let refreshes = sim
        .server
        .requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .count();
    assert!(refreshes >= 3, "{refreshes} refreshes were tried");
    let login_required: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::LoginRequired { .. }))
        .collect();
    assert!(login_required.is_empty(), "{login_required:?}");
    assert!(matches!(sim.access(), Access::Ready(_)));
}

#[test]
fn a_keycloak_offline_token_with_a_refresh_lifetime_of_zero_is_refreshed() {
    let mut sim = logged_in(server(ResponseStyle::Keycloak, None));
    let stored = sim.stored.clone().unwrap();
    assert_refreshes_through(&mut sim);
    assert_eq!(
        stored.refresh_token_expires_at, None,
        "zero states no expiry"
    );
    assert_eq!(stored.extra["not-before-policy"], 0);
}

#[test]
fn a_keycloak_refresh_lifetime_still_counts_when_stated() {
    let mut sim = logged_in(server(
        ResponseStyle::Keycloak,
        Some(Duration::from_secs(1800)),
    ));
    let stored = sim.stored.clone().unwrap();
    assert_refreshes_through(&mut sim);
    assert_eq!(
        stored.refresh_token_expires_at,
        Some(UnixTime::from_millis(WALL_BASE_MS + 1_800_000))
    );
}

#[test]
fn a_gateway_refresh_token_expires_in_of_zero_is_refreshed() {
    // The gateway style writes `"refresh_token_expires_in": "0"` for tokens without expiry.
    let mut server = server(ResponseStyle::Gateway, None);
    server.set_gateway_epoch(WALL_BASE_MS, EpochUnit::Millis);
    let mut sim = logged_in(server);
    let stored = sim.stored.clone().unwrap();
    assert_refreshes_through(&mut sim);
    assert_eq!(stored.refresh_token_expires_at, None);
}

#[test]
fn a_refresh_issue_time_in_epoch_seconds_is_read_as_seconds() {
    let thirty_days = Duration::from_secs(30 * 24 * 3600);
    for unit in [EpochUnit::Secs, EpochUnit::Millis] {
        let mut server = server(ResponseStyle::Gateway, Some(thirty_days));
        server.set_gateway_epoch(WALL_BASE_MS, unit);
        let mut sim = logged_in(server);
        let stored = sim.stored.clone().unwrap();
        assert_refreshes_through(&mut sim);
        assert_eq!(
            stored.refresh_token_expires_at,
            Some(UnixTime::from_millis(WALL_BASE_MS).saturating_add(thirty_days)),
            "{unit:?}"
        );
    }
}
