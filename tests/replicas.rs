//! Replicas of one backend sharing one login through a shared token store: one refresh
//! serves them all, a dead replica's refresh is never replayed into a strict server's reuse
//! detector, and no schedule of answers, losses, delays and deaths presents a spent token.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::fake_auth::FakeAuthServer;
use support::fixtures::{app_config, rotating_server};
use support::replicas::Replicas;
use tokenflow::{
    Access, Config, Credentials, Event, LoginRequiredReason, RefreshTokenReuse, RetryPolicy,
    TransportError,
};

const TTL: Duration = Duration::from_secs(600);

fn config(reuse: RefreshTokenReuse, proactive: bool) -> Config {
    app_config()
        .proactive_refresh(proactive)
        .refresh_token_reuse(reuse)
        .request_timeout(Duration::from_secs(10))
        .retry(RetryPolicy {
            max_retries: 2,
            max_retry_after: Duration::from_secs(20),
            ..RetryPolicy::default()
        })
        .shared_store(true)
        .build()
        .unwrap()
}

fn server() -> FakeAuthServer {
    rotating_server(TTL)
}

/// Two replicas; the first logs in, the second takes the login from the store.
fn two_replicas(reuse: RefreshTokenReuse, proactive: bool) -> Replicas {
    let mut world = Replicas::new(config(reuse, proactive), server(), 2);
    let now = world.now();
    world.replicas[0]
        .flow
        .login(now, Credentials::password("joe", "pw"));
    world.drain(0);
    world.settle();
    for r in 0..2 {
        assert!(matches!(world.access(r), Access::Ready(_)), "replica {r}");
    }
    assert_eq!(world.access_token(0), world.access_token(1));
    world
}

fn login_reasons(world: &Replicas, r: usize) -> Vec<LoginRequiredReason> {
    world.replicas[r]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::LoginRequired { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_login_in_one_replica_is_adopted_by_the_other_without_a_request() {
    let world = two_replicas(RefreshTokenReuse::Strict, false);
    assert_eq!(world.server.token_requests(), 1);
    let adopted = &world.replicas[1].events;
    assert!(
        adopted
            .iter()
            .any(|e| matches!(e, Event::AccessReady { .. }))
    );
}

#[test]
fn one_refresh_serves_both_replicas() {
    let mut world = two_replicas(RefreshTokenReuse::Strict, false);
    world.advance(TTL + Duration::from_secs(1));
    // The first replica to need a token renews it ...
    assert_eq!(world.access(0), Access::Pending);
    assert!(matches!(world.access(0), Access::Ready(_)));
    // ... and the other takes the renewed token from the store.
    assert!(matches!(world.access(1), Access::Ready(_)));
    assert_eq!(world.access_token(0), world.access_token(1));
    assert_eq!(world.access_token(1), world.stored_access_token());
    assert_eq!(world.presented.len(), 1, "one refresh");
    assert_eq!(world.server.token_requests(), 2);
    assert_eq!(world.server.reuses_detected(), 0);
    // Again, the other way round.
    world.advance(TTL + Duration::from_secs(1));
    assert_eq!(world.access(1), Access::Pending);
    assert!(matches!(world.access(0), Access::Ready(_)));
    assert_eq!(world.presented.len(), 2);
    assert_eq!(world.server.reuses_detected(), 0);
}

#[test]
fn replicas_renewing_ahead_of_expiry_together_make_one_refresh() {
    let mut world = two_replicas(RefreshTokenReuse::Strict, true);
    world.instant_network = false;
    // Both reach the renewal point at the same instant: one takes the lease, the other waits.
    world.advance(TTL - Duration::from_secs(29));
    assert_eq!(world.outbox.len(), 1, "one refresh in the air");
    let out = world.outbox.remove(0);
    world.deliver(out, None);
    world.settle();
    assert_eq!(world.access_token(0), world.access_token(1));
    assert_eq!(world.access_token(0), world.stored_access_token());
    assert_eq!(world.presented.len(), 1);
    for r in 0..2 {
        assert!(matches!(world.access(r), Access::Ready(_)));
    }
    assert_eq!(world.server.reuses_detected(), 0);
}

#[test]
fn a_replica_that_died_with_its_refresh_in_the_air_is_not_replayed_under_strict_reuse() {
    let mut world = two_replicas(RefreshTokenReuse::Strict, false);
    world.credentials_source = true;
    world.instant_network = false;
    world.advance(TTL + Duration::from_secs(1));
    assert_eq!(world.access(0), Access::Pending);
    let out = world.outbox.remove(0);
    // The refresh reaches the server, which rotates the token; the replica dies.
    world.kill(0);
    world.deliver(out, Some(TransportError::interrupted("gone")));
    // The other replica waits for the dead one's lease, then finds the mark it left.
    assert_eq!(world.access(1), Access::Pending);
    world.instant_network = true;
    world.advance(world.lease + Duration::from_secs(1));
    assert_eq!(
        login_reasons(&world, 1),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    assert!(
        matches!(world.access(1), Access::Ready(_)),
        "logged in again"
    );
    assert_eq!(
        world.presented.len(),
        1,
        "the marked token was not presented again"
    );
    assert_eq!(world.server.reuses_detected(), 0);
    assert_eq!(world.server.families_revoked(), 0);
}

#[test]
fn inside_the_grace_window_a_dead_replicas_refresh_is_presented_again() {
    let mut world = two_replicas(
        RefreshTokenReuse::GraceWindow(Duration::from_secs(60)),
        false,
    );
    world.server.set_reuse_grace(Duration::from_secs(60));
    world.lease = Duration::from_secs(20);
    world.instant_network = false;
    world.advance(TTL + Duration::from_secs(1));
    assert_eq!(world.access(0), Access::Pending);
    let out = world.outbox.remove(0);
    world.kill(0);
    world.deliver(out, Some(TransportError::interrupted("gone")));
    world.instant_network = true;
    assert_eq!(world.access(1), Access::Pending);
    world.advance(world.lease + Duration::from_secs(1));
    assert!(matches!(world.access(1), Access::Ready(_)));
    assert_eq!(world.presented.len(), 2);
    assert_eq!(world.server.grace_refreshes(), 1);
    assert_eq!(world.server.reuses_detected(), 0);
    assert!(login_reasons(&world, 1).is_empty());
}

#[test]
fn a_compare_and_set_conflict_adopts_what_the_store_holds() {
    // A replica whose lease ran out under it writes after another replica did: its write is
    // refused and it takes the other's tokens.
    let mut world = two_replicas(RefreshTokenReuse::Strict, false);
    world.credentials_source = true;
    world.instant_network = false;
    world.lease = Duration::from_secs(5);
    world.advance(TTL + Duration::from_secs(1));
    assert_eq!(world.access(0), Access::Pending);
    let slow = world.outbox.remove(0);
    // Past replica 0's lease (its request still in the air), replica 1 takes the lease,
    // finds the mark, and logs in again.
    world.advance(Duration::from_secs(6));
    world.instant_network = true;
    assert_eq!(world.access(1), Access::Pending);
    assert_eq!(
        login_reasons(&world, 1),
        [LoginRequiredReason::RefreshTokenMayBeSpent]
    );
    let relogged = world.stored_access_token();
    assert!(matches!(world.access(1), Access::Ready(_)));
    assert_eq!(world.access_token(1), relogged);
    // Replica 0's answer arrives in time for it; its write finds another version.
    world.deliver(slow, None);
    world.settle();
    assert_eq!(world.stored_access_token(), relogged);
    assert_eq!(world.access_token(0), relogged);
    assert!(matches!(world.access(0), Access::Ready(_)));
    assert_eq!(world.server.reuses_detected(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Access(usize),
    Deliver(usize),
    /// Reaches the server, which applies it; the answer is lost and the replica told so.
    LoseAnswer(usize),
    /// Reaches the server, which applies it; the answer never comes (found at the deadline).
    Silence(usize),
    Advance(u64),
    Kill(usize),
    Restart(usize),
    Network(bool),
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..replicas).prop_map(Op::Access),
        4 => (0..8usize).prop_map(Op::Deliver),
        1 => (0..8usize).prop_map(Op::LoseAnswer),
        1 => (0..8usize).prop_map(Op::Silence),
        4 => prop_oneof![Just(1u64), Just(5), Just(11), Just(30), Just(61), Just(300), Just(601)]
            .prop_map(Op::Advance),
        1 => (0..replicas).prop_map(Op::Kill),
        1 => (0..replicas).prop_map(Op::Restart),
        1 => any::<bool>().prop_map(Op::Network),
    ]
}

fn schedule() -> impl Strategy<Value = (usize, bool, Vec<Op>)> {
    (2..=4usize, any::<bool>()).prop_flat_map(|(replicas, proactive)| {
        (
            Just(replicas),
            Just(proactive),
            prop::collection::vec(op(replicas), 1..60),
        )
    })
}

fn run(replicas: usize, proactive: bool, ops: Vec<Op>) {
    let mut world = Replicas::new(
        config(RefreshTokenReuse::Strict, proactive),
        server(),
        replicas,
    );
    world.credentials_source = true;
    let now = world.now();
    world.replicas[0]
        .flow
        .login(now, Credentials::password("joe", "pw"));
    world.drain(0);
    world.settle();
    world.instant_network = false;
    for op in ops {
        match op {
            Op::Access(r) if world.replicas[r].alive => {
                world.access(r);
            }
            Op::Deliver(k) | Op::LoseAnswer(k) | Op::Silence(k) if !world.outbox.is_empty() => {
                let out = world.outbox.remove(k % world.outbox.len());
                match op {
                    Op::Deliver(_) => world.deliver(out, None),
                    Op::LoseAnswer(_) => {
                        world.deliver(out, Some(TransportError::interrupted("reset")))
                    }
                    _ => {
                        world
                            .server
                            .inject(support::fake_auth::Fault::ApplyThenLose);
                        world.deliver(out, None);
                    }
                }
                world.settle();
            }
            Op::Advance(secs) => world.advance(Duration::from_secs(secs)),
            Op::Kill(r) => world.kill(r),
            Op::Restart(r) if !world.replicas[r].alive => world.restart(r),
            Op::Network(instant) => {
                world.instant_network = instant;
                world.settle();
            }
            _ => {}
        }
        assert_eq!(
            world.server.reuses_detected(),
            0,
            "a spent refresh token reached the server"
        );
    }
    // The network heals; dead replicas' leases run out.
    world.instant_network = true;
    world.settle();
    world.advance(world.lease + Duration::from_secs(1));
    for r in 0..world.replicas.len() {
        if !world.replicas[r].alive {
            continue;
        }
        let mut last = world.access(r);
        for _ in 0..8 {
            if last != Access::Pending {
                break;
            }
            world.advance(Duration::from_secs(31));
            last = world.access(r);
        }
        assert!(
            matches!(last, Access::Ready(_) | Access::LoginRequired),
            "replica {r} ends with {last:?}"
        );
        if let Access::Ready(_) = last {
            assert_eq!(
                world.access_token(r),
                world.stored_access_token(),
                "replica {r} uses a token the store does not hold"
            );
        }
    }
    assert_eq!(world.server.reuses_detected(), 0);
    assert_eq!(world.server.families_revoked(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_schedule_of_replicas_presents_a_spent_refresh_token((replicas, proactive, ops) in schedule()) {
        run(replicas, proactive, ops);
    }
}
