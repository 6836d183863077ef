//! The behavioural cases, each a function of a [`Fixture`].

use std::sync::Barrier;

use tokenflow::shared::{
    CasOutcome, InFlightRefresh, LeaseAnswer, MarkOutcome, SharedTokenStore, StoreVersion,
};

use super::{Fixture, acquire, granted, lease_snapshot, mark, tokens, written};

/// Runs every case against the fixture.
pub fn all<F: Fixture>(fixture: &F) {
    lease_is_exclusive(fixture);
    expired_lease_is_taken_over(fixture);
    reacquiring_extends_the_lease(fixture);
    release_keeps_or_clears_the_mark(fixture);
    release_by_another_holder_does_nothing(fixture);
    mark_without_the_lease_is_lease_lost(fixture);
    compare_and_set_increments_and_clears_the_mark(fixture);
    conflict_returns_what_the_store_holds(fixture);
    lease_answers_carry_the_stored_tokens(fixture);
    concurrent_writers_one_wins_per_version(fixture, 8, 10);
}

/// One live holder at a time, between two handles (two connections for PostgreSQL).
pub fn lease_is_exclusive<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let now = fixture.now();
    assert!(granted(&acquire(&a, "replica-a", now)));
    let busy = acquire(&b, "replica-b", now);
    assert!(matches!(busy, LeaseAnswer::Busy(_)), "{busy:?}");
    assert_eq!(lease_snapshot(busy), b.snapshot().unwrap());
    // Still busy for a third name, and still granted to the holder.
    assert!(!granted(&acquire(&b, "replica-c", now)));
    assert!(granted(&acquire(&a, "replica-a", now)));
}

/// A holder that died without releasing loses the lease when its time runs out; it can then
/// neither mark nor release the new holder's lease.
pub fn expired_lease_is_taken_over<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let lease = fixture.short_lease();
    let t0 = fixture.now();
    assert!(granted(&a.acquire_lease("dead", lease, t0).unwrap()));
    assert!(!granted(&acquire(&b, "heir", t0)));
    fixture.pass(lease + lease / 2);
    let later = fixture.now();
    // Expired even before anyone takes it over.
    assert_eq!(mark(&a, "dead", later, later), MarkOutcome::LeaseLost);
    assert!(granted(&acquire(&b, "heir", later)));
    assert_eq!(mark(&a, "dead", later, later), MarkOutcome::LeaseLost);
    a.release_lease("dead", true).unwrap();
    assert!(
        !granted(&acquire(&a, "third", later)),
        "the heir's lease was freed"
    );
    assert_eq!(mark(&b, "heir", later, later), MarkOutcome::Marked);
}

/// Taking the lease again while holding it extends it from the new `now`.
pub fn reacquiring_extends_the_lease<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let lease = fixture.short_lease();
    assert!(granted(
        &a.acquire_lease("a", lease, fixture.now()).unwrap()
    ));
    fixture.pass(lease * 3 / 5);
    assert!(granted(
        &a.acquire_lease("a", lease, fixture.now()).unwrap()
    ));
    // Past the first lease's end, inside the second's.
    fixture.pass(lease * 3 / 5);
    let now = fixture.now();
    assert!(!granted(&b.acquire_lease("b", lease, now).unwrap()));
    assert_eq!(mark(&a, "a", now, now), MarkOutcome::Marked);
}

/// Releasing without clearing leaves the mark for the next holder to judge; clearing removes
/// it. Either way the lease is free.
pub fn release_keeps_or_clears_the_mark<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let since = fixture.now();
    assert!(granted(&acquire(&a, "a", since)));
    assert_eq!(mark(&a, "a", since, since), MarkOutcome::Marked);
    a.release_lease("a", false).unwrap();
    let expected = Some(InFlightRefresh { since });
    assert_eq!(b.snapshot().unwrap().in_flight, expected);
    let answer = acquire(&b, "b", fixture.now());
    assert!(granted(&answer), "a released lease is free");
    assert_eq!(lease_snapshot(answer).in_flight, expected);
    b.release_lease("b", true).unwrap();
    assert_eq!(a.snapshot().unwrap().in_flight, None);
    assert!(granted(&acquire(&a, "a", fixture.now())));
}

/// Releasing a lease one does not hold changes nothing, the mark included.
pub fn release_by_another_holder_does_nothing<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let now = fixture.now();
    assert!(granted(&acquire(&a, "a", now)));
    assert_eq!(mark(&a, "a", now, now), MarkOutcome::Marked);
    b.release_lease("b", true).unwrap();
    assert!(!granted(&acquire(&b, "b", now)));
    assert_eq!(
        b.snapshot().unwrap().in_flight,
        Some(InFlightRefresh { since: now })
    );
}

/// A mark under a lease never taken, or taken by another, writes nothing.
pub fn mark_without_the_lease_is_lease_lost<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let now = fixture.now();
    assert_eq!(mark(&a, "a", now, now), MarkOutcome::LeaseLost);
    assert!(granted(&acquire(&b, "b", now)));
    assert_eq!(mark(&a, "a", now, now), MarkOutcome::LeaseLost);
    assert_eq!(a.snapshot().unwrap().in_flight, None);
}

/// A write over the expected version makes the next version, holds the tokens, and clears
/// the mark; clearing the tokens is a write too.
pub fn compare_and_set_increments_and_clears_the_mark<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let now = fixture.now();
    assert_eq!(a.snapshot().unwrap().version, StoreVersion::EMPTY);
    assert!(granted(&acquire(&a, "a", now)));
    assert_eq!(mark(&a, "a", now, now), MarkOutcome::Marked);
    let one = written(
        a.compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
            .unwrap(),
    );
    assert_eq!(one, StoreVersion::new(1));
    let held = b.snapshot().unwrap();
    assert_eq!(held.version, one);
    assert_eq!(held.tokens, Some(tokens(1)));
    assert_eq!(held.in_flight, None);
    let two = written(b.compare_and_set(one, None).unwrap());
    assert_eq!(two, StoreVersion::new(2));
    let held = a.snapshot().unwrap();
    assert_eq!((held.version, held.tokens), (two, None));
}

/// A write over a stale version (or one from the future) writes nothing and answers with
/// what the store holds, mark included.
pub fn conflict_returns_what_the_store_holds<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let now = fixture.now();
    written(
        a.compare_and_set(StoreVersion::EMPTY, Some(&tokens(1)))
            .unwrap(),
    );
    assert!(granted(&acquire(&a, "a", now)));
    assert_eq!(mark(&a, "a", now, now), MarkOutcome::Marked);
    for stale in [
        StoreVersion::EMPTY,
        StoreVersion::new(5),
        StoreVersion::new(u64::MAX),
    ] {
        let CasOutcome::Conflict(held) = b.compare_and_set(stale, Some(&tokens(2))).unwrap() else {
            panic!("version {stale} was written over version 1");
        };
        assert_eq!(held.version, StoreVersion::new(1));
        assert_eq!(held.tokens, Some(tokens(1)));
        assert_eq!(held.in_flight, Some(InFlightRefresh { since: now }));
    }
    assert_eq!(b.snapshot().unwrap().tokens, Some(tokens(1)));
}

/// Granted and busy answers both carry the snapshot: what a replica adopts.
pub fn lease_answers_carry_the_stored_tokens<F: Fixture>(fixture: &F) {
    let [a, b] = pair(fixture);
    let now = fixture.now();
    let v1 = written(
        a.compare_and_set(StoreVersion::EMPTY, Some(&tokens(7)))
            .unwrap(),
    );
    let LeaseAnswer::Granted(seen) = acquire(&b, "b", now) else {
        panic!("a free lease was refused");
    };
    assert_eq!((seen.version, seen.tokens), (v1, Some(tokens(7))));
    let LeaseAnswer::Busy(seen) = acquire(&a, "a", now) else {
        panic!("a held lease was granted");
    };
    assert_eq!((seen.version, seen.tokens), (v1, Some(tokens(7))));
}

/// `writers` threads, each with its own handle, write over the same version at once,
/// `rounds` times: every round exactly one wins and the others see its write.
pub fn concurrent_writers_one_wins_per_version<F: Fixture>(
    fixture: &F,
    writers: usize,
    rounds: u64,
) {
    let stores = fixture.stores(writers);
    let barrier = Barrier::new(writers);
    // Every outcome is judged after the threads end: a thread that panicked in a round would
    // leave the others waiting at the barrier for ever.
    let outcomes: Vec<Vec<(u64, Result<CasOutcome, String>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(id, store)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let id = id as u64;
                    (0..rounds)
                        .map(|round| {
                            barrier.wait();
                            let outcome = store
                                .compare_and_set(
                                    StoreVersion::new(round),
                                    Some(&tokens(round * 100 + id)),
                                )
                                .map_err(|error| format!("{error:?}"));
                            // Nobody starts the next round before every write of this one.
                            barrier.wait();
                            (round, outcome)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut rounds_won = Vec::new();
    for (round, outcome) in outcomes.into_iter().flatten() {
        let expected = StoreVersion::new(round);
        match outcome.unwrap() {
            CasOutcome::Written(version) => {
                assert_eq!(version, expected.next(), "round {round}");
                rounds_won.push(round);
            }
            CasOutcome::Conflict(held) => {
                assert_eq!(held.version, expected.next(), "round {round}");
            }
        }
    }
    rounds_won.sort_unstable();
    assert_eq!(rounds_won, (0..rounds).collect::<Vec<_>>());
    assert_eq!(
        stores[0].snapshot().unwrap().version,
        StoreVersion::new(rounds)
    );
}

fn pair<F: Fixture>(fixture: &F) -> [F::Store; 2] {
    let mut stores = fixture.stores(2);
    let b = stores.pop().unwrap();
    let a = stores.pop().unwrap();
    [a, b]
}
