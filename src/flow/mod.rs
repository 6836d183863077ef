//! [`TokenFlow`]: the token lifecycle as a state machine that never does IO.

mod attempt;
mod backoff;
mod clock;
mod coordination;
mod info;
mod late;
mod revocation;
mod secrets;
mod tokens;

use std::collections::VecDeque;
use std::time::Duration;

use http::StatusCode;

use crate::challenge::{BearerErrorCode, bearer_challenge};
use crate::config::Config;
use crate::error::{FailureCause, FlowError};
use crate::grant::{Credentials, GrantKind, TokenGrant, build_token_request};
use crate::input::{Input, TransportError};
use crate::interactive::{
    AuthorizationError, AuthorizationRequest, PendingAuthorization, Pkce, SLOW_DOWN_STEP,
    authorization_url, device_authorization_request, parse_callback, parse_device_response,
};
use crate::output::{
    Access, Bearer, Event, Generation, HttpRequest, LoginRequiredReason, Output, RequestId,
};
use crate::refused_redirect::{Endpoint, RefusedRedirect};
use crate::retry_after::parse_retry_after;
use crate::revocation::TokenTypeHint;
use crate::secret::SecretString;
use crate::seed::Seed;
use crate::shared::{StoreRequest, StoreVersion};
use crate::time::{Timestamp, UnixTime};
use crate::token::{
    ErrorCode, ResponseError, RestoreError, StoredTokens, parse_token_response_to,
    salvage_refresh_token,
};

use attempt::{Attempt, AttemptState, Call, DevicePoll, Purpose};
use backoff::{Rng, backoff};
use clock::Clock;
use late::LateAnswers;
use revocation::{Emit, Revocations};
use secrets::Held;
use tokens::{HeldRefresh, TokenSet};

pub use info::{AccessTokenInfo, RefreshTokenInfo, TokenInfo};

/// Keeps an OAuth 2.0 client holding a valid access token, without doing any IO.
///
/// Commands ([`login`](Self::login), [`access`](Self::access), [`logout`](Self::logout)) and
/// inputs ([`handle_input`](Self::handle_input)) change its state; [`poll_output`](Self::poll_output)
/// then yields the requests to send and the events to act on, until [`Output::Idle`]. Every
/// method takes the current monotonic time; none reads a clock, an RNG, the environment or a
/// file. The crate documentation states the run loop as a contract.
#[derive(Debug)]
pub struct TokenFlow {
    config: Config,
    clock: Clock,
    rng: Rng,
    tokens: Option<TokenSet>,
    /// The generation of the current access token; 0 before the first.
    generation: u64,
    /// The current access token has been announced in `TokensUpdated` but the host has not
    /// yet come back to `poll_output` (which is when it must have stored it).
    unreleased: bool,
    /// Set when `poll_output` hands out the `TokensUpdated` that releases this generation.
    releasing: Option<Generation>,
    attempt: Option<Attempt>,
    /// The reason last announced with `LoginRequired`, so it is announced once.
    login_required: Option<LoginRequiredReason>,
    /// After a renewal failed for good, no proactive renewal starts before this instant.
    /// Without it a renewal point already passed would start the next attempt at once, and a
    /// server that keeps failing would be asked again and again without pause (in a tight
    /// loop when it fails without retries, e.g. with a 4xx or an unusable 200).
    renewal_hold: Option<Timestamp>,
    queue: VecDeque<Queued>,
    next_request: u64,
    /// The authorization-code login waiting for its callback, if any.
    authorization: Option<PendingAuthorization>,
    revocations: Revocations,
    /// Counts changes of the token set; a late answer is adopted only in the epoch its
    /// request was sent in.
    epoch: u64,
    /// Refresh requests that ended without an answer, whose answers may still come.
    late: LateAnswers,
    /// With a shared store: the version of the tokens held, as the store numbers them (the
    /// version a write from here expects to replace).
    store_version: StoreVersion,
}

/// How the held tokens can be renewed.
enum Renewal<'a> {
    /// Asking again with the client's credentials.
    ClientCredentials,
    /// Presenting this refresh token.
    Refresh(&'a crate::secret::RefreshToken),
}

/// Outputs waiting to be polled.
#[derive(Debug)]
enum Queued {
    Send(HttpRequest),
    Event(Event),
    /// `TokensUpdated`; once the host returns for the next output, `release` is handed out.
    /// With a shared store it is written with a compare-and-set from `expected`.
    Tokens {
        stored: StoredTokens,
        release: Option<Generation>,
        expected: Option<StoreVersion>,
    },
}

impl TokenFlow {
    /// A flow with no tokens yet. `seed` keys the flow's random generator (retry jitter, PKCE,
    /// `state`): 32 bytes from the OS in production, [`Seed::from_u64`] in tests. `now` and
    /// `wall` are one reading of the monotonic and wall clocks.
    pub fn new(config: Config, seed: impl Into<Seed>, now: Timestamp, wall: UnixTime) -> TokenFlow {
        TokenFlow {
            config,
            clock: Clock::new(now, wall),
            rng: Rng::new(&seed.into()),
            tokens: None,
            generation: 0,
            unreleased: false,
            releasing: None,
            attempt: None,
            login_required: None,
            renewal_hold: None,
            queue: VecDeque::new(),
            next_request: 1,
            authorization: None,
            revocations: Revocations::default(),
            epoch: 0,
            late: LateAnswers::default(),
            store_version: StoreVersion::EMPTY,
        }
    }

    /// A flow that carries on with tokens stored by an earlier run. An access token past its
    /// expiry is renewed on first use (or at once, with proactive refresh).
    pub fn restore(
        config: Config,
        stored: StoredTokens,
        seed: impl Into<Seed>,
        now: Timestamp,
        wall: UnixTime,
    ) -> Result<TokenFlow, RestoreError> {
        stored.validate()?;
        let mut flow = TokenFlow::new(config, seed, now, wall);
        let tokens = TokenSet::from_stored(&flow.config, &flow.clock, now, stored)
            .ok_or(RestoreError::InvalidToken("access_token"))?;
        if tokens.access.is_some() {
            flow.generation = 1;
        }
        flow.tokens = Some(tokens);
        Ok(flow)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Logs in with `credentials`, replacing any login or renewal under way. The current
    /// tokens stay usable until the new ones arrive.
    pub fn login(&mut self, now: Timestamp, credentials: Credentials) {
        let now = self.tick(now);
        self.abandon_attempt();
        self.login_required = None;
        let grant = match credentials {
            Credentials::Password { username, password } => {
                TokenGrant::Password { username, password }
            }
            Credentials::ClientCredentials => TokenGrant::ClientCredentials,
        };
        self.begin(now, Call::Token(grant), Purpose::Login);
    }

    /// Starts an authorization-code login with PKCE (RFC 6749 §4.1, RFC 7636 S256): returns the
    /// URL to open in the user's browser. `state`, the code verifier and (when `openid` is in
    /// the scope) a `nonce` come from the flow's seeded generator. A later call replaces the
    /// pending one. Needs an authorization endpoint and a redirect URI in the configuration.
    pub fn start_authorization(
        &mut self,
        now: Timestamp,
    ) -> Result<AuthorizationRequest, AuthorizationError> {
        self.tick(now);
        let redirect_uri = self
            .config
            .redirect_uri
            .clone()
            .ok_or(AuthorizationError::NotConfigured("redirect_uri"))?;
        let pkce = Pkce::from_random(self.rng.bytes32());
        let state = random_token(&mut self.rng);
        let wants_openid = self
            .config
            .scope
            .as_deref()
            .is_some_and(|scope| scope.split(' ').any(|s| s == "openid"));
        let nonce = wants_openid.then(|| random_token(&mut self.rng));
        let url = authorization_url(
            &self.config,
            &redirect_uri,
            &state,
            &pkce.challenge,
            nonce.as_deref(),
        )?;
        self.authorization = Some(PendingAuthorization {
            state: state.clone(),
            verifier: pkce.verifier,
            redirect_uri,
        });
        Ok(AuthorizationRequest { url, state, nonce })
    }

    /// Completes the authorization-code login with the redirect the browser came back with (the
    /// whole URL or its query). Checks `state` and, when the issuer is known, `iss` (RFC 9207),
    /// then exchanges the code; the outcome arrives as events like any login.
    pub fn complete_authorization(
        &mut self,
        now: Timestamp,
        callback: &str,
    ) -> Result<(), AuthorizationError> {
        let now = self.tick(now);
        let pending = self
            .authorization
            .as_ref()
            .ok_or(AuthorizationError::NoPendingAuthorization)?;
        let callback = parse_callback(callback, &pending.state, self.config.issuer.as_deref());
        // One callback per authorization: a replayed or forged one finds nothing to complete.
        let pending = self.authorization.take();
        let (callback, pending) = match (callback, pending) {
            (Ok(callback), Some(pending)) => (callback, pending),
            (Err(error), _) => return Err(error),
            (Ok(_), None) => return Err(AuthorizationError::NoPendingAuthorization),
        };
        self.abandon_attempt();
        self.login_required = None;
        let grant = TokenGrant::AuthorizationCode {
            code: callback.code,
            redirect_uri: pending.redirect_uri,
            code_verifier: pending.verifier,
        };
        self.begin(now, Call::Token(grant), Purpose::Login);
        Ok(())
    }

    /// Starts a device login (RFC 8628): asks the device authorization endpoint for a user
    /// code, emits [`Event::DeviceAuthorization`] for the application to show, then polls the
    /// token endpoint at the interval the server asks, adding 5 s after each `slow_down`.
    pub fn start_device_authorization(&mut self, now: Timestamp) -> Result<(), AuthorizationError> {
        let now = self.tick(now);
        if self.config.device_authorization_endpoint.is_none() {
            return Err(AuthorizationError::NotConfigured(
                "device_authorization_endpoint",
            ));
        }
        self.abandon_attempt();
        self.login_required = None;
        self.begin(now, Call::DeviceAuthorization, Purpose::Login);
        Ok(())
    }

    /// A token to use now, or why there is none. Starts a renewal when the token has ended and
    /// one is possible; any number of callers share that one request.
    ///
    /// Cheap when a token is ready: no allocation, a reference-count increment.
    #[inline]
    pub fn access(&mut self, now: Timestamp) -> Access {
        let now = self.tick(now);
        if let Some(bearer) = self.bearer(now) {
            return Access::Ready(bearer);
        }
        if self.attempt.is_some() || self.unreleased {
            return Access::Pending;
        }
        if self.tokens.is_none() {
            return Access::LoginRequired;
        }
        match self.renewal_grant() {
            Ok(grant) => {
                self.begin(now, Call::Token(grant), Purpose::Renewal);
                Access::Pending
            }
            Err(reason) => {
                self.require_login(reason);
                Access::LoginRequired
            }
        }
    }

    /// Forgets the tokens ([`Event::TokensCleared`]) and abandons any request under way. With a
    /// revocation endpoint configured, the refresh token and then the access token are revoked
    /// (RFC 7009), each confirmed by [`Event::Revoked`] or reported by
    /// [`Event::RevocationFailed`].
    pub fn logout(&mut self, now: Timestamp) {
        let now = self.tick(now);
        self.abandon_attempt();
        self.authorization = None;
        self.login_required = None;
        self.unreleased = false;
        self.releasing = None;
        self.renewal_hold = None;
        if let Some(tokens) = self.tokens.take() {
            self.epoch += 1;
            self.announce_cleared();
            if self.config.revocation_endpoint.is_some() {
                if let Some(refresh) = tokens.refresh {
                    let token = SecretString::new(refresh.token.expose_secret());
                    self.revocations.push(token, TokenTypeHint::RefreshToken);
                }
                if let Some(access) = tokens.access.filter(|a| now < a.expires_at) {
                    let token = SecretString::new(access.token.expose_secret());
                    self.revocations.push(token, TokenTypeHint::AccessToken);
                }
                self.tick_revocations(now);
            }
        }
    }

    /// Feeds something that happened: a response, a transport failure, an API's 401, or the
    /// passing of time.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) {
        let now = self.tick(now);
        match input {
            Input::Response { id, response } if self.revocations.is_current(id) => {
                let wall = self.clock.wall_at(now);
                let queue = &mut self.queue;
                let held = Held {
                    config: &self.config,
                    attempt: self.attempt.as_ref(),
                    tokens: self.tokens.as_ref(),
                    authorization: self.authorization.as_ref(),
                    revocations: None,
                };
                self.revocations.on_response(
                    now,
                    wall,
                    &held,
                    &mut self.rng,
                    &response,
                    &mut |emit| queue.push_back(emit.into()),
                );
                self.tick_revocations(now);
            }
            Input::Failed { id, error } if self.revocations.is_current(id) => {
                let queue = &mut self.queue;
                self.revocations
                    .on_failure(now, &self.config, &mut self.rng, error, &mut |emit| {
                        queue.push_back(emit.into())
                    });
            }
            Input::Response { id, response } if !self.is_current(id) => {
                self.on_late_answer(now, id, response)
            }
            Input::Response { id, response } => self.on_response(now, id, response),
            Input::Failed { id, error } => {
                if self.is_current(id) {
                    self.on_transport_failure(now, error);
                }
            }
            Input::Unauthorized {
                generation,
                www_authenticate,
            } => self.on_unauthorized(now, generation, &www_authenticate),
            Input::Timeout => {}
            Input::Store(report) => self.on_store_report(now, report),
        }
    }

    /// The next thing to do. Drain it until [`Output::Idle`] after every command and input.
    ///
    /// Coming back here after an [`Event::TokensUpdated`] tells the flow the tokens are
    /// stored; only then is the new access token released ([`Event::AccessReady`]).
    pub fn poll_output(&mut self) -> Output {
        if let Some(generation) = self.releasing.take() {
            if self.unreleased && generation.0 == self.generation {
                self.unreleased = false;
                return Output::Event(Event::AccessReady { generation });
            }
        }
        match self.queue.pop_front() {
            Some(Queued::Send(request)) => Output::Send(request),
            Some(Queued::Event(event)) => Output::Event(event),
            Some(Queued::Tokens {
                stored,
                release,
                expected,
            }) => {
                self.releasing = release;
                Output::Event(match expected {
                    Some(expected_version) => Event::Store(StoreRequest::TokensUpdated {
                        tokens: stored,
                        expected_version,
                    }),
                    None => Event::TokensUpdated(stored),
                })
            }
            None => Output::Idle {
                until: self.wake_at(),
            },
        }
    }

    /// The current tokens as they would be stored, if any.
    pub fn stored_tokens(&self) -> Option<StoredTokens> {
        self.tokens.as_ref().map(TokenSet::to_stored)
    }

    /// What the flow holds, without a secret: the access token's expiry and generation, the
    /// granted scope, whether a refresh token and an ID token are held (and when the refresh
    /// token expires), and the provider's extra fields. `None` when no tokens are held.
    pub fn token_info(&self) -> Option<TokenInfo> {
        let tokens = self.tokens.as_ref()?;
        Some(TokenInfo::of(tokens, Generation(self.generation)))
    }

    /// The generation of the current access token, if one is held.
    pub fn generation(&self) -> Option<Generation> {
        self.tokens
            .as_ref()
            .and_then(|t| t.access.as_ref())
            .map(|_| Generation(self.generation))
    }

    /// Whether revocations started by [`logout`](Self::logout) are still waiting, under way or
    /// backing off before a retry. Each ends in [`Event::Revoked`] or
    /// [`Event::RevocationFailed`]; a host that wants to wait for them drives the flow until
    /// this is false.
    pub fn revoking(&self) -> bool {
        self.revocations.is_busy()
    }

    /// The id of the token request awaiting an answer, if any.
    pub fn request_in_flight(&self) -> Option<RequestId> {
        self.attempt.as_ref().and_then(Attempt::in_flight_id)
    }

    /// Records `now`, then does what time demands: gives up on a request past its deadline,
    /// sends a retry whose backoff ended, starts a proactive renewal.
    #[inline]
    fn tick(&mut self, now: Timestamp) -> Timestamp {
        let now = self.clock.observe(now);
        if let Some(attempt) = &self.attempt {
            match attempt.state {
                AttemptState::InFlight { deadline, .. } if now >= deadline => {
                    let timeout = TransportError::timed_out("no answer before the deadline");
                    self.on_transport_failure(now, timeout);
                }
                AttemptState::AwaitingLease { deadline } if now >= deadline => {
                    self.on_store_unavailable(now);
                }
                AttemptState::WaitingForStore { until } if now >= until => {
                    self.request_lease(now);
                }
                _ => {}
            }
        }
        if let Some(attempt) = &self.attempt {
            if matches!(attempt.state, AttemptState::BackingOff { until } if now >= until) {
                self.send(now);
            }
        }
        if self.attempt.is_none() && self.proactive_renewal_due(now) {
            if let Ok(grant) = self.renewal_grant() {
                self.begin(now, Call::Token(grant), Purpose::Renewal);
            }
        }
        self.tick_revocations(now);
        now
    }

    #[inline]
    fn tick_revocations(&mut self, now: Timestamp) {
        // Nearly always idle: keep `access()` from paying for a call into it.
        if self.revocations.is_idle() {
            return;
        }
        let queue = &mut self.queue;
        self.revocations.tick(
            now,
            &self.config,
            &mut self.next_request,
            &mut self.rng,
            &mut |emit| queue.push_back(emit.into()),
        );
    }

    /// Until when the access token [`access`](Self::access) hands out stays usable, if it
    /// hands one out: how long an adapter may keep it at hand without asking again.
    #[cfg(any(feature = "blocking", feature = "tokio"))]
    pub(crate) fn bearer_expires_at(&self) -> Option<Timestamp> {
        if self.unreleased {
            return None;
        }
        let access = self.tokens.as_ref()?.access.as_ref()?;
        (!access.refused).then_some(access.expires_at)
    }

    #[inline]
    fn bearer(&self, now: Timestamp) -> Option<Bearer> {
        if self.unreleased {
            return None;
        }
        let access = self.tokens.as_ref()?.access.as_ref()?;
        access.is_usable(now).then(|| Bearer {
            header: access.bearer.clone(),
            generation: Generation(self.generation),
        })
    }

    /// When renewing ahead of expiry is due: a usable, released token whose renewal point is
    /// reached, and a way to renew it.
    fn renew_at(&self) -> Option<Timestamp> {
        if !self.config.proactive_refresh || self.unreleased || self.attempt.is_some() {
            return None;
        }
        let tokens = self.tokens.as_ref()?;
        let access = tokens.access.as_ref()?;
        if access.refused || self.renewal().is_err() {
            return None;
        }
        Some(match self.renewal_hold {
            Some(hold) => access.renew_at.max(hold),
            None => access.renew_at,
        })
    }

    #[inline]
    fn proactive_renewal_due(&self, now: Timestamp) -> bool {
        // This runs on every call: compare instants before looking at how renewal would go.
        let reached = self
            .tokens
            .as_ref()
            .and_then(|t| t.access.as_ref())
            .is_some_and(|access| now >= access.renew_at);
        reached && self.renew_at().is_some_and(|at| now >= at)
    }

    fn wake_at(&self) -> Option<Timestamp> {
        let own = match &self.attempt {
            Some(attempt) => Some(attempt.wake_at()),
            None => self.renew_at(),
        };
        match (own, self.revocations.wake_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How the held tokens can be renewed without the user, or why they cannot. Borrows
    /// rather than clones: it runs on every `access()`.
    fn renewal(&self) -> Result<Renewal<'_>, LoginRequiredReason> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or(LoginRequiredReason::NoRefreshToken)?;
        // Client credentials need nobody's secret but the client's: asking again is the
        // renewal (RFC 6749 §4.4.3 expects no refresh token).
        if tokens.origin == GrantKind::ClientCredentials {
            return Ok(Renewal::ClientCredentials);
        }
        let refresh = tokens
            .refresh
            .as_ref()
            .ok_or(LoginRequiredReason::NoRefreshToken)?;
        let wall = self.clock.wall_at(self.clock.now());
        self.config
            .refresh_token_reuse
            .may_present(refresh.unanswered, wall)?;
        if let Some(expires_at) = refresh.expires_at {
            if expires_at <= self.clock.wall_at(self.clock.now()) {
                return Err(LoginRequiredReason::RefreshTokenExpired);
            }
        }
        Ok(Renewal::Refresh(&refresh.token))
    }

    /// The request that renews the held tokens, or why there is none.
    fn renewal_grant(&self) -> Result<TokenGrant, LoginRequiredReason> {
        Ok(match self.renewal()? {
            Renewal::ClientCredentials => TokenGrant::ClientCredentials,
            Renewal::Refresh(token) => TokenGrant::RefreshToken(token.clone()),
        })
    }

    fn require_login(&mut self, reason: LoginRequiredReason) {
        if self.login_required.is_none() {
            self.login_required = Some(reason.clone());
            self.queue
                .push_back(Queued::Event(Event::LoginRequired { reason }));
        }
    }

    fn begin(&mut self, now: Timestamp, call: Call, purpose: Purpose) {
        self.attempt = Some(Attempt::new(call, purpose, now));
        self.send(now);
    }

    /// Sends (again) the attempt's request under a fresh id. A renewal with a shared store
    /// first asks for the lease; a refresh token is presented only as the reuse rule allows.
    fn send(&mut self, now: Timestamp) {
        let Some(attempt) = self.attempt.as_ref() else {
            return;
        };
        if self.config.shared_store && attempt.purpose == Purpose::Renewal && !attempt.lease_held {
            self.request_lease(now);
            return;
        }
        let wall = self.clock.wall_at(now);
        if attempt.is_refresh() {
            let unanswered = self
                .tokens
                .as_ref()
                .and_then(|t| t.refresh.as_ref())
                .map(|r| r.unanswered)
                .unwrap_or_default();
            if let Err(reason) = self
                .config
                .refresh_token_reuse
                .may_present(unanswered, wall)
            {
                // Past a grace window, after a backoff: the last send went unanswered.
                self.give_up_refresh(now, None, reason);
                return;
            }
        }
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = now.checked_add(self.config.request_timeout).unwrap_or(now);
        let request = match &attempt.call {
            Call::Token(grant) => build_token_request(&self.config, grant),
            Call::DeviceAuthorization => match device_authorization_request(&self.config) {
                Some(request) => request,
                None => {
                    self.end_attempt();
                    return;
                }
            },
        };
        attempt.state = AttemptState::InFlight { id, deadline };
        attempt.sends += 1;
        attempt.epoch = self.epoch;
        let mark = attempt.is_refresh() && attempt.lease_held;
        let is_refresh = attempt.is_refresh();
        if let (true, Some(refresh)) = (is_refresh, self.refresh_mut()) {
            refresh.unanswered.sent(wall);
            // The replica that dies now leaves the mark behind for the next holder.
            let since = refresh.unanswered.first_sent_at.unwrap_or(wall);
            if mark {
                self.queue
                    .push_back(Queued::Event(Event::Store(StoreRequest::MarkInFlight {
                        since,
                    })));
            }
        }
        self.queue.push_back(Queued::Send(HttpRequest {
            id,
            request,
            deadline,
        }));
    }

    fn refresh_mut(&mut self) -> Option<&mut HeldRefresh> {
        self.tokens.as_mut()?.refresh.as_mut()
    }

    /// Drops the attempt under way; its answer, should it come, will be ignored.
    fn abandon_attempt(&mut self) {
        if let Some(attempt) = &self.attempt {
            if let Some(id) = attempt.in_flight_id() {
                let is_refresh = attempt.is_refresh();
                if self.withdraw(id) && is_refresh {
                    // Never handed to the host, so never sent: it cannot have spent the token.
                    if let Some(refresh) = self.refresh_mut() {
                        refresh.unanswered.not_sent();
                    }
                }
            }
        }
        self.end_attempt();
    }

    /// Takes a request out of the queue if the host has not polled it yet; true if it was
    /// there.
    fn withdraw(&mut self, id: RequestId) -> bool {
        let before = self.queue.len();
        self.queue
            .retain(|q| !matches!(q, Queued::Send(request) if request.id == id));
        self.queue.len() < before
    }

    /// Ends the attempt under way, releasing the renewal lease it holds. The store's
    /// in-flight mark goes with the lease only when no presentation of the refresh token is
    /// unanswered.
    fn end_attempt(&mut self) -> Option<Attempt> {
        let attempt = self.attempt.take()?;
        if attempt.lease_held {
            let clear_in_flight = self
                .tokens
                .as_ref()
                .and_then(|t| t.refresh.as_ref())
                .is_none_or(|r| r.unanswered.count == 0);
            self.queue
                .push_back(Queued::Event(Event::Store(StoreRequest::ReleaseLease {
                    clear_in_flight,
                })));
        }
        Some(attempt)
    }

    /// Hands new tokens to the host: `TokensUpdated`, or with a shared store its
    /// compare-and-set form. `release` is the generation to release once they are stored.
    fn announce(&mut self, stored: StoredTokens, release: Option<Generation>) {
        let expected = self.config.shared_store.then(|| {
            let expected = self.store_version;
            self.store_version = expected.next();
            expected
        });
        self.queue.push_back(Queued::Tokens {
            stored,
            release,
            expected,
        });
    }

    /// Tells the host the tokens are gone: `TokensCleared`, or with a shared store its
    /// compare-and-set form.
    fn announce_cleared(&mut self) {
        let event = if self.config.shared_store {
            let expected_version = self.store_version;
            self.store_version = expected_version.next();
            Event::Store(StoreRequest::TokensCleared { expected_version })
        } else {
            Event::TokensCleared
        };
        self.queue.push_back(Queued::Event(event));
    }

    fn is_current(&self, id: RequestId) -> bool {
        self.request_in_flight() == Some(id)
    }

    fn on_response(&mut self, now: Timestamp, id: RequestId, response: http::Response<Vec<u8>>) {
        if !self.is_current(id) {
            return;
        }
        let Some(attempt) = self.attempt.as_ref() else {
            return;
        };
        let device_authorization = matches!(attempt.call, Call::DeviceAuthorization);
        let grant = attempt.kind();
        if grant == GrantKind::RefreshToken {
            if let Some(refresh) = self.refresh_mut() {
                refresh.unanswered.answered();
            }
        }
        let endpoint = if device_authorization {
            Endpoint::DeviceAuthorization
        } else {
            Endpoint::Token
        };
        // Before anything is read from it: a redirect's body is not the endpoint's answer.
        if let Some(redirect) = RefusedRedirect::from_response(endpoint, &response) {
            self.fail(now, FailureCause::Redirect(redirect));
            return;
        }
        if device_authorization {
            self.on_device_authorization(now, response);
            return;
        }
        let (parts, body) = response.into_parts();
        match parse_token_response_to(
            parts.status,
            &parts.headers,
            &body,
            self.config.max_body_bytes,
            self.config.scope.as_ref(),
            &self.held_secrets(),
        ) {
            Ok(token_response) => self.apply(now, grant, token_response),
            Err(error) => {
                if grant == GrantKind::RefreshToken && parts.status.is_success() {
                    self.keep_salvaged_refresh_token(&parts.headers, &body);
                }
                self.on_error_response(now, grant, error, &parts.headers);
            }
        }
    }

    fn apply(&mut self, now: Timestamp, grant: GrantKind, response: crate::token::TokenResponse) {
        if !self.install_response(now, grant, response) {
            // Unreachable in practice (the parser only accepts sendable tokens and lifetimes
            // are clamped), but a token that cannot become a header must not replace good ones:
            // the tokens held are still there.
            self.fail(
                now,
                FailureCause::Endpoint(ResponseError::Malformed {
                    status: StatusCode::OK,
                    problem: crate::token::Malformation::UnsendableToken("access_token"),
                }),
            );
            return;
        }
        self.end_attempt();
        self.renewal_hold = None;
    }

    /// Takes the tokens of a successful answer to a request with `grant` and announces them;
    /// false (and nothing changed) when they cannot be held.
    fn install_response(
        &mut self,
        now: Timestamp,
        grant: GrantKind,
        response: crate::token::TokenResponse,
    ) -> bool {
        let Some(tokens) = TokenSet::replace_from_response(
            &mut self.tokens,
            &self.config,
            &self.clock,
            now,
            grant,
            response,
        ) else {
            return false;
        };
        let stored = tokens.to_stored();
        self.generation += 1;
        self.epoch += 1;
        self.announce(stored, Some(Generation(self.generation)));
        self.unreleased = true;
        self.login_required = None;
        true
    }

    /// A rotating server retires the old refresh token before answering; when its answer is
    /// unusable yet carries a new refresh token, that token is kept and handed to the host.
    fn keep_salvaged_refresh_token(&mut self, headers: &http::HeaderMap, body: &[u8]) {
        let Some(token) = salvage_refresh_token(headers, body) else {
            return;
        };
        let Some(tokens) = self.tokens.as_mut() else {
            return;
        };
        // A retry of this refresh must present the successor: with rotation the token it
        // was built with is dead, and presenting it could revoke the grant.
        if let Some(Call::Token(TokenGrant::RefreshToken(presented))) =
            self.attempt.as_mut().map(|a| &mut a.call)
        {
            *presented = token.clone();
        }
        tokens.refresh = Some(HeldRefresh {
            token,
            expires_at: None,
            unanswered: crate::reuse::Unanswered::default(),
        });
        let stored = tokens.to_stored();
        self.epoch += 1;
        self.announce(stored, None);
    }

    /// The device authorization answer: show the user code, then start polling.
    fn on_device_authorization(&mut self, now: Timestamp, response: http::Response<Vec<u8>>) {
        let (parts, body) = response.into_parts();
        match parse_device_response(
            parts.status,
            &parts.headers,
            &body,
            self.config.max_body_bytes,
            &self.held_secrets(),
        ) {
            Ok(grant) => {
                let poll = DevicePoll {
                    interval: grant.public.interval,
                    expires_at: now.checked_add(grant.public.expires_in).unwrap_or(now),
                };
                self.queue
                    .push_back(Queued::Event(Event::DeviceAuthorization(grant.public)));
                let mut attempt = Attempt::new(
                    Call::Token(TokenGrant::DeviceCode(grant.device_code)),
                    Purpose::Login,
                    now,
                );
                attempt.poll = Some(poll);
                self.attempt = Some(attempt);
                self.poll_again(now, poll);
            }
            Err(error) => self.on_error_response(now, GrantKind::DeviceCode, error, &parts.headers),
        }
    }

    /// Schedules the next device-code poll, or ends the login when the code will have expired.
    fn poll_again(&mut self, now: Timestamp, poll: DevicePoll) {
        let next = now.checked_add(poll.interval).unwrap_or(poll.expires_at);
        if next >= poll.expires_at {
            self.fail(now, FailureCause::DeviceCodeExpired);
            return;
        }
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.poll = Some(poll);
            attempt.state = AttemptState::BackingOff { until: next };
        }
    }

    fn on_error_response(
        &mut self,
        now: Timestamp,
        grant: GrantKind,
        error: ResponseError,
        headers: &http::HeaderMap,
    ) {
        if let Some(poll) = self.attempt.as_ref().and_then(|a| a.poll) {
            match error.code() {
                Some(ErrorCode::AuthorizationPending) => {
                    self.poll_again(now, poll);
                    return;
                }
                Some(ErrorCode::SlowDown) => {
                    let slower = DevicePoll {
                        interval: poll.interval.saturating_add(SLOW_DOWN_STEP),
                        ..poll
                    };
                    self.poll_again(now, slower);
                    return;
                }
                _ => {}
            }
        }
        if is_transient(&error) {
            let retry_after = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v.as_bytes(), self.clock.wall_at(now)).ok());
            self.retry_or_fail(now, FailureCause::Endpoint(error), retry_after);
            return;
        }
        if grant == GrantKind::RefreshToken {
            if let ResponseError::OAuth(oauth) = &error {
                if oauth.code == ErrorCode::InvalidGrant {
                    self.tokens = None;
                    self.epoch += 1;
                    self.unreleased = false;
                    self.announce_cleared();
                    self.end_attempt();
                    self.login_required = None;
                    self.require_login(LoginRequiredReason::RefreshTokenRejected(oauth.clone()));
                    return;
                }
            }
        }
        self.fail(now, FailureCause::Endpoint(error));
    }

    /// Every secret the flow holds, for scrubbing from the text of a token endpoint's error.
    fn held_secrets(&self) -> Held<'_> {
        Held {
            config: &self.config,
            attempt: self.attempt.as_ref(),
            tokens: self.tokens.as_ref(),
            authorization: self.authorization.as_ref(),
            revocations: Some(&self.revocations),
        }
    }

    fn on_transport_failure(&mut self, now: Timestamp, error: TransportError) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        // The refresh token is reached through its field rather than `refresh_mut`, which
        // would borrow the whole flow while the attempt is borrowed.
        let refresh = self.tokens.as_mut().and_then(|t| t.refresh.as_mut());
        if let (true, Some(refresh)) = (attempt.is_refresh(), refresh) {
            if !error.is_ambiguous() {
                // It never reached the server: this use does not count.
                refresh.unanswered.not_sent();
            } else {
                // The server may have applied it: its answer, should it still come, holds
                // the successor of the token.
                if let Some(id) = attempt.in_flight_id() {
                    self.late.remember(id, attempt.epoch);
                }
                let wall = self.clock.wall_at(now);
                if let Err(reason) = self
                    .config
                    .refresh_token_reuse
                    .may_present(refresh.unanswered, wall)
                {
                    // Presenting it again could trip the server's reuse detection and
                    // revoke the whole grant (RFC 9700 §4.14).
                    self.give_up_refresh(now, Some(FailureCause::Transport(error)), reason);
                    return;
                }
                if !attempt.resent_unanswered {
                    // Once more, at once, while the server accepts it: if the first request
                    // never arrived this succeeds; if it did, the reuse is allowed. Only
                    // once per attempt, or losses between 5xx answers would each earn a
                    // free send and the attempt would outgrow its retry budget.
                    attempt.resent_unanswered = true;
                    self.send(now);
                    return;
                }
            }
        }
        self.retry_or_fail(now, FailureCause::Transport(error), None);
    }

    /// Ends a refresh whose token must not be presented again, and says a login is needed.
    /// The tokens stay: a late answer may still bring their successor.
    fn give_up_refresh(
        &mut self,
        now: Timestamp,
        cause: Option<FailureCause>,
        reason: LoginRequiredReason,
    ) {
        match cause {
            Some(cause) => self.fail(now, cause),
            None => {
                self.end_attempt();
            }
        }
        self.require_login(reason);
    }

    fn retry_or_fail(
        &mut self,
        now: Timestamp,
        cause: FailureCause,
        retry_after: Option<Duration>,
    ) {
        let policy = self.config.retry;
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        attempt.failures += 1;
        if attempt.failures > policy.max_retries {
            self.fail(now, cause);
            return;
        }
        if let Some(wait) = retry_after {
            if wait > policy.max_retry_after {
                self.fail(now, FailureCause::RetryAfterTooLong(wait));
                return;
            }
        }
        let wait =
            backoff(&policy, attempt.failures, &mut self.rng).max(retry_after.unwrap_or_default());
        let until = now.checked_add(wait).unwrap_or(now);
        attempt.state = AttemptState::BackingOff { until };
    }

    /// Ends the attempt with an error. Callers waiting on a renewal that can no longer happen
    /// are told a login is needed.
    fn fail(&mut self, now: Timestamp, cause: FailureCause) {
        let Some(attempt) = self.end_attempt() else {
            return;
        };
        self.queue.push_back(Queued::Event(Event::Failed(FlowError {
            grant: attempt.kind(),
            attempts: attempt.sends,
            cause,
        })));
        if attempt.purpose == Purpose::Renewal {
            // The retries within the attempt are spent: wait at least the longest backoff
            // before renewing on the flow's own initiative again. Callers (`access`, a 401)
            // may still ask for a renewal at any time.
            self.renewal_hold = Some(
                now.checked_add(self.config.retry.max_backoff)
                    .unwrap_or(now),
            );
        }
        if attempt.purpose == Purpose::Renewal && self.bearer(now).is_none() {
            if let Err(reason) = self.renewal() {
                self.require_login(reason);
            }
        }
    }

    fn on_unauthorized(
        &mut self,
        now: Timestamp,
        generation: Generation,
        www_authenticate: &[http::HeaderValue],
    ) {
        // A 401 for an older token, or for one already refused, changes nothing: these come
        // by the thousand in a storm, so they are dismissed before the challenge is read.
        if generation.0 != self.generation || self.unreleased {
            return;
        }
        let Some(access) = self.tokens.as_mut().and_then(|t| t.access.as_mut()) else {
            return;
        };
        if access.refused {
            return;
        }
        // RFC 6750 §3.1: `insufficient_scope` is about the request, not the token; a new
        // token would be refused the same way.
        if let Ok(Some(challenge)) = bearer_challenge(www_authenticate.iter().map(|v| v.as_bytes()))
        {
            if challenge.error == Some(BearerErrorCode::InsufficientScope) {
                return;
            }
        }
        access.refused = true;
        if self.attempt.is_some() {
            return;
        }
        match self.renewal_grant() {
            Ok(grant) => self.begin(now, Call::Token(grant), Purpose::Renewal),
            Err(reason) => self.require_login(reason),
        }
    }
}

/// A random URL-safe string of 128 bits, for `state` and `nonce`.
fn random_token(rng: &mut Rng) -> String {
    use base64::Engine as _;
    let bytes = rng.bytes32();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.get(..16).unwrap_or(&bytes))
}

impl From<Emit> for Queued {
    fn from(emit: Emit) -> Queued {
        match emit {
            Emit::Send(request) => Queued::Send(request),
            Emit::Event(event) => Queued::Event(event),
        }
    }
}

/// Failures worth retrying: the server is overloaded, down, or asks to come back later.
fn is_transient(error: &ResponseError) -> bool {
    let transient_status = error.status().is_some_and(|status| {
        status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
    });
    let transient_code = matches!(
        error.code(),
        Some(ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable)
    );
    transient_status || transient_code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TokenFlow>();
        assert_send_sync::<Output>();
    }

    const LIFETIME: u64 = 600;

    fn flow(max_retries: u32) -> (TokenFlow, Timestamp) {
        let config = Config::builder("https://id.example/token", "app")
            .client_secret("secret")
            .retry(crate::config::RetryPolicy {
                max_retries,
                ..crate::config::RetryPolicy::default()
            })
            .build()
            .unwrap();
        let now = Timestamp::from_secs(86_400);
        (
            TokenFlow::new(config, 1, now, UnixTime::from_secs(1_700_000_000)),
            now,
        )
    }

    fn answer(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// Drains the flow; returns the ids of the requests it sent, the number of failures, and
    /// when it wants to be woken.
    fn drain(flow: &mut TokenFlow) -> (Vec<RequestId>, usize, Option<Timestamp>) {
        let (mut sent, mut failed) = (Vec::new(), 0);
        for _ in 0..64 {
            match flow.poll_output() {
                Output::Send(request) => sent.push(request.id),
                Output::Event(Event::Failed(_)) => failed += 1,
                Output::Event(_) => {}
                Output::Idle { until } => return (sent, failed, until),
            }
        }
        panic!("no Idle");
    }

    fn logged_in(max_retries: u32) -> (TokenFlow, Timestamp) {
        let (mut flow, now) = flow(max_retries);
        flow.login(now, Credentials::password("joe", "pw"));
        let (sent, _, _) = drain(&mut flow);
        let body = format!(
            r#"{{"access_token":"AT1","token_type":"Bearer","expires_in":{LIFETIME},"refresh_token":"RT1"}}"#
        );
        flow.handle_input(
            now,
            Input::Response {
                id: sent[0],
                response: answer(200, &body),
            },
        );
        drain(&mut flow);
        assert!(matches!(flow.access(now), Access::Ready(_)));
        (flow, now)
    }

    /// Runs the host loop from `now` for `total`, waking whenever asked (at once when the
    /// instant asked for has passed) and answering every request with `status` and `body`.
    /// Returns how many requests were sent, and fails if the flow asks for work at one instant
    /// again and again.
    fn run(
        flow: &mut TokenFlow,
        mut now: Timestamp,
        total: Duration,
        status: u16,
        body: &str,
    ) -> usize {
        let end = now + total;
        let (mut requests, mut at_this_instant) = (0, 0);
        flow.handle_input(now, Input::Timeout);
        loop {
            let (sent, _, until) = drain(flow);
            for id in sent {
                requests += 1;
                flow.handle_input(
                    now,
                    Input::Response {
                        id,
                        response: answer(status, body),
                    },
                );
            }
            match until {
                Some(until) if until <= now => {
                    at_this_instant += 1;
                    assert!(at_this_instant < 20, "woken again and again at one instant");
                }
                Some(until) if until < end => {
                    now = until;
                    at_this_instant = 0;
                }
                _ => return requests,
            }
            flow.handle_input(now, Input::Timeout);
        }
    }

    #[test]
    fn a_proactive_renewal_refused_for_good_is_not_repeated_at_once() {
        // A renewal point already passed restarted the renewal as soon as it failed; with a
        // host that wakes at once for an `Idle` instant already past, an error without
        // retries (a 4xx, an unusable 200) made the flow ask the server again and again
        // without time passing.
        for (status, body) in [
            (404, "<html>Not Found</html>"),
            (400, r#"{"error":"invalid_scope"}"#),
            (200, r#"{"access_token":"AT2","token_type":"mac"}"#),
        ] {
            let (mut flow, start) = logged_in(0);
            let renew_at = start + Duration::from_secs(LIFETIME - 30);
            let requests = run(&mut flow, renew_at, Duration::from_secs(29), status, body);
            assert!(requests <= 1, "{status}: {requests} requests");
            // The hold ends after the longest backoff: one more try, not a storm.
            let later = renew_at + Duration::from_secs(31);
            let requests = run(&mut flow, later, Duration::from_secs(1), status, body);
            assert!(requests <= 1, "{status}: {requests} requests");
        }
    }

    #[test]
    fn a_proactive_renewal_that_failed_after_its_retries_waits_before_the_next() {
        let (mut flow, start) = logged_in(3);
        let renew_at = start + Duration::from_secs(LIFETIME - 30);
        let busy = r#"{"error":"temporarily_unavailable"}"#;
        // Ten minutes of outage: attempts of four requests, spaced by at least 30 s.
        let requests = run(&mut flow, renew_at, Duration::from_secs(600), 503, busy);
        assert!(requests <= 4 * (1 + 600 / 30), "{requests} requests");
        assert!(requests >= 4, "{requests} requests");
        // A caller may still ask at any time, and the server is back.
        let now = renew_at + Duration::from_secs(601);
        assert_eq!(flow.access(now), Access::Pending);
        let (sent, _, _) = drain(&mut flow);
        let body = r#"{"access_token":"AT3","token_type":"Bearer","expires_in":600}"#;
        flow.handle_input(
            now,
            Input::Response {
                id: sent[0],
                response: answer(200, body),
            },
        );
        drain(&mut flow);
        assert!(matches!(flow.access(now), Access::Ready(_)));
    }

    #[test]
    fn a_restored_token_inside_its_margin_is_renewed_at_once_wherever_the_clock_starts() {
        // Issued an hour ago, expiring in 10 s: the renewal point (30 s before expiry) has
        // passed. A host clock may read zero when the flow is restored (the adapters' does),
        // which puts that point before its origin: passed all the same.
        let stored = StoredTokens::from_json(
            br#"{"version":1,"grant":"password","access_token":"AT1","expires_at":1700000010000,
                "refresh_token":"RT1","issued_at":1699996410000}"#,
        )
        .unwrap();
        for start in [Timestamp::ORIGIN, Timestamp::from_secs(86_400)] {
            let config = Config::builder("https://id.example/token", "app")
                .client_secret("secret")
                .build()
                .unwrap();
            let wall = UnixTime::from_secs(1_700_000_000);
            let mut flow = TokenFlow::restore(config, stored.clone(), 1, start, wall).unwrap();
            flow.handle_input(start, Input::Timeout);
            let (sent, _, _) = drain(&mut flow);
            assert_eq!(sent.len(), 1, "a renewal at once from {start:?}");
        }
    }
}
