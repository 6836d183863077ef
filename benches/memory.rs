//! Heap held by an idle flow with a token set, and whether it grows over a million events.
//!
//! A plain program (no criterion: it measures bytes, not time) using a counting allocator.
//! It asserts as well as prints, so `cargo bench --bench memory` fails on a leak.

mod support;

use std::hint::black_box;
use std::time::Duration;

use http::HeaderValue;
use tokenflow::{Access, Input, TokenFlow, UnixTime};

use support::quick_run::is_quick_run;
use support::{CountingAllocator, HeapSnapshot, START, config, drain, log_in};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const EVENTS: u64 = 1_000_000;

fn main() {
    let quick = is_quick_run();
    let start = START;
    // The first line printed allocates stdout's buffer: before the first reading.
    println!("tokenflow memory (counting allocator, live bytes = allocated - freed)");

    let before = HeapSnapshot::now();
    let config = config();
    let with_config = HeapSnapshot::now();
    let mut flow = TokenFlow::new(config, 7, start, UnixTime::from_secs(1_700_000_000));
    log_in(&mut flow, start);
    let old_generation = flow.generation().expect("a token is held");
    let after_first_login = HeapSnapshot::now();
    // A second login, so that the first token is an old generation.
    log_in(&mut flow, start);
    let idle = HeapSnapshot::now();
    assert!(flow.generation() > Some(old_generation));
    // The first use of a token makes its header's bytes shared: one small allocation, once.
    black_box(flow.access(start));
    let used = HeapSnapshot::now();

    println!(
        "size_of::<TokenFlow>() (inline, wherever the host keeps it): {} bytes",
        size_of::<TokenFlow>()
    );
    println!(
        "heap held by the configuration alone:                       {} bytes",
        with_config.live_bytes_since(before)
    );
    println!(
        "heap held by an idle flow with a token set (config included): {} bytes after one login, {} after two, {} once the token was handed out",
        after_first_login.live_bytes_since(before),
        idle.live_bytes_since(before),
        used.live_bytes_since(before)
    );

    // A million events that must leave the state as it is: a caller taking the token, a 401
    // for the previous token (the caller retries with the current one), and a timer firing.
    let events = if quick { 1_000 } else { EVENTS };
    let stale_401 = HeaderValue::from_static(r#"Bearer error="invalid_token""#);
    let mut allocations = [0u64; 3];
    let loop_start = HeapSnapshot::now();
    for i in 0..events {
        let now = start + Duration::from_micros(i);
        let step = HeapSnapshot::now();
        let access = flow.access(now);
        assert!(matches!(access, Access::Ready(_)));
        black_box(access);
        drain(&mut flow);
        let after_access = HeapSnapshot::now();
        flow.handle_input(
            now,
            Input::Unauthorized {
                generation: old_generation,
                www_authenticate: vec![stale_401.clone()],
            },
        );
        assert_eq!(drain(&mut flow), None, "a stale 401 sends nothing");
        let after_401 = HeapSnapshot::now();
        flow.handle_input(now, Input::Timeout);
        drain(&mut flow);
        let after_timeout = HeapSnapshot::now();
        allocations[0] += after_access.allocations_since(step);
        allocations[1] += after_401.allocations_since(after_access);
        allocations[2] += after_timeout.allocations_since(after_401);
    }
    let loop_end = HeapSnapshot::now();
    let growth = loop_end.live_bytes_since(loop_start);
    let per_round = |n: u64| n as f64 / events as f64;
    println!(
        "{events} rounds of access + Unauthorized(old generation) + Timeout, each drained: live heap {} -> {} bytes ({growth:+})",
        loop_start.live_bytes, loop_end.live_bytes,
    );
    println!(
        "allocations per round: access {}, Unauthorized {} (its WWW-Authenticate Vec included), Timeout {}",
        per_round(allocations[0]),
        per_round(allocations[1]),
        per_round(allocations[2])
    );
    assert_eq!(growth, 0, "the flow's memory grew");
    drop(flow);
    let after_drop = HeapSnapshot::now();
    println!(
        "after dropping the flow: {:+} bytes against the start",
        after_drop.live_bytes_since(before)
    );
}
