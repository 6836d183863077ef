//! The whole token lifecycle of an IdentityServer-style deployment (a backend with a dedicated
//! user, `datahub-api offline_access`), as a timeline, against an identity server and an API
//! started in-process on 127.0.0.1 with 3-second tokens:
//!
//! login → API calls → proactive refresh → a revoked token, 401, one refresh, retry →
//! rotation → the grant revoked, `invalid_grant`, re-login from the credentials source.
//!
//! ```sh
//! cargo run --example demo
//! ```

mod support;

use support::{fake_auth, loopback};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use fake_auth::{ClientAuthStyle, FakeAuthServer, Outcome, ResponseStyle, ServerConfig};
use tokenflow::adapters::blocking::{BlockingClient, UreqTransport};
use tokenflow::adapters::{MemoryStore, StoreError, TokenStore};
use tokenflow::{Config, Credentials, StoredTokens};

const USER: &str = "svc-datahub@acme.com";
const PASSWORD: &str = "correct horse battery staple";
const TOKEN_LIFETIME: Duration = Duration::from_secs(3);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let server = loopback::Loopback::start(identity_server())?;
    let timeline = Timeline::new(started);
    timeline.say(&format!(
        "identity server and API listening on http://{} (tokens live {}s)",
        server.addr,
        TOKEN_LIFETIME.as_secs()
    ));

    let config = Config::builder(server.token_endpoint(), "datahub-backend")
        .client_secret("datahub-secret")
        .scope("datahub-api offline_access")
        .build()?;
    let logins = Arc::new(AtomicUsize::new(0));
    let source_logins = Arc::clone(&logins);
    let source_timeline = timeline.clone();
    let store = LoggingStore {
        inner: MemoryStore::new(),
        timeline: timeline.clone(),
        last_refresh: std::sync::Mutex::new(None),
    };
    let client = BlockingClient::builder(config, UreqTransport::new())
        .store(store)
        .credentials(move || {
            source_logins.fetch_add(1, Ordering::SeqCst);
            source_timeline.say("credentials source asked for the service user's password");
            Some(Credentials::password(USER, PASSWORD))
        })
        .build()?;
    let mut seen = 0;
    let mut calls = 0;

    timeline.chapter("1. log in with the resource-owner password grant");
    client.login(Credentials::password(USER, PASSWORD))?;
    seen = report_token_requests(&server, &timeline, seen);

    timeline.chapter("2. call the API");
    for _ in 0..3 {
        calls += 1;
        call(&client, &server, &timeline)?;
    }

    timeline.chapter("3. keep calling: the token is renewed before it expires");
    let until = Instant::now() + TOKEN_LIFETIME + Duration::from_millis(300);
    while Instant::now() < until {
        calls += 1;
        call(&client, &server, &timeline)?;
        seen = report_token_requests(&server, &timeline, seen);
        sleep(Duration::from_millis(400));
    }

    timeline.chapter("4. the API stops accepting the token: 401, one refresh, one retry");
    let current = current_token(&client)?;
    server.world().auth.revoke_access_token(&current);
    timeline.say("the server revoked the current access token");
    calls += 1;
    call(&client, &server, &timeline)?;
    seen = report_token_requests(&server, &timeline, seen);

    timeline.chapter("5. the whole grant is revoked: invalid_grant, then a new login");
    {
        let mut world = server.world();
        world.auth.revoke_all();
    }
    timeline.say("the server revoked every token of the grant");
    calls += 1;
    call(&client, &server, &timeline)?;
    seen = report_token_requests(&server, &timeline, seen);
    let _ = seen;

    timeline.chapter("summary");
    let world = server.world();
    let mut by_grant: BTreeMap<String, usize> = BTreeMap::new();
    for request in world.auth.requests() {
        *by_grant
            .entry(request.grant_type.clone().unwrap_or_default())
            .or_default() += 1;
    }
    timeline.say(&format!(
        "token requests: {} ({})",
        world.auth.token_requests(),
        by_grant
            .iter()
            .map(|(grant, n)| format!("{n} {grant}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    timeline.say(&format!(
        "API calls made by the application: {calls}; answered 401 by the API: {} (each retried once)",
        world.api.unauthorized()
    ));
    timeline.say(&format!(
        "logins from the credentials source: {}",
        logins.load(Ordering::SeqCst)
    ));
    timeline.say(&format!(
        "finished in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn identity_server() -> FakeAuthServer {
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl: TOKEN_LIFETIME,
        refresh_ttl: None,
        style: ResponseStyle::Standard,
        rotate_refresh_tokens: true,
        refresh_requires_offline_access: true,
        revoke_family_on_reuse: true,
        require_query_grant_type: false,
    });
    server.add_client(
        "datahub-backend",
        Some("datahub-secret"),
        ClientAuthStyle::Basic,
    );
    server.add_user(USER, PASSWORD);
    server
}

fn call<T>(
    client: &BlockingClient<T>,
    server: &loopback::Loopback,
    timeline: &Timeline,
) -> Result<(), Box<dyn std::error::Error>>
where
    T: tokenflow::adapters::blocking::Transport,
{
    let refused_before = server.world().api.unauthorized();
    let request = http::Request::get(server.api_url("/datahub/meters")).body(Vec::new())?;
    let response = client.send(request)?;
    let refused = server.world().api.unauthorized() - refused_before;
    let note = if refused > 0 {
        format!(" (after {refused} × 401 and a retry with a new token)")
    } else {
        String::new()
    };
    timeline.say(&format!(
        "GET /datahub/meters → {}{note}",
        response.status()
    ));
    Ok(())
}

/// The access token the client would send now (only to revoke it at the in-process server).
fn current_token<T>(client: &BlockingClient<T>) -> Result<String, Box<dyn std::error::Error>>
where
    T: tokenflow::adapters::blocking::Transport,
{
    let bearer = client.bearer()?;
    let value = bearer.header_value().to_str()?;
    Ok(value.trim_start_matches("Bearer ").to_owned())
}

/// Prints the token requests the server saw since the last call.
fn report_token_requests(server: &loopback::Loopback, timeline: &Timeline, seen: usize) -> usize {
    let world = server.world();
    let requests = world.auth.requests();
    for request in requests.iter().skip(seen) {
        let outcome = match &request.outcome {
            Outcome::Issued => "tokens issued".to_owned(),
            Outcome::Error(code) => format!("refused: {code}"),
            Outcome::Fault => "failed".to_owned(),
        };
        timeline.say(&format!(
            "server: token request, grant_type={} → {outcome}",
            request.grant_type.as_deref().unwrap_or("?")
        ));
    }
    requests.len()
}

/// A store that keeps tokens in memory and says what happens to them.
struct LoggingStore {
    inner: MemoryStore,
    timeline: Timeline,
    last_refresh: std::sync::Mutex<Option<String>>,
}

impl TokenStore for LoggingStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.inner.load()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned());
        let mut last = self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
        let rotated = match (&*last, &refresh) {
            (Some(old), Some(new)) if old != new => " — refresh token rotated, the old one is dead",
            _ => "",
        };
        *last = refresh;
        self.timeline
            .say(&format!("store: tokens saved before use{rotated}"));
        self.inner.save(tokens)
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.timeline.say("store: tokens deleted");
        self.inner.clear()
    }
}

#[derive(Clone)]
struct Timeline {
    started: Instant,
}

impl Timeline {
    fn new(started: Instant) -> Timeline {
        Timeline { started }
    }

    fn say(&self, line: &str) {
        let elapsed = self.started.elapsed();
        println!("{:>6.2}s  {line}", elapsed.as_secs_f64());
    }

    fn chapter(&self, title: &str) {
        println!("\n        {title}");
    }
}
