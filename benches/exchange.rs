//! One password-grant exchange: build the token request, read the token response, update the
//! held state. tokenflow against `oauth2` 5 doing the same work through an in-memory HTTP
//! client, both in the same run.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername, Scope,
    TokenResponse as _, TokenUrl,
};
use tokenflow::{Credentials, Input, Output, TokenFlow, UnixTime};

use support::{
    CLIENT_ID, CLIENT_SECRET, PASSWORD, TOKEN_ENDPOINT, USERNAME, config, drain, token_response,
};

/// What an `oauth2` user keeps after an exchange: the response, when it expires, and the
/// `Authorization` header to send (tokenflow builds the same header when a token arrives).
struct Held {
    token: BasicTokenResponse,
    expires_at: Instant,
    bearer: HeaderValue,
}

fn exchange(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("exchange");

    let mut flow = TokenFlow::new(config(), 7, now, UnixTime::from_secs(1_700_000_000));
    group.bench_function("tokenflow", |b| {
        b.iter(|| {
            flow.login(now, Credentials::password(USERNAME, PASSWORD));
            let Output::Send(request) = flow.poll_output() else {
                unreachable!("a login sends a token request")
            };
            let id = request.id;
            // The host hands the request to its transport; here it is only looked at.
            drop(black_box(request));
            drain(&mut flow);
            flow.handle_input(
                now,
                Input::Response {
                    id,
                    response: token_response(),
                },
            );
            drain(&mut flow);
        });
    });
    assert!(flow.generation().is_some(), "the exchanges succeeded");

    let client = BasicClient::new(ClientId::new(CLIENT_ID.to_owned()))
        .set_client_secret(ClientSecret::new(CLIENT_SECRET.to_owned()))
        .set_token_uri(TokenUrl::new(TOKEN_ENDPOINT.to_owned()).expect("a valid URL"));
    let http_client = |request: oauth2::HttpRequest| -> Result<oauth2::HttpResponse, Infallible> {
        drop(black_box(request));
        Ok(token_response())
    };
    let mut held: Option<Held> = None;
    group.bench_function("oauth2", |b| {
        b.iter(|| {
            let username = ResourceOwnerUsername::new(USERNAME.to_owned());
            let password = ResourceOwnerPassword::new(PASSWORD.to_owned());
            let token = client
                .exchange_password(&username, &password)
                .add_scope(Scope::new("api".to_owned()))
                .add_scope(Scope::new("offline_access".to_owned()))
                .request(&http_client)
                .expect("the canned response is accepted");
            let lifetime = token.expires_in().unwrap_or(Duration::from_secs(3600));
            let mut bearer =
                HeaderValue::try_from(format!("Bearer {}", token.access_token().secret()))
                    .expect("a sendable token");
            bearer.set_sensitive(true);
            held = Some(Held {
                expires_at: now + lifetime,
                bearer,
                token,
            });
        });
    });
    let held = held.expect("the exchanges succeeded");
    black_box((&held.token, held.expires_at, &held.bearer));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = exchange
}
criterion_main!(benches);
