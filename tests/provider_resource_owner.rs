//! The resource-owner service of provider document 003: a pin-style username sent verbatim,
//! scope `qflowapi openid offline_access`, and single-use refresh tokens.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use http::StatusCode;
use support::fake_auth::{ClientAuthStyle, FakeAuthServer, Outcome, ResponseStyle, ServerConfig};
use support::sim::Sim;
use tokenflow::{ClientAuth, Config, Credentials};

const USERNAME: &str = "1234/joe.bloggs@acme.com";

fn qflow() -> Sim {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: None,
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: true,
        revoke_family_on_reuse: true,
        require_query_grant_type: false,
    });
    server.add_client(
        "acme_resowner",
        Some("cb818203-d58c-4bf7-a66a-43522716cf69"),
        ClientAuthStyle::Post,
    );
    server.add_user(USERNAME, "secret1234");
    let config = Config::builder(
        "https://identity.qflowhub.example/core/connect/token",
        "acme_resowner",
    )
    .client_secret("cb818203-d58c-4bf7-a66a-43522716cf69")
    .client_auth(ClientAuth::SecretPost)
    .scope("qflowapi openid offline_access")
    .build()
    .unwrap();
    Sim::new(config, server)
}

#[test]
fn the_pin_username_arrives_verbatim_with_the_documented_scope() {
    let mut sim = qflow();
    sim.login(Credentials::password(USERNAME, "secret1234"));
    let login = &sim.server.requests()[0];
    assert!(login.form.contains(&("username".into(), USERNAME.into())));
    assert!(
        login
            .form
            .contains(&("scope".into(), "qflowapi openid offline_access".into()))
    );
    assert!(
        login
            .form
            .contains(&("client_id".into(), "acme_resowner".into()))
    );
    assert!(sim.stored.as_ref().unwrap().refresh_token.is_some());
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn fifty_rotations_never_present_a_refresh_token_twice() {
    let mut sim = qflow();
    sim.login(Credentials::password(USERNAME, "secret1234"));
    for _ in 0..50 {
        // Proactive refresh fires shortly before each token ends; the API never sees a 401.
        sim.advance(Duration::from_secs(3600));
        assert_eq!(sim.call_api(), StatusCode::OK);
    }
    let presented = &sim.presented_refresh_tokens;
    assert!(presented.len() >= 50, "{} refreshes", presented.len());
    let distinct: HashSet<_> = presented.iter().collect();
    assert_eq!(
        distinct.len(),
        presented.len(),
        "a refresh token was presented twice"
    );
    assert_eq!(sim.api.unauthorized(), 0);
    assert_eq!(sim.server.live_refresh_tokens(), 1);
    assert!(
        sim.server
            .requests()
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Issued))
    );
}
