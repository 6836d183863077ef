//! Many callers and many 401s share one token request; 401s for an old token cost nothing.

mod support;

use std::time::Duration;

use support::fixtures::{app_config, rotating_server};
use support::sim::{Network, Sim};
use tokenflow::{Access, Credentials, Event, Generation, Input};

fn sim() -> Sim {
    let config = app_config().proactive_refresh(false).build().unwrap();
    let mut sim = Sim::new(config, rotating_server(Duration::from_secs(600)));
    sim.login(Credentials::password("joe", "pw"));
    sim.network = Network::Held;
    sim
}

fn generation(sim: &Sim) -> Generation {
    sim.flow.generation().unwrap()
}

#[test]
fn a_hundred_callers_waiting_on_an_expired_token_make_one_request() {
    let mut sim = sim();
    sim.advance(Duration::from_secs(601));
    for _ in 0..100 {
        assert_eq!(sim.access(), Access::Pending);
    }
    assert_eq!(sim.outbox.len(), 1, "one token request for all the callers");
    sim.deliver_all();
    sim.settle();
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::AccessReady { .. })),
        2
    );
    for _ in 0..100 {
        assert!(matches!(sim.access(), Access::Ready(_)));
    }
    assert_eq!(sim.server.token_requests(), 2);
}

#[test]
fn a_hundred_401s_for_the_current_token_make_one_refresh() {
    let mut sim = sim();
    let current = generation(&sim);
    let now = sim.now();
    for _ in 0..100 {
        sim.flow.handle_input(
            now,
            Input::Unauthorized {
                generation: current,
                www_authenticate: vec!["Bearer error=\"invalid_token\"".parse().unwrap()],
            },
        );
        sim.settle();
    }
    assert_eq!(sim.outbox.len(), 1);
    assert_eq!(
        sim.access(),
        Access::Pending,
        "the refused token is not handed out again"
    );
    sim.deliver_all();
    sim.settle();
    let Access::Ready(bearer) = sim.access() else {
        panic!("a new token is ready")
    };
    assert!(bearer.generation() > current);
    assert_eq!(sim.server.token_requests(), 2);
}

#[test]
fn unauthorized_for_an_old_generation_makes_no_request() {
    let mut sim = sim();
    let old = generation(&sim);
    sim.flow.handle_input(
        sim.now(),
        Input::Unauthorized {
            generation: old,
            www_authenticate: vec![],
        },
    );
    sim.settle();
    sim.deliver_all();
    sim.settle();
    let newer = generation(&sim);
    assert!(newer > old);
    let requests = sim.server.token_requests();
    for _ in 0..100 {
        let now = sim.now();
        sim.flow.handle_input(
            now,
            Input::Unauthorized {
                generation: old,
                www_authenticate: vec![],
            },
        );
        sim.settle();
    }
    assert!(sim.outbox.is_empty());
    assert_eq!(sim.server.token_requests(), requests);
    assert!(matches!(sim.access(), Access::Ready(b) if b.generation() == newer));
}

#[test]
fn insufficient_scope_is_not_a_reason_to_refresh() {
    let mut sim = sim();
    let current = generation(&sim);
    sim.flow.handle_input(
        sim.now(),
        Input::Unauthorized {
            generation: current,
            www_authenticate: vec![
                "Bearer error=\"insufficient_scope\", scope=\"admin\""
                    .parse()
                    .unwrap(),
            ],
        },
    );
    sim.settle();
    assert!(sim.outbox.is_empty());
    assert!(matches!(sim.access(), Access::Ready(b) if b.generation() == current));
}
