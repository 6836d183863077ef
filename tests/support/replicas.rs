//! Several replicas of one backend sharing one login through a [`MemoryStore`], against one
//! fake authorization server, on one virtual clock. Each replica's host follows the run-loop
//! contract and the shared-store protocol of `tokenflow::shared`; the store tells the other
//! replicas of each change, as a database's notifications would.

use std::time::Duration;

use tokenflow::Timestamp;

use http::Request;
use tokenflow::shared::{MemoryStore, SharedSnapshot, SharedTokenStore, StoreReport, perform};
use tokenflow::{
    Access, Config, Credentials, Event, Input, Output, RequestId, TokenFlow, TransportError,
    UnixTime,
};

use super::clock::VirtualClock;
use super::fake_auth::{FakeAuthServer, Fault, Reply};

const DRAIN_BOUND: usize = 64;

pub struct Replica {
    /// The holder name in the store; a restarted replica gets a new one.
    pub name: String,
    pub flow: TokenFlow,
    pub alive: bool,
    pub events: Vec<Event>,
    pub idle_until: Option<Timestamp>,
    /// A `LoginRequired` the credentials source has not answered yet.
    login_due: bool,
    /// Store changes not yet reported to this replica.
    notify: bool,
}

/// A token request on the network.
pub struct Outgoing {
    pub replica: usize,
    pub id: RequestId,
    pub request: Request<Vec<u8>>,
}

pub struct Replicas {
    pub clock: VirtualClock,
    pub server: FakeAuthServer,
    pub store: MemoryStore,
    pub replicas: Vec<Replica>,
    pub config: Config,
    /// Requests sent and not yet delivered.
    pub outbox: Vec<Outgoing>,
    /// Every request is answered as soon as it is sent.
    pub instant_network: bool,
    /// How long a lease lasts.
    pub lease: Duration,
    /// Replicas answer `LoginRequired` with a password login, as a backend's credentials
    /// source does.
    pub credentials_source: bool,
    /// Every refresh token presented to the server, in order.
    pub presented: Vec<String>,
    restarts: usize,
}

impl Replicas {
    pub fn new(config: Config, server: FakeAuthServer, count: usize) -> Replicas {
        let clock = VirtualClock::new();
        let mut world = Replicas {
            clock,
            server,
            store: MemoryStore::new(),
            replicas: Vec::new(),
            config,
            outbox: Vec::new(),
            instant_network: true,
            lease: Duration::from_secs(60),
            credentials_source: false,
            presented: Vec::new(),
            restarts: 0,
        };
        for r in 0..count {
            let flow = world.new_flow(r as u64);
            world.replicas.push(Replica {
                name: format!("replica-{r}"),
                flow,
                alive: true,
                events: Vec::new(),
                idle_until: None,
                login_due: false,
                notify: true,
            });
        }
        world.settle();
        world
    }

    fn new_flow(&self, seed: u64) -> TokenFlow {
        TokenFlow::new(self.config.clone(), seed, self.now(), self.wall())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn wall(&self) -> UnixTime {
        UnixTime::from_millis(self.clock.wall_millis())
    }

    pub fn snapshot(&self) -> SharedSnapshot {
        let Ok(snapshot) = self.store.snapshot();
        snapshot
    }

    /// Every live replica's host does what is pending (store news, logins, an instant
    /// network's answers) until nothing is.
    pub fn settle(&mut self) {
        for _ in 0..256 {
            let mut busy = false;
            for r in 0..self.replicas.len() {
                if !self.replicas[r].alive {
                    continue;
                }
                if std::mem::take(&mut self.replicas[r].notify) {
                    busy = true;
                    let snapshot = self.snapshot();
                    self.input(r, Input::Store(StoreReport::Changed(snapshot)));
                }
                if self.credentials_source && std::mem::take(&mut self.replicas[r].login_due) {
                    busy = true;
                    let now = self.now();
                    self.replicas[r]
                        .flow
                        .login(now, Credentials::password("joe", "pw"));
                    self.drain(r);
                }
                self.drain(r);
            }
            if self.instant_network && !self.outbox.is_empty() {
                busy = true;
                for out in std::mem::take(&mut self.outbox) {
                    self.deliver(out, None);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("the replicas kept working without time passing");
    }

    fn input(&mut self, r: usize, input: Input) {
        let now = self.now();
        self.replicas[r].flow.handle_input(now, input);
        self.drain(r);
    }

    /// Polls replica `r` until `Idle`, acting on each output as its host.
    pub fn drain(&mut self, r: usize) {
        for _ in 0..DRAIN_BOUND {
            match self.replicas[r].flow.poll_output() {
                Output::Idle { until } => {
                    self.replicas[r].idle_until = until;
                    return;
                }
                Output::Send(request) => self.on_send(r, request.id, request.request),
                Output::Event(event) => self.on_event(r, event),
            }
        }
        panic!("replica {r} did not reach Idle within {DRAIN_BOUND} outputs");
    }

    fn on_send(&mut self, r: usize, id: RequestId, request: Request<Vec<u8>>) {
        let form: Vec<(String, String)> = form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        if let Some((_, token)) = form.iter().find(|(k, _)| k == "refresh_token") {
            self.presented.push(token.clone());
        }
        self.outbox.push(Outgoing {
            replica: r,
            id,
            request,
        });
    }

    fn on_event(&mut self, r: usize, event: Event) {
        let (now, wall) = (self.now(), self.wall());
        match &event {
            Event::Store(request) => {
                let name = self.replicas[r].name.clone();
                let Ok(performed) = perform(&self.store, &name, self.lease, wall, request);
                if performed.changed {
                    self.notify_others(r);
                }
                if let Some(report) = performed.report {
                    self.replicas[r]
                        .flow
                        .handle_input(now, Input::Store(report));
                }
            }
            Event::TokensUpdated(_) | Event::TokensCleared => {
                panic!("a replica with a shared store wrote around it: {event:?}")
            }
            Event::LoginRequired { .. } => self.replicas[r].login_due = true,
            _ => {}
        }
        self.replicas[r].events.push(event);
    }

    fn notify_others(&mut self, r: usize) {
        for (i, replica) in self.replicas.iter_mut().enumerate() {
            if i != r {
                replica.notify = true;
            }
        }
    }

    /// Delivers a request to the server; its answer reaches the replica if it is alive. With
    /// `error`, the answer is lost and the replica told so at once.
    pub fn deliver(&mut self, out: Outgoing, error: Option<TransportError>) {
        let now = self.now();
        if error.is_some() && self.server.pending_faults() == 0 {
            self.server.inject(Fault::ApplyThenLose);
        }
        let reply = self.server.handle_with_faults(now, &out.request);
        if !self.replicas[out.replica].alive {
            return;
        }
        let input = match (reply, error) {
            (Reply::Respond(response), None) => Input::Response {
                id: out.id,
                response,
            },
            (Reply::Respond(_), Some(error)) | (Reply::Lost, Some(error)) => {
                Input::Failed { id: out.id, error }
            }
            // Lost: the replica finds out at the deadline.
            (Reply::Lost, None) => return,
        };
        self.input(out.replica, input);
    }

    /// Replica `r` asks for a token.
    pub fn access(&mut self, r: usize) -> Access {
        let now = self.now();
        let access = self.replicas[r].flow.access(now);
        self.drain(r);
        self.settle();
        access
    }

    /// Moves time forward, waking every live replica when it asked and at the end.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now() + by;
        loop {
            let now = self.now();
            let next = self
                .replicas
                .iter()
                .filter(|r| r.alive)
                .filter_map(|r| r.idle_until)
                .filter(|&until| until > now && until <= end)
                .min()
                .unwrap_or(end);
            self.clock.advance(next - now);
            let now = self.now();
            for r in 0..self.replicas.len() {
                if self.replicas[r].alive {
                    self.replicas[r].flow.handle_input(now, Input::Timeout);
                    self.drain(r);
                }
            }
            self.settle();
            if self.now() >= end {
                return;
            }
        }
    }

    /// The replica's process dies: nothing more reaches it; its lease and marks stay in the
    /// store, its requests may still reach the server.
    pub fn kill(&mut self, r: usize) {
        self.replicas[r].alive = false;
    }

    /// A new process takes the place of replica `r`, starting from the store.
    pub fn restart(&mut self, r: usize) {
        self.restarts += 1;
        let flow = self.new_flow(1_000 + self.restarts as u64);
        self.replicas[r] = Replica {
            name: format!("replica-{r}-{}", self.restarts),
            flow,
            alive: true,
            events: Vec::new(),
            idle_until: None,
            login_due: false,
            notify: true,
        };
        self.outbox.retain(|out| out.replica != r);
        self.settle();
    }

    /// The access token replica `r` holds, if any.
    pub fn access_token(&self, r: usize) -> Option<String> {
        self.replicas[r]
            .flow
            .stored_tokens()
            .and_then(|t| t.access_token)
            .map(|t| t.expose_secret().to_owned())
    }

    pub fn stored_access_token(&self) -> Option<String> {
        self.snapshot()
            .tokens
            .and_then(|t| t.access_token)
            .map(|t| t.expose_secret().to_owned())
    }
}
