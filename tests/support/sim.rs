//! A deterministic world for the flow: a fake authorization server, a fake API, a virtual
//! clock, and a host that follows the run-loop contract while checking the flow's promises
//! after every step.

use std::collections::HashSet;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokenflow::{
    Access, Bearer, Config, Credentials, Event, Input, Output, RequestId, StoredTokens, Timestamp,
    TokenFlow, TransportError, UnixTime,
};

use super::clock::VirtualClock;
use super::fake_api::FakeApi;
use super::fake_auth::{FakeAuthServer, Reply};

/// The most outputs one drain may yield; the flow promises a small bound.
pub const DRAIN_BOUND: usize = 64;

/// How the simulated network treats token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Every request is answered as soon as it is sent.
    Instant,
    /// Requests wait in `outbox` until the test delivers them.
    Held,
}

/// A sent token request that has not been answered yet.
pub struct Outgoing {
    pub id: RequestId,
    pub request: Request<Vec<u8>>,
    pub deadline: Timestamp,
}

pub struct Sim {
    pub clock: VirtualClock,
    pub flow: TokenFlow,
    pub server: FakeAuthServer,
    pub api: FakeApi,
    pub network: Network,
    pub outbox: Vec<Outgoing>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// What the host has stored: the last `TokensUpdated`, or nothing after `TokensCleared`.
    pub stored: Option<StoredTokens>,
    /// Refresh tokens that were replaced in storage by a successor.
    pub superseded: HashSet<String>,
    /// Every refresh token presented to the server, in order.
    pub presented_refresh_tokens: Vec<String>,
    /// Token requests sent and not yet answered, failed or past their deadline.
    in_flight: Vec<(RequestId, Timestamp)>,
    last_was_tokens_updated: bool,
    pub idle_until: Option<Timestamp>,
    pub token_requests_sent: usize,
}

impl Sim {
    pub fn new(config: Config, server: FakeAuthServer) -> Sim {
        let clock = VirtualClock::new();
        let flow = TokenFlow::new(
            config,
            7u64,
            clock.now(),
            UnixTime::from_millis(clock.wall_millis()),
        );
        Sim::with_flow(clock, flow, server)
    }

    pub fn with_flow(clock: VirtualClock, flow: TokenFlow, server: FakeAuthServer) -> Sim {
        Sim {
            clock,
            flow,
            server,
            api: FakeApi::new(),
            network: Network::Instant,
            outbox: Vec::new(),
            events: Vec::new(),
            stored: None,
            superseded: HashSet::new(),
            presented_refresh_tokens: Vec::new(),
            in_flight: Vec::new(),
            last_was_tokens_updated: false,
            idle_until: None,
            token_requests_sent: 0,
        }
    }

    /// Simulates a process restart: the flow is rebuilt from what the host stored, and
    /// requests of the old process are forgotten.
    pub fn restart(&mut self, config: Config, seed: u64) {
        let (now, wall) = (self.now(), self.wall());
        self.flow = match self.stored.clone() {
            Some(stored) => {
                TokenFlow::restore(config, stored, seed, now, wall).expect("stored tokens restore")
            }
            None => TokenFlow::new(config, seed, now, wall),
        };
        self.outbox.clear();
        self.in_flight.clear();
        self.last_was_tokens_updated = false;
        self.idle_until = None;
    }

    /// The host cancels what it still has in flight, as it does when a login or logout
    /// supersedes the flow's request (the flow ignores any answer that still comes).
    pub fn cancel_in_flight(&mut self) {
        self.outbox.clear();
        self.in_flight.clear();
    }

    /// Held requests whose deadline has not passed.
    pub fn live_outbox(&self) -> usize {
        let now = self.now();
        self.outbox.iter().filter(|o| o.deadline > now).count()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn wall(&self) -> UnixTime {
        UnixTime::from_millis(self.clock.wall_millis())
    }

    /// Drains the flow until idle, checking its promises; with an instant network, keeps
    /// answering until nothing is left to send.
    pub fn settle(&mut self) {
        loop {
            self.drain();
            if self.network == Network::Held || self.outbox.is_empty() {
                return;
            }
            self.deliver_all();
        }
    }

    /// Polls until `Idle`, handling each output as a careful host would.
    pub fn drain(&mut self) {
        for _ in 0..DRAIN_BOUND {
            match self.flow.poll_output() {
                Output::Idle { until } => {
                    self.idle_until = until;
                    return;
                }
                Output::Send(request) => {
                    self.last_was_tokens_updated = false;
                    self.on_send(request.id, request.request, request.deadline);
                }
                Output::Event(event) => self.on_event(event),
            }
        }
        panic!("the flow did not reach Idle within {DRAIN_BOUND} outputs");
    }

    fn on_send(&mut self, id: RequestId, request: Request<Vec<u8>>, deadline: Timestamp) {
        let now = self.now();
        self.in_flight.retain(|&(_, deadline)| now < deadline);
        assert!(
            self.in_flight.is_empty(),
            "a second token request was sent while {:?} was still in flight",
            self.in_flight
        );
        self.in_flight.push((id, deadline));
        self.token_requests_sent += 1;
        let form: Vec<(String, String)> = form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        if let Some((_, token)) = form.iter().find(|(k, _)| k == "refresh_token") {
            assert!(
                !self.superseded.contains(token),
                "a refresh token was presented after its successor was stored"
            );
            self.presented_refresh_tokens.push(token.clone());
        }
        self.outbox.push(Outgoing {
            id,
            request,
            deadline,
        });
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::TokensUpdated(tokens) => {
                if let (Some(old), Some(new)) = (
                    self.stored.as_ref().and_then(|s| s.refresh_token.as_ref()),
                    tokens.refresh_token.as_ref(),
                ) {
                    if old.expose_secret() != new.expose_secret() {
                        self.superseded.insert(old.expose_secret().to_owned());
                    }
                }
                self.stored = Some(tokens.clone());
            }
            Event::TokensCleared => self.stored = None,
            Event::Failed(error) => {
                // The first send, the retries, and one immediate resend of a refresh lost
                // in transport.
                let bound = self.flow.config().retry().max_retries + 2;
                assert!(
                    error.attempts <= bound,
                    "{} sends in one attempt, more than {bound}",
                    error.attempts
                );
            }
            Event::AccessReady { .. } => assert!(
                self.last_was_tokens_updated,
                "AccessReady came out without TokensUpdated right before it"
            ),
            _ => {}
        }
        self.last_was_tokens_updated = matches!(event, Event::TokensUpdated(_));
        self.events.push(event);
    }

    /// Delivers every held request to the server and its answer to the flow.
    pub fn deliver_all(&mut self) {
        let outgoing = std::mem::take(&mut self.outbox);
        for out in outgoing {
            self.deliver(out);
        }
    }

    pub fn deliver(&mut self, out: Outgoing) {
        let now = self.now();
        let reply = self.server.handle_with_faults(now, &out.request);
        match reply {
            Reply::Respond(response) => {
                self.in_flight.retain(|(id, _)| *id != out.id);
                self.flow.handle_input(
                    now,
                    Input::Response {
                        id: out.id,
                        response,
                    },
                );
            }
            // The answer is lost: the flow learns of it only when the deadline passes.
            Reply::Lost => {}
        }
    }

    /// Delivers a held request to the server, and reports `error` to the flow whatever the
    /// server did: the answer, if any, never arrives (a connection reset after sending).
    pub fn deliver_and_fail(&mut self, out: Outgoing, error: TransportError) {
        let now = self.now();
        let _ = self.server.handle_with_faults(now, &out.request);
        self.in_flight.retain(|(id, _)| *id != out.id);
        self.flow
            .handle_input(now, Input::Failed { id: out.id, error });
    }

    /// Reports a transport failure for every held request.
    pub fn fail_all(&mut self, error: TransportError) {
        let now = self.now();
        for out in std::mem::take(&mut self.outbox) {
            self.in_flight.retain(|(id, _)| *id != out.id);
            self.flow.handle_input(
                now,
                Input::Failed {
                    id: out.id,
                    error: error.clone(),
                },
            );
        }
    }

    /// Moves time forward, feeding every wake-up the flow asked for on the way.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now() + by;
        loop {
            let next = match self.idle_until {
                Some(until) if until <= end && until > self.now() => until,
                _ => end,
            };
            self.clock
                .advance(next.saturating_duration_since(self.now()));
            let now = self.now();
            self.flow.handle_input(now, Input::Timeout);
            self.settle();
            if self.now() >= end {
                return;
            }
        }
    }

    pub fn login(&mut self, credentials: Credentials) {
        let now = self.now();
        self.flow.login(now, credentials);
        self.settle();
    }

    pub fn access(&mut self) -> Access {
        let now = self.now();
        let access = self.flow.access(now);
        self.settle();
        access
    }

    /// Calls the API the way an adapter does: with the current token; after a 401, reports it,
    /// waits for the flow and retries once with a newer token.
    pub fn call_api(&mut self) -> StatusCode {
        let Some(bearer) = self.ready_bearer() else {
            return StatusCode::UNAUTHORIZED;
        };
        let response = self.api_request(&bearer);
        if response.status() != StatusCode::UNAUTHORIZED {
            return response.status();
        }
        let now = self.now();
        self.flow.handle_input(
            now,
            Input::unauthorized(bearer.generation(), response.headers()),
        );
        self.settle();
        match self.ready_bearer() {
            Some(newer) if newer.generation() > bearer.generation() => {
                self.api_request(&newer).status()
            }
            _ => response.status(),
        }
    }

    /// Asks for a token, letting the network answer while the flow is pending.
    pub fn ready_bearer(&mut self) -> Option<Bearer> {
        for _ in 0..8 {
            match self.access() {
                Access::Ready(bearer) => return Some(bearer),
                Access::LoginRequired => return None,
                Access::Pending if self.network == Network::Held && !self.outbox.is_empty() => {
                    self.deliver_all();
                    self.settle();
                }
                Access::Pending => {
                    let step = self
                        .idle_until
                        .map(|until| until.saturating_duration_since(self.now()))
                        .unwrap_or(Duration::from_millis(100))
                        .max(Duration::from_millis(1));
                    self.advance(step);
                }
            }
        }
        None
    }

    pub fn api_request(&mut self, bearer: &Bearer) -> Response<Vec<u8>> {
        let mut request = Request::get("https://api.example/resource")
            .body(Vec::new())
            .unwrap();
        bearer.authorize(&mut request);
        let now = self.now();
        self.api.handle(now, &self.server, &request)
    }

    pub fn current_access_token(&self) -> Option<String> {
        self.flow
            .stored_tokens()
            .and_then(|t| t.access_token)
            .map(|t| t.expose_secret().to_owned())
    }

    pub fn count_events(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| matches(e)).count()
    }
}
