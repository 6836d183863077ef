//! The whole token lifecycle, driven by a sequence of operations decoded from the input and
//! run against the fake authorization server of the test suite.
//!
//! A compact host follows the run-loop contract and checks after every step what the sim
//! harness (`tests/support/sim.rs`) checks, and more:
//!
//! - at most one token request is in flight;
//! - a refresh token is never presented once its successor was stored;
//! - `TokensUpdated` comes right before each `AccessReady`, and a token handed out by
//!   `access` is the one the host stored;
//! - what the flow holds is what the host stored (no token change goes unannounced);
//! - every drain reaches `Idle` within 64 outputs, and the flow never asks to be woken
//!   in a loop without time passing;
//! - retries are bounded: an attempt sends at most `max_retries + 2` requests, and without
//!   a command failed attempts follow each other no faster than the longest backoff;
//! - an answer to a request the flow no longer waits for changes nothing, unless it is a
//!   successful answer to a refresh that ended unanswered (then it is adopted, announced
//!   before its release like any new tokens);
//! - with a shared store (some worlds), the host plays the store with a `MemoryStore` and
//!   another replica that writes tokens, holds the lease, and has its notifications lost or
//!   delivered late; the flow only ever holds tokens that were written to the store, and
//!   every lease answer, change, conflict, lost lease or unreachable store is taken in stride;
//! - no output, event, error or `Debug` of the flow shows a secret (every password, client
//!   secret and token in this world contains `.secret.`, and nothing else does).
#![no_main]

#[path = "../../tests/support/fake_auth.rs"]
#[allow(dead_code)]
mod fake_auth;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use fake_auth::{ClientAuthStyle, FakeAuthServer, Fault, Reply, ResponseStyle, ServerConfig};
use http::{HeaderValue, Request, Response, StatusCode, header};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokenflow::shared::{
    CasOutcome, LeaseAnswer, MarkOutcome, MemoryStore, SharedSnapshot, SharedTokenStore,
    StoreReport, StoreRequest,
};
use tokenflow::{
    Access, ClientAuth, Config, Credentials, Event, Generation, GrantKind, Input, Output,
    RefreshTokenReuse, RequestId, RetryPolicy, StoredTokens, Timestamp, TokenFlow,
    TransportError, TransportErrorKind, UnixTime,
};

/// Every secret in this world holds it; nothing else can (generated text is scrubbed of dots).
const SECRET_MARK: &str = ".secret.";
const PASSWORD: &str = "pw.secret.Ünïcode:+&=%";
const CLIENT_SECRET: &str = "cs.secret.s3cr:t/+%";
const WALL_BASE_MS: u64 = 1_700_000_000_000;
/// Beyond this (136 years), time stops advancing: the fake server adds lifetimes to
/// timestamps without checking, and a `Timestamp` spans 584 years.
const MAX_OFFSET: Duration = Duration::from_secs(1 << 32);
/// The host clock's reading at the start: a day after its origin.
const BASE: Timestamp = Timestamp::from_secs(86_400);
const DRAIN_BOUND: usize = 64;
/// Operations decoded from one input. Deeper states come from the corpus growing input by
/// input, not from long inputs: each run is short, so the fuzzer tries many more of them.
const MAX_OPS: usize = 24;
/// Wake-ups fed one by one when time moves forward; after them time jumps to the end (as
/// for a host that was suspended). With one-second tokens an hour would otherwise renew
/// 3 600 times.
const WAKE_UPS_PER_ADVANCE: usize = 4;

struct Sent {
    id: RequestId,
    request: Request<Vec<u8>>,
}

struct Host {
    base: Timestamp,
    /// The host's monotonic time, as an offset from `base`.
    now: Duration,
    /// The latest instant handed to the flow (the flow never goes back from it).
    latest: Duration,
    config: Config,
    seed: u64,
    flow: TokenFlow,
    server: FakeAuthServer,
    /// Sent and not yet answered or failed.
    outbox: Vec<Sent>,
    /// Sent, not answered, failed or abandoned, with their deadlines.
    in_flight: Vec<(RequestId, Timestamp)>,
    answered: Vec<RequestId>,
    /// Requests reported as failed: a late answer to one of them may be adopted.
    failed: Vec<RequestId>,
    stored: Option<StoredTokens>,
    /// Refresh tokens a successor was stored after, unless stored again since: a server may
    /// issue a value it issued before (this world's answers do: form-encoded ones turn every
    /// non-string token into "1"), and the one stored last is the current token.
    superseded: HashSet<String>,
    last_was_tokens_updated: bool,
    generations: Vec<Generation>,
    idle_until: Option<Timestamp>,
    instant_network: bool,
    /// Requests sent in the current attempt.
    sends_in_attempt: u32,
    /// Attempts failed since the last command or new tokens, and when that was.
    failures_since_progress: u32,
    progress_at: Duration,
    next_token: u64,
    /// With a shared store: the store and the other replica.
    shared: Option<Shared>,
}

struct Shared {
    store: MemoryStore,
    /// This process's name as a lease holder (a restarted process is another holder).
    holder: String,
    lease: Duration,
    /// Every snapshot the store has held, oldest first.
    history: Vec<SharedSnapshot>,
    /// Whether the other replica's writes are reported to the flow.
    notify: bool,
}

impl Shared {
    fn snapshot(&self) -> SharedSnapshot {
        let Ok(snapshot) = self.store.snapshot();
        snapshot
    }

    fn record(&mut self) {
        let snapshot = self.snapshot();
        self.history.push(snapshot);
    }

    /// Whether these tokens were ever written to the store.
    fn was_written(&self, held: (Option<&str>, Option<&str>)) -> bool {
        self.history
            .iter()
            .any(|snapshot| token_strs(snapshot.tokens.as_ref()) == held)
    }
}

/// Set `FLOW_TRACE=1` to follow a run (when reproducing a crash).
fn trace(what: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FLOW_TRACE").is_some()) {
        eprintln!("{}", what());
    }
}

fn check_text(text: &str) {
    assert!(!text.contains(SECRET_MARK), "a secret leaked: {text}");
}

/// `check_text` on the `Debug` form of `value`, written into a buffer kept between calls
/// (every output of every step is checked: a fresh `String` each time costs more than the
/// formatting).
fn check_debug(value: &impl std::fmt::Debug) {
    use std::fmt::Write;
    thread_local! {
        static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    TEXT.with_borrow_mut(|text| {
        text.clear();
        write!(text, "{value:?}").expect("Debug writes to a String");
        check_text(text);
    });
}

/// The value of the first `name` field of a form, decoded. Only that field is decoded: the
/// others (the password, the scope) would each be decoded into a new `String` for nothing.
fn form_value<'a>(form: &'a [u8], name: &str) -> Option<std::borrow::Cow<'a, str>> {
    form.split(|&b| b == b'&').find_map(|pair| {
        let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
        // A key written with escapes is decoded to be compared; a plain one is compared as is.
        let escaped = key.iter().any(|&b| b == b'%' || b == b'+');
        if !escaped && key != name.as_bytes() {
            return None;
        }
        let (key, value) = form_urlencoded::parse(pair).next()?;
        (key == name).then_some(value)
    })
}

/// The access and refresh tokens of a stored set, borrowed.
fn token_strs(stored: Option<&StoredTokens>) -> (Option<&str>, Option<&str>) {
    (
        stored
            .and_then(|s| s.access_token.as_ref())
            .map(|t| t.expose_secret()),
        stored
            .and_then(|s| s.refresh_token.as_ref())
            .map(|t| t.expose_secret()),
    )
}

fn tokens(stored: Option<&StoredTokens>) -> (Option<String>, Option<String>) {
    (
        stored
            .and_then(|s| s.access_token.as_ref())
            .map(|t| t.expose_secret().to_owned()),
        stored
            .and_then(|s| s.refresh_token.as_ref())
            .map(|t| t.expose_secret().to_owned()),
    )
}

impl Host {
    fn at(&self, offset: Duration) -> Timestamp {
        self.base + offset
    }

    fn instant(&mut self) -> Timestamp {
        self.latest = self.latest.max(self.now);
        self.at(self.now)
    }

    fn latest_instant(&self) -> Timestamp {
        self.at(self.latest.max(self.now))
    }

    fn wall(&self) -> UnixTime {
        UnixTime::from_millis(WALL_BASE_MS + self.now.as_millis() as u64)
    }

    fn progress(&mut self) {
        self.sends_in_attempt = 0;
        self.failures_since_progress = 0;
        self.progress_at = self.latest.max(self.now);
    }

    /// Drains until `Idle`, then feeds the wake-ups already due; checks every output.
    fn settle(&mut self) {
        for _ in 0..32 {
            self.drain();
            if self.instant_network && !self.outbox.is_empty() {
                let outgoing = std::mem::take(&mut self.outbox);
                for sent in outgoing {
                    self.deliver(sent, None);
                }
                continue;
            }
            match self.idle_until {
                Some(until) if until <= self.latest_instant() => {
                    let now = self.latest_instant();
                    self.flow.handle_input(now, Input::Timeout);
                }
                _ => {
                    self.check_consistency();
                    return;
                }
            }
        }
        // With answers coming at once, a failing server makes the flow retry; those retries
        // wait for backoff, so they cannot fill 32 rounds at one instant.
        panic!("the flow kept asking for work without time passing");
    }

    fn drain(&mut self) {
        for _ in 0..DRAIN_BOUND {
            let output = self.flow.poll_output();
            check_debug(&output);
            trace(|| format!("  @{:?} {output:?}", self.latest.max(self.now)));
            match output {
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
        let now = self.latest_instant();
        assert!(deadline >= now, "a request sent with its deadline passed");
        self.in_flight.retain(|&(_, deadline)| now < deadline);
        assert!(
            self.in_flight.is_empty(),
            "a second token request was sent while {:?} was in flight",
            self.in_flight
        );
        self.in_flight.push((id, deadline));
        if let Some(token) = form_value(request.body(), "refresh_token") {
            assert!(
                !self.superseded.contains(token.as_ref()),
                "a refresh token was presented after its successor was stored"
            );
        }
        // An attempt sends at most `max_retries + 1` times, plus one immediate resend of a
        // refresh whose outcome is unknown.
        self.sends_in_attempt += 1;
        let retry = self.config.retry();
        assert!(
            self.sends_in_attempt <= retry.max_retries + 2,
            "{} token requests in one attempt (max_retries {})",
            self.sends_in_attempt,
            retry.max_retries
        );
        self.outbox.push(Sent { id, request });
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
                if let Some(new) = tokens.refresh_token.as_ref() {
                    self.superseded.remove(new.expose_secret());
                }
                let reread = StoredTokens::from_json(&tokens.to_json())
                    .expect("the flow's tokens can be stored and read back");
                assert_eq!(token_strs(Some(&reread)), token_strs(Some(tokens)));
                self.stored = Some(tokens.clone());
                self.progress();
            }
            Event::TokensCleared => {
                self.stored = None;
                self.sends_in_attempt = 0;
            }
            Event::AccessReady { generation } => {
                // With a shared store, tokens adopted from it are stored already.
                assert!(
                    self.last_was_tokens_updated || self.shared.is_some(),
                    "AccessReady came out without TokensUpdated right before it"
                );
                self.generations.push(*generation);
            }
            Event::Failed(error) => {
                check_text(&error.to_string());
                let retry = self.config.retry();
                assert!(error.attempts <= retry.max_retries + 2, "{error:?}");
                // Without a command, attempts that fail follow each other no faster than the
                // longest backoff (a failed login may be followed at once by a renewal of the
                // tokens held before it).
                self.sends_in_attempt = 0;
                self.failures_since_progress += 1;
                let elapsed = self.latest.max(self.now).saturating_sub(self.progress_at);
                let allowed = 2 + elapsed.as_nanos() / retry.max_backoff.as_nanos().max(1);
                assert!(
                    u128::from(self.failures_since_progress) <= allowed,
                    "{} failed attempts in {elapsed:?} without a command",
                    self.failures_since_progress
                );
            }
            Event::LoginRequired { reason } => check_text(&reason.to_string()),
            Event::Store(request) => self.on_store(request),
            _ => {}
        }
        self.last_was_tokens_updated = matches!(
            event,
            Event::TokensUpdated(_) | Event::Store(StoreRequest::TokensUpdated { .. })
        );
    }

    /// Performs a store operation as a host with a shared store does.
    fn on_store(&mut self, request: &StoreRequest) {
        let now = self.latest_instant();
        let wall = self.wall();
        let Some(shared) = self.shared.as_mut() else {
            panic!("a store request without a shared store: {request:?}");
        };
        let report = match request {
            StoreRequest::AcquireLease => {
                let Ok(answer) = shared
                    .store
                    .acquire_lease(&shared.holder, shared.lease, wall);
                Some(StoreReport::Lease(answer))
            }
            StoreRequest::MarkInFlight { .. } => {
                let StoreRequest::MarkInFlight { since } = request else {
                    unreachable!()
                };
                let Ok(outcome) = shared.store.mark_in_flight(&shared.holder, *since, wall);
                shared.record();
                (outcome == MarkOutcome::LeaseLost).then_some(StoreReport::LeaseLost)
            }
            StoreRequest::TokensUpdated {
                tokens: new,
                expected_version,
            } => {
                let Ok(outcome) = shared.store.compare_and_set(*expected_version, Some(new));
                match outcome {
                    CasOutcome::Written(_) => {
                        shared.record();
                        if let (Some(old), Some(new)) = (
                            self.stored.as_ref().and_then(|s| s.refresh_token.as_ref()),
                            new.refresh_token.as_ref(),
                        ) {
                            if old.expose_secret() != new.expose_secret() {
                                self.superseded.insert(old.expose_secret().to_owned());
                            }
                        }
                        if let Some(new) = new.refresh_token.as_ref() {
                            self.superseded.remove(new.expose_secret());
                        }
                        self.stored = Some(new.clone());
                        self.progress();
                        None
                    }
                    CasOutcome::Conflict(snapshot) => Some(StoreReport::Conflict(snapshot)),
                }
            }
            StoreRequest::TokensCleared { expected_version } => {
                let Ok(outcome) = shared.store.compare_and_set(*expected_version, None);
                match outcome {
                    CasOutcome::Written(_) => {
                        shared.record();
                        self.stored = None;
                        None
                    }
                    CasOutcome::Conflict(snapshot) => Some(StoreReport::Conflict(snapshot)),
                }
            }
            StoreRequest::ReleaseLease { clear_in_flight } => {
                let Ok(()) = shared.store.release_lease(&shared.holder, *clear_in_flight);
                shared.record();
                // A renewal attempt under the lease ended.
                self.sends_in_attempt = 0;
                None
            }
            other => panic!("unknown store request {other:?}"),
        };
        if let Some(report) = report {
            trace(|| format!("  store reports {report:?}"));
            self.feed_store(now, report);
        }
    }

    /// Reports to the flow what the store said. Tokens adopted from the store end a renewal
    /// under way, as a login does: its request is no longer awaited, and the host cancels it.
    fn feed_store(&mut self, now: Timestamp, report: StoreReport) {
        let awaited = self.flow.request_in_flight();
        let before = self.flow.stored_tokens();
        self.flow.handle_input(now, Input::Store(report));
        if let Some(id) = awaited {
            if self.flow.request_in_flight() != Some(id) {
                self.in_flight.retain(|(sent, _)| *sent != id);
            }
        }
        // Tokens another replica wrote are new tokens, as a command's are: renewing them
        // at once (they may be expired already) is no retry of the failed renewals before.
        // Adopting them ends a renewal under way (the protocol in `tokenflow::shared`), a
        // request of it already sent included, also when the lease was lost meanwhile and no
        // `ReleaseLease` marks the end: a renewal of the new tokens is a new attempt, whose
        // sends count from zero. (A login under way goes on, and its count restarts too:
        // weaker for that attempt, never wrong.)
        let after = self.flow.stored_tokens();
        if token_strs(before.as_ref()) != token_strs(after.as_ref()) {
            self.sends_in_attempt = 0;
            self.failures_since_progress = 0;
            self.progress_at = self.latest.max(self.now);
        }
    }

    /// What the flow holds is what the host was told to store.
    fn check_consistency(&self) {
        let held = self.flow.stored_tokens();
        if let Some(shared) = &self.shared {
            assert!(
                shared.was_written(token_strs(held.as_ref())),
                "the flow holds tokens never written to the store"
            );
            return;
        }
        assert_eq!(
            token_strs(held.as_ref()),
            token_strs(self.stored.as_ref()),
            "the flow holds tokens the host was not told to store"
        );
    }

    fn deliver(&mut self, sent: Sent, custom: Option<Response<Vec<u8>>>) {
        let now = self.instant();
        let response = match custom {
            Some(response) => Some(response),
            None => match self.server.handle_with_faults(now, &sent.request) {
                Reply::Respond(response) => Some(response),
                Reply::Lost => None,
            },
        };
        let Some(response) = response else {
            // Lost: the flow finds out when the deadline passes.
            trace(|| format!("  {:?} lost", sent.id));
            return;
        };
        trace(|| {
            format!(
                "  {:?} answered {} {:?}",
                sent.id,
                response.status(),
                String::from_utf8_lossy(response.body())
            )
        });
        self.in_flight.retain(|(id, _)| *id != sent.id);
        self.answered.push(sent.id);
        self.respond(now, sent.id, response);
    }

    /// Feeds an answer. A late answer that is adopted ends the renewal under way: the
    /// request it was waiting for is abandoned, and the host cancels it.
    fn respond(&mut self, now: Timestamp, id: RequestId, response: Response<Vec<u8>>) {
        let awaited = self.flow.request_in_flight();
        self.flow.handle_input(now, Input::Response { id, response });
        if let Some(awaited) = awaited.filter(|&awaited| awaited != id) {
            if self.flow.request_in_flight() != Some(awaited) {
                self.in_flight.retain(|(sent, _)| *sent != awaited);
            }
        }
    }

    fn fail(&mut self, sent: Sent, error: TransportError) {
        let now = self.instant();
        self.in_flight.retain(|(id, _)| *id != sent.id);
        self.failed.push(sent.id);
        self.flow
            .handle_input(now, Input::Failed { id: sent.id, error });
    }

    /// Moves time forward, feeding each wake-up on the way (up to a number of steps, then
    /// straight to the end).
    fn advance(&mut self, by: Duration) {
        self.advance_with(by, WAKE_UPS_PER_ADVANCE);
    }

    /// Moves time forward, feeding up to `wake_ups` wake-ups on the way, then the end.
    fn advance_with(&mut self, by: Duration, wake_ups: usize) {
        let end = (self.now + by).min(MAX_OFFSET);
        for _ in 0..wake_ups {
            let next = match self.idle_until {
                Some(until) if until <= self.at(end) && until > self.at(self.now) => {
                    until.saturating_duration_since(self.base)
                }
                _ => end,
            };
            self.now = next.max(self.now);
            let now = self.instant();
            self.flow.handle_input(now, Input::Timeout);
            self.settle();
            if self.now >= end {
                return;
            }
        }
        self.now = end.max(self.now);
        let now = self.instant();
        self.flow.handle_input(now, Input::Timeout);
        self.settle();
    }

    fn access(&mut self, now: Timestamp) {
        let access = self.flow.access(now);
        check_debug(&access);
        if let (Access::Ready(bearer), Some(shared)) = (&access, &self.shared) {
            let held = self.flow.stored_tokens();
            let held = token_strs(held.as_ref());
            assert!(shared.was_written(held), "a token never stored was handed out");
            assert_eq!(
                bearer.header_value().as_bytes().strip_prefix(b"Bearer "),
                Some(held.0.unwrap_or_default().as_bytes()),
            );
            assert_eq!(Some(bearer.generation()), self.flow.generation());
            self.generations.push(bearer.generation());
        } else if let Access::Ready(bearer) = &access {
            let stored = token_strs(self.stored.as_ref()).0;
            let stored = stored.expect("a token was handed out that the host never stored");
            assert_eq!(
                bearer.header_value().as_bytes().strip_prefix(b"Bearer "),
                Some(stored.as_bytes()),
                "the token handed out is not the one stored"
            );
            assert_eq!(Some(bearer.generation()), self.flow.generation());
            self.generations.push(bearer.generation());
        }
        self.progress();
        self.settle();
    }

    fn restart(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        // Requests still out may or may not reach the server; their answers are lost.
        for sent in std::mem::take(&mut self.outbox) {
            if u.arbitrary()? && self.server.pending_faults() == 0 {
                let now = self.at(self.now);
                self.server.inject(Fault::ApplyThenLose);
                let _ = self.server.handle_with_faults(now, &sent.request);
            }
        }
        self.in_flight.clear();
        // The new process numbers its requests from the start again: an id of the old one
        // would name one of its own.
        self.answered.clear();
        self.failed.clear();
        self.generations.clear();
        self.idle_until = None;
        self.last_was_tokens_updated = false;
        // The new process reads both clocks; its wall clock may have been set differently.
        let skew_ms: i64 = match u.int_in_range(0..=3u8)? {
            0 => 0,
            1 => i64::from(u.arbitrary::<i32>()?),
            2 => -(3600 * 1000 * i64::from(u.int_in_range(0..=48u8)?)),
            _ => 3600 * 1000 * i64::from(u.int_in_range(0..=48u8)?),
        };
        let wall = self.wall().as_millis().saturating_add_signed(skew_ms);
        let now = self.instant();
        self.seed = self.seed.wrapping_add(1);
        if let Some(shared) = self.shared.as_mut() {
            // A new process starts from what the store holds, under a new holder name; the
            // old process's lease runs out by itself.
            shared.holder = format!("replica-{}", self.seed);
            let snapshot = shared.snapshot();
            self.flow = TokenFlow::new(
                self.config.clone(),
                self.seed,
                now,
                UnixTime::from_millis(wall),
            );
            self.feed_store(now, StoreReport::Changed(snapshot));
            check_debug(&self.flow);
            self.progress();
            self.settle();
            return Ok(());
        }
        self.flow = match &self.stored {
            Some(stored) => TokenFlow::restore(
                self.config.clone(),
                stored.clone(),
                self.seed,
                now,
                UnixTime::from_millis(wall),
            )
            .expect("tokens the flow handed out restore"),
            None => TokenFlow::new(
                self.config.clone(),
                self.seed,
                now,
                UnixTime::from_millis(wall),
            ),
        };
        check_debug(&self.flow);
        self.progress();
        self.settle();
        Ok(())
    }
}

impl Host {
    /// Another replica writes tokens of its own login to the store (no lease: logins take
    /// none), and the store tells this one, unless its notifications are lost.
    fn other_replica_writes(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        self.next_token += 1;
        let n = self.next_token;
        let wall = self.wall();
        let lifetime = duration(u)?;
        let with_refresh: bool = u.arbitrary()?;
        let clear = u.ratio(1, 8)?;
        let Some(shared) = self.shared.as_mut() else {
            return Ok(());
        };
        let tokens = StoredTokens {
            version: tokenflow::token::STORED_TOKENS_VERSION,
            grant: GrantKind::Password,
            access_token: Some(format!("AT.secret.other{n}").into()),
            expires_at: Some(wall.saturating_add(lifetime)),
            refresh_token: with_refresh.then(|| format!("RT.secret.other{n}").into()),
            refresh_token_expires_at: None,
            scope: None,
            id_token: None,
            issued_at: wall,
            extra: Default::default(),
        };
        let version = shared.snapshot().version;
        let written = if clear { None } else { Some(&tokens) };
        let Ok(_) = shared.store.compare_and_set(version, written);
        shared.record();
        if shared.notify {
            let snapshot = shared.snapshot();
            let now = self.latest_instant();
            self.feed_store(now, StoreReport::Changed(snapshot));
        }
        self.settle();
        Ok(())
    }

    /// A store report at any moment: late, repeated, or out of turn.
    fn store_report(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let Some(shared) = self.shared.as_ref() else {
            return Ok(());
        };
        let current = shared.snapshot();
        let report = match u.int_in_range(0..=6u8)? {
            0 => StoreReport::Changed(current),
            1 => {
                // A stale notification, delivered late.
                let i = u.choose_index(shared.history.len())?;
                StoreReport::Changed(shared.history[i].clone())
            }
            2 => StoreReport::Conflict(current),
            3 => StoreReport::LeaseLost,
            4 => StoreReport::Unavailable,
            5 => {
                // An answer repeated: what the store would say now.
                let wall = self.wall();
                let Ok(answer) = shared
                    .store
                    .acquire_lease(&shared.holder, shared.lease, wall);
                StoreReport::Lease(answer)
            }
            _ => StoreReport::Lease(LeaseAnswer::Busy(current)),
        };
        let now = self.latest_instant();
        trace(|| format!("  store reports {report:?} (out of turn)"));
        self.feed_store(now, report);
        self.settle();
        Ok(())
    }
}

/// Printable text from the input, scrubbed of dots so that it cannot spell a secret.
fn text(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let len = u.int_in_range(0..=max)?;
    let bytes = u.bytes(len.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).replace('.', "_"))
}

fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    Ok(u.bytes(len.min(u.len()))?
        .iter()
        .map(|&b| if b == b'.' { b'_' } else { b })
        .collect())
}

fn retry_after(u: &mut Unstructured<'_>, wall: UnixTime) -> Result<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => u.int_in_range(0..=10u32)?.to_string(),
        1 => u.arbitrary::<u64>()?.to_string(),
        2 | 3 => {
            let ahead: i64 = u.int_in_range(-100_000..=100_000i64)?;
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(wall.as_millis());
            let at = if ahead >= 0 {
                at + Duration::from_secs(ahead as u64)
            } else {
                at - Duration::from_secs(ahead.unsigned_abs())
            };
            // HTTP dates end with year 9999.
            let last = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
            httpdate::fmt_http_date(at.min(last))
        }
        4 => "-5".to_owned(),
        _ => text(u, 30)?
            .chars()
            .filter(|c| (' '..='~').contains(c))
            .collect(),
    })
}

const ERROR_CODES: &[&str] = &[
    "invalid_grant",
    "invalid_client",
    "invalid_request",
    "server_error",
    "temporarily_unavailable",
    "unauthorized_client",
    "invalid_scope",
    "slow_down",
    "weird_code",
];

fn json_value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => json!(u.arbitrary::<u64>()?),
        4 => json!(u.arbitrary::<f64>()?),
        5 => json!([text(u, 8)?]),
        _ => Value::String(text(u, 16)?),
    })
}

/// A token endpoint answer of any kind the world can produce.
fn custom_response(u: &mut Unstructured<'_>, host: &mut Host) -> Result<Response<Vec<u8>>> {
    let kind = u.int_in_range(0..=9u8)?;
    let mut status = 200u16;
    let mut content_type = "application/json";
    let body: Vec<u8> = match kind {
        // A success of some shape.
        0..=3 => {
            host.next_token += 1;
            let n = host.next_token;
            let mut fields: Vec<(String, Value)> = Vec::new();
            let access = match u.int_in_range(0..=9u8)? {
                0 => None,
                1 => Some(Value::String(String::new())),
                2 => Some(Value::String(format!("AT.secret.fz {n}"))),
                3 => Some(json!(n)),
                4 => Some(Value::String(format!("AT.secret.fz\u{e9}{n}"))),
                _ => Some(Value::String(format!("AT.secret.fz{n}"))),
            };
            if let Some(access) = access {
                fields.push(("access_token".into(), access));
            }
            match u.int_in_range(0..=7u8)? {
                0 => {}
                1 => fields.push(("token_type".into(), json!("bearer"))),
                2 => fields.push(("token_type".into(), json!("BearerToken"))),
                3 => fields.push(("token_type".into(), json!("mac"))),
                4 => fields.push(("token_type".into(), json!(1))),
                _ => fields.push(("token_type".into(), json!("Bearer"))),
            }
            match u.int_in_range(0..=11u8)? {
                0 => {}
                1 => fields.push(("expires_in".into(), json!(0))),
                2 => fields.push(("expires_in".into(), json!(-1))),
                3 => fields.push(("expires_in".into(), json!(u.arbitrary::<u64>()?))),
                4 => fields.push(("expires_in".into(), json!(u.arbitrary::<f64>()?))),
                5 => fields.push(("expires_in".into(), json!(1e300))),
                6 => fields.push((
                    "expires_in".into(),
                    json!(u.int_in_range(0..=100_000u32)?.to_string()),
                )),
                7 => fields.push(("expires_in".into(), json!("NaN"))),
                8 => fields.push(("expires_in".into(), Value::Null)),
                _ => fields.push(("expires_in".into(), json!(u.int_in_range(1..=7200u32)?))),
            }
            match u.int_in_range(0..=7u8)? {
                0 => {}
                1 => fields.push(("refresh_token".into(), json!(""))),
                2 => fields.push(("refresh_token".into(), json!(n))),
                3 => fields.push(("refresh_token".into(), json!(format!("RT.secret.fz {n}")))),
                4 => {
                    // The refresh token of the stored set, sent back unchanged.
                    if let Some(rt) = tokens(host.stored.as_ref()).1 {
                        fields.push(("refresh_token".into(), json!(rt)));
                    }
                }
                _ => fields.push(("refresh_token".into(), json!(format!("RT.secret.fz{n}")))),
            }
            if u.ratio(1, 4)? {
                let value = match u.int_in_range(0..=3u8)? {
                    0 => json!(["a", "b"]),
                    1 => json!(3),
                    2 => json!(""),
                    _ => json!("read write"),
                };
                fields.push(("scope".into(), value));
            }
            if u.ratio(1, 4)? {
                fields.push(("refresh_token_expires_in".into(), json_value(u)?));
                fields.push(("refresh_token_issued_at".into(), json_value(u)?));
            }
            if u.ratio(1, 8)? {
                fields.push(("id_token".into(), json!(format!("IT.secret.fz{n}"))));
            }
            if u.ratio(1, 4)? {
                fields.push((text(u, 12)?, json_value(u)?));
            }
            if u.ratio(1, 8)? {
                // A 200 that carries an error.
                fields.push(("error".into(), json!(*u.choose(ERROR_CODES)?)));
            }
            if u.ratio(1, 8)? && !fields.is_empty() {
                let i = u.choose_index(fields.len())?;
                let dup = fields[i].clone();
                fields.push(dup);
            }
            let mut body = String::from("{");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&serde_json::to_string(k).unwrap());
                body.push(':');
                body.push_str(&serde_json::to_string(v).unwrap());
            }
            body.push('}');
            let mut body = body.into_bytes();
            match u.int_in_range(0..=15u8)? {
                0 => body.truncate(body.len() / 2),
                1 => body.resize(host.config.max_body_bytes() + 1, b' '),
                2 => {
                    status = *u.choose(&[201, 203, 206, 299])?;
                }
                3 => {
                    // Form-encoded, as some old servers answer.
                    content_type = "application/x-www-form-urlencoded";
                    body = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(
                            fields
                                .iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("1").to_owned())),
                        )
                        .finish()
                        .into_bytes();
                }
                4 => body.insert(0, 0xff),
                _ => {}
            }
            body
        }
        // An OAuth error.
        4 | 5 => {
            status = *u.choose(&[400, 401, 403, 429, 500, 503, 200])?;
            let code = *u.choose(ERROR_CODES)?;
            let body = json!({ "error": code, "error_description": text(u, 40)? });
            serde_json::to_vec(&body).unwrap()
        }
        // A gateway's HTML page.
        6 => {
            status = *u.choose(&[200, 403, 404, 429, 500, 502, 503, 504])?;
            content_type = "text/html";
            format!(
                "<html><head><title>{status}</title></head><body><h1>{}</h1></body></html>",
                text(u, 64)?
            )
            .into_bytes()
        }
        // Nothing.
        7 => {
            status = *u.choose(&[200, 204, 500, 502])?;
            Vec::new()
        }
        // Anything.
        _ => {
            status = u.int_in_range(100..=999u16)?;
            content_type = *u.choose(&["application/json", "text/plain", "text/html"])?;
            bytes(u, 128)?
        }
    };
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(header::CONTENT_TYPE, content_type);
    if u.ratio(1, 3)? {
        let value = retry_after(u, host.wall())?;
        if let Ok(value) = HeaderValue::from_str(&value) {
            builder = builder.header(header::RETRY_AFTER, value);
        }
    }
    Ok(builder.body(body).unwrap())
}

fn fault(u: &mut Unstructured<'_>, host: &Host) -> Result<Fault> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 => Fault::Status(*u.choose(&[500, 502, 503, 504, 400, 404, 408])?),
        1 => Fault::TooManyRequests {
            retry_after: retry_after(u, host.wall())?,
        },
        2 => Fault::ServiceUnavailable {
            retry_after: retry_after(u, host.wall())?,
        },
        3 => Fault::HtmlPage(*u.choose(&[200, 403, 502, 503])?),
        4 => Fault::ApplyThenLose,
        5 => Fault::Body {
            status: 200,
            content_type: "application/json",
            body: br#"{"error":"invalid_grant","error_description":"expired"}"#.to_vec(),
        },
        _ => Fault::Body {
            status: 200,
            content_type: "application/json",
            body: Vec::new(),
        },
    })
}

fn duration(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Duration::ZERO,
        1 => Duration::from_millis(u.int_in_range(1..=2_000u64)?),
        2 | 3 => Duration::from_secs(u.int_in_range(1..=120u64)?),
        4 => Duration::from_secs(u.int_in_range(1..=4_000u64)?),
        5 => Duration::from_secs(3600 * u.int_in_range(1..=72u64)?),
        6 => Duration::from_secs(86_400 * u.int_in_range(1..=4_000u64)?),
        _ => Duration::from_secs(u.arbitrary()?).min(MAX_OFFSET),
    })
}

fn transport_error(u: &mut Unstructured<'_>) -> Result<TransportError> {
    let kind = *u.choose(&[
        TransportErrorKind::NotSent,
        TransportErrorKind::TimedOut,
        TransportErrorKind::Interrupted,
        TransportErrorKind::BodyTooLarge,
        TransportErrorKind::Other,
    ])?;
    let message = *u.choose(&["", "connection refused", "reset by peer", "timed out"])?;
    Ok(TransportError::new(kind, message))
}

const CHALLENGES: &[&str] = &[
    "Bearer error=\"invalid_token\"",
    "Bearer realm=\"api\"",
    "Bearer error=\"insufficient_scope\", scope=\"a\"",
    "Basic realm=\"x\", Bearer error=\"invalid_token\"",
    "Bearer error=\"invalid_token",
    "Bearer error=insufficient_scope",
    "DPoP error=\"use_dpop_nonce\"",
    "",
];

fn world(u: &mut Unstructured<'_>) -> Result<Host> {
    let style = if u.arbitrary()? {
        ResponseStyle::Gateway
    } else {
        ResponseStyle::Standard
    };
    let access_ttl = Duration::from_secs(*u.choose(&[1, 3, 30, 600, 3600, 86_399])?);
    let refresh_ttl = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some(Duration::from_secs(1_799)),
        _ => Some(Duration::from_secs(30 * 86_400)),
    };
    let mut server = FakeAuthServer::new(ServerConfig {
        access_ttl,
        refresh_ttl,
        style,
        rotate_refresh_tokens: u.arbitrary()?,
        refresh_requires_offline_access: false,
        revoke_family_on_reuse: u.arbitrary()?,
        require_query_grant_type: false,
    });
    let post = u.arbitrary()?;
    server.add_client(
        "app",
        Some(CLIENT_SECRET),
        if post {
            ClientAuthStyle::Post
        } else {
            ClientAuthStyle::Basic
        },
    );
    server.add_user("joe", PASSWORD);
    // Nothing here reads the server's request log.
    server.stop_recording();
    let reuse = match u.int_in_range(0..=2u8)? {
        0 => RefreshTokenReuse::Strict,
        1 => {
            let window = Duration::from_secs(*u.choose(&[0, 1, 10, 60])?);
            if u.arbitrary()? {
                server.set_reuse_grace(window);
            }
            RefreshTokenReuse::GraceWindow(window)
        }
        _ => RefreshTokenReuse::Reusable,
    };
    let shared: bool = u.arbitrary()?;
    let retry = RetryPolicy {
        max_retries: u.int_in_range(0..=5u32)?,
        initial_backoff: Duration::from_millis(*u.choose(&[1, 100, 500, 2_000])?),
        max_backoff: Duration::from_secs(*u.choose(&[1, 30, 300])?),
        max_retry_after: Duration::from_secs(*u.choose(&[0, 5, 120, 100_000])?),
    };
    let config = Config::builder("https://id.example/token", "app")
        .client_secret(CLIENT_SECRET)
        .client_auth(if post {
            ClientAuth::SecretPost
        } else {
            ClientAuth::SecretBasic
        })
        .scope("read offline_access")
        .proactive_refresh(u.arbitrary()?)
        .refresh_margin(Duration::from_secs(*u.choose(&[0, 5, 30, 600])?))
        .request_timeout(Duration::from_millis(*u.choose(&[1, 500, 10_000, 30_000])?))
        .assumed_lifetime(Duration::from_secs(*u.choose(&[1, 60, 3600])?))
        .max_body_bytes(*u.choose(&[1024, 64 * 1024])?)
        .retry(retry)
        .refresh_token_reuse(reuse)
        .shared_store(shared)
        .build()
        .unwrap();
    let shared = shared.then(|| Shared {
        store: MemoryStore::new(),
        holder: "replica-0".to_owned(),
        lease: config.renewal_lease_duration(),
        history: vec![SharedSnapshot::empty()],
        notify: true,
    });
    trace(|| format!("{config:?} {:?}", server.config()));
    let base = BASE;
    let seed = u.arbitrary()?;
    let flow = TokenFlow::new(
        config.clone(),
        seed,
        base,
        UnixTime::from_millis(WALL_BASE_MS),
    );
    Ok(Host {
        base,
        now: Duration::ZERO,
        latest: Duration::ZERO,
        config,
        seed,
        flow,
        server,
        outbox: Vec::new(),
        in_flight: Vec::new(),
        answered: Vec::new(),
        failed: Vec::new(),
        stored: None,
        superseded: HashSet::new(),
        last_was_tokens_updated: false,
        generations: Vec::new(),
        idle_until: None,
        instant_network: u.arbitrary()?,
        sends_in_attempt: 0,
        failures_since_progress: 0,
        progress_at: Duration::ZERO,
        next_token: 0,
        shared,
    })
}

fn step(u: &mut Unstructured<'_>, host: &mut Host) -> Result<()> {
    let op = u.int_in_range(0..=18u8)?;
    trace(|| format!("op {op}"));
    match op {
        0 => {
            let credentials = match u.int_in_range(0..=3u8)? {
                0 => Credentials::ClientCredentials,
                1 => Credentials::password("joe", "pw.secret.wrong"),
                _ => Credentials::password("joe", PASSWORD),
            };
            let now = host.instant();
            host.flow.login(now, credentials);
            // Whatever was in flight is abandoned; its answer will be ignored.
            host.in_flight.clear();
            host.progress();
            host.settle();
        }
        1 | 2 => {
            let now = host.instant();
            host.access(now);
        }
        3 => {
            let now = host.instant();
            host.flow.logout(now);
            host.in_flight.clear();
            host.progress();
            host.settle();
        }
        4 => {
            let generation = match u.int_in_range(0..=2u8)? {
                0 => host.flow.generation(),
                1 => host.generations.first().copied(),
                _ => {
                    if host.generations.is_empty() {
                        None
                    } else {
                        Some(host.generations[u.choose_index(host.generations.len())?])
                    }
                }
            };
            let Some(generation) = generation else {
                return Ok(());
            };
            let mut values = Vec::new();
            for _ in 0..u.int_in_range(0..=2u8)? {
                if u.ratio(1, 4)? {
                    if let Ok(value) = HeaderValue::from_bytes(&bytes(u, 40)?) {
                        values.push(value);
                    }
                } else {
                    values.push(HeaderValue::from_static(u.choose(CHALLENGES)?));
                }
            }
            let now = host.instant();
            host.flow.handle_input(
                now,
                Input::Unauthorized {
                    generation,
                    www_authenticate: values,
                },
            );
            host.progress();
            host.settle();
        }
        5 | 6 => {
            let by = duration(u)?;
            host.advance(by);
        }
        7 => {
            // The host's clock reads earlier than before (several threads, a stepped clock).
            let back = duration(u)?.min(host.now);
            let then = host.at(host.now - back);
            if u.arbitrary()? {
                host.flow.handle_input(then, Input::Timeout);
                host.settle();
            } else {
                host.access(then);
            }
        }
        8..=10 => {
            if host.outbox.is_empty() {
                return Ok(());
            }
            let sent = host.outbox.remove(u.choose_index(host.outbox.len())?);
            match u.int_in_range(0..=3u8)? {
                0 => {
                    let response = custom_response(u, host)?;
                    host.deliver(sent, Some(response));
                }
                1 => {
                    let f = fault(u, host)?;
                    host.server.inject(f);
                    host.deliver(sent, None);
                }
                _ => host.deliver(sent, None),
            }
            host.settle();
        }
        11 => {
            if host.outbox.is_empty() {
                return Ok(());
            }
            let sent = host.outbox.remove(u.choose_index(host.outbox.len())?);
            let error = transport_error(u)?;
            host.fail(sent, error);
            host.settle();
        }
        12 => {
            // An answer to a request the flow no longer waits for changes nothing ...
            if u.arbitrary()? && !host.failed.is_empty() {
                // ... unless it succeeds for a refresh that ended unanswered: it may be
                // adopted, announced like any new tokens.
                let id = host.failed[u.choose_index(host.failed.len())?];
                if host.flow.request_in_flight() == Some(id) {
                    return Ok(());
                }
                let now = host.latest_instant();
                let response = custom_response(u, host)?;
                host.respond(now, id, response);
                host.settle();
                return Ok(());
            }
            if host.answered.is_empty() {
                return Ok(());
            }
            let id = host.answered[u.choose_index(host.answered.len())?];
            if host.flow.request_in_flight() == Some(id) {
                return Ok(());
            }
            let before = tokens(host.flow.stored_tokens().as_ref());
            let now = host.latest_instant();
            let response = custom_response(u, host)?;
            host.flow
                .handle_input(now, Input::Response { id, response });
            let output = host.flow.poll_output();
            assert!(
                matches!(output, Output::Idle { .. }),
                "a stale answer produced {output:?}"
            );
            host.idle_until = match output {
                Output::Idle { until } => until,
                _ => None,
            };
            assert_eq!(tokens(host.flow.stored_tokens().as_ref()), before);
        }
        13 => host.restart(u)?,
        14 => {
            match u.int_in_range(0..=3u8)? {
                0 => host.instant_network = !host.instant_network,
                1 => host.server.revoke_all(),
                2 if host.shared.is_some() => {
                    // The store's notifications stop, or come again.
                    if let Some(shared) = host.shared.as_mut() {
                        shared.notify = !shared.notify;
                    }
                }
                _ => {
                    for _ in 0..u.int_in_range(1..=12u8)? {
                        let f = fault(u, host)?;
                        host.server.inject(f);
                    }
                }
            }
            host.settle();
        }
        16 => host.other_replica_writes(u)?,
        17 => {
            // The other replica takes the lease, or gives it back.
            let wall = host.wall();
            let hold = duration(u)?;
            let release = u.arbitrary()?;
            let Some(shared) = host.shared.as_mut() else {
                return Ok(());
            };
            if release {
                let Ok(()) = shared.store.release_lease("other", u.arbitrary()?);
            } else {
                let Ok(_) = shared.store.acquire_lease("other", hold, wall);
            }
            shared.record();
            if shared.notify {
                let snapshot = shared.snapshot();
                let now = host.latest_instant();
                host.feed_store(now, StoreReport::Changed(snapshot));
            }
            host.settle();
        }
        18 => host.store_report(u)?,
        _ => {
            // Report the API's 401 for the current token, as an adapter does after a call.
            if let Some(generation) = host.flow.generation() {
                let now = host.instant();
                host.flow.handle_input(
                    now,
                    Input::Unauthorized {
                        generation,
                        www_authenticate: vec![HeaderValue::from_static(
                            "Bearer error=\"invalid_token\"",
                        )],
                    },
                );
                host.progress();
                host.settle();
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mut host) = world(&mut u) else {
        return;
    };
    for _ in 0..MAX_OPS {
        if u.is_empty() || step(&mut u, &mut host).is_err() {
            break;
        }
    }
    check_debug(&host.flow);
    // Whatever happened, once the server answers again the flow can log in.
    host.server.revoke_all();
    while host.server.pending_faults() > 0 {
        let now = host.at(host.now);
        let _ = host
            .server
            .handle_with_faults(now, &Request::new(Vec::new()));
    }
    host.instant_network = true;
    // An hour later (straight there: the wake-ups on the way are what the steps try).
    host.advance_with(Duration::from_secs(3600), 0);
    let now = host.instant();
    if let Some(shared) = host.shared.as_mut() {
        // The store's notifications come through again.
        shared.notify = true;
        let snapshot = shared.snapshot();
        host.feed_store(now, StoreReport::Changed(snapshot));
        host.settle();
    }
    host.flow.login(now, Credentials::password("joe", PASSWORD));
    host.in_flight.clear();
    host.progress();
    host.settle();
    let now = host.instant();
    let access = host.flow.access(now);
    assert!(
        matches!(access, Access::Ready(_)),
        "no token after a login against a healthy server: {access:?}"
    );
});
