//! Everything a client does that is not IO: it drains the flow, turns its outputs into
//! [`Work`] for whoever performs IO, orders store writes, remembers the outcomes callers wait
//! for, answers `LoginRequired` through a credentials source, keeps the logout report and the
//! token at hand ([`TokenCache`]).
//!
//! Both clients keep one [`Engine`] behind a mutex and ask it for a [`Step`] on behalf of
//! each caller. The engine never performs IO, never blocks and never calls back into the
//! application, so the mutex is only ever held for bookkeeping: a caller takes a [`Work`]
//! item out, unlocks, performs it (or has a task perform it), and the outcome is reported
//! back with [`Engine::report`] — or [`Engine::abandoned`] if it never completes.
//!
//! Store writes and deletions are handed out one at a time, in the order the flow produced
//! them, and the flow is not polled while new tokens are unsaved: a token is never released
//! before it is saved, and store writes never overtake each other. Token requests may be
//! performed side by side.
//!
//! A replica ([`Engine::replica`]) drives the shared-store protocol of [`crate::shared`] the
//! same way: each [`Event::Store`] becomes a [`Work::Store`] item, performed outside the lock
//! with [`shared::perform`] and reported with [`Performed::Stored`]. Store items are handed
//! out one at a time, in order, like saves; a mark in flight, a write and a clearing are
//! performed and reported before the flow is polled again (the next output may be the
//! refresh request the mark announces, or the release of the written access token). What a
//! failure means depends on the operation: a lease that cannot be had is
//! [`StoreReport::Unavailable`] (the flow backs off), a mark that may not be written is
//! [`StoreReport::LeaseLost`] (the refresh is withdrawn unsent), a write or clearing that
//! failed is held back and retried by the next call like a failed save, and a lease that
//! cannot be released is left to run out. Changes another replica made come in through
//! [`Engine::store_changed`].
//!
//! Callers speak in [`Instant`]s; the engine turns them into the flow's [`Timestamp`]s (and
//! the flow's deadlines back into instants) with the client's one [`HostClock`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::adapters::cache::TokenCache;
use crate::adapters::clock::HostClock;
use crate::adapters::driver::{DRAIN_BOUND, seed};
use crate::adapters::error::Error;
use crate::adapters::interactive::LogoutReport;
use crate::adapters::log;
use crate::adapters::store::StoreError;
use crate::grant::Credentials;
use crate::input::{Input, TransportError};
use crate::interactive::{AuthorizationError, AuthorizationRequest, DeviceAuthorization};
use crate::output::{Access, Bearer, Event, Generation, HttpRequest, LoginRequiredReason, Output};
use crate::shared::{self, SharedSnapshot, StoreReport, StoreRequest};
use crate::time::Timestamp;
use crate::token::StoredTokens;
use crate::{Config, RequestId, TokenFlow};

/// Answers `LoginRequired`: credentials to log in with, or `None` to leave the callers with
/// [`Error::LoginRequired`]. Called outside every lock, as IO.
pub(crate) type CredentialsSource = Arc<dyn Fn() -> Option<Credentials> + Send + Sync>;

/// IO to perform without the engine's lock, then report with [`Engine::report`].
pub(crate) enum Work {
    /// Send a token request, giving up at this instant (one request timeout after the
    /// flow's deadline, so that a late answer is still delivered); report
    /// [`Performed::Sent`].
    Send(HttpRequest, Instant),
    /// Save the tokens; report [`Performed::Saved`] with the same number.
    Save(u64, StoredTokens),
    /// Delete the stored tokens; report [`Performed::Cleared`].
    Clear,
    /// Ask the credentials source; report [`Performed::Given`] with the same number.
    Ask(u64, CredentialsSource),
    /// Perform a request on the shared store ([`shared::perform`]); report
    /// [`Performed::Stored`] with the same number.
    Store(u64, StoreRequest),
}

impl Work {
    /// What to report if this item is never completed.
    pub(crate) fn taken(&self) -> Taken {
        match self {
            Work::Send(request, _) => Taken::Send(request.id),
            Work::Save(number, _) => Taken::Save(*number),
            Work::Clear => Taken::Clear,
            Work::Ask(number, _) => Taken::Ask(*number),
            Work::Store(number, request) => Taken::Store(*number, StoreOp::of(request)),
        }
    }

    fn is_store(&self) -> bool {
        matches!(self, Work::Save(..) | Work::Clear | Work::Store(..))
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Work::Send(request, _) => f.debug_tuple("Send").field(&request.id).finish(),
            Work::Save(number, _) => f.debug_tuple("Save").field(number).finish(),
            Work::Clear => f.write_str("Clear"),
            Work::Ask(number, _) => f.debug_tuple("Ask").field(number).finish(),
            Work::Store(number, request) => f
                .debug_tuple("Store")
                .field(number)
                .field(&StoreOp::of(request))
                .finish(),
        }
    }
}

/// A work item handed out, as named when it is abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    Send(RequestId),
    Save(u64),
    Clear,
    Ask(u64),
    Store(u64, StoreOp),
}

/// Which kind of shared-store request a [`Work::Store`] item is: what its failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOp {
    AcquireLease,
    MarkInFlight,
    /// `TokensUpdated` or `TokensCleared`.
    Write,
    ReleaseLease,
}

impl StoreOp {
    pub(crate) fn of(request: &StoreRequest) -> StoreOp {
        match request {
            StoreRequest::AcquireLease => StoreOp::AcquireLease,
            StoreRequest::MarkInFlight { .. } => StoreOp::MarkInFlight,
            StoreRequest::TokensUpdated { .. } | StoreRequest::TokensCleared { .. } => {
                StoreOp::Write
            }
            StoreRequest::ReleaseLease { .. } => StoreOp::ReleaseLease,
        }
    }

    fn during(self) -> &'static str {
        match self {
            StoreOp::AcquireLease => "acquiring the lease",
            StoreOp::MarkInFlight => "marking the refresh in flight",
            StoreOp::Write => "writing the tokens",
            StoreOp::ReleaseLease => "releasing the lease",
        }
    }
}

/// The outcome of a [`Work`] item.
pub(crate) enum Performed {
    Sent(RequestId, Result<http::Response<Vec<u8>>, TransportError>),
    Saved(u64, Result<(), StoreError>),
    Cleared(Result<(), StoreError>),
    Given(u64, Option<Credentials>),
    Stored(u64, StoreOp, Result<shared::Performed, StoreError>),
}

/// A store operation the flow must see done before it is polled again: new tokens (whose
/// access token the next output may release), or a mark in flight (the next output is the
/// refresh request it announces).
#[derive(Debug)]
enum Unsaved {
    Save(StoredTokens),
    Store(StoreRequest),
}

impl Unsaved {
    fn work(&self, number: u64) -> Work {
        match self {
            Unsaved::Save(tokens) => Work::Save(number, tokens.clone()),
            Unsaved::Store(request) => Work::Store(number, request.clone()),
        }
    }
}

/// What a caller should do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Here is the token (for [`Want::Bearer`]).
    Ready(Bearer),
    /// What the caller waited for happened (for [`Want::Login`] and [`Want::Settled`]).
    Done,
    /// Give up with this error.
    Fail(Error),
    /// Perform this (or have it performed), then ask again.
    Work(Work),
    /// Nothing to do: wait until this instant, or until an outcome is reported.
    Wait(Option<Instant>),
    /// A device login has a user code to show (for [`Want::Login`]); show it and ask again.
    Device(DeviceAuthorization),
}

/// What a caller waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A usable access token.
    Bearer,
    /// The outcome of a login it started: a new access token or a failure.
    Login,
    /// All queued work done and no revocation left (after a logout).
    Settled,
}

/// One caller's view of the engine: what it waits for and what had already happened when it
/// started, so that it reports only the outcomes of its own wait.
#[derive(Debug)]
pub(crate) struct Ticket {
    want: Want,
    failures: u64,
    readies: u64,
    devices: u64,
    logouts: u64,
    /// It has seen `Pending` (or started a login), so a failure from now on is its answer.
    waited: bool,
    /// It has waited on the credentials source once; a second `LoginRequired` is its answer.
    asked: bool,
}

/// The flow with the host-side bookkeeping; see the module documentation.
pub(crate) struct Engine {
    flow: TokenFlow,
    /// The client's clock: where callers' instants become the flow's timestamps.
    clock: HostClock,
    credentials: Option<CredentialsSource>,
    cache: Arc<TokenCache>,
    work: VecDeque<Work>,
    /// A `Save`, `Clear` or `Store` is handed out and not yet reported: the next one waits
    /// for it.
    store_busy: bool,
    /// Tokens handed out for saving and not yet saved (or a shared-store write or mark not
    /// yet reported), numbered. While set, the flow is not polled: the next poll would
    /// release their access token, or hand out the refresh the mark announces.
    unsaved: Option<(u64, Unsaved)>,
    /// The number of the `Save` (or blocking `Store`) queued or being performed, if any.
    save_outstanding: Option<u64>,
    /// Numbers saves and store requests, so that a save finishing after a logout cannot
    /// release later tokens.
    next_save: u64,
    /// The shared store failed to mark a refresh in flight: the lease request that follows
    /// is answered [`StoreReport::Unavailable`] without asking the store, so that a store
    /// failing its marks makes the renewal back off rather than spin.
    mark_failed: bool,
    /// The question to the credentials source queued or being answered, if any.
    asking: Option<u64>,
    /// Numbers questions, so that an answer arriving after a logout is not acted on.
    next_ask: u64,
    idle_until: Option<Timestamp>,
    /// Counts `AccessReady` events.
    readies: u64,
    /// Counts failures; `last_failure` is the latest.
    failures: u64,
    last_failure: Option<Error>,
    login_reason: Option<LoginRequiredReason>,
    /// Counts `DeviceAuthorization` events; `device` is the latest.
    devices: u64,
    device: Option<DeviceAuthorization>,
    /// Counts logouts, which end every wait begun before them.
    logouts: u64,
    /// The revocation outcomes since the last logout.
    logout_report: LogoutReport,
    shut_down: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("flow", &self.flow)
            .field("credentials", &self.credentials.is_some())
            .field("work", &self.work)
            .field("unsaved", &self.unsaved.is_some())
            .field("idle_until", &self.idle_until)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A flow restored from `stored`, or a new one. Reads the clocks and seeds the flow.
    pub(crate) fn new(
        config: Config,
        stored: Option<StoredTokens>,
        credentials: Option<CredentialsSource>,
    ) -> Result<Engine, Error> {
        let (clock, now, wall) = HostClock::start();
        let flow = match stored {
            Some(stored) => {
                TokenFlow::restore(config, stored, seed(), now, wall).map_err(Error::Restore)?
            }
            None => TokenFlow::new(config, seed(), now, wall),
        };
        log::restored(flow.generation());
        Ok(Engine::with_flow(flow, clock, credentials))
    }

    /// A replica sharing its tokens through a shared store (`config` has
    /// [`shared_store`](Config::shared_store) set) that holds `snapshot` now: the flow starts
    /// from it, so a replica carries on with a login another one made.
    pub(crate) fn replica(
        config: Config,
        snapshot: SharedSnapshot,
        credentials: Option<CredentialsSource>,
    ) -> Engine {
        let (clock, now, wall) = HostClock::start();
        let mut flow = TokenFlow::new(config, seed(), now, wall);
        flow.handle_input(now, Input::Store(StoreReport::Changed(snapshot)));
        log::restored(flow.generation());
        Engine::with_flow(flow, clock, credentials)
    }

    fn with_flow(
        flow: TokenFlow,
        clock: HostClock,
        credentials: Option<CredentialsSource>,
    ) -> Engine {
        Engine {
            flow,
            clock,
            credentials,
            cache: Arc::default(),
            work: VecDeque::new(),
            store_busy: false,
            unsaved: None,
            save_outstanding: None,
            next_save: 0,
            mark_failed: false,
            asking: None,
            next_ask: 0,
            idle_until: None,
            readies: 0,
            failures: 0,
            last_failure: None,
            login_reason: None,
            devices: 0,
            device: None,
            logouts: 0,
            logout_report: LogoutReport::default(),
            shut_down: false,
        }
    }

    /// What the flow holds, without a secret.
    pub(crate) fn token_info(&self) -> Option<crate::TokenInfo> {
        self.flow.token_info()
    }

    /// The token at hand, which callers read without this engine's lock.
    pub(crate) fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    /// Whether [`shut_down`](Self::shut_down) was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Starts a wait. A save (or shared-store write) that failed earlier is queued again, so
    /// each new call retries it.
    pub(crate) fn ticket(&mut self, want: Want) -> Ticket {
        if let (Some((number, unsaved)), None) = (&self.unsaved, self.save_outstanding) {
            let work = unsaved.work(*number);
            self.save_outstanding = Some(*number);
            self.queue(work);
        }
        Ticket {
            want,
            failures: self.failures,
            readies: self.readies,
            devices: self.devices,
            logouts: self.logouts,
            waited: want != Want::Bearer,
            asked: false,
        }
    }

    /// Logs in with `credentials`.
    pub(crate) fn login(&mut self, now: Instant, credentials: Credentials) {
        let now = self.clock.at(now);
        log::login(&credentials);
        self.flow.login(now, credentials);
        self.drain(now);
    }

    /// Starts an authorization-code login: the URL to open.
    pub(crate) fn start_authorization(
        &mut self,
        now: Instant,
    ) -> Result<AuthorizationRequest, AuthorizationError> {
        let now = self.clock.at(now);
        let request = self.flow.start_authorization(now);
        self.drain(now);
        request
    }

    /// Completes an authorization-code login with the browser's callback: the code exchange
    /// starts, or the callback is refused.
    pub(crate) fn complete_authorization(
        &mut self,
        now: Instant,
        callback: &str,
    ) -> Result<(), AuthorizationError> {
        let now = self.clock.at(now);
        let result = self.flow.complete_authorization(now, callback);
        self.drain(now);
        result
    }

    /// Starts a device login.
    pub(crate) fn start_device_authorization(
        &mut self,
        now: Instant,
    ) -> Result<(), AuthorizationError> {
        let now = self.clock.at(now);
        let result = self.flow.start_device_authorization(now);
        self.drain(now);
        result
    }

    /// The revocation outcomes recorded since the last logout.
    pub(crate) fn logout_report(&self) -> LogoutReport {
        self.logout_report.clone()
    }

    /// Logs out: every wait begun before ends with [`Error::LoggedOut`], any save or question
    /// not yet started is dropped (and the outcome of one under way ignored), and the flow
    /// forgets the tokens and starts revoking them.
    ///
    /// Shared-store requests are kept, in order, and a write that failed still goes first:
    /// the flow counts every write it asked for, and the clearing the logout asks for expects
    /// the store to hold them (otherwise it would find another version and adopt it).
    pub(crate) fn logout(&mut self, now: Instant) {
        let now = self.clock.at(now);
        self.logouts += 1;
        self.logout_report = LogoutReport::default();
        self.login_reason = None;
        self.cache.clear();
        self.work
            .retain(|w| !matches!(w, Work::Save(..) | Work::Ask(..)));
        if !matches!(self.unsaved, Some((_, Unsaved::Store(_)))) {
            self.save_outstanding = None;
            self.unsaved = None;
        }
        self.mark_failed = false;
        self.asking = None;
        self.flow.logout(now);
        log::logout();
        self.drain(now);
    }

    /// Ends every wait with [`Error::Shutdown`], now and later.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn shut_down(&mut self) {
        self.shut_down = true;
        self.cache.clear();
    }

    /// Reports an API's 401 for a token of `generation`.
    pub(crate) fn unauthorized(
        &mut self,
        now: Instant,
        generation: Generation,
        headers: &http::HeaderMap,
    ) {
        let now = self.clock.at(now);
        log::unauthorized(generation);
        self.cache.clear();
        self.flow
            .handle_input(now, Input::unauthorized(generation, headers));
        self.drain(now);
    }

    /// Reports the outcome of a work item handed out by [`step`](Self::step).
    pub(crate) fn report(&mut self, now: Instant, performed: Performed) {
        let now = self.clock.at(now);
        match performed {
            Performed::Sent(id, result) => {
                let input = match result {
                    Ok(response) => {
                        log::token_response(id, response.status());
                        Input::Response { id, response }
                    }
                    Err(error) => {
                        log::token_transport_failure(id, &error);
                        Input::Failed { id, error }
                    }
                };
                self.flow.handle_input(now, input);
            }
            Performed::Saved(number, result) => {
                self.store_busy = false;
                if self.save_outstanding == Some(number) {
                    self.save_outstanding = None;
                }
                // After a logout (and perhaps a new login) these tokens are no longer the
                // ones held back: the outcome concerns nobody.
                if self.holds_back(number) {
                    match result {
                        Ok(()) => self.unsaved = None,
                        Err(error) => {
                            log::store_failure("save", &error);
                            self.record_failure(Error::store(error));
                        }
                    }
                }
            }
            Performed::Cleared(result) => {
                self.store_busy = false;
                if let Err(error) = result {
                    log::store_failure("clear", &error);
                    self.record_failure(Error::store(error));
                }
            }
            Performed::Given(number, credentials) => {
                if self.asking == Some(number) {
                    self.asking = None;
                    if let Some(credentials) = credentials {
                        log::login(&credentials);
                        self.flow.login(now, credentials);
                    }
                }
            }
            Performed::Stored(number, op, result) => self.on_stored(now, number, op, result),
        }
        self.drain(now);
    }

    /// Whether the save or store write numbered `number` is what keeps the flow unpolled.
    fn holds_back(&self, number: u64) -> bool {
        self.unsaved.as_ref().is_some_and(|(n, _)| *n == number)
    }

    /// The outcome of a shared-store request: what the store said goes to the flow; a
    /// failure is reported as what it means for the protocol (see the module documentation).
    fn on_stored(
        &mut self,
        now: Timestamp,
        number: u64,
        op: StoreOp,
        result: Result<shared::Performed, StoreError>,
    ) {
        self.store_busy = false;
        if self.save_outstanding == Some(number) {
            self.save_outstanding = None;
        }
        let held_back = self.holds_back(number);
        let report = match result {
            Ok(performed) => {
                if held_back {
                    self.unsaved = None;
                }
                performed.report
            }
            Err(error) => {
                log::store_failure(op.during(), &error);
                match op {
                    StoreOp::AcquireLease => Some(StoreReport::Unavailable),
                    // The mark may not be written, so the refresh must not go.
                    StoreOp::MarkInFlight => {
                        if held_back {
                            self.unsaved = None;
                        }
                        self.mark_failed = true;
                        Some(StoreReport::LeaseLost)
                    }
                    // Held back like unsaved tokens, until a later call writes them.
                    StoreOp::Write => {
                        if held_back {
                            self.record_failure(Error::store(error));
                        }
                        None
                    }
                    // The lease runs out by itself.
                    StoreOp::ReleaseLease => None,
                }
            }
        };
        if let Some(report) = report {
            self.flow.handle_input(now, Input::Store(report));
        }
    }

    /// Reports what the shared store holds after its change feed announced a change (another
    /// replica wrote tokens or released the lease).
    pub(crate) fn store_changed(&mut self, now: Instant, snapshot: SharedSnapshot) {
        let now = self.clock.at(now);
        self.flow
            .handle_input(now, Input::Store(StoreReport::Changed(snapshot)));
        self.drain(now);
    }

    /// Reports that a work item was handed out and will never complete (its performer
    /// panicked, or its task was dropped). A token request is a failure that may have reached
    /// the server, a save or deletion a store failure, a question unanswered.
    pub(crate) fn abandoned(&mut self, now: Instant, taken: Taken) {
        let interrupted = |what: &str| StoreError::Io {
            path: std::path::PathBuf::new(),
            source: std::io::Error::other(format!("the {what} was interrupted")),
        };
        let performed = match taken {
            Taken::Send(id) => Performed::Sent(
                id,
                Err(TransportError::interrupted(
                    "the token request was abandoned",
                )),
            ),
            Taken::Save(number) => Performed::Saved(number, Err(interrupted("save"))),
            Taken::Clear => Performed::Cleared(Err(interrupted("deletion"))),
            Taken::Ask(number) => Performed::Given(number, None),
            Taken::Store(number, op) => {
                let interrupted = std::io::Error::other("the store operation was interrupted");
                Performed::Stored(
                    number,
                    op,
                    Err(StoreError::shared(op.during(), interrupted)),
                )
            }
        };
        self.report(now, performed);
    }

    /// The next step for `ticket`.
    pub(crate) fn step(&mut self, now: Instant, ticket: &mut Ticket) -> Step {
        let now = self.clock.at(now);
        if self.shut_down {
            return Step::Fail(Error::Shutdown);
        }
        if ticket.want != Want::Settled && ticket.logouts != self.logouts {
            return Step::Fail(Error::LoggedOut);
        }
        if self.idle_until.is_some_and(|until| until <= now) {
            self.flow.handle_input(now, Input::Timeout);
        }
        self.drain(now);
        if ticket.want == Want::Login && ticket.devices != self.devices {
            ticket.devices = self.devices;
            if let Some(device) = self.device.clone() {
                return Step::Device(device);
            }
        }
        if ticket.waited && self.failures != ticket.failures {
            return Step::Fail(self.failure());
        }
        match ticket.want {
            Want::Login => {
                if self.readies != ticket.readies {
                    return Step::Done;
                }
                self.work_or_wait()
            }
            Want::Settled => match self.take_work() {
                Some(work) => Step::Work(work),
                // A store write under way, or a revocation backing off before its retry.
                None if !self.work.is_empty() || self.store_busy || self.flow.revoking() => {
                    self.wait()
                }
                None => Step::Done,
            },
            Want::Bearer => self.bearer_step(now, ticket),
        }
    }

    fn bearer_step(&mut self, now: Timestamp, ticket: &mut Ticket) -> Step {
        let access = self.flow.access(now);
        self.drain(now);
        match access {
            // A ready token may come with work (a proactive renewal starting): the caller
            // performs it (or hands it to a task) and asks again, so that it is never left
            // queued while every caller takes the token.
            Access::Ready(bearer) => match self.take_work() {
                Some(work) => Step::Work(work),
                None => {
                    self.keep_at_hand(&bearer);
                    Step::Ready(bearer)
                }
            },
            Access::Pending => {
                ticket.waited = true;
                self.work_or_wait()
            }
            Access::LoginRequired => {
                if let Some(work) = self.take_work() {
                    return Step::Work(work);
                }
                if self.asking.is_some() {
                    // Another caller's question to the credentials source is this one's too.
                    ticket.waited = true;
                    ticket.asked = true;
                    return self.wait();
                }
                if !ticket.asked && self.credentials.is_some() {
                    ticket.asked = true;
                    ticket.waited = true;
                    self.ask();
                    return self.work_or_wait();
                }
                Step::Fail(Error::LoginRequired {
                    reason: self.login_reason.clone(),
                })
            }
        }
    }

    /// Caches `bearer` when nothing is left to do, until the flow next needs attention or the
    /// token ends, whichever is first.
    fn keep_at_hand(&self, bearer: &Bearer) {
        if !self.work.is_empty() {
            return;
        }
        let Some(expires_at) = self.flow.bearer_expires_at() else {
            return;
        };
        let valid_until = match self.idle_until {
            Some(until) => until.min(expires_at),
            None => expires_at,
        };
        self.cache
            .set(bearer.clone(), self.clock.instant(valid_until));
    }

    /// The next work item, unless it is a store write waiting for the one under way.
    fn take_work(&mut self) -> Option<Work> {
        let front = self.work.front()?;
        if front.is_store() {
            if self.store_busy {
                return None;
            }
            self.store_busy = true;
        }
        self.work.pop_front()
    }

    fn work_or_wait(&mut self) -> Step {
        match self.take_work() {
            Some(work) => Step::Work(work),
            None => self.wait(),
        }
    }

    /// Wait until the flow next needs the time, or until someone reports.
    fn wait(&self) -> Step {
        Step::Wait(self.idle_until.map(|until| self.clock.instant(until)))
    }

    /// Queues work; callers must come to the engine to find it, so the cache is emptied.
    fn queue(&mut self, work: Work) {
        self.cache.clear();
        self.work.push_back(work);
    }

    /// Queues a question to the credentials source, unless one is under way.
    fn ask(&mut self) {
        let Some(source) = &self.credentials else {
            return;
        };
        if self.asking.is_some() {
            return;
        }
        let number = self.next_ask;
        self.next_ask += 1;
        self.asking = Some(number);
        let work = Work::Ask(number, Arc::clone(source));
        self.queue(work);
    }

    fn failure(&self) -> Error {
        self.last_failure.clone().unwrap_or(Error::LoginRequired {
            reason: self.login_reason.clone(),
        })
    }

    fn record_failure(&mut self, error: Error) {
        self.failures += 1;
        self.last_failure = Some(error);
    }

    /// Polls the flow until `Idle`, or until tokens must be saved before it may go on.
    fn drain(&mut self, now: Timestamp) {
        if self.unsaved.is_some() {
            return;
        }
        for _ in 0..DRAIN_BOUND {
            match self.flow.poll_output() {
                Output::Idle { until } => {
                    self.idle_until = until;
                    return;
                }
                Output::Send(request) => {
                    log::token_request(&request);
                    // The flow gives up at its deadline (and retries, or reports); the
                    // transport is let run for one more request timeout, so that an answer
                    // that comes late still reaches the flow: a renewal's late answer holds
                    // the only live successor of a rotated refresh token.
                    let patience = self.flow.config().request_timeout();
                    let deadline = self
                        .clock
                        .instant(request.deadline.saturating_add(patience));
                    self.queue(Work::Send(request, deadline));
                }
                Output::Event(event) => {
                    if self.on_event(now, event) {
                        return;
                    }
                }
            }
        }
        // Not expected; the next step drains on.
        self.idle_until = Some(now);
    }

    /// Acts on an event; true when polling must stop until the tokens are saved (or the
    /// shared store written).
    fn on_event(&mut self, now: Timestamp, event: Event) -> bool {
        log::event(&event);
        match event {
            Event::TokensUpdated(tokens) => {
                self.hold_back(Unsaved::Save(tokens));
                return true;
            }
            Event::TokensCleared => self.queue(Work::Clear),
            // A new token comes with work that emptied the cache (a save, a store write), or
            // from the shared store without any: either way the next caller takes it from
            // the flow, and keeps it at hand.
            Event::AccessReady { .. } => {
                self.cache.clear();
                self.readies += 1;
                self.login_reason = None;
            }
            Event::LoginRequired { reason } => {
                self.login_reason = Some(reason);
                self.ask();
            }
            Event::Failed(error) => self.record_failure(Error::TokenRequest(error)),
            Event::DeviceAuthorization(device) => {
                self.devices += 1;
                self.device = Some(device);
            }
            event @ (Event::Revoked { .. } | Event::RevocationFailed { .. }) => {
                self.logout_report.record(&event);
            }
            Event::Store(StoreRequest::AcquireLease) if self.mark_failed => {
                // The store failed to mark a refresh a moment ago: taking the lease again at
                // once would fail the same way, as fast as it can. The renewal backs off
                // instead, like a failed request, and takes the lease after the backoff.
                self.mark_failed = false;
                self.flow
                    .handle_input(now, Input::Store(StoreReport::Unavailable));
            }
            Event::Store(
                request @ (StoreRequest::MarkInFlight { .. }
                | StoreRequest::TokensUpdated { .. }
                | StoreRequest::TokensCleared { .. }),
            ) => {
                self.hold_back(Unsaved::Store(request));
                return true;
            }
            Event::Store(request) => {
                let number = self.number();
                self.queue(Work::Store(number, request));
            }
        }
        false
    }

    /// Queues `unsaved` as the next store work and keeps the flow unpolled until it is done.
    fn hold_back(&mut self, unsaved: Unsaved) {
        let number = self.number();
        self.queue(unsaved.work(number));
        self.unsaved = Some((number, unsaved));
        self.save_outstanding = Some(number);
    }

    /// The number of the next save or store request.
    fn number(&mut self) -> u64 {
        let number = self.next_save;
        self.next_save += 1;
        number
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn config() -> Config {
        Config::builder("https://id.example/token", "client")
            .client_secret("secret")
            .build()
            .unwrap()
    }

    fn token_response(n: u32) -> http::Response<Vec<u8>> {
        let body = format!(
            r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{n}"}}"#
        );
        http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap()
    }

    /// A credentials source giving client credentials (or nothing), counting its calls.
    fn source(gives: bool) -> (CredentialsSource, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let source: CredentialsSource = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            gives.then_some(Credentials::ClientCredentials)
        });
        (source, calls)
    }

    fn work(step: Step) -> Work {
        match step {
            Step::Work(work) => work,
            other => panic!("expected work, got {other:?}"),
        }
    }

    fn generation(step: Step) -> u64 {
        match step {
            Step::Ready(bearer) => bearer.generation().get(),
            other => panic!("expected a token, got {other:?}"),
        }
    }

    /// Performs a question to the credentials source as a client would, outside the engine.
    fn answer(engine: &mut Engine, now: Instant, work: Work) {
        let Work::Ask(number, source) = work else {
            panic!("expected a question, got {work:?}");
        };
        engine.report(now, Performed::Given(number, source()));
    }

    /// Answers a token request with token set `n`.
    fn respond(engine: &mut Engine, now: Instant, work: Work, n: u32) {
        let Work::Send(request, _) = work else {
            panic!("expected a token request, got {work:?}");
        };
        engine.report(now, Performed::Sent(request.id, Ok(token_response(n))));
    }

    fn save(engine: &mut Engine, now: Instant, work: Work, result: Result<(), StoreError>) {
        let Work::Save(number, _) = work else {
            panic!("expected a save, got {work:?}");
        };
        engine.report(now, Performed::Saved(number, result));
    }

    fn disk_full() -> StoreError {
        StoreError::Io {
            path: "tokens.json".into(),
            source: std::io::Error::other("disk full"),
        }
    }

    /// Logs in with client credentials and saves the tokens: a token of generation 1 is held.
    fn logged_in(now: Instant) -> Engine {
        let mut engine = Engine::new(config(), None, None).unwrap();
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::ClientCredentials);
        let send = work(engine.step(now, &mut login));
        respond(&mut engine, now, send, 1);
        let stored = work(engine.step(now, &mut login));
        save(&mut engine, now, stored, Ok(()));
        assert!(matches!(engine.step(now, &mut login), Step::Done));
        engine
    }

    /// A replica's configuration: one send per renewal, so that a failure shows at once.
    fn replica_config() -> Config {
        Config::builder("https://id.example/token", "client")
            .client_secret("secret")
            .shared_store(true)
            .retry(crate::RetryPolicy {
                max_retries: 0,
                ..crate::RetryPolicy::default()
            })
            .build()
            .unwrap()
    }

    /// A replica whose password login was answered with token set 1, and the login's ticket:
    /// the write of the new tokens comes next.
    fn replica_answered_login(now: Instant) -> (Engine, Ticket) {
        let mut engine = Engine::replica(replica_config(), SharedSnapshot::empty(), None);
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::password("joe", "pw"));
        let send = work(engine.step(now, &mut login));
        respond(&mut engine, now, send, 1);
        (engine, login)
    }

    fn store_work(step: Step) -> (u64, StoreRequest) {
        match work(step) {
            Work::Store(number, request) => (number, request),
            other => panic!("expected store work, got {other:?}"),
        }
    }

    /// Reports a store request performed, the store answering `report`.
    fn stored(
        engine: &mut Engine,
        now: Instant,
        (number, request): (u64, StoreRequest),
        report: Option<StoreReport>,
    ) {
        let performed = shared::Performed {
            report,
            changed: true,
        };
        engine.report(
            now,
            Performed::Stored(number, StoreOp::of(&request), Ok(performed)),
        );
    }

    /// Reports a store request failed.
    fn store_failed(engine: &mut Engine, now: Instant, (number, request): (u64, StoreRequest)) {
        let error = StoreError::shared("testing", std::io::Error::other("the store is down"));
        engine.report(
            now,
            Performed::Stored(number, StoreOp::of(&request), Err(error)),
        );
    }

    /// A replica logged in with a password (its renewals are refreshes), its tokens written
    /// at version 1: the engine and what the store holds.
    fn replica_logged_in(now: Instant) -> (Engine, SharedSnapshot) {
        let (mut engine, mut login) = replica_answered_login(now);
        let write = store_work(engine.step(now, &mut login));
        let StoreRequest::TokensUpdated {
            tokens,
            expected_version,
        } = &write.1
        else {
            panic!("expected the tokens written, got {write:?}");
        };
        assert_eq!(*expected_version, shared::StoreVersion::EMPTY);
        let held = SharedSnapshot {
            version: expected_version.next(),
            tokens: Some(tokens.clone()),
            in_flight: None,
        };
        stored(&mut engine, now, write, None);
        assert!(matches!(engine.step(now, &mut login), Step::Done));
        (engine, held)
    }

    /// Refuses the token a caller holds: a renewal starts, asking for the lease.
    fn renewal(engine: &mut Engine, now: Instant) -> Ticket {
        let mut holder = engine.ticket(Want::Bearer);
        let Step::Ready(held) = engine.step(now, &mut holder) else {
            panic!("a token is held");
        };
        engine.unauthorized(now, held.generation(), &http::HeaderMap::new());
        engine.ticket(Want::Bearer)
    }

    /// `caller`'s renewal asks for the lease, which the store grants on `held`: the mark of
    /// the refresh in flight that comes next, not yet performed.
    fn lease_granted(
        engine: &mut Engine,
        now: Instant,
        caller: &mut Ticket,
        held: SharedSnapshot,
    ) -> (u64, StoreRequest) {
        let lease = store_work(engine.step(now, caller));
        assert_eq!(lease.1, StoreRequest::AcquireLease);
        let granted = StoreReport::Lease(shared::LeaseAnswer::Granted(held));
        stored(engine, now, lease, Some(granted));
        let mark = store_work(engine.step(now, caller));
        assert!(
            matches!(mark.1, StoreRequest::MarkInFlight { .. }),
            "{mark:?}"
        );
        mark
    }

    /// The renewal failed as one that found the shared store unavailable.
    fn assert_failed_store_unavailable(step: Step) {
        match step {
            Step::Fail(Error::TokenRequest(error)) => {
                assert_eq!(error.cause, crate::FailureCause::SharedStoreUnavailable);
            }
            other => panic!("expected the renewal to fail, got {other:?}"),
        }
    }

    #[test]
    fn a_replica_starts_from_the_login_in_the_store_and_adopts_changes_without_a_request() {
        let now = Instant::now();
        let (_, held) = replica_logged_in(now);
        let mut engine = Engine::replica(replica_config(), held.clone(), None);
        let mut caller = engine.ticket(Want::Bearer);
        let first = generation(engine.step(now, &mut caller));
        assert!(engine.work.is_empty());

        // Another replica renewed: the change is adopted, and the token at hand replaced.
        let (other, _) = replica_logged_in(now);
        let mut renewed = other.flow.stored_tokens().unwrap();
        renewed.access_token = Some(crate::secret::AccessToken::new("AT-other"));
        assert!(engine.cache().get_at(now).is_some());
        engine.store_changed(
            now,
            SharedSnapshot {
                version: held.version.next(),
                tokens: Some(renewed),
                in_flight: None,
            },
        );
        assert!(engine.cache().get_at(now).is_none());
        let mut caller = engine.ticket(Want::Bearer);
        assert!(generation(engine.step(now, &mut caller)) > first);
        assert!(engine.work.is_empty(), "no request");
    }

    #[test]
    fn store_work_is_handed_out_in_order_and_the_flow_waits_for_marks_and_writes() {
        let now = Instant::now();
        let (mut engine, mut login) = replica_answered_login(now);

        // The write is out: nobody gets the token, and nothing else comes out of the flow.
        let write = store_work(engine.step(now, &mut login));
        let mut early = engine.ticket(Want::Bearer);
        assert!(matches!(engine.step(now, &mut early), Step::Wait(_)));
        assert!(engine.work.is_empty());
        assert_eq!(engine.readies, 0, "the access token is not released");
        let StoreRequest::TokensUpdated { tokens, .. } = &write.1 else {
            panic!("{write:?}");
        };
        let held = SharedSnapshot {
            version: shared::StoreVersion::new(1),
            tokens: Some(tokens.clone()),
            in_flight: None,
        };
        stored(&mut engine, now, write, None);
        assert!(matches!(engine.step(now, &mut login), Step::Done));
        assert_eq!(generation(engine.step(now, &mut early)), 1);

        // A renewal takes the lease, then marks the refresh in flight: while the mark is
        // out, the refresh request stays in the flow.
        let mut caller = renewal(&mut engine, now);
        let mark = lease_granted(&mut engine, now, &mut caller, held);
        let mut other = engine.ticket(Want::Bearer);
        assert!(matches!(engine.step(now, &mut other), Step::Wait(_)));
        assert!(engine.work.is_empty(), "the refresh waits for its mark");
        stored(&mut engine, now, mark, None);
        let refresh = work(engine.step(now, &mut caller));
        assert!(matches!(refresh, Work::Send(..)), "{refresh:?}");
        respond(&mut engine, now, refresh, 2);

        // The new tokens are written, then the lease released; a logout's clearing waits
        // for the release under way, and comes after it.
        let write = store_work(engine.step(now, &mut caller));
        assert!(
            matches!(
                write.1,
                StoreRequest::TokensUpdated { expected_version, .. }
                    if expected_version == shared::StoreVersion::new(1)
            ),
            "{write:?}"
        );
        stored(&mut engine, now, write, None);
        let release = store_work(engine.step(now, &mut caller));
        assert_eq!(
            release.1,
            StoreRequest::ReleaseLease {
                clear_in_flight: true
            }
        );
        let mut logout = engine.ticket(Want::Settled);
        engine.logout(now);
        assert!(matches!(engine.step(now, &mut logout), Step::Wait(_)));
        stored(&mut engine, now, release, None);
        let clear = store_work(engine.step(now, &mut logout));
        assert_eq!(
            clear.1,
            StoreRequest::TokensCleared {
                expected_version: shared::StoreVersion::new(2)
            }
        );
        stored(&mut engine, now, clear, None);
        assert!(matches!(engine.step(now, &mut logout), Step::Done));
    }

    #[test]
    fn a_lease_the_store_cannot_give_fails_the_renewal_without_a_request() {
        let now = Instant::now();
        let (mut engine, _) = replica_logged_in(now);
        let mut caller = renewal(&mut engine, now);
        let lease = store_work(engine.step(now, &mut caller));
        assert_eq!(lease.1, StoreRequest::AcquireLease);
        store_failed(&mut engine, now, lease);
        assert_failed_store_unavailable(engine.step(now, &mut caller));
        assert!(engine.work.is_empty());
    }

    #[test]
    fn a_mark_the_store_cannot_write_withdraws_the_refresh_and_backs_off() {
        let now = Instant::now();
        let (mut engine, held) = replica_logged_in(now);
        let mut caller = renewal(&mut engine, now);
        let mark = lease_granted(&mut engine, now, &mut caller, held);
        store_failed(&mut engine, now, mark);
        // Not sent, and the lease is not asked for again at once: the renewal fails like a
        // request that found the store unavailable (no retries configured).
        assert_failed_store_unavailable(engine.step(now, &mut caller));
        assert!(engine.work.is_empty(), "{:?}", engine.work);
    }

    #[test]
    fn tokens_the_store_cannot_write_are_held_back_and_written_by_the_next_call() {
        let now = Instant::now();
        let (mut engine, mut login) = replica_answered_login(now);
        let write = store_work(engine.step(now, &mut login));
        let first = write.1.clone();
        store_failed(&mut engine, now, write);
        match engine.step(now, &mut login) {
            Step::Fail(Error::Store(error)) => {
                assert!(matches!(*error, StoreError::Shared { .. }), "{error}");
            }
            other => panic!("expected a store error, got {other:?}"),
        }
        assert_eq!(engine.readies, 0);

        // The next call writes the same tokens again, and then uses them.
        let mut next = engine.ticket(Want::Bearer);
        let again = store_work(engine.step(now, &mut next));
        assert_eq!(again.1, first);
        stored(&mut engine, now, again, None);
        assert_eq!(generation(engine.step(now, &mut next)), 1);
    }

    #[test]
    fn a_lease_the_store_cannot_release_concerns_no_caller() {
        let now = Instant::now();
        let (mut engine, held) = replica_logged_in(now);
        let mut caller = renewal(&mut engine, now);
        let mark = lease_granted(&mut engine, now, &mut caller, held);
        stored(&mut engine, now, mark, None);
        let refresh = work(engine.step(now, &mut caller));
        respond(&mut engine, now, refresh, 2);
        let write = store_work(engine.step(now, &mut caller));
        stored(&mut engine, now, write, None);
        let release = store_work(engine.step(now, &mut caller));
        assert!(matches!(release.1, StoreRequest::ReleaseLease { .. }));
        store_failed(&mut engine, now, release);
        assert_eq!(generation(engine.step(now, &mut caller)), 2);
    }

    #[test]
    fn abandoned_store_work_never_sends_an_unmarked_refresh_nor_loses_tokens() {
        let now = Instant::now();
        let (mut engine, held) = replica_logged_in(now);
        let mut caller = renewal(&mut engine, now);
        let (number, mark) = lease_granted(&mut engine, now, &mut caller, held.clone());
        engine.abandoned(now, Work::Store(number, mark).taken());
        assert!(matches!(
            engine.step(now, &mut caller),
            Step::Fail(Error::TokenRequest(_))
        ));
        assert!(engine.work.is_empty(), "no refresh sent: {:?}", engine.work);

        // A later renewal's write abandoned: its callers fail, the tokens stay held back
        // and the next call writes them.
        let mut caller = engine.ticket(Want::Bearer);
        let mark = lease_granted(&mut engine, now, &mut caller, held);
        stored(&mut engine, now, mark, None);
        let refresh = work(engine.step(now, &mut caller));
        respond(&mut engine, now, refresh, 2);
        let write = work(engine.step(now, &mut caller));
        let Work::Store(_, written) = &write else {
            panic!("expected the write, got {write:?}");
        };
        let written = written.clone();
        engine.abandoned(now, write.taken());
        assert!(matches!(
            engine.step(now, &mut caller),
            Step::Fail(Error::Store(_))
        ));
        let mut next = engine.ticket(Want::Bearer);
        let again = store_work(engine.step(now, &mut next));
        assert_eq!(again.1, written);
        stored(&mut engine, now, again, None);
        let release = store_work(engine.step(now, &mut next));
        stored(&mut engine, now, release, None);
        assert_eq!(generation(engine.step(now, &mut next)), 2);
    }

    #[test]
    fn a_herd_of_callers_shares_one_question_and_one_token_request() {
        let now = Instant::now();
        let (source, asked) = source(true);
        let mut engine = Engine::new(config(), None, Some(source)).unwrap();
        let mut herd: Vec<Ticket> = (0..5).map(|_| engine.ticket(Want::Bearer)).collect();

        let question = work(engine.step(now, &mut herd[0]));
        for ticket in &mut herd[1..] {
            assert!(matches!(engine.step(now, ticket), Step::Wait(_)));
        }
        // The engine never calls the source itself: the client does, outside the lock.
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        answer(&mut engine, now, question);
        assert_eq!(asked.load(Ordering::SeqCst), 1);

        let request = work(engine.step(now, &mut herd[1]));
        for ticket in &mut herd {
            assert!(matches!(engine.step(now, ticket), Step::Wait(_)));
        }
        respond(&mut engine, now, request, 1);
        let stored = work(engine.step(now, &mut herd[2]));
        save(&mut engine, now, stored, Ok(()));
        for ticket in &mut herd {
            assert_eq!(generation(engine.step(now, ticket)), 1);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_token_is_released_only_once_saved_and_a_failed_save_is_retried_by_the_next_call() {
        let now = Instant::now();
        let mut engine = Engine::new(config(), None, None).unwrap();
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::ClientCredentials);
        let request = work(engine.step(now, &mut login));
        respond(&mut engine, now, request, 1);

        let stored = work(engine.step(now, &mut login));
        let mut early = engine.ticket(Want::Bearer);
        assert!(matches!(engine.step(now, &mut early), Step::Wait(_)));
        assert!(engine.work.is_empty(), "one save at a time");
        assert!(engine.cache().get_at(now).is_none());
        save(&mut engine, now, stored, Err(disk_full()));
        assert!(matches!(
            engine.step(now, &mut login),
            Step::Fail(Error::Store(_))
        ));
        assert!(matches!(
            engine.step(now, &mut early),
            Step::Fail(Error::Store(_))
        ));

        // A new call saves them again, and only then uses them.
        let mut next = engine.ticket(Want::Bearer);
        let again = work(engine.step(now, &mut next));
        assert!(matches!(again, Work::Save(..)), "{again:?}");
        save(&mut engine, now, again, Ok(()));
        assert_eq!(generation(engine.step(now, &mut next)), 1);
    }

    #[test]
    fn store_writes_wait_for_each_other_and_a_late_save_releases_nothing() {
        let now = Instant::now();
        let mut engine = Engine::new(config(), None, None).unwrap();
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::ClientCredentials);
        let request = work(engine.step(now, &mut login));
        respond(&mut engine, now, request, 1);
        let slow_save = work(engine.step(now, &mut login));

        // A logout while the save is under way: its deletion waits for the save.
        let mut logout = engine.ticket(Want::Settled);
        engine.logout(now);
        assert!(matches!(engine.step(now, &mut logout), Step::Wait(_)));
        assert!(matches!(
            engine.step(now, &mut login),
            Step::Fail(Error::LoggedOut)
        ));
        save(&mut engine, now, slow_save, Ok(()));
        let clear = work(engine.step(now, &mut logout));
        assert!(matches!(clear, Work::Clear), "{clear:?}");
        engine.report(now, Performed::Cleared(Ok(())));
        assert!(matches!(engine.step(now, &mut logout), Step::Done));

        // The late save released nothing: the tokens are gone.
        let mut after = engine.ticket(Want::Bearer);
        assert!(matches!(
            engine.step(now, &mut after),
            Step::Fail(Error::LoginRequired { reason: None })
        ));
    }

    #[test]
    fn an_answer_from_the_credentials_source_after_a_logout_is_ignored() {
        let now = Instant::now();
        let (source, asked) = source(true);
        let mut engine = Engine::new(config(), None, Some(source)).unwrap();
        let mut caller = engine.ticket(Want::Bearer);
        let question = work(engine.step(now, &mut caller));
        engine.logout(now);
        answer(&mut engine, now, question);
        assert_eq!(engine.flow.request_in_flight(), None, "no login started");
        assert!(matches!(
            engine.step(now, &mut caller),
            Step::Fail(Error::LoggedOut)
        ));
        // A new call asks again.
        let mut next = engine.ticket(Want::Bearer);
        assert!(matches!(
            engine.step(now, &mut next),
            Step::Work(Work::Ask(..))
        ));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_source_giving_nothing_fails_the_callers_it_was_asked_for_once() {
        let now = Instant::now();
        let (source, asked) = source(false);
        let mut engine = Engine::new(config(), None, Some(source)).unwrap();
        let mut first = engine.ticket(Want::Bearer);
        let mut second = engine.ticket(Want::Bearer);
        let question = work(engine.step(now, &mut first));
        assert!(matches!(engine.step(now, &mut second), Step::Wait(_)));
        answer(&mut engine, now, question);
        for ticket in [&mut first, &mut second] {
            assert!(matches!(
                engine.step(now, ticket),
                Step::Fail(Error::LoginRequired { reason: None })
            ));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn abandoned_work_never_leaves_callers_waiting() {
        let now = Instant::now();
        let mut engine = Engine::new(config(), None, None).unwrap();
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::ClientCredentials);
        let request = work(engine.step(now, &mut login));
        let Work::Send(sent, _) = &request else {
            panic!("{request:?}")
        };
        engine.abandoned(now, request.taken());
        assert_ne!(engine.flow.request_in_flight(), Some(sent.id));

        // The retry, answered; its save abandoned: the login fails with a store error.
        let retry = loop {
            match engine.step(now + Duration::from_secs(60), &mut login) {
                Step::Work(work) => break work,
                Step::Wait(_) => continue,
                other => panic!("{other:?}"),
            }
        };
        respond(&mut engine, now, retry, 1);
        let stored = work(engine.step(now, &mut login));
        engine.abandoned(now, stored.taken());
        assert!(matches!(
            engine.step(now, &mut login),
            Step::Fail(Error::Store(_))
        ));
    }

    #[test]
    fn the_token_at_hand_lasts_until_the_renewal_point_and_goes_with_a_401() {
        let now = Instant::now();
        let mut engine = logged_in(now);
        assert!(
            engine.cache().get_at(now).is_none(),
            "filled when handed out"
        );
        let mut caller = engine.ticket(Want::Bearer);
        assert_eq!(generation(engine.step(now, &mut caller)), 1);
        let cached = engine.cache().get_at(now).expect("a token at hand");
        assert_eq!(cached.generation().get(), 1);
        // Renewal is due 30 s before the hour ends (counted from the engine's start, a moment
        // after `now`).
        assert!(
            engine
                .cache()
                .get_at(now + Duration::from_secs(3569))
                .is_some()
        );
        assert!(
            engine
                .cache()
                .get_at(now + Duration::from_secs(3571))
                .is_none()
        );

        engine.unauthorized(now, cached.generation(), &http::HeaderMap::new());
        assert!(engine.cache().get_at(now).is_none());
    }

    #[test]
    fn a_logout_and_a_new_token_empty_the_token_at_hand() {
        let now = Instant::now();
        let mut engine = logged_in(now);
        let mut caller = engine.ticket(Want::Bearer);
        assert_eq!(generation(engine.step(now, &mut caller)), 1);
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::ClientCredentials);
        // A login under way leaves the current token in use...
        assert!(engine.cache().get_at(now).is_none(), "work queued");
        let request = work(engine.step(now, &mut login));
        let mut caller = engine.ticket(Want::Bearer);
        assert_eq!(generation(engine.step(now, &mut caller)), 1);
        assert!(engine.cache().get_at(now).is_some());
        // ...until the new one is ready.
        respond(&mut engine, now, request, 2);
        assert!(engine.cache().get_at(now).is_none());
        let stored = work(engine.step(now, &mut login));
        save(&mut engine, now, stored, Ok(()));
        assert!(matches!(engine.step(now, &mut login), Step::Done));
        let mut caller = engine.ticket(Want::Bearer);
        assert_eq!(generation(engine.step(now, &mut caller)), 2);
        assert_eq!(engine.cache().get_at(now).unwrap().generation().get(), 2);

        engine.logout(now);
        assert!(engine.cache().get_at(now).is_none());
    }

    #[test]
    fn a_refresh_token_that_may_be_spent_is_answered_by_the_credentials_source() {
        let now = Instant::now();
        let (source, asked) = source(true);
        let mut engine = Engine::new(config(), None, Some(source)).unwrap();
        let mut login = engine.ticket(Want::Login);
        engine.login(now, Credentials::password("joe", "pw"));
        let request = work(engine.step(now, &mut login));
        respond(&mut engine, now, request, 1);
        let stored = work(engine.step(now, &mut login));
        save(&mut engine, now, stored, Ok(()));
        assert!(matches!(engine.step(now, &mut login), Step::Done));

        // The renewal after a 401 goes unanswered: under strict reuse its refresh token must
        // not be presented again.
        let mut holder = engine.ticket(Want::Bearer);
        let Step::Ready(held) = engine.step(now, &mut holder) else {
            panic!("a token is held");
        };
        engine.unauthorized(now, held.generation(), &http::HeaderMap::new());
        let mut caller = engine.ticket(Want::Bearer);
        let renewal = work(engine.step(now, &mut caller));
        let Work::Send(sent, _) = &renewal else {
            panic!("expected the renewal, got {renewal:?}");
        };
        engine.report(
            now,
            Performed::Sent(sent.id, Err(TransportError::timed_out("no answer"))),
        );
        assert_eq!(
            engine.login_reason,
            Some(LoginRequiredReason::RefreshTokenMayBeSpent)
        );

        // A later caller gets a new login from the source, as for any other reason.
        let mut next = engine.ticket(Want::Bearer);
        let question = work(engine.step(now, &mut next));
        answer(&mut engine, now, question);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        let relogin = work(engine.step(now, &mut next));
        let Work::Send(request, _) = &relogin else {
            panic!("expected the new login, got {relogin:?}");
        };
        let body = String::from_utf8_lossy(request.request.body()).into_owned();
        assert!(body.contains("grant_type=client_credentials"), "{body}");
        respond(&mut engine, now, relogin, 2);
        let stored = work(engine.step(now, &mut next));
        save(&mut engine, now, stored, Ok(()));
        assert_eq!(generation(engine.step(now, &mut next)), 2);
    }

    #[test]
    fn a_shut_down_engine_fails_every_wait() {
        let now = Instant::now();
        let mut engine = logged_in(now);
        let mut caller = engine.ticket(Want::Bearer);
        assert_eq!(generation(engine.step(now, &mut caller)), 1);
        engine.shut_down();
        assert!(engine.cache().get_at(now).is_none());
        for want in [Want::Bearer, Want::Login, Want::Settled] {
            let mut ticket = engine.ticket(want);
            assert!(matches!(
                engine.step(now, &mut ticket),
                Step::Fail(Error::Shutdown)
            ));
        }
    }
}
