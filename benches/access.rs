//! `TokenFlow::access` with a valid token: its time, and the heap allocations it makes
//! (counted outside the timing loop).

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokenflow::Access;

use support::quick_run::is_quick_run;
use support::{CountingAllocator, HeapSnapshot, START, logged_in_flow};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Calls made while counting allocations.
const COUNTED_CALLS: u64 = 1_000_000;

fn access(c: &mut Criterion) {
    let start = START;
    let mut flow = logged_in_flow(start);
    let now = start + Duration::from_secs(1);

    c.bench_function("access/ready", |b| {
        b.iter(|| black_box(flow.access(black_box(now))));
    });

    // Allocations per call, outside criterion's timing loop (after it, so that the time is
    // reported even when this check fails). The first call has already happened: the
    // header's bytes become shared on their first clone.
    assert!(matches!(flow.access(now), Access::Ready(_)));
    let calls = if is_quick_run() { 1_000 } else { COUNTED_CALLS };
    let before = HeapSnapshot::now();
    for i in 0..calls {
        let at = now + Duration::from_nanos(i);
        black_box(flow.access(black_box(at)));
    }
    let allocations = HeapSnapshot::now().allocations_since(before);
    println!(
        "access/ready: {allocations} heap allocations over {calls} calls ({} per call)",
        allocations as f64 / calls as f64
    );
    assert_eq!(allocations, 0, "access() with a valid token allocates");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = access
}
criterion_main!(benches);
