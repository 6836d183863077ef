//! Very short token lifetimes keep working: the refresh margin is capped at a tenth of the
//! lifetime, and proactive refresh fires exactly at expiry minus that margin.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::fixtures::{app_config, rotating_server};
use support::sim::Sim;
use tokenflow::Credentials;

fn sim(ttl: Duration, margin: Duration) -> Sim {
    let config = app_config().refresh_margin(margin).build().unwrap();
    let mut sim = Sim::new(config, rotating_server(ttl));
    sim.login(Credentials::password("joe", "pw"));
    sim
}

#[test]
fn three_second_tokens_keep_working_for_a_minute() {
    let mut sim = sim(Duration::from_secs(3), Duration::from_secs(60));
    for _ in 0..600 {
        assert_eq!(sim.call_api(), StatusCode::OK);
        sim.advance(Duration::from_millis(100));
    }
    assert_eq!(sim.api.unauthorized(), 0);
    // A token every 2.7 s over 60 s: 1 login and 22 refreshes.
    assert_eq!(sim.server.token_requests(), 23);
}

#[test]
fn proactive_refresh_fires_at_expiry_minus_the_capped_margin() {
    let mut sim = sim(Duration::from_secs(3), Duration::from_secs(60));
    let issued = sim.now();
    assert_eq!(sim.idle_until, Some(issued + Duration::from_millis(2700)));
    sim.advance(Duration::from_secs(5));
    let refresh = &sim.server.requests()[1];
    assert_eq!(refresh.grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(refresh.at - issued, Duration::from_millis(2700));
}

#[test]
fn long_tokens_use_the_configured_margin() {
    let sim = sim(Duration::from_secs(3600), Duration::from_secs(60));
    let issued = sim.now();
    assert_eq!(sim.idle_until, Some(issued + Duration::from_secs(3540)));
}
