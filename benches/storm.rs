//! A 401 storm: every caller's request came back 401 for the current token, so each reports
//! it (`Input::Unauthorized` for the current generation) and asks for a token again
//! (`access` → `Pending`); then the one refresh is answered. Time per caller, over 1 000,
//! 10 000 and 100 000 callers: a flat figure shows the cost is linear.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderValue;
use tokenflow::{Access, Event, Input, Output, Timestamp, TokenFlow};

use support::{START, drain, logged_in_flow, token_response};

const CALLERS: [usize; 3] = [1_000, 10_000, 100_000];

/// A logged-in flow and the 401 reports of `callers` callers, all for its current token.
fn setup(start: Timestamp, callers: usize) -> (TokenFlow, Vec<Input>) {
    let flow = logged_in_flow(start);
    let generation = flow.generation().expect("a token is held");
    let inputs = (0..callers)
        .map(|_| Input::Unauthorized {
            generation,
            www_authenticate: vec![HeaderValue::from_static(
                r#"Bearer realm="api", error="invalid_token", error_description="The access token expired""#,
            )],
        })
        .collect();
    (flow, inputs)
}

/// Feeds the storm, then the refresh answer; returns the flow once idle.
fn storm(mut flow: TokenFlow, inputs: Vec<Input>, now: Timestamp) -> TokenFlow {
    let mut refresh = None;
    for input in inputs {
        flow.handle_input(now, input);
        refresh = drain(&mut flow).or(refresh);
        let access = flow.access(now);
        debug_assert_eq!(access, Access::Pending);
        black_box(access);
        drain(&mut flow);
    }
    let id = refresh.expect("the first 401 starts one refresh");
    flow.handle_input(
        now,
        Input::Response {
            id,
            response: token_response(),
        },
    );
    let mut ready = false;
    loop {
        match flow.poll_output() {
            Output::Idle { .. } => break,
            Output::Event(Event::AccessReady { .. }) => ready = true,
            other => drop(black_box(other)),
        }
    }
    assert!(ready, "the refresh answer releases a new token");
    flow
}

fn storms(c: &mut Criterion) {
    let start = START;
    let now = start + Duration::from_secs(1);
    let mut group = c.benchmark_group("storm");
    group.sample_size(10);
    for callers in CALLERS {
        group.throughput(Throughput::Elements(callers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(callers), &callers, |b, &n| {
            b.iter_batched(
                || setup(start, n),
                |(flow, inputs)| storm(flow, inputs, now),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = storms
}
criterion_main!(benches);
