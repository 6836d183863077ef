//! A single-use refresh token against a server that detects reuse (RFC 9700 §4.14.2): a late
//! answer is adopted, a lost answer is never resent into the reuse detector under strict
//! reuse, and inside a grace window the token is presented again as the server allows.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::fake_auth::{FakeAuthServer, Fault};
use support::fixtures::{app_config, rotating_server};
use support::sim::{Network, Sim};
use tokenflow::{
    Access, Config, Credentials, Event, LoginRequiredReason, RefreshTokenReuse, TransportError,
};

const TTL: Duration = Duration::from_secs(600);

fn server() -> FakeAuthServer {
    rotating_server(TTL)
}

fn strict() -> Config {
    app_config().proactive_refresh(false).build().unwrap()
}

fn logged_in(config: Config, server: FakeAuthServer) -> Sim {
    let mut sim = Sim::new(config, server);
    sim.login(Credentials::password("joe", "pw"));
    assert!(sim.stored.is_some());
    sim
}

fn refresh_token(sim: &Sim) -> Option<String> {
    sim.stored
        .as_ref()
        .and_then(|s| s.refresh_token.as_ref())
        .map(|t| t.expose_secret().to_owned())
}

fn login_reasons(sim: &Sim) -> Vec<LoginRequiredReason> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::LoginRequired { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Plays a backend's credentials source: a `LoginRequired` not yet answered is answered with
/// a password login. Returns how many logins it made.
fn log_in_when_asked(sim: &mut Sim, answered: &mut usize) -> usize {
    let mut logins = 0;
    while login_reasons(sim).len() > *answered {
        *answered += 1;
        logins += 1;
        sim.login(Credentials::password("joe", "pw"));
    }
    logins
}

/// The grant survived: no spent token was presented, nothing was revoked.
fn assert_no_reuse(sim: &Sim) {
    assert_eq!(
        sim.server.reuses_detected(),
        0,
        "a spent token was presented"
    );
    assert_eq!(sim.server.families_revoked(), 0);
}

#[test]
fn a_late_answer_to_a_refresh_that_timed_out_is_adopted() {
    let mut sim = logged_in(strict(), server());
    let before = refresh_token(&sim);
    sim.network = Network::Held;
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    // The server is slow, not dead: the answer comes after the deadline.
    let slow = sim.outbox.remove(0);
    sim.advance(Duration::from_secs(31));
    assert!(sim.outbox.is_empty(), "the token is not presented again");
    assert_eq!(
        login_reasons(&sim),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    sim.deliver(slow);
    sim.settle();

    // The rotated token was announced before the new access token was released.
    let last_two: Vec<_> = sim.events.iter().rev().take(2).collect();
    assert!(matches!(last_two[0], Event::AccessReady { .. }));
    assert!(matches!(last_two[1], Event::TokensUpdated(_)));
    assert_ne!(refresh_token(&sim), before, "the successor is stored");
    sim.network = Network::Instant;
    assert_eq!(sim.call_api(), StatusCode::OK);
    // The session lives on: the next refresh presents the successor.
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.call_api(), StatusCode::OK);
    assert_eq!(sim.presented_refresh_tokens.len(), 2);
    assert_no_reuse(&sim);
}

#[test]
fn a_late_answer_after_newer_tokens_is_refused() {
    let mut sim = logged_in(strict(), server());
    sim.network = Network::Held;
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    let slow = sim.outbox.remove(0);
    sim.advance(Duration::from_secs(31));
    // A new login answers the LoginRequired before the late answer comes.
    sim.network = Network::Instant;
    sim.login(Credentials::password("joe", "pw"));
    let after_login = sim.stored.clone();
    let updates = sim.count_events(|e| matches!(e, Event::TokensUpdated(_)));
    sim.deliver(slow);
    sim.settle();
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokensUpdated(_))),
        updates,
        "the late answer renews tokens no longer held"
    );
    assert_eq!(sim.stored, after_login);
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn a_lost_answer_under_strict_reuse_leads_to_a_new_login_and_no_reuse() {
    let mut sim = logged_in(strict(), server());
    let mut answered = 0;
    sim.network = Network::Held;
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    // The server rotates the token; the connection breaks before its answer arrives.
    sim.server.inject(Fault::ApplyThenLose);
    let lost = sim.outbox.remove(0);
    sim.deliver_and_fail(lost, TransportError::interrupted("connection reset"));
    sim.settle();
    assert!(sim.outbox.is_empty(), "not resent into the reuse detector");
    assert_eq!(
        login_reasons(&sim),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    sim.network = Network::Instant;
    assert_eq!(log_in_when_asked(&mut sim, &mut answered), 1);
    assert_eq!(sim.call_api(), StatusCode::OK);
    assert_eq!(sim.presented_refresh_tokens.len(), 1);
    assert_no_reuse(&sim);
    // The new session renews normally.
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.call_api(), StatusCode::OK);
    assert_eq!(log_in_when_asked(&mut sim, &mut answered), 0);
    assert_no_reuse(&sim);
}

fn with_grace(grace: Duration) -> (Config, FakeAuthServer) {
    let config = app_config()
        .proactive_refresh(false)
        .refresh_token_reuse(RefreshTokenReuse::GraceWindow(grace))
        .build()
        .unwrap();
    let mut server = server();
    server.set_reuse_grace(grace);
    (config, server)
}

#[test]
fn a_lost_answer_inside_the_grace_window_is_presented_again_and_succeeds() {
    let (config, server) = with_grace(Duration::from_secs(10));
    let mut sim = logged_in(config, server);
    let before = refresh_token(&sim);
    sim.network = Network::Held;
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    sim.server.inject(Fault::ApplyThenLose);
    let lost = sim.outbox.remove(0);
    sim.clock.advance(Duration::from_secs(2));
    sim.deliver_and_fail(lost, TransportError::interrupted("connection reset"));
    sim.settle();
    assert_eq!(sim.outbox.len(), 1, "presented again inside the window");
    sim.deliver_all();
    sim.settle();
    assert!(matches!(sim.flow.access(sim.now()), Access::Ready(_)));
    let before = before.unwrap();
    assert_eq!(sim.presented_refresh_tokens, [before.clone(), before]);
    assert_eq!(sim.server.grace_refreshes(), 1);
    assert!(login_reasons(&sim).is_empty());
    assert_no_reuse(&sim);
}

#[test]
fn past_the_grace_window_the_token_is_not_presented_again() {
    // The loss is noticed only at the deadline, 30 s after the send: the 10 s window closed.
    let (config, server) = with_grace(Duration::from_secs(10));
    let mut sim = logged_in(config, server);
    sim.server.inject(Fault::ApplyThenLose);
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    sim.advance(Duration::from_secs(31));
    assert_eq!(sim.presented_refresh_tokens.len(), 1);
    assert_eq!(
        login_reasons(&sim),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    assert_no_reuse(&sim);
    let mut answered = 0;
    assert_eq!(log_in_when_asked(&mut sim, &mut answered), 1);
    assert_eq!(sim.call_api(), StatusCode::OK);
}
