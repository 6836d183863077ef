//! A backend with a dedicated user at an IdentityServer (provider documents 000/001): the
//! resource-owner password grant with the client's id and secret (`client_secret_basic`) and
//! the scope `datahub-api offline_access`, API calls, and what happens when the API answers
//! 401.
//!
//! The provider needs the client id and secret, the `datahub-api` scope to reach the Data Hub
//! API, and optionally `offline_access`: with it the login also returns a refresh token, and a
//! refused or expired access token is renewed with that token, without the user's password;
//! without it, the client has to log in again. Here the user's credentials come from the
//! configuration through a credentials source, which the client asks whenever a login is
//! needed; the example counts how often it is asked.
//!
//! ```sh
//! # against an identity server and an API started in-process on 127.0.0.1 (2-second tokens)
//! cargo run --example identityserver
//! # the same without offline_access: every renewal is a new login
//! cargo run --example identityserver -- --no-offline-access
//! # against a real provider (or set TOKENFLOW_TOKEN_ENDPOINT, TOKENFLOW_CLIENT_ID, …)
//! cargo run --example identityserver -- \
//!     --token-endpoint https://identity.example.com/connect/token \
//!     --client-id ID --client-secret SECRET --username USER --password PASSWORD \
//!     --api-url https://api.example.com/datahub/meters [--scope "datahub-api offline_access"]
//! ```
//!
//! Against a real provider the example cannot make the API refuse a token, so it answers one
//! API request with a 401 itself (without sending it) to show the client's handling, and it
//! does not wait for the provider's tokens to expire.

mod support;

use support::{fake_auth, loopback, report, settings};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use fake_auth::{ClientAuthStyle, FakeAuthServer, ServerConfig};
use report::{ObservedStore, Saves, Seen, Timeline, Watch};
use tokenflow::adapters::MemoryStore;
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::{ClientAuth, Config, Credentials};

const CLIENT_ID: &str = "datahub-backend";
const CLIENT_SECRET: &str = "datahub-secret";
const USER: &str = "svc-datahub@acme.com";
const PASSWORD: &str = "correct horse battery staple";
const TOKEN_LIFETIME: Duration = Duration::from_secs(2);

type Client = BlockingClient<Watch>;

/// Where the example runs: the embedded server, or a real provider.
struct Target {
    embedded: Option<loopback::Loopback>,
    token_endpoint: String,
    api_url: String,
    client_id: String,
    client_secret: String,
    username: String,
    password: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings::Settings::parse(&["no-offline-access"])?;
    let timeline = Timeline::new();
    let target = target(&settings)?;
    let mut scope = settings.get_or("scope", "datahub-api offline_access");
    if settings.switch("no-offline-access") {
        scope = scope
            .split_whitespace()
            .filter(|s| *s != "offline_access")
            .collect::<Vec<_>>()
            .join(" ");
    }
    let offline_access = scope.split_whitespace().any(|s| s == "offline_access");
    match &target.embedded {
        Some(server) => timeline.say(
            "app",
            &format!(
                "embedded identity server and API on http://{} (tokens live {})",
                server.addr,
                report::seconds(TOKEN_LIFETIME)
            ),
        ),
        None => timeline.say(
            "app",
            &format!("provider: token endpoint {}", target.token_endpoint),
        ),
    }
    timeline.say(
        "app",
        &format!(
            "scope \"{scope}\": {}",
            if offline_access {
                "a refresh token is expected"
            } else {
                "no offline_access, so no refresh token"
            }
        ),
    );

    let config = Config::builder(&target.token_endpoint, &target.client_id)
        .client_secret(&target.client_secret)
        .client_auth(ClientAuth::SecretBasic)
        .scope(&scope)
        .build()?;
    let (transport, seen) = Watch::new(&target.token_endpoint, &timeline)?;
    let (store, saves) = ObservedStore::new(MemoryStore::new(), &timeline);
    let asked = Arc::new(AtomicUsize::new(0));
    let source = {
        let asked = Arc::clone(&asked);
        let timeline = timeline.clone();
        let (username, password) = (target.username.clone(), target.password.clone());
        move || {
            let n = asked.fetch_add(1, Ordering::SeqCst) + 1;
            timeline.say(
                "source",
                &format!("credentials source asked (time {n}): the configured user {username}"),
            );
            Some(Credentials::password(username.clone(), password.clone()))
        }
    };
    let client = BlockingClient::builder(config, transport)
        .store(store)
        .credentials(source)
        .build()?;

    timeline.chapter("1. the first API calls: no tokens yet, so the client logs in first");
    for _ in 0..3 {
        call(&client, &target, &seen, &timeline)?;
    }
    report_refresh_token(&saves, &timeline);

    timeline.chapter("2. the API refuses the access token: 401, a renewal, one retry");
    refuse_current_token(&client, &target, &seen, &timeline)?;
    call(&client, &target, &seen, &timeline)?;

    timeline.chapter("3. the access token expires");
    if target.embedded.is_some() {
        let wait = TOKEN_LIFETIME + Duration::from_millis(200);
        timeline.say(
            "app",
            &format!(
                "waiting {:.1} s for the token to run out",
                wait.as_secs_f64()
            ),
        );
        sleep(wait);
        call(&client, &target, &seen, &timeline)?;
    } else {
        let lifetime = saves.last().as_ref().and_then(report::lifetime);
        timeline.say(
            "app",
            &format!(
                "skipped: the provider's tokens live {}",
                lifetime.map_or("an unknown time".to_owned(), report::seconds)
            ),
        );
    }

    timeline.chapter("summary");
    let asked = asked.load(Ordering::SeqCst);
    timeline.say("app", &format!("token requests: {}", seen.grants()));
    timeline.say(
        "app",
        &format!(
            "API requests: {}, answered 401: {} (each retried once with a newer token)",
            seen.api_calls(),
            seen.api_refused()
        ),
    );
    timeline.say(
        "app",
        &format!(
            "credentials source asked {asked} time(s); tokens saved {} time(s)",
            saves.saves()
        ),
    );
    let conclusion = if seen.grant_count("refresh_token") > 0 && asked == 1 {
        "the password was needed once: every renewal used the refresh token"
    } else if seen.grant_count("refresh_token") == 0 && asked > 1 {
        "without a refresh token every renewal was a new login with the user's credentials"
    } else {
        "see the timeline above"
    };
    timeline.say("app", conclusion);
    Ok(())
}

fn target(settings: &settings::Settings) -> Result<Target, Box<dyn std::error::Error>> {
    if let Some(token_endpoint) = settings.get("token-endpoint") {
        return Ok(Target {
            embedded: None,
            token_endpoint,
            api_url: settings.require("api-url")?,
            client_id: settings.require("client-id")?,
            client_secret: settings.require("client-secret")?,
            username: settings.require("username")?,
            password: settings.require("password")?,
        });
    }
    let mut auth = FakeAuthServer::new(ServerConfig {
        access_ttl: TOKEN_LIFETIME,
        ..ServerConfig::identity_server()
    });
    auth.add_client(CLIENT_ID, Some(CLIENT_SECRET), ClientAuthStyle::Basic);
    auth.add_user(USER, PASSWORD);
    let server = loopback::Loopback::start(auth)?;
    Ok(Target {
        token_endpoint: server.token_endpoint(),
        api_url: server.api_url("/datahub/meters"),
        embedded: Some(server),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
    })
}

/// One API call through the client, and the token generation that answered it.
fn call(
    client: &Client,
    target: &Target,
    seen: &Seen,
    timeline: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    let refused = seen.api_refused();
    let request = http::Request::get(&target.api_url).body(Vec::new())?;
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

/// Makes the API refuse the token the client holds: the embedded server revokes it; with a
/// real provider the next API request is answered 401 without being sent.
fn refuse_current_token(
    client: &Client,
    target: &Target,
    seen: &Seen,
    timeline: &Timeline,
) -> Result<(), Box<dyn std::error::Error>> {
    let bearer = client.bearer()?;
    match &target.embedded {
        Some(server) => {
            let value = bearer.header_value().to_str()?;
            let token = value.strip_prefix("Bearer ").unwrap_or(value);
            server.world().auth.revoke_access_token(token);
            timeline.say(
                "server",
                &format!("revoked access token {}", bearer.generation()),
            );
        }
        None => seen.refuse_next_api_call(),
    }
    Ok(())
}

fn report_refresh_token(saves: &Saves, timeline: &Timeline) {
    if let Some(tokens) = saves.last() {
        let line = if tokens.refresh_token.is_some() {
            "the login returned a refresh token (offline_access was granted)"
        } else {
            "the login returned no refresh token"
        };
        timeline.say("app", line);
    }
}
