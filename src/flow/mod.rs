//! [`TokenFlow`]: the token lifecycle as a state machine that never does IO.

mod attempt;
mod backoff;
mod clock;
mod tokens;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::challenge::{BearerErrorCode, bearer_challenge};
use crate::config::Config;
use crate::error::{FailureCause, FlowError};
use crate::grant::{Credentials, GrantKind, TokenGrant, build_token_request};
use crate::input::{Input, TransportError};
use crate::output::{
    Access, Bearer, Event, Generation, HttpRequest, LoginRequiredReason, Output, RequestId,
};
use crate::retry_after::parse_retry_after;
use crate::time::UnixTime;
use crate::token::{
    ErrorCode, ResponseError, RestoreError, StoredTokens, parse_token_response,
    salvage_refresh_token,
};

use attempt::{Attempt, AttemptState, Purpose};
use backoff::{Rng, backoff};
use clock::Clock;
use tokens::{HeldRefresh, TokenSet};

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
    renewal_hold: Option<Instant>,
    queue: VecDeque<Queued>,
    next_request: u64,
}

/// Outputs waiting to be polled.
#[derive(Debug)]
enum Queued {
    Send(HttpRequest),
    Event(Event),
    /// `TokensUpdated`; once the host returns for the next output, `release` is handed out.
    Tokens {
        stored: StoredTokens,
        release: Option<Generation>,
    },
}

impl TokenFlow {
    /// A flow with no tokens yet. `seed` drives retry jitter (pass real entropy in production,
    /// a constant in tests); `now` and `wall` are one reading of the monotonic and wall clocks.
    pub fn new(config: Config, seed: u64, now: Instant, wall: UnixTime) -> TokenFlow {
        TokenFlow {
            config,
            clock: Clock::new(now, wall),
            rng: Rng::new(seed),
            tokens: None,
            generation: 0,
            unreleased: false,
            releasing: None,
            attempt: None,
            login_required: None,
            renewal_hold: None,
            queue: VecDeque::new(),
            next_request: 1,
        }
    }

    /// A flow that carries on with tokens stored by an earlier run. An access token past its
    /// expiry is renewed on first use (or at once, with proactive refresh).
    pub fn restore(
        config: Config,
        stored: StoredTokens,
        seed: u64,
        now: Instant,
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
    pub fn login(&mut self, now: Instant, credentials: Credentials) {
        let now = self.tick(now);
        self.abandon_attempt();
        self.login_required = None;
        let grant = match credentials {
            Credentials::Password { username, password } => {
                TokenGrant::Password { username, password }
            }
            Credentials::ClientCredentials => TokenGrant::ClientCredentials,
        };
        self.begin(now, grant, Purpose::Login);
    }

    /// A token to use now, or why there is none. Starts a renewal when the token has ended and
    /// one is possible; any number of callers share that one request.
    ///
    /// Cheap when a token is ready: no allocation, a reference-count increment.
    pub fn access(&mut self, now: Instant) -> Access {
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
                self.begin(now, grant, Purpose::Renewal);
                Access::Pending
            }
            Err(reason) => {
                self.require_login(reason);
                Access::LoginRequired
            }
        }
    }

    /// Forgets the tokens ([`Event::TokensCleared`]) and abandons any request under way.
    pub fn logout(&mut self, now: Instant) {
        self.tick(now);
        self.abandon_attempt();
        self.login_required = None;
        self.unreleased = false;
        self.releasing = None;
        self.renewal_hold = None;
        if self.tokens.take().is_some() {
            self.queue.push_back(Queued::Event(Event::TokensCleared));
        }
    }

    /// Feeds something that happened: a response, a transport failure, an API's 401, or the
    /// passing of time.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        let now = self.tick(now);
        match input {
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
            Some(Queued::Tokens { stored, release }) => {
                self.releasing = release;
                Output::Event(Event::TokensUpdated(stored))
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

    /// The generation of the current access token, if one is held.
    pub fn generation(&self) -> Option<Generation> {
        self.tokens
            .as_ref()
            .and_then(|t| t.access.as_ref())
            .map(|_| Generation(self.generation))
    }

    /// The id of the token request awaiting an answer, if any.
    pub fn request_in_flight(&self) -> Option<RequestId> {
        self.attempt.as_ref().and_then(Attempt::in_flight_id)
    }

    /// Records `now`, then does what time demands: gives up on a request past its deadline,
    /// sends a retry whose backoff ended, starts a proactive renewal.
    fn tick(&mut self, now: Instant) -> Instant {
        let now = self.clock.observe(now);
        if let Some(attempt) = &self.attempt {
            match attempt.state {
                AttemptState::InFlight { deadline, .. } if now >= deadline => {
                    let timeout = TransportError::timed_out("no answer before the deadline");
                    self.on_transport_failure(now, timeout);
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
                self.begin(now, grant, Purpose::Renewal);
            }
        }
        now
    }

    fn bearer(&self, now: Instant) -> Option<Bearer> {
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
    fn renew_at(&self) -> Option<Instant> {
        if !self.config.proactive_refresh || self.unreleased || self.attempt.is_some() {
            return None;
        }
        let tokens = self.tokens.as_ref()?;
        let access = tokens.access.as_ref()?;
        if access.refused || self.renewal_grant().is_err() {
            return None;
        }
        Some(match self.renewal_hold {
            Some(hold) => access.renew_at.max(hold),
            None => access.renew_at,
        })
    }

    fn proactive_renewal_due(&self, now: Instant) -> bool {
        self.renew_at().is_some_and(|at| now >= at)
    }

    fn wake_at(&self) -> Option<Instant> {
        match &self.attempt {
            Some(attempt) => Some(attempt.wake_at()),
            None => self.renew_at(),
        }
    }

    /// How the held tokens can be renewed without the user, or why they cannot.
    fn renewal_grant(&self) -> Result<TokenGrant, LoginRequiredReason> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or(LoginRequiredReason::NoRefreshToken)?;
        // Client credentials need nobody's secret but the client's: asking again is the
        // renewal (RFC 6749 §4.4.3 expects no refresh token).
        if tokens.origin == GrantKind::ClientCredentials {
            return Ok(TokenGrant::ClientCredentials);
        }
        let refresh = tokens
            .refresh
            .as_ref()
            .ok_or(LoginRequiredReason::NoRefreshToken)?;
        if refresh.unanswered >= 2 {
            return Err(LoginRequiredReason::RefreshOutcomeUnknown);
        }
        let wall = self.clock.wall_at(self.clock.now());
        if refresh.expires_at.is_some_and(|at| at <= wall) {
            return Err(LoginRequiredReason::RefreshTokenExpired);
        }
        Ok(TokenGrant::RefreshToken(refresh.token.clone()))
    }

    fn require_login(&mut self, reason: LoginRequiredReason) {
        if self.login_required.is_none() {
            self.login_required = Some(reason.clone());
            self.queue
                .push_back(Queued::Event(Event::LoginRequired { reason }));
        }
    }

    fn begin(&mut self, now: Instant, grant: TokenGrant, purpose: Purpose) {
        self.attempt = Some(Attempt {
            grant,
            purpose,
            state: AttemptState::BackingOff { until: now },
            sends: 0,
        });
        self.send(now);
    }

    /// Sends (again) the attempt's request under a fresh id.
    fn send(&mut self, now: Instant) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let deadline = now.checked_add(self.config.request_timeout).unwrap_or(now);
        attempt.state = AttemptState::InFlight { id, deadline };
        attempt.sends += 1;
        let request = build_token_request(&self.config, &attempt.grant);
        let is_refresh = matches!(attempt.grant, TokenGrant::RefreshToken(_));
        if let (true, Some(refresh)) = (is_refresh, self.refresh_mut()) {
            refresh.unanswered = refresh.unanswered.saturating_add(1);
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
        if let Some(attempt) = self.attempt.take() {
            if let Some(id) = attempt.in_flight_id() {
                let before = self.queue.len();
                self.queue
                    .retain(|q| !matches!(q, Queued::Send(request) if request.id == id));
                // Never handed to the host, so never sent: it cannot have spent the token.
                if self.queue.len() < before {
                    if let (TokenGrant::RefreshToken(_), Some(refresh)) =
                        (&attempt.grant, self.refresh_mut())
                    {
                        refresh.unanswered = refresh.unanswered.saturating_sub(1);
                    }
                }
            }
        }
    }

    fn is_current(&self, id: RequestId) -> bool {
        self.request_in_flight() == Some(id)
    }

    fn on_response(&mut self, now: Instant, id: RequestId, response: http::Response<Vec<u8>>) {
        if !self.is_current(id) {
            return;
        }
        let Some(grant) = self.attempt.as_ref().map(|a| a.grant.kind()) else {
            return;
        };
        if grant == GrantKind::RefreshToken {
            if let Some(refresh) = self.refresh_mut() {
                refresh.unanswered = 0;
            }
        }
        let (parts, body) = response.into_parts();
        match parse_token_response(
            parts.status,
            &parts.headers,
            &body,
            self.config.max_body_bytes,
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

    fn apply(&mut self, now: Instant, grant: GrantKind, response: crate::token::TokenResponse) {
        let previous = self.tokens.take();
        match TokenSet::from_response(&self.config, &self.clock, now, grant, response, previous) {
            Some(tokens) => {
                self.attempt = None;
                self.renewal_hold = None;
                self.generation += 1;
                self.unreleased = true;
                self.login_required = None;
                self.queue.push_back(Queued::Tokens {
                    stored: tokens.to_stored(),
                    release: Some(Generation(self.generation)),
                });
                self.tokens = Some(tokens);
            }
            // Unreachable in practice (the parser only accepts sendable tokens and lifetimes
            // are clamped), but a token that cannot become a header must not replace good ones.
            None => self.fail(
                now,
                FailureCause::Endpoint(ResponseError::Malformed {
                    status: StatusCode::OK,
                    problem: crate::token::Malformation::UnsendableToken("access_token"),
                }),
            ),
        }
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
        tokens.refresh = Some(HeldRefresh {
            token,
            expires_at: None,
            unanswered: 0,
        });
        self.queue.push_back(Queued::Tokens {
            stored: tokens.to_stored(),
            release: None,
        });
    }

    fn on_error_response(
        &mut self,
        now: Instant,
        grant: GrantKind,
        error: ResponseError,
        headers: &http::HeaderMap,
    ) {
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
                    self.attempt = None;
                    self.tokens = None;
                    self.unreleased = false;
                    self.queue.push_back(Queued::Event(Event::TokensCleared));
                    self.login_required = None;
                    self.require_login(LoginRequiredReason::RefreshTokenRejected(oauth.clone()));
                    return;
                }
            }
        }
        self.fail(now, FailureCause::Endpoint(error));
    }

    fn on_transport_failure(&mut self, now: Instant, error: TransportError) {
        let Some(attempt) = self.attempt.as_ref() else {
            return;
        };
        let is_refresh = matches!(attempt.grant, TokenGrant::RefreshToken(_));
        if is_refresh {
            if let Some(refresh) = self.refresh_mut() {
                if !error.is_ambiguous() {
                    // It never reached the server: this use does not count.
                    refresh.unanswered = refresh.unanswered.saturating_sub(1);
                } else if refresh.unanswered >= 2 {
                    // Presented twice with no answer: a third try could trip the server's
                    // reuse detection and revoke the whole grant (RFC 9700 §4.14).
                    self.fail(now, FailureCause::Transport(error));
                    return;
                } else {
                    // Once more, at once: if the first request never arrived this succeeds;
                    // if it did and the server allows a grace retry, this succeeds too.
                    self.send(now);
                    return;
                }
            }
        }
        self.retry_or_fail(now, FailureCause::Transport(error), None);
    }

    fn retry_or_fail(&mut self, now: Instant, cause: FailureCause, retry_after: Option<Duration>) {
        let policy = self.config.retry;
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        if attempt.sends > policy.max_retries {
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
            backoff(&policy, attempt.sends, &mut self.rng).max(retry_after.unwrap_or_default());
        let until = now.checked_add(wait).unwrap_or(now);
        attempt.state = AttemptState::BackingOff { until };
    }

    /// Ends the attempt with an error. Callers waiting on a renewal that can no longer happen
    /// are told a login is needed.
    fn fail(&mut self, now: Instant, cause: FailureCause) {
        let Some(attempt) = self.attempt.take() else {
            return;
        };
        self.queue.push_back(Queued::Event(Event::Failed(FlowError {
            grant: attempt.grant.kind(),
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
            if let Err(reason) = self.renewal_grant() {
                self.require_login(reason);
            }
        }
    }

    fn on_unauthorized(
        &mut self,
        now: Instant,
        generation: Generation,
        www_authenticate: &[http::HeaderValue],
    ) {
        // RFC 6750 §3.1: `insufficient_scope` is about the request, not the token; a new
        // token would be refused the same way.
        if let Ok(Some(challenge)) = bearer_challenge(www_authenticate.iter().map(|v| v.as_bytes()))
        {
            if challenge.error == Some(BearerErrorCode::InsufficientScope) {
                return;
            }
        }
        if generation.0 != self.generation || self.unreleased {
            return;
        }
        let Some(access) = self.tokens.as_mut().and_then(|t| t.access.as_mut()) else {
            return;
        };
        if access.refused {
            return;
        }
        access.refused = true;
        if self.attempt.is_some() {
            return;
        }
        match self.renewal_grant() {
            Ok(grant) => self.begin(now, grant, Purpose::Renewal),
            Err(reason) => self.require_login(reason),
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

    const LIFETIME: u64 = 600;

    fn flow(max_retries: u32) -> (TokenFlow, Instant) {
        let config = Config::builder("https://id.example/token", "app")
            .client_secret("secret")
            .retry(crate::config::RetryPolicy {
                max_retries,
                ..crate::config::RetryPolicy::default()
            })
            .build()
            .unwrap();
        let now = Instant::now();
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
    fn drain(flow: &mut TokenFlow) -> (Vec<RequestId>, usize, Option<Instant>) {
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

    fn logged_in(max_retries: u32) -> (TokenFlow, Instant) {
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
        mut now: Instant,
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
}
