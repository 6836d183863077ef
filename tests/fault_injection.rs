//! Faults injected into the simulated world: the token endpoint goes down, loses answers,
//! rate-limits, answers too late, and clocks jump. Through all of it no refresh token is lost,
//! retries stay bounded, and the flow recovers once the server answers again.

mod support;

use std::time::{Duration, SystemTime};

use http::StatusCode;
use support::clock::VirtualClock;
use support::fake_auth::{ClientAuthStyle, FakeAuthServer, Fault, ResponseStyle, ServerConfig};
use support::sim::{Network, Sim};
use tokenflow::{
    Access, Config, Credentials, Event, FailureCause, FlowError, Input, LoginRequiredReason,
    RefreshTokenReuse, RetryPolicy, TokenFlow, TransportError, UnixTime,
};

const TTL: Duration = Duration::from_secs(600);

fn server(rotate: bool) -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: TTL,
        refresh_ttl: None,
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: rotate,
        refresh_requires_offline_access: false,
        revoke_family_on_reuse: rotate,
        require_query_grant_type: false,
    });
    server.add_client("app", Some("secret"), ClientAuthStyle::Basic);
    server.add_user("joe", "pw");
    server
}

fn config(proactive: bool) -> Config {
    Config::builder("https://id.example/token", "app")
        .client_secret("secret")
        .proactive_refresh(proactive)
        .build()
        .unwrap()
}

/// A configuration for a server that accepts a refresh token again.
fn reusable_config(proactive: bool) -> Config {
    Config::builder("https://id.example/token", "app")
        .client_secret("secret")
        .proactive_refresh(proactive)
        .refresh_token_reuse(RefreshTokenReuse::Reusable)
        .build()
        .unwrap()
}

fn logged_in(rotate: bool, proactive: bool) -> Sim {
    logged_in_with(rotate, config(proactive))
}

fn logged_in_with(rotate: bool, config: Config) -> Sim {
    let mut sim = Sim::new(config, server(rotate));
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

fn failures(sim: &Sim) -> Vec<FlowError> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Failed(error) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn login_required(sim: &Sim) -> Vec<LoginRequiredReason> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::LoginRequired { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Runs the host's loop for `total` the way the crate documents it: sleep until
/// `Idle { until }` (at once when that instant has passed), feed `Timeout`, drain. Fails if
/// the flow keeps asking to be woken without time passing.
fn run_for(sim: &mut Sim, total: Duration) {
    let end = sim.now() + total;
    let mut wakes_at_this_instant = 0;
    loop {
        let now = sim.now();
        match sim.idle_until {
            Some(until) if until <= now => {
                wakes_at_this_instant += 1;
                assert!(
                    wakes_at_this_instant < 50,
                    "the flow keeps waking itself at the same instant ({} token requests so far)",
                    sim.server.token_requests()
                );
            }
            Some(until) if until < end => {
                sim.clock.advance(until - now);
                wakes_at_this_instant = 0;
            }
            _ => {
                sim.clock.advance(end - now);
                let now = sim.now();
                sim.flow.handle_input(now, Input::Timeout);
                sim.settle();
                return;
            }
        }
        let now = sim.now();
        sim.flow.handle_input(now, Input::Timeout);
        sim.settle();
    }
}

#[test]
fn token_endpoint_down_during_a_refresh() {
    let mut sim = logged_in(true, false);
    let before = refresh_token(&sim);
    sim.network = Network::Held;
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    let policy = RetryPolicy::default();
    // Connection refused on every try: retried with backoff, then one failure.
    for _ in 0..10 {
        sim.fail_all(TransportError::not_sent("connection refused"));
        sim.settle();
        sim.advance(policy.max_backoff);
    }
    assert_eq!(
        sim.presented_refresh_tokens.len() as u32,
        policy.max_retries + 1,
        "bounded retries"
    );
    assert_eq!(failures(&sim).len(), 1);
    assert!(
        login_required(&sim).is_empty(),
        "nothing reached the server"
    );
    assert_eq!(refresh_token(&sim), before, "the refresh token is kept");
    // The server comes back: the next access refreshes with the same token.
    sim.network = Network::Instant;
    assert_eq!(sim.call_api(), StatusCode::OK);
    assert_ne!(refresh_token(&sim), before, "rotated");
}

#[test]
fn rotation_applied_but_the_answer_lost_on_a_server_that_keeps_the_token() {
    let mut sim = logged_in_with(false, reusable_config(false));
    let before = refresh_token(&sim);
    sim.server.inject(Fault::ApplyThenLose);
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.call_api(), StatusCode::OK);
    assert_eq!(
        sim.presented_refresh_tokens.len(),
        2,
        "once more after the loss"
    );
    assert_eq!(refresh_token(&sim), before);
    assert!(failures(&sim).is_empty());
}

#[test]
fn rotation_applied_but_the_answer_lost_on_a_rotating_server() {
    let mut sim = logged_in(true, false);
    sim.server.inject(Fault::ApplyThenLose);
    sim.advance(TTL + Duration::from_secs(1));
    sim.access();
    run_for(&mut sim, Duration::from_secs(300));
    // The token was presented once: a second time would be a reuse, and the grant would go.
    assert_eq!(sim.presented_refresh_tokens.len(), 1);
    assert_eq!(
        login_required(&sim),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    assert_eq!(sim.server.reuses_detected(), 0);
    assert!(
        sim.stored.is_some(),
        "the tokens are kept for a late answer"
    );
    // Recovery: a new login works.
    sim.login(Credentials::password("joe", "pw"));
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn two_refreshes_without_an_answer_stop_without_dropping_the_token() {
    let mut sim = logged_in_with(false, reusable_config(false));
    let before = refresh_token(&sim);
    sim.server.inject(Fault::ApplyThenLose);
    sim.server.inject(Fault::ApplyThenLose);
    sim.advance(TTL + Duration::from_secs(1));
    sim.access();
    run_for(&mut sim, Duration::from_secs(600));
    assert_eq!(sim.presented_refresh_tokens.len(), 2, "never a third time");
    assert_eq!(
        login_required(&sim),
        [LoginRequiredReason::RefreshOutcomeUnknown]
    );
    assert_eq!(
        refresh_token(&sim),
        before,
        "the stored token is left alone"
    );
    assert_eq!(sim.access(), Access::LoginRequired);
}

#[test]
fn a_storm_of_server_errors_during_proactive_refresh_stays_bounded() {
    let mut sim = logged_in(true, true);
    let before = refresh_token(&sim);
    for _ in 0..1000 {
        sim.server.inject(Fault::Status(503));
    }
    // Up to the renewal point, then ten minutes of outage.
    sim.advance(TTL - Duration::from_secs(31));
    let requests = sim.server.token_requests();
    run_for(&mut sim, Duration::from_secs(600));
    let policy = RetryPolicy::default();
    let sent = sim.server.token_requests() - requests;
    // Each attempt is the first try and its retries; attempts are spaced by at least the
    // longest backoff, so ten minutes hold at most 1 + 600 / 30 of them.
    let attempts = 1 + 600 / policy.max_backoff.as_secs() as usize;
    assert!(
        sent <= attempts * (policy.max_retries as usize + 1),
        "{sent} requests in ten minutes"
    );
    assert_eq!(refresh_token(&sim), before, "the refresh token is kept");
    assert!(
        login_required(&sim).is_empty(),
        "a server error is no reason to log in again"
    );
    // The server returns.
    while sim.server.pending_faults() > 0 {
        let _ = sim
            .server
            .handle_with_faults(sim.now(), &http::Request::new(Vec::new()));
    }
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn a_refresh_refused_for_good_is_not_retried_in_a_loop() {
    // An answer that no retry can fix (a gateway's 404, an unusable 200): the proactive
    // renewal fails once and waits before trying again instead of asking at once.
    for fault in [
        Fault::HtmlPage(404),
        Fault::Body {
            status: 200,
            content_type: "application/json",
            body: br#"{"access_token":"AT.x","token_type":"mac"}"#.to_vec(),
        },
        Fault::Body {
            status: 400,
            content_type: "application/json",
            body: br#"{"error":"invalid_scope"}"#.to_vec(),
        },
    ] {
        let mut sim = logged_in(true, true);
        for _ in 0..100 {
            sim.server.inject(fault.clone());
        }
        sim.advance(TTL - Duration::from_secs(31));
        let requests = sim.server.token_requests();
        run_for(&mut sim, Duration::from_secs(25));
        let sent = sim.server.token_requests() - requests;
        assert!(sent <= 2, "{fault:?}: {sent} requests in 25 s");
        assert!(!failures(&sim).is_empty());
        // The token stays usable until it expires.
        assert!(
            matches!(sim.flow.access(sim.now()), Access::Ready(_)),
            "{fault:?}"
        );
    }
}

#[test]
fn too_many_requests_with_retry_after_in_seconds_and_as_a_date() {
    let mut sim = logged_in(true, false);
    let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(sim.clock.wall_millis());
    // The date is read against the wall clock when the answer arrives (after expiry).
    let date = httpdate::fmt_http_date(wall + TTL + Duration::from_secs(1 + 20));
    sim.server.inject(Fault::TooManyRequests {
        retry_after: "12".into(),
    });
    sim.server
        .inject(Fault::TooManyRequests { retry_after: date });
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.call_api(), StatusCode::OK);
    let at: Vec<_> = sim.server.requests().iter().skip(1).map(|r| r.at).collect();
    assert_eq!(at.len(), 3);
    assert_eq!(at[1] - at[0], Duration::from_secs(12));
    let waited = at[2] - at[1];
    assert!(
        waited >= Duration::from_secs(7) && waited <= Duration::from_secs(9),
        "{waited:?}"
    );
    assert!(failures(&sim).is_empty());
}

#[test]
fn retry_after_beyond_the_limit_fails_and_keeps_the_tokens() {
    let mut sim = logged_in(true, false);
    let before = refresh_token(&sim);
    sim.server.inject(Fault::ServiceUnavailable {
        retry_after: "Fri, 31 Dec 9999 23:59:59 GMT".into(),
    });
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    let failed = failures(&sim);
    assert_eq!(failed.len(), 1);
    assert!(matches!(
        failed[0].cause,
        FailureCause::RetryAfterTooLong(_)
    ));
    assert_eq!(refresh_token(&sim), before);
    assert_eq!(
        sim.call_api(),
        StatusCode::OK,
        "the next access tries again"
    );
}

#[test]
fn answers_slower_than_the_deadline() {
    // A login whose answer comes late: ignored, the retry is answered.
    let mut sim = Sim::new(config(false), server(false));
    sim.network = Network::Held;
    sim.flow
        .login(sim.now(), Credentials::password("joe", "pw"));
    sim.settle();
    let slow = sim.outbox.remove(0);
    sim.advance(Duration::from_secs(31));
    sim.deliver(slow);
    sim.settle();
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokensUpdated(_))),
        0
    );
    sim.advance(Duration::from_secs(5));
    sim.deliver_all();
    sim.settle();
    assert!(matches!(sim.access(), Access::Ready(_)));

    // A refresh whose answer comes late: the token is not presented again (the server may
    // have applied the refresh), and the late answer, when it comes, is the server's truth.
    let before = sim.current_access_token();
    sim.advance(TTL + Duration::from_secs(1));
    assert_eq!(sim.access(), Access::Pending);
    let slow = sim.outbox.remove(0);
    for _ in 0..3 {
        sim.advance(Duration::from_secs(31));
    }
    assert_eq!(sim.presented_refresh_tokens.len(), 1);
    assert_eq!(
        login_required(&sim),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    sim.deliver(slow);
    sim.settle();
    assert!(matches!(sim.flow.access(sim.now()), Access::Ready(_)));
    assert_ne!(
        sim.current_access_token(),
        before,
        "the late answer's token"
    );
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn monotonic_clock_jumps_forward_and_back() {
    let mut sim = logged_in(true, true);
    let token = sim.current_access_token();
    // Instants from the past (another thread's stale reading) move nothing backwards.
    let start = sim.now();
    sim.clock.advance(Duration::from_secs(100));
    let later = sim.now();
    sim.flow.handle_input(later, Input::Timeout);
    sim.settle();
    for _ in 0..5 {
        sim.flow.handle_input(start, Input::Timeout);
        sim.settle();
        assert!(matches!(sim.flow.access(start), Access::Ready(_)));
        sim.settle();
    }
    assert_eq!(sim.server.token_requests(), 1, "no request from going back");
    assert_eq!(sim.current_access_token(), token);
    // A jump of ten days (a suspended laptop): one refresh, then all is well.
    sim.clock.advance(Duration::from_secs(10 * 86_400));
    assert_eq!(sim.access(), Access::Pending);
    let Access::Ready(bearer) = sim.access() else {
        panic!("no token after the refresh");
    };
    assert_eq!(sim.api_request(&bearer).status(), StatusCode::OK);
    assert_eq!(sim.server.token_requests(), 2);
    assert_ne!(sim.current_access_token(), token);
    // A jump of a century: still one refresh.
    sim.clock.advance(Duration::from_secs(100 * 365 * 86_400));
    assert_eq!(sim.access(), Access::Pending);
    let Access::Ready(bearer) = sim.access() else {
        panic!("no token after the refresh");
    };
    assert_eq!(sim.api_request(&bearer).status(), StatusCode::OK);
    assert_eq!(sim.server.token_requests(), 3);
}

#[test]
fn wall_clock_jumps_between_runs() {
    for skew_hours in [-48i64, -1, 1, 48] {
        let mut sim = logged_in(true, false);
        let stored = sim.stored.clone().unwrap();
        // The next process starts with a wall clock set differently.
        let wall = sim.clock.wall_millis() as i64 + skew_hours * 3_600_000;
        let mut clock: VirtualClock = sim.clock;
        clock.advance(Duration::from_secs(1));
        let flow = TokenFlow::restore(
            config(false),
            stored.clone(),
            3,
            clock.now(),
            UnixTime::from_millis(wall as u64),
        )
        .unwrap();
        let server = std::mem::replace(
            &mut sim.server,
            FakeAuthServer::new(ServerConfig::standard()),
        );
        let mut sim = Sim::with_flow(clock, flow, server);
        sim.stored = Some(stored);
        // Ahead: the token looks expired and is refreshed; behind: it is used until the API
        // refuses it, then refreshed once.
        assert_eq!(sim.call_api(), StatusCode::OK, "skew {skew_hours} h");
        sim.clock.advance(TTL);
        assert_eq!(sim.call_api(), StatusCode::OK, "skew {skew_hours} h");
        assert!(sim.server.token_requests() <= 3, "skew {skew_hours} h");
        assert!(login_required(&sim).is_empty());
    }
}
