//! The client credentials grant at an API gateway (provider document 002), whose token URL
//! carries the grant type (`…/auth/v2/accesstoken?grant_type=client_credentials`) and whose
//! answers hold every value as a string: `"expires_in": "86399"`,
//! `"token_type": "BearerToken"`, plus `status`, `refresh_count`, `refresh_token_expires_in`
//! and `refresh_token_issued_at` (epoch milliseconds).
//!
//! The provider needs the app's API key as `client_id` and its API secret as `client_secret`,
//! both in the form body (`client_secret_post`), at the token URL with its query kept as it is.
//! The example shows what the client made of the answer (the lifetime read from the string,
//! the extra fields it kept, the refresh token's announced expiry), that the API receives
//! `Authorization: Bearer …` although the gateway calls the token type `BearerToken`, and that
//! the token is renewed by asking again with the client's credentials.
//!
//! ```sh
//! # against a gateway and an API started in-process on 127.0.0.1 (3-second tokens)
//! cargo run --example gateway_client_credentials
//! # against the real gateway (or set TOKENFLOW_TOKEN_ENDPOINT, TOKENFLOW_CLIENT_ID, …)
//! cargo run --example gateway_client_credentials -- \
//!     --token-endpoint 'https://api.example.com/auth/v2/accesstoken?grant_type=client_credentials' \
//!     --client-id APP_API_KEY --client-secret APP_API_SECRET \
//!     --api-url https://api.example.com/some/resource
//! ```
//!
//! Against a real gateway, whose tokens live a day, the example does not wait for expiry: it
//! answers one API request with a 401 itself (without sending it) to show the renewal.

mod support;

use support::{fake_auth, loopback, report, settings};

use std::thread::sleep;
use std::time::Duration;

use fake_auth::{ClientAuthStyle, FakeAuthServer, ResponseStyle, ServerConfig};
use report::{ObservedStore, Seen, Timeline, Watch};
use tokenflow::adapters::MemoryStore;
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::{ClientAuth, Config, Credentials};

const API_KEY: &str = "APP-API-KEY";
const API_SECRET: &str = "APP-API-SECRET";
const TOKEN_LIFETIME: Duration = Duration::from_secs(3);

type Client = BlockingClient<Watch>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings::Settings::parse(&[])?;
    let timeline = Timeline::new();
    let (embedded, token_endpoint, api_url, client_id, client_secret) =
        match settings.get("token-endpoint") {
            Some(endpoint) => (
                None,
                endpoint,
                settings.require("api-url")?,
                settings.require("client-id")?,
                settings.require("client-secret")?,
            ),
            None => {
                let server = loopback::Loopback::start(gateway())?;
                let endpoint = format!("{}?grant_type=client_credentials", server.token_endpoint());
                let api = server.api_url("/v1/resource");
                (
                    Some(server),
                    endpoint,
                    api,
                    API_KEY.to_owned(),
                    API_SECRET.to_owned(),
                )
            }
        };
    match &embedded {
        Some(server) => timeline.say(
            "app",
            &format!(
                "embedded gateway (string-valued answers) and API on http://{} (tokens live {})",
                server.addr,
                report::seconds(TOKEN_LIFETIME)
            ),
        ),
        None => timeline.say("app", &format!("gateway token URL {token_endpoint}")),
    }

    let config = Config::builder(&token_endpoint, client_id)
        .client_secret(client_secret)
        .client_auth(ClientAuth::SecretPost)
        .build()?;
    let (transport, seen) = Watch::new(&token_endpoint, &timeline)?;
    let (store, saves) = ObservedStore::new(MemoryStore::new(), &timeline);
    // No credentials source: renewing client credentials needs nothing but the configuration.
    let client = BlockingClient::builder(config, transport)
        .store(store)
        .build()?;

    timeline.chapter("1. ask for a token with the client's credentials");
    client.login(Credentials::ClientCredentials)?;
    timeline.say("app", "the gateway answered:");
    for (name, value) in seen.last_fields() {
        println!("                    {name}: {value}");
    }

    timeline.chapter("2. what the client made of it");
    let tokens = saves.last().ok_or("no tokens were saved")?;
    if let Some(lifetime) = report::lifetime(&tokens) {
        timeline.say(
            "app",
            &format!("access token lifetime: {}", report::seconds(lifetime)),
        );
    }
    for name in ["status", "refresh_count"] {
        match tokens.extra.get(name) {
            Some(value) => timeline.say("app", &format!("kept extra field {name} = {value}")),
            None => timeline.say("app", &format!("no extra field {name}")),
        }
    }
    let others: Vec<&str> = tokens
        .extra
        .keys()
        .map(String::as_str)
        .filter(|k| !["status", "refresh_count"].contains(k))
        .collect();
    if !others.is_empty() {
        timeline.say(
            "app",
            &format!("other extra fields kept: {}", others.join(", ")),
        );
    }
    if embedded.is_some() {
        timeline.say(
            "app",
            "(the embedded gateway dates refresh_token_issued_at from the document's 2018 sample)",
        );
    }
    match (&tokens.refresh_token, tokens.refresh_token_expires_at) {
        (Some(_), Some(at)) => timeline.say(
            "app",
            &format!(
                "refresh token announced to expire at {} ({}); not needed: client credentials are renewed by asking again",
                report::utc(at),
                report::from_now(at)
            ),
        ),
        (Some(_), None) => timeline.say("app", "a refresh token, with no announced expiry"),
        (None, _) => timeline.say("app", "no refresh token"),
    }

    timeline.chapter("3. call the API");
    call(&client, &api_url, &seen, &timeline)?;
    let scheme = seen.last_scheme().unwrap_or_default();
    let accepted = if embedded.is_some() {
        " (the embedded API accepts only the Bearer scheme)"
    } else {
        ""
    };
    timeline.say(
        "app",
        &format!("the API received \"Authorization: {scheme} …\"{accepted}"),
    );

    timeline.chapter("4. renewal: the client asks again with its credentials");
    if embedded.is_some() {
        let wait = TOKEN_LIFETIME + Duration::from_millis(200);
        timeline.say(
            "app",
            &format!(
                "waiting {:.1} s for the token to run out",
                wait.as_secs_f64()
            ),
        );
        sleep(wait);
    } else {
        seen.refuse_next_api_call();
    }
    call(&client, &api_url, &seen, &timeline)?;
    if let Some(tokens) = saves.last() {
        if let Some(count) = tokens.extra.get("refresh_count") {
            timeline.say(
                "app",
                &format!("the new answer's refresh_count = {count}: a new token, not a refresh"),
            );
        }
    }

    timeline.chapter("summary");
    timeline.say("app", &format!("token requests: {}", seen.grants()));
    timeline.say(
        "app",
        &format!(
            "API requests: {}, answered 401: {}; tokens saved {} time(s)",
            seen.api_calls(),
            seen.api_refused(),
            saves.saves()
        ),
    );
    if let Some(server) = &embedded {
        let world = server.world();
        let with_query = world
            .auth
            .requests()
            .iter()
            .filter(|r| r.uri.query() == Some("grant_type=client_credentials"))
            .count();
        timeline.say(
            "server",
            &format!(
                "{with_query} of {} token requests came with ?grant_type=client_credentials",
                world.auth.token_requests()
            ),
        );
    }
    Ok(())
}

/// The 002 gateway with short-lived tokens: string-valued answers, `grant_type` in the query.
fn gateway() -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: TOKEN_LIFETIME,
        style: ResponseStyle::Gateway,
        ..ServerConfig::gateway()
    });
    server.add_client(API_KEY, Some(API_SECRET), ClientAuthStyle::Post);
    server
}

fn call(
    client: &Client,
    api_url: &str,
    seen: &Seen,
    timeline: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    let refused = seen.api_refused();
    let request = http::Request::get(api_url).body(Vec::new())?;
    let path = request.uri().path().to_owned();
    let response = client.send(request)?;
    let generation = client.bearer()?.generation();
    let retried = if seen.api_refused() > refused {
        ", retried after the 401"
    } else {
        ""
    };
    timeline.say(
        "app",
        &format!(
            "GET {path} → {} with access token {generation}{retried}",
            response.status()
        ),
    );
    Ok(())
}
