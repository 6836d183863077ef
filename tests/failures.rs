//! What the flow does when things go wrong: a dead refresh token, an overloaded or rate-limiting
//! server, a network that drops answers, answers that come too late.

mod support;

use std::time::{Duration, SystemTime};

use http::StatusCode;
use support::fake_auth::{FakeAuthServer, Fault};
use support::fixtures::{app_config, rotating_server};
use support::sim::{Network, Sim};
use tokenflow::{
    Access, Config, Credentials, Event, FailureCause, LoginRequiredReason, RefreshTokenReuse,
    RetryPolicy, TransportError,
};

fn server() -> FakeAuthServer {
    rotating_server(Duration::from_secs(600))
}

fn config() -> Config {
    app_config().proactive_refresh(false).build().unwrap()
}

fn logged_in() -> Sim {
    logged_in_with(config())
}

fn logged_in_with(config: Config) -> Sim {
    let mut sim = Sim::new(config, server());
    sim.login(Credentials::password("joe", "pw"));
    assert!(sim.stored.is_some());
    sim
}

/// A server that accepts a refresh token again (the flow is told so).
fn reusable() -> Config {
    app_config()
        .proactive_refresh(false)
        .refresh_token_reuse(RefreshTokenReuse::Reusable)
        .build()
        .unwrap()
}

/// Makes the current token unusable so that the next access refreshes.
fn expire(sim: &mut Sim) {
    sim.advance(Duration::from_secs(601));
}

/// Every request out is lost in transport (the connection is reset after sending).
fn lose_in_transport(sim: &mut Sim) {
    sim.fail_all(TransportError::interrupted("connection reset"));
    sim.settle();
}

/// The held refresh token is still there.
fn assert_refresh_token_kept(sim: &Sim) {
    assert!(
        sim.stored.as_ref().unwrap().refresh_token.is_some(),
        "nothing was dropped"
    );
}

fn failures(sim: &Sim) -> Vec<tokenflow::FlowError> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Failed(error) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn invalid_grant_on_refresh_clears_the_tokens_and_asks_for_a_login() {
    let mut sim = logged_in();
    sim.server.revoke_all();
    expire(&mut sim);
    assert_eq!(sim.call_api(), StatusCode::UNAUTHORIZED);
    assert!(sim.stored.is_none(), "the dead tokens were deleted");
    let cleared = sim
        .events
        .iter()
        .position(|e| matches!(e, Event::TokensCleared))
        .unwrap();
    let login = sim
        .events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::LoginRequired {
                    reason: LoginRequiredReason::RefreshTokenRejected(_)
                }
            )
        })
        .unwrap();
    assert!(cleared < login);
    assert_eq!(sim.access(), Access::LoginRequired);
    sim.login(Credentials::password("joe", "pw"));
    assert_eq!(sim.call_api(), StatusCode::OK);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let mut sim = logged_in();
    sim.server.inject(Fault::Status(503));
    sim.server.inject(Fault::HtmlPage(502));
    expire(&mut sim);
    assert_eq!(sim.call_api(), StatusCode::OK);
    let at: Vec<_> = sim.server.requests().iter().skip(1).map(|r| r.at).collect();
    assert_eq!(at.len(), 3, "two failures, then success");
    let policy = RetryPolicy::default();
    assert!(at[1] - at[0] >= policy.initial_backoff / 2);
    assert!(at[2] - at[1] >= policy.initial_backoff);
    assert!(failures(&sim).is_empty());
}

#[test]
fn a_storm_of_server_errors_ends_in_one_failure_and_keeps_the_tokens() {
    let mut sim = logged_in();
    for _ in 0..10 {
        sim.server.inject(Fault::Status(500));
    }
    let refresh_before = sim.stored.as_ref().unwrap().refresh_token.clone();
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);
    sim.advance(Duration::from_secs(60));
    let failed = failures(&sim);
    assert_eq!(failed.len(), 1);
    assert_eq!(sim.server.token_requests(), 1 + 4);
    assert_eq!(failed[0].attempts, 4, "the first try and three retries");
    assert_eq!(sim.stored.as_ref().unwrap().refresh_token, refresh_before);
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::LoginRequired { .. })),
        0
    );
}

#[test]
fn too_many_requests_waits_for_retry_after_in_seconds() {
    let mut sim = logged_in();
    sim.server.inject(Fault::TooManyRequests {
        retry_after: "7".into(),
    });
    expire(&mut sim);
    assert_eq!(sim.call_api(), StatusCode::OK);
    let at: Vec<_> = sim.server.requests().iter().skip(1).map(|r| r.at).collect();
    assert_eq!(at[1] - at[0], Duration::from_secs(7));
}

#[test]
fn service_unavailable_waits_for_retry_after_as_a_date() {
    let mut sim = logged_in();
    expire(&mut sim);
    let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(sim.clock.wall_millis());
    let date = httpdate::fmt_http_date(wall + Duration::from_secs(9));
    sim.server
        .inject(Fault::ServiceUnavailable { retry_after: date });
    assert_eq!(sim.call_api(), StatusCode::OK);
    let at: Vec<_> = sim.server.requests().iter().skip(1).map(|r| r.at).collect();
    let waited = at[1] - at[0];
    assert!(
        waited >= Duration::from_secs(8) && waited <= Duration::from_secs(9),
        "{waited:?}"
    );
}

#[test]
fn a_retry_after_longer_than_allowed_fails_at_once() {
    let mut sim = logged_in();
    sim.server.inject(Fault::TooManyRequests {
        retry_after: "86400".into(),
    });
    expire(&mut sim);
    sim.access();
    let failed = failures(&sim);
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].cause,
        FailureCause::RetryAfterTooLong(Duration::from_secs(86400))
    );
}

#[test]
fn a_refresh_lost_in_transport_is_tried_once_more_and_never_a_third_time_when_reusable() {
    let mut sim = logged_in_with(reusable());
    sim.network = Network::Held;
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);
    let token = sim.presented_refresh_tokens[0].clone();

    lose_in_transport(&mut sim);
    assert_eq!(sim.outbox.len(), 1, "tried once more");
    lose_in_transport(&mut sim);
    assert!(sim.outbox.is_empty(), "never a third time");
    assert_eq!(sim.presented_refresh_tokens, [token.clone(), token]);
    assert_eq!(failures(&sim).len(), 1);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::LoginRequired {
            reason: LoginRequiredReason::RefreshOutcomeUnknown
        }
    )));
    assert_eq!(sim.access(), Access::LoginRequired);
    assert!(sim.outbox.is_empty());
    assert_refresh_token_kept(&sim);
}

#[test]
fn a_refresh_lost_in_transport_is_never_presented_again_under_strict_reuse() {
    let mut sim = logged_in();
    sim.network = Network::Held;
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);
    lose_in_transport(&mut sim);
    assert!(sim.outbox.is_empty(), "not resent");
    sim.advance(Duration::from_secs(300));
    assert!(sim.outbox.is_empty(), "not retried later either");
    assert_eq!(sim.presented_refresh_tokens.len(), 1);
    assert_eq!(failures(&sim).len(), 1);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::LoginRequired {
            reason: LoginRequiredReason::RefreshTokenMayBeSpent
        }
    )));
    assert_eq!(sim.access(), Access::LoginRequired);
    assert_refresh_token_kept(&sim);
}

#[test]
fn a_refresh_that_never_left_is_retried_under_strict_reuse() {
    // Connection refused: the server never saw the token, so nothing is spent.
    let mut sim = logged_in();
    sim.network = Network::Held;
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);
    sim.fail_all(TransportError::not_sent("connection refused"));
    sim.settle();
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.outbox.len(), 1, "retried after the backoff");
    sim.deliver_all();
    sim.settle();
    assert!(matches!(sim.access(), Access::Ready(_)));
}

#[test]
fn only_the_first_loss_in_a_refresh_earns_an_immediate_resend() {
    // Losses between 5xx answers: each answer resets the count of unanswered sends, so the
    // budget must bound the attempt. Found by the `flow` fuzz target.
    let mut sim = logged_in_with(reusable());
    sim.network = Network::Held;
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);

    lose_in_transport(&mut sim);
    assert_eq!(sim.outbox.len(), 1, "the first loss is resent at once");
    sim.server.inject(Fault::Status(502));
    sim.deliver_all();
    sim.settle();
    assert!(sim.outbox.is_empty(), "a 502 waits for its backoff");
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.outbox.len(), 1, "retried after the backoff");

    lose_in_transport(&mut sim);
    assert!(
        sim.outbox.is_empty(),
        "a second loss is a retry like any other, after a backoff"
    );
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.outbox.len(), 1, "retried after the backoff");
    sim.deliver_all();
    sim.settle();
    assert_eq!(sim.access(), Access::Ready(sim.ready_bearer().unwrap()));
    assert_eq!(sim.presented_refresh_tokens.len(), 4);
    assert!(failures(&sim).is_empty());
}

#[test]
fn the_retry_budget_bounds_a_refresh_whose_answers_keep_getting_lost() {
    // max_retries 2: the first send, one immediate resend after a loss, two retries.
    let retry = RetryPolicy {
        max_retries: 2,
        ..RetryPolicy::default()
    };
    let config = app_config()
        .proactive_refresh(false)
        .refresh_token_reuse(RefreshTokenReuse::Reusable)
        .retry(retry)
        .build()
        .unwrap();
    let mut sim = Sim::new(config, server());
    sim.login(Credentials::password("joe", "pw"));
    sim.network = Network::Held;
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);

    lose_in_transport(&mut sim);
    for _ in 0..retry.max_retries {
        sim.server.inject(Fault::Status(503));
        sim.deliver_all();
        sim.settle();
        sim.advance(Duration::from_secs(30));
    }
    lose_in_transport(&mut sim);
    sim.advance(Duration::from_secs(300));

    assert!(sim.outbox.is_empty());
    assert_eq!(
        sim.presented_refresh_tokens.len(),
        retry.max_retries as usize + 2
    );
    let failed = failures(&sim);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, retry.max_retries + 2);
    assert_refresh_token_kept(&sim);
}

#[test]
fn a_retry_presents_the_refresh_token_salvaged_from_a_failed_answer() {
    // A 200 that carries an error beside a new refresh token: the server may have rotated,
    // so the new token is stored, and the retry must present it rather than its
    // predecessor. Found by the `flow` fuzz target.
    let mut sim = logged_in();
    let old = sim.stored.as_ref().unwrap().refresh_token.clone().unwrap();
    sim.server.inject(Fault::Body {
        status: 200,
        content_type: "application/json",
        body: br#"{"refresh_token":"RT-salvaged","error":"temporarily_unavailable"}"#.to_vec(),
    });
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);
    assert_eq!(
        sim.stored
            .as_ref()
            .unwrap()
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret(),
        "RT-salvaged"
    );
    sim.advance(Duration::from_secs(30));
    assert_eq!(
        sim.presented_refresh_tokens,
        [old.expose_secret(), "RT-salvaged"],
        "the retry presented the salvaged token"
    );
}

#[test]
fn a_refresh_whose_answer_is_lost_after_rotation_asks_for_a_login_without_a_reuse() {
    let mut sim = logged_in();
    // A server that allows no reuse: the rotated token is never presented again, so the
    // grant survives on the server, and the client is told to log in — it never loops.
    sim.server.inject(Fault::ApplyThenLose);
    expire(&mut sim);
    assert_eq!(sim.access(), Access::Pending);
    sim.advance(Duration::from_secs(31));
    assert_eq!(sim.presented_refresh_tokens.len(), 1);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::LoginRequired {
            reason: LoginRequiredReason::RefreshTokenMayBeSpent
        }
    )));
    assert_eq!(sim.server.token_requests(), 2);
    assert_eq!(sim.server.reuses_detected(), 0);
}

#[test]
fn connection_refused_is_retried_like_a_server_error() {
    let mut sim = logged_in();
    sim.network = Network::Held;
    expire(&mut sim);
    sim.access();
    for _ in 0..2 {
        sim.fail_all(TransportError::not_sent("connection refused"));
        sim.settle();
        sim.advance(Duration::from_secs(5));
    }
    assert_eq!(sim.outbox.len(), 1);
    sim.deliver_all();
    sim.settle();
    assert!(matches!(sim.access(), Access::Ready(_)));
}

#[test]
fn a_late_answer_after_its_deadline_is_refused_harmlessly() {
    let mut sim = Sim::new(config(), server());
    sim.network = Network::Held;
    sim.flow
        .login(sim.now(), Credentials::password("joe", "pw"));
    sim.settle();
    let first = sim.outbox.remove(0);
    sim.advance(Duration::from_secs(31));
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokensUpdated(_))),
        0
    );
    // The answer to the abandoned request arrives after the deadline.
    sim.deliver(first);
    sim.settle();
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokensUpdated(_))),
        0,
        "ignored"
    );
    // The retry is answered normally.
    sim.advance(Duration::from_secs(5));
    sim.deliver_all();
    sim.settle();
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::TokensUpdated(_))),
        1
    );
    assert!(matches!(sim.access(), Access::Ready(_)));
}
