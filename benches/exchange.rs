//! One password-grant exchange: build the token request, read the token response, update the
//! held state. tokenflow against `oauth2` 5 doing the same work through an in-memory HTTP
//! client, both in the same run.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::cell::Cell;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpResponse, ResourceOwnerPassword,
    ResourceOwnerUsername, Scope, TokenResponse as _, TokenUrl,
};
use tokenflow::{Credentials, Input, Output, Timestamp, TokenFlow, UnixTime};

use support::quick_run::is_quick_run;
use support::{
    CLIENT_ID, CLIENT_SECRET, PASSWORD, START, TOKEN_ENDPOINT, USERNAME, config, drain,
    token_response,
};

/// What an `oauth2` user keeps after an exchange: the response, when it expires, and the
/// `Authorization` header to send (tokenflow builds the same header when a token arrives).
struct Held {
    token: BasicTokenResponse,
    expires_at: Instant,
    bearer: HeaderValue,
}

type Oauth2Client =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// One exchange through tokenflow, answered with `response`.
fn tokenflow_exchange(flow: &mut TokenFlow, now: Timestamp, response: HttpResponse) {
    flow.login(now, Credentials::password(USERNAME, PASSWORD));
    let Output::Send(request) = flow.poll_output() else {
        unreachable!("a login sends a token request")
    };
    let id = request.id;
    // The host hands the request to its transport; here it is only looked at.
    drop(black_box(request));
    drain(flow);
    flow.handle_input(now, Input::Response { id, response });
    drain(flow);
}

/// One exchange through `oauth2`, whose HTTP client answers with what `canned` holds.
fn oauth2_exchange(
    client: &Oauth2Client,
    canned: &Cell<Option<HttpResponse>>,
    now: Instant,
    response: HttpResponse,
) -> Held {
    canned.set(Some(response));
    let http_client = |request: oauth2::HttpRequest| -> Result<HttpResponse, Infallible> {
        drop(black_box(request));
        Ok(canned.take().expect("a response made for this exchange"))
    };
    let username = ResourceOwnerUsername::new(USERNAME.to_owned());
    let password = ResourceOwnerPassword::new(PASSWORD.to_owned());
    let token = client
        .exchange_password(&username, &password)
        .add_scope(Scope::new("api".to_owned()))
        .add_scope(Scope::new("offline_access".to_owned()))
        .request(&http_client)
        .expect("the canned response is accepted");
    let lifetime = token.expires_in().unwrap_or(Duration::from_secs(3600));
    let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.access_token().secret()))
        .expect("a sendable token");
    bearer.set_sensitive(true);
    Held {
        expires_at: now + lifetime,
        bearer,
        token,
    }
}

fn oauth2_client() -> Oauth2Client {
    BasicClient::new(ClientId::new(CLIENT_ID.to_owned()))
        .set_client_secret(ClientSecret::new(CLIENT_SECRET.to_owned()))
        .set_token_uri(TokenUrl::new(TOKEN_ENDPOINT.to_owned()).expect("a valid URL"))
}

fn exchange(c: &mut Criterion) {
    // Each side keeps time its own way: the flow on the host's clock, an `oauth2` user with
    // `Instant`.
    let (now, instant) = (START, Instant::now());
    let mut flow = TokenFlow::new(config(), 7, now, UnixTime::from_secs(1_700_000_000));
    let client = oauth2_client();
    let canned = Cell::new(None);
    let mut held: Option<Held> = None;

    // The canned response is made before each timed exchange on both sides: making it is the
    // transport's work, not the client's.
    let mut group = c.benchmark_group("exchange");
    group.bench_function("tokenflow", |b| {
        b.iter_batched(
            token_response,
            |response| tokenflow_exchange(&mut flow, now, response),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("oauth2", |b| {
        b.iter_batched(
            token_response,
            |response| held = Some(oauth2_exchange(&client, &canned, instant, response)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
    assert!(flow.generation().is_some(), "the exchanges succeeded");
    let held = held.expect("the exchanges succeeded");
    black_box((&held.token, held.expires_at, &held.bearer));

    interleaved(&mut flow, &client, &canned, now, instant);
}

/// Criterion measures one side after the other, so a change in the machine's load between
/// them shows up as a difference between the sides. Alternating short rounds of each side
/// spreads such a change over both; the ratio is the median of the rounds' ratios.
fn interleaved(
    flow: &mut TokenFlow,
    client: &Oauth2Client,
    canned: &Cell<Option<HttpResponse>>,
    now: Timestamp,
    instant: Instant,
) {
    let (rounds, per_round) = if is_quick_run() { (2, 10) } else { (200, 500) };
    let mut ours = Vec::with_capacity(rounds);
    let mut theirs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let responses: Vec<_> = (0..per_round).map(|_| token_response()).collect();
        let start = Instant::now();
        for response in responses {
            tokenflow_exchange(flow, now, response);
        }
        ours.push(start.elapsed().as_secs_f64() / per_round as f64);

        let responses: Vec<_> = (0..per_round).map(|_| token_response()).collect();
        let start = Instant::now();
        for response in responses {
            black_box(oauth2_exchange(client, canned, instant, response));
        }
        theirs.push(start.elapsed().as_secs_f64() / per_round as f64);
    }
    let mut ratios: Vec<f64> = theirs.iter().zip(&ours).map(|(t, o)| t / o).collect();
    let (ratio, low, high) = (
        median(&mut ratios),
        quartile(&ratios, 1),
        quartile(&ratios, 3),
    );
    println!(
        "exchange interleaved, {rounds} rounds of {per_round} exchanges per side: \
         tokenflow {:.0} ns, oauth2 {:.0} ns per exchange (medians); \
         tokenflow is {ratio:.2}x faster (median of the rounds' ratios; quartiles {low:.2}x-{high:.2}x)",
        median(&mut ours) * 1e9,
        median(&mut theirs) * 1e9,
    );
}

/// The median of `values`, which it sorts.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `n`th quartile of sorted `values`.
fn quartile(values: &[f64], n: usize) -> f64 {
    values[(values.len() - 1) * n / 4]
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = exchange
}
criterion_main!(benches);
