//! No secret ever shows in text: a broad set of scenarios (logins, refreshes, rejections,
//! every fault the fake server can inject, every transport failure, restarts) is run while
//! every output, event, request, error, access and the flow itself are formatted with `Debug`
//! and every error with `Display` (with its sources). The captured text must hold no password,
//! client secret, access token or refresh token, in clear or in any encoding the flow sends.

mod support;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderValue, Request};
use support::clock::VirtualClock;
use support::fake_auth::{
    ClientAuthStyle, FakeAuthServer, Fault, Reply, ResponseStyle, ServerConfig, form_urlencode,
};
use tokenflow::token::parse_token_response;
use tokenflow::{
    ClientAuth, Config, Credentials, Event, Generation, Input, Output, RequestId, RetryPolicy,
    StoredTokens, TokenFlow, TransportError, TransportErrorKind, UnixTime,
};

const PASSWORD: &str = "pw-S\u{eb}cret:9f3a+&=%";
const WRONG_PASSWORD: &str = "pw-Wr0ng-S\u{eb}cret-77c1";
const CLIENT_SECRET: &str = "cs-S\u{eb}cret:4b1e/+%";

/// A host that follows the run loop and writes down everything it can format.
struct World {
    clock: VirtualClock,
    flow: TokenFlow,
    config: Config,
    server: FakeAuthServer,
    held: bool,
    outbox: Vec<(RequestId, Request<Vec<u8>>)>,
    stored: Option<StoredTokens>,
    generations: Vec<Generation>,
    text: String,
}

impl World {
    fn new(style: ResponseStyle, auth: ClientAuthStyle) -> World {
        let mut server = FakeAuthServer::new(ServerConfig {
            access_ttl: Duration::from_secs(600),
            refresh_ttl: Some(Duration::from_secs(7 * 86_400)),
            style,
            rotate_refresh_tokens: true,
            refresh_requires_offline_access: false,
            revoke_family_on_reuse: true,
            require_query_grant_type: false,
        });
        server.add_client("app", Some(CLIENT_SECRET), auth);
        server.add_user("joe", PASSWORD);
        let config = Config::builder("https://id.example/token", "app")
            .client_secret(CLIENT_SECRET)
            .client_auth(match auth {
                ClientAuthStyle::Post => ClientAuth::SecretPost,
                ClientAuthStyle::BasicUnencoded => ClientAuth::SecretBasicUnencoded,
                _ => ClientAuth::SecretBasic,
            })
            .scope("read offline_access")
            .retry(RetryPolicy {
                max_retries: 2,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let clock = VirtualClock::new();
        let flow = TokenFlow::new(
            config.clone(),
            1,
            clock.now(),
            UnixTime::from_millis(clock.wall_millis()),
        );
        let mut world = World {
            clock,
            flow,
            config,
            server,
            held: false,
            outbox: Vec::new(),
            stored: None,
            generations: Vec::new(),
            text: String::new(),
        };
        world.record(&format!("{:?}", world.config));
        world
    }

    fn record(&mut self, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
    }

    fn record_error(&mut self, error: &dyn std::error::Error) {
        let mut text = format!("{error} | {error:?}");
        let mut source = error.source();
        while let Some(inner) = source {
            text.push_str(&format!(" | {inner} | {inner:?}"));
            source = inner.source();
        }
        self.record(&text);
    }

    fn wall(&self) -> UnixTime {
        UnixTime::from_millis(self.clock.wall_millis())
    }

    fn drain(&mut self) {
        for _ in 0..64 {
            let output = self.flow.poll_output();
            self.record(&format!("{output:?}"));
            match output {
                Output::Idle { .. } => {
                    let flow = format!("{:?}", self.flow);
                    self.record(&flow);
                    return;
                }
                Output::Send(request) => {
                    self.record(&format!("{request:?} {:?}", request.id));
                    self.outbox.push((request.id, request.request));
                }
                Output::Event(event) => {
                    match &event {
                        Event::TokensUpdated(tokens) => {
                            self.record(&format!("{tokens:?}"));
                            self.stored = Some(tokens.clone());
                        }
                        Event::TokensCleared => self.stored = None,
                        Event::AccessReady { generation } => self.generations.push(*generation),
                        Event::Failed(error) => self.record_error(error),
                        Event::LoginRequired { reason } => self.record(&format!("{reason}")),
                        _ => {}
                    }
                    self.record(&format!("{event:?}"));
                }
            }
        }
        panic!("no Idle within 64 outputs");
    }

    fn settle(&mut self) {
        for _ in 0..32 {
            self.drain();
            if self.held || self.outbox.is_empty() {
                return;
            }
            self.deliver_all();
        }
        panic!("no end to the requests");
    }

    fn deliver_all(&mut self) {
        for (id, request) in std::mem::take(&mut self.outbox) {
            let now = self.clock.now();
            if let Reply::Respond(response) = self.server.handle_with_faults(now, &request) {
                // What the flow will read, formatted as a caller parsing it would.
                let parsed = parse_token_response(
                    response.status(),
                    response.headers(),
                    response.body(),
                    self.config.max_body_bytes(),
                );
                match &parsed {
                    Ok(tokens) => self.record(&format!("{tokens:?}")),
                    Err(error) => self.record_error(error),
                }
                let input = Input::Response { id, response };
                self.record(&format!("{input:?}"));
                self.flow.handle_input(now, input);
            }
        }
    }

    fn fail_all(&mut self, error: TransportError) {
        self.record_error(&error);
        for (id, _) in std::mem::take(&mut self.outbox) {
            let now = self.clock.now();
            let input = Input::Failed {
                id,
                error: error.clone(),
            };
            self.record(&format!("{input:?}"));
            self.flow.handle_input(now, input);
        }
        self.settle();
    }

    fn login(&mut self, credentials: Credentials) {
        self.record(&format!("{credentials:?}"));
        self.flow.login(self.clock.now(), credentials);
        self.settle();
    }

    fn access(&mut self) {
        let access = self.flow.access(self.clock.now());
        self.record(&format!("{access:?}"));
        if let tokenflow::Access::Ready(bearer) = &access {
            self.record(&format!("{:?}", bearer.header_value()));
        }
        self.settle();
    }

    fn unauthorized(&mut self, generation: Generation, challenge: &'static str) {
        let input = Input::Unauthorized {
            generation,
            www_authenticate: vec![HeaderValue::from_static(challenge)],
        };
        self.record(&format!("{input:?}"));
        self.flow.handle_input(self.clock.now(), input);
        self.settle();
    }

    fn advance(&mut self, by: Duration) {
        let step = Duration::from_millis(250);
        let end = self.clock.offset() + by;
        while self.clock.offset() < end {
            self.clock.advance(step.min(end - self.clock.offset()));
            self.flow.handle_input(self.clock.now(), Input::Timeout);
            self.settle();
        }
    }

    fn restart(&mut self) {
        self.outbox.clear();
        let now = self.clock.now();
        let wall = self.wall();
        self.flow = match self.stored.clone() {
            Some(stored) => {
                let json = stored.to_json();
                let read = StoredTokens::from_json(&json).unwrap();
                self.record(&format!("{read:?}"));
                TokenFlow::restore(self.config.clone(), read, 2, now, wall).unwrap()
            }
            None => TokenFlow::new(self.config.clone(), 2, now, wall),
        };
        self.settle();
    }

    fn current(&self) -> Generation {
        self.flow.generation().expect("a token is held")
    }

    /// Fails if any secret, or any encoding of one the flow sends, shows in the captured text.
    fn assert_no_secrets(&self, scenario: &str) {
        let mut secrets = vec![
            PASSWORD.to_owned(),
            WRONG_PASSWORD.to_owned(),
            CLIENT_SECRET.to_owned(),
            form_urlencode(PASSWORD),
            form_urlencode(CLIENT_SECRET),
            BASE64.encode(format!("app:{}", form_urlencode(CLIENT_SECRET))),
            BASE64.encode(format!("app:{CLIENT_SECRET}")),
            "AT.secret.".to_owned(),
            "RT.secret.".to_owned(),
            "S\u{eb}cret".to_owned(),
            "S%C3%ABcret".to_owned(),
        ];
        // Byte slices print as lists of numbers: look for those too.
        let as_bytes: Vec<String> = secrets
            .iter()
            .map(|s| {
                let list = format!("{:?}", s.as_bytes());
                list[1..list.len() - 1].to_owned()
            })
            .collect();
        secrets.extend(as_bytes);
        secrets.retain(|s| !s.is_empty());
        for secret in &secrets {
            if let Some(at) = self.text.find(secret.as_str()) {
                let start = self.text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                panic!(
                    "{scenario}: {secret:?} appears in: …{}…",
                    &self.text[start..(at + secret.len()).min(self.text.len())]
                );
            }
        }
        assert!(
            self.text.len() > 1000,
            "{scenario}: too little was captured"
        );
    }
}

fn logged_in(style: ResponseStyle, auth: ClientAuthStyle) -> World {
    let mut world = World::new(style, auth);
    world.login(Credentials::password("joe", PASSWORD));
    assert!(world.stored.is_some(), "logged in");
    world
}

fn every_fault(world: &World) -> Vec<Fault> {
    let date = httpdate::fmt_http_date(
        SystemTime::UNIX_EPOCH + Duration::from_millis(world.clock.wall_millis() + 3_000),
    );
    let leaky = |body: &str| Fault::Body {
        status: 200,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
    };
    vec![
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(504),
        Fault::Status(404),
        Fault::HtmlPage(502),
        Fault::HtmlPage(200),
        Fault::TooManyRequests {
            retry_after: "1".into(),
        },
        Fault::TooManyRequests { retry_after: date },
        Fault::TooManyRequests {
            retry_after: "garbage".into(),
        },
        Fault::ServiceUnavailable {
            retry_after: "2".into(),
        },
        Fault::ApplyThenLose,
        // Unusable success bodies holding tokens that must not be quoted back.
        leaky(r#"{"access_token":"AT.secret.x1","access_token":"AT.secret.x2"}"#),
        leaky(
            r#"{"access_token":"AT.secret.x3","token_type":"mac","refresh_token":"RT.secret.x3"}"#,
        ),
        leaky(r#"{"access_token":"AT.secret. x4","refresh_token":"RT.secret.x4"}"#),
        leaky(r#"{"access_token":"AT.secret.x5","expires_in":"later"}"#),
        leaky(r#"{"access_token":["AT.secret.x6"]}"#),
        leaky(r#"{"access_token":"AT.secret.x7""#),
        leaky(r#"{"error":"server_error","access_token":"AT.secret.x8"}"#),
        leaky(r#"{"access_token":"AT.secret.x9","refresh_token":"RT.secret. x9"}"#),
        Fault::Body {
            status: 400,
            content_type: "application/json",
            body: br#"{"message":"no","refresh_token":"RT.secret.y1"}"#.to_vec(),
        },
        Fault::Body {
            status: 200,
            content_type: "application/x-www-form-urlencoded",
            body: b"access_token=AT.secret.y2&access_token=AT.secret.y3".to_vec(),
        },
        Fault::Body {
            status: 200,
            content_type: "application/json",
            body: vec![b' '; 70_000],
        },
    ]
}

#[test]
fn login_use_refresh_rotate_and_logout() {
    for (style, auth) in [
        (ResponseStyle::Standard, ClientAuthStyle::Basic),
        (ResponseStyle::Standard, ClientAuthStyle::Post),
        (ResponseStyle::Gateway, ClientAuthStyle::BasicUnencoded),
    ] {
        let mut world = logged_in(style, auth);
        world.access();
        let first = world.current();
        world.advance(Duration::from_secs(700));
        world.access();
        world.unauthorized(world.current(), "Bearer error=\"invalid_token\"");
        world.unauthorized(first, "Bearer error=\"invalid_token\"");
        world.unauthorized(world.current(), "Bearer error=\"insufficient_scope\"");
        world.restart();
        world.access();
        world.unauthorized(world.current(), "Bearer error=\"broken");
        world.flow.logout(world.clock.now());
        world.settle();
        world.access();
        world.assert_no_secrets(&format!("{style:?}/{auth:?}"));
    }
}

#[test]
fn client_credentials_and_rejected_logins() {
    let mut world = World::new(ResponseStyle::Standard, ClientAuthStyle::Basic);
    world.login(Credentials::ClientCredentials);
    world.advance(Duration::from_secs(700));
    world.access();
    world.login(Credentials::password("joe", WRONG_PASSWORD));
    world.login(Credentials::password("nobody", PASSWORD));
    world.assert_no_secrets("client credentials");
}

#[test]
fn rejected_and_reused_refresh_tokens() {
    let mut world = logged_in(ResponseStyle::Standard, ClientAuthStyle::Basic);
    let stale = world.stored.clone().unwrap();
    world.advance(Duration::from_secs(700));
    world.access();
    // A restart from an old copy presents a superseded token: the grant is revoked.
    world.stored = Some(stale);
    world.restart();
    world.advance(Duration::from_secs(700));
    world.access();
    assert!(world.stored.is_none(), "the dead tokens were dropped");
    world.login(Credentials::password("joe", PASSWORD));
    world.server.revoke_all();
    world.advance(Duration::from_secs(700));
    world.access();
    world.assert_no_secrets("rejections");
}

#[test]
fn every_injected_fault_during_refresh_and_login() {
    let template = World::new(ResponseStyle::Standard, ClientAuthStyle::Basic);
    for fault in every_fault(&template) {
        let name = format!("{fault:?}");
        let name = &name[..name.len().min(80)];
        // During a refresh, twice in a row.
        let mut world = logged_in(ResponseStyle::Standard, ClientAuthStyle::Basic);
        world.advance(Duration::from_secs(601));
        world.server.inject(fault.clone());
        world.server.inject(fault.clone());
        world.access();
        world.advance(Duration::from_secs(120));
        world.access();
        world.assert_no_secrets(&format!("refresh: {name}"));
        // During a login.
        let mut world = World::new(ResponseStyle::Standard, ClientAuthStyle::Post);
        world.server.inject(fault.clone());
        world.login(Credentials::password("joe", PASSWORD));
        world.advance(Duration::from_secs(120));
        world.access();
        world.assert_no_secrets(&format!("login: {name}"));
    }
}

#[test]
fn every_transport_failure_and_timeouts() {
    for kind in [
        TransportErrorKind::NotSent,
        TransportErrorKind::TimedOut,
        TransportErrorKind::Interrupted,
        TransportErrorKind::BodyTooLarge,
        TransportErrorKind::Other,
    ] {
        let mut world = logged_in(ResponseStyle::Standard, ClientAuthStyle::Basic);
        world.held = true;
        world.advance(Duration::from_secs(601));
        world.access();
        for _ in 0..4 {
            world.fail_all(TransportError::new(kind, "connection trouble"));
            world.advance(Duration::from_secs(5));
        }
        // Answers that never come: the deadline passes.
        world.advance(Duration::from_secs(120));
        world.held = false;
        world.deliver_all();
        world.settle();
        world.login(Credentials::password("joe", PASSWORD));
        world.held = true;
        world.login(Credentials::password("joe", PASSWORD));
        world.fail_all(TransportError::new(kind, ""));
        world.assert_no_secrets(&format!("{kind:?}"));
    }
}
