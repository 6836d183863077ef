//! Driving `TokenFlow` by hand, with no adapter: the run loop from the crate docs, over `ureq`.
//!
//! ```sh
//! cargo run --example manual_drive                       # against the embedded server
//! cargo run --example manual_drive -- --token-endpoint https://id.example/connect/token \
//!     --client-id ID --client-secret SECRET --username USER --password PW \
//!     --scope "api offline_access" --api-url https://api.example/resource
//! ```

mod support;

use support::{fake_auth, loopback, settings};

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use tokenflow::{
    Access, Config, Credentials, Event, Input, Output, Timestamp, TokenFlow, TransportError,
    UnixTime,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = settings::Settings::parse(&[])?;
    // Keep the embedded server alive for the whole run when no real one is given.
    let (embedded, endpoint) = match args.get("token-endpoint") {
        Some(endpoint) => (None, endpoint),
        None => {
            let server = embedded_server()?;
            let endpoint = server.token_endpoint();
            (Some(server), endpoint)
        }
    };
    let api_url = args.get("api-url").unwrap_or_else(|| {
        embedded
            .as_ref()
            .map(|s| s.api_url("/resource"))
            .unwrap_or_default()
    });
    let config = Config::builder(endpoint, args.get_or("client-id", "demo-client"))
        .client_secret(args.get_or("client-secret", "demo-secret"))
        .scope(&args.get_or("scope", "api offline_access"))
        .build()?;

    // The flow's monotonic clock: time since an origin this host picks, here its start.
    let clock = Clock::start();
    let mut flow = TokenFlow::new(config, seed(), clock.now(), wall_now());
    flow.login(
        clock.now(),
        Credentials::password(
            args.get_or("username", "1234/joe.bloggs@acme.com"),
            args.get_or("password", "secret1234"),
        ),
    );

    for call in 1..=3 {
        let bearer = bearer(&mut flow, &clock)?;
        let response = ureq::get(&api_url)
            .header("authorization", bearer.header_value().to_str()?)
            .config()
            .http_status_as_error(false)
            .build()
            .call()?;
        println!(
            "API call {call}: {} (token {})",
            response.status(),
            bearer.generation()
        );
        if response.status() == 401 {
            let headers = response.headers().clone();
            flow.handle_input(
                clock.now(),
                Input::unauthorized(bearer.generation(), &headers),
            );
        }
    }
    Ok(())
}

/// Asks the flow for a token, running the loop (requests, retries, backoff) until it has one.
fn bearer(
    flow: &mut TokenFlow,
    clock: &Clock,
) -> Result<tokenflow::Bearer, Box<dyn std::error::Error>> {
    loop {
        let until = drive(flow, clock)?;
        match flow.access(clock.now()) {
            Access::Ready(bearer) => return Ok(bearer),
            Access::LoginRequired => return Err("a new login is required".into()),
            Access::Pending => {}
        }
        let until = drive(flow, clock)?.or(until);
        if let Some(until) = until {
            std::thread::sleep(until.saturating_duration_since(clock.now()));
            flow.handle_input(clock.now(), Input::Timeout);
        }
    }
}

/// The run loop's drain: send each request, store each token update, report failures; returns
/// when the flow is idle, with the time it next wants to be woken.
fn drive(
    flow: &mut TokenFlow,
    clock: &Clock,
) -> Result<Option<Timestamp>, Box<dyn std::error::Error>> {
    loop {
        match flow.poll_output() {
            Output::Send(request) => {
                println!("-> {} {}", request.request.method(), request.request.uri());
                let input = match send(request.request) {
                    Ok(response) => Input::Response {
                        id: request.id,
                        response,
                    },
                    Err(error) => Input::Failed {
                        id: request.id,
                        error,
                    },
                };
                flow.handle_input(clock.now(), input);
            }
            Output::Event(Event::TokensUpdated(tokens)) => {
                // A real application writes `tokens.to_json()` to durable storage here,
                // before polling again.
                println!(
                    "   tokens updated (refresh token: {})",
                    tokens.refresh_token.is_some()
                );
            }
            Output::Event(Event::Failed(error)) => return Err(error.into()),
            Output::Event(event) => println!("   event: {event:?}"),
            Output::Idle { until } => return Ok(until),
        }
    }
}

fn send(request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let response = agent
        .run(request)
        .map_err(|e| TransportError::interrupted(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let mut bytes = Vec::new();
    body.into_reader()
        .take(64 * 1024 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TransportError::interrupted(e.to_string()))?;
    Ok(http::Response::from_parts(parts, bytes))
}

fn embedded_server() -> std::io::Result<loopback::Loopback> {
    let mut auth = fake_auth::FakeAuthServer::new(fake_auth::ServerConfig::single_use_refresh());
    auth.add_client(
        "demo-client",
        Some("demo-secret"),
        fake_auth::ClientAuthStyle::Basic,
    );
    auth.add_user("1234/joe.bloggs@acme.com", "secret1234");
    loopback::Loopback::start(auth)
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

/// A monotonic clock counting from the moment it was started.
struct Clock {
    origin: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        let nanos = self.origin.elapsed().as_nanos();
        Timestamp::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

fn wall_now() -> UnixTime {
    UnixTime::from_system_time(SystemTime::now())
}
