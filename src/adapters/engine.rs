//! The part of a run loop that does not depend on how IO is done: it drains the flow, turns
//! its outputs into [`Work`] for whoever performs IO, remembers the outcomes callers wait for,
//! answers `LoginRequired` from a credentials source, and reads the clocks. Callers speak in
//! [`Instant`]s; the engine turns them into the flow's timestamps with its [`HostClock`].
//!
//! An adapter keeps one [`Engine`] behind its lock and asks it for a [`Step`] on behalf of each
//! caller. The engine never performs IO itself, so the lock is never held across any: an
//! adapter takes a [`Work`] item out, unlocks, performs it, locks again and feeds the result
//! back. Work items are handed out in the order the flow produced them, one at a time, so
//! store writes keep their order and a token is never released before it is saved.
//!
//! Nothing here blocks or sleeps, so an async adapter can use it as well as the blocking one.
#![cfg_attr(not(feature = "blocking"), allow(dead_code))]

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::adapters::clock::HostClock;
use crate::adapters::driver::{DRAIN_BOUND, seed};
use crate::adapters::interactive::{DeviceEnd, LogoutReport, device_end};
use crate::adapters::log;
use crate::adapters::store::StoreError;
use crate::api_origin::ApiRequestError;
use crate::discovery::DiscoveryError;
use crate::error::FlowError;
use crate::grant::Credentials;
use crate::input::{Input, TransportError};
use crate::interactive::{AuthorizationError, AuthorizationRequest, DeviceAuthorization};
use crate::output::{Access, Bearer, Event, Generation, HttpRequest, LoginRequiredReason, Output};
use crate::time::Timestamp;
use crate::token::{RestoreError, StoredTokens};
use crate::{Config, TokenFlow};

/// Answers `LoginRequired`: returns credentials to log in with, or `None` to leave the
/// callers with [`Error::LoginRequired`].
pub(crate) type CredentialsSource = Box<dyn FnMut() -> Option<Credentials> + Send>;

/// Why an adapter could not give a caller what it asked for. `Display` never shows a secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// No token can be had without a new login, and no credentials source supplied one.
    LoginRequired {
        /// Why the flow asked for a login; `None` when no login ever happened.
        reason: Option<LoginRequiredReason>,
    },
    /// The token request failed for good, after its retries.
    TokenRequest(FlowError),
    /// The token store failed. When a save failed, the new tokens are held back until a
    /// later call manages to save them.
    Store(Arc<StoreError>),
    /// The tokens in the store could not be restored.
    Restore(RestoreError),
    /// An API request could not be completed (or a metadata document fetched).
    Transport(TransportError),
    /// An authorization-code login could not start, or its callback was refused (a wrong
    /// `state` or `iss`, an `error` from the server, no login waiting for it).
    Authorization(AuthorizationError),
    /// The user refused the device login (`access_denied`, RFC 8628 §3.5).
    DeviceDenied(FlowError),
    /// The device code expired before the user approved the login (`expired_token`, or its
    /// lifetime passed).
    DeviceExpired(FlowError),
    /// The authorization server's metadata could not be used.
    Discovery(DiscoveryError),
    /// `send` refused to attach the access token to the request, before any IO: cleartext
    /// `http://` off loopback, or an origin the configuration does not allow.
    ApiRequestRefused(ApiRequestError),
}

impl Error {
    /// Turns a device login's refusal or expiry into its own variant.
    pub(crate) fn for_device_login(self) -> Error {
        match self {
            Error::TokenRequest(error) => match device_end(&error) {
                Some(DeviceEnd::Denied) => Error::DeviceDenied(error),
                Some(DeviceEnd::Expired) => Error::DeviceExpired(error),
                None => Error::TokenRequest(error),
            },
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LoginRequired {
                reason: Some(reason),
            } => {
                write!(f, "login required: {reason}")
            }
            Error::LoginRequired { reason: None } => f.write_str("login required: no tokens"),
            Error::TokenRequest(error) => write!(f, "token request failed: {error}"),
            Error::Store(error) => write!(f, "token store failed: {error}"),
            Error::Restore(error) => write!(f, "cannot restore the stored tokens: {error}"),
            Error::Transport(error) => write!(f, "request failed: {error}"),
            Error::Authorization(error) => write!(f, "authorization failed: {error}"),
            Error::DeviceDenied(_) => f.write_str("the device login was denied by the user"),
            Error::DeviceExpired(_) => {
                f.write_str("the device code expired before the login was approved")
            }
            Error::Discovery(error) => write!(f, "discovery failed: {error}"),
            Error::ApiRequestRefused(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::LoginRequired { .. } => None,
            Error::TokenRequest(error) => Some(error),
            Error::Store(error) => Some(error.as_ref()),
            Error::Restore(error) => Some(error),
            Error::Transport(error) => Some(error),
            Error::Authorization(error) => Some(error),
            Error::DeviceDenied(error) | Error::DeviceExpired(error) => Some(error),
            Error::Discovery(error) => Some(error),
            Error::ApiRequestRefused(error) => Some(error),
        }
    }
}

/// IO to perform, outside the lock, then report back to the [`Engine`].
#[derive(Debug)]
pub(crate) enum Work {
    /// Send a token request, giving up at the instant of its deadline; report with
    /// [`Engine::sent`].
    Send(HttpRequest, Instant),
    /// Save the tokens; report with [`Engine::saved`], with the same number.
    Save(u64, StoredTokens),
    /// Delete the stored tokens; report with [`Engine::cleared`].
    Clear,
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
    /// Perform this, then report it and ask again.
    Work(Work),
    /// Nothing to do: wait until this instant, or until whoever performs IO reports.
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
    /// It has seen `Pending` (or started a login), so a failure from now on is its answer.
    waited: bool,
    auto_logins: u8,
}

/// The flow with the adapter-side bookkeeping; see the module documentation.
pub(crate) struct Engine {
    flow: TokenFlow,
    clock: HostClock,
    credentials: Option<CredentialsSource>,
    work: VecDeque<Work>,
    /// Tokens handed out for saving and not yet saved, numbered. While set, the flow is not
    /// polled: the next poll would release their access token.
    unsaved: Option<(u64, StoredTokens)>,
    /// The number of the `Save` queued or being performed, if any.
    save_outstanding: Option<u64>,
    /// Numbers saves, so that a save finishing after a logout cannot release later tokens.
    next_save: u64,
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
    /// The revocation outcomes since the last logout.
    logout_report: LogoutReport,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("flow", &self.flow)
            .field("credentials", &self.credentials.is_some())
            .field("work", &self.work.len())
            .field("unsaved", &self.unsaved.is_some())
            .field("idle_until", &self.idle_until)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A flow restored from `stored`, or a new one. Reads the clocks and seeds the flow.
    pub(crate) fn new(config: Config, stored: Option<StoredTokens>) -> Result<Engine, Error> {
        let (clock, now, wall) = HostClock::start();
        let flow = match stored {
            Some(stored) => {
                TokenFlow::restore(config, stored, seed(), now, wall).map_err(Error::Restore)?
            }
            None => TokenFlow::new(config, seed(), now, wall),
        };
        log::restored(flow.generation());
        Ok(Engine {
            flow,
            clock,
            credentials: None,
            work: VecDeque::new(),
            unsaved: None,
            save_outstanding: None,
            next_save: 0,
            idle_until: None,
            readies: 0,
            failures: 0,
            last_failure: None,
            login_reason: None,
            devices: 0,
            device: None,
            logout_report: LogoutReport::default(),
        })
    }

    /// Sets the source asked for credentials when a login is needed.
    pub(crate) fn set_credentials(&mut self, source: CredentialsSource) {
        self.credentials = Some(source);
    }

    /// Starts a wait. A save that failed earlier is queued again, so each new call retries it.
    pub(crate) fn ticket(&mut self, want: Want) -> Ticket {
        if let (Some((number, tokens)), None) = (&self.unsaved, self.save_outstanding) {
            self.work.push_back(Work::Save(*number, tokens.clone()));
            self.save_outstanding = Some(*number);
        }
        Ticket {
            want,
            failures: self.failures,
            readies: self.readies,
            devices: self.devices,
            waited: want != Want::Bearer,
            auto_logins: 0,
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

    /// Logs out: any save not yet started is dropped, and the flow forgets the tokens and
    /// starts revoking them.
    pub(crate) fn logout(&mut self, now: Instant) {
        let now = self.clock.at(now);
        self.logout_report = LogoutReport::default();
        let before = self.work.len();
        self.work.retain(|w| !matches!(w, Work::Save(..)));
        if self.work.len() < before {
            self.save_outstanding = None;
        }
        self.unsaved = None;
        self.flow.logout(now);
        log::logout();
        self.drain(now);
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
        self.flow
            .handle_input(now, Input::unauthorized(generation, headers));
        self.drain(now);
    }

    /// Reports the outcome of a [`Work::Send`].
    pub(crate) fn sent(
        &mut self,
        now: Instant,
        id: crate::RequestId,
        result: Result<http::Response<Vec<u8>>, TransportError>,
    ) {
        let now = self.clock.at(now);
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
        self.drain(now);
    }

    /// Reports the outcome of a [`Work::Save`]. On success the flow goes on (and releases the
    /// new access token); on failure the tokens stay held back and the callers waiting get
    /// the error.
    pub(crate) fn saved(&mut self, now: Instant, number: u64, result: Result<(), StoreError>) {
        let now = self.clock.at(now);
        if self.save_outstanding == Some(number) {
            self.save_outstanding = None;
        }
        // After a logout (and perhaps a new login) these tokens are no longer the ones held
        // back: the outcome concerns nobody.
        if self.unsaved.as_ref().is_some_and(|(n, _)| *n == number) {
            match result {
                Ok(()) => self.unsaved = None,
                Err(error) => {
                    log::store_failure("save", &error);
                    self.record_failure(Error::Store(Arc::new(error)));
                }
            }
        }
        self.drain(now);
    }

    /// Reports the outcome of a [`Work::Clear`].
    pub(crate) fn cleared(&mut self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            log::store_failure("clear", &error);
            self.record_failure(Error::Store(Arc::new(error)));
        }
    }

    /// Reports that a work item was taken and never completed (its performer panicked). A lost
    /// token request ends at its deadline, like one that got no answer; a lost save fails.
    pub(crate) fn abandoned(&mut self, now: Instant, save: Option<u64>) {
        if let Some(number) = save {
            let error = std::io::Error::other("the save was interrupted");
            let error = StoreError::Io {
                path: std::path::PathBuf::new(),
                source: error,
            };
            self.saved(now, number, Err(error));
        }
    }

    /// The next step for `ticket`. `may_perform` says whether the caller may take work (no
    /// one else is performing any).
    pub(crate) fn step(&mut self, now: Instant, ticket: &mut Ticket, may_perform: bool) -> Step {
        let now = self.clock.at(now);
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
                self.work_or_wait(may_perform)
            }
            Want::Settled => match (may_perform, self.work.pop_front()) {
                (true, Some(work)) => Step::Work(work),
                // A revocation backing off before its retry: wait for it.
                (true, None) if self.flow.revoking() => self.wait(),
                (true, None) => Step::Done,
                (false, _) => self.wait(),
            },
            Want::Bearer => self.bearer_step(now, ticket, may_perform),
        }
    }

    fn bearer_step(&mut self, now: Timestamp, ticket: &mut Ticket, may_perform: bool) -> Step {
        let access = self.flow.access(now);
        self.drain(now);
        match access {
            // A ready token may come with work (a proactive renewal starting): the caller that
            // may perform it does, then takes the token; the others take it at once.
            Access::Ready(bearer) => match self.take_work(may_perform) {
                Some(work) => Step::Work(work),
                None => Step::Ready(bearer),
            },
            Access::Pending => {
                ticket.waited = true;
                self.work_or_wait(may_perform)
            }
            Access::LoginRequired => {
                if let Some(work) = self.take_work(may_perform) {
                    return Step::Work(work);
                }
                if ticket.auto_logins == 0 && self.credentials.is_some() {
                    ticket.auto_logins += 1;
                    ticket.waited = true;
                    if self.login_from_source(now) {
                        return self.work_or_wait(may_perform);
                    }
                }
                Step::Fail(Error::LoginRequired {
                    reason: self.login_reason.clone(),
                })
            }
        }
    }

    fn take_work(&mut self, may_perform: bool) -> Option<Work> {
        if may_perform {
            self.work.pop_front()
        } else {
            None
        }
    }

    fn work_or_wait(&mut self, may_perform: bool) -> Step {
        match self.take_work(may_perform) {
            Some(work) => Step::Work(work),
            None => self.wait(),
        }
    }

    /// Wait until the flow next needs the time, or until someone reports.
    fn wait(&self) -> Step {
        Step::Wait(self.idle_until.map(|until| self.clock.instant(until)))
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

    /// Asks the credentials source and logs in with what it gives; false when it gives
    /// nothing.
    fn login_from_source(&mut self, now: Timestamp) -> bool {
        let Some(credentials) = self.credentials.as_mut().and_then(|source| source()) else {
            return false;
        };
        log::login(&credentials);
        self.flow.login(now, credentials);
        true
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
                    let deadline = self.clock.instant(request.deadline);
                    self.work.push_back(Work::Send(request, deadline));
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

    /// Acts on an event; true when polling must stop until the tokens are saved.
    fn on_event(&mut self, now: Timestamp, event: Event) -> bool {
        log::event(&event);
        match event {
            Event::TokensUpdated(tokens) => {
                let number = self.next_save;
                self.next_save += 1;
                self.work.push_back(Work::Save(number, tokens.clone()));
                self.unsaved = Some((number, tokens));
                self.save_outstanding = Some(number);
                return true;
            }
            Event::TokensCleared => self.work.push_back(Work::Clear),
            Event::AccessReady { .. } => {
                self.readies += 1;
                self.login_reason = None;
            }
            Event::LoginRequired { reason } => {
                self.login_reason = Some(reason);
                self.login_from_source(now);
            }
            Event::Failed(error) => self.record_failure(Error::TokenRequest(error)),
            Event::DeviceAuthorization(device) => {
                self.devices += 1;
                self.device = Some(device);
            }
            event @ (Event::Revoked { .. } | Event::RevocationFailed { .. }) => {
                self.logout_report.record(&event);
            }
            // The adapters do not configure a shared store yet.
            Event::Store(_) => {}
        }
        false
    }
}
