//! Revoking tokens at logout (RFC 7009), one request at a time, refresh token first.

use std::collections::VecDeque;
use std::time::Duration;

use http::StatusCode;

use crate::config::Config;
use crate::error::FailureCause;
use crate::input::TransportError;
use crate::output::{Event, HttpRequest, RequestId};
use crate::redact::{Patterns, Secrets};
use crate::refused_redirect::{Endpoint, RefusedRedirect};
use crate::retry_after::parse_retry_after;
use crate::revocation::{TokenTypeHint, revocation_request};
use crate::secret::SecretString;
use crate::time::{Timestamp, UnixTime};
use crate::token::{ResponseError, parse_token_response_to};

use super::backoff::{Rng, backoff};
use super::secrets::Held;

/// Tokens waiting to be revoked, and the revocation under way.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    waiting: VecDeque<(SecretString, TokenTypeHint)>,
    active: Option<Active>,
    /// The tokens whose revocation ended while others still wait: the server may echo one in
    /// its answer about the next, and it must be scrubbed from that answer too.
    ended: Vec<SecretString>,
}

#[derive(Debug)]
struct Active {
    token: SecretString,
    hint: TokenTypeHint,
    sends: u32,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    InFlight { id: RequestId, deadline: Timestamp },
    BackingOff { until: Timestamp },
}

/// What the revocations ask the flow to emit.
pub(crate) enum Emit {
    Send(HttpRequest),
    Event(Event),
}

/// The tokens waiting to be revoked, the one under way and those of the same logout that
/// ended before it.
impl Secrets for Revocations {
    fn visit(&self, patterns: &mut Patterns) {
        let active = self.active.iter().map(|active| &active.token);
        let waiting = self.waiting.iter().map(|(token, _)| token);
        for token in active.chain(waiting).chain(&self.ended) {
            patterns.secret(token.expose_secret());
        }
    }
}

impl Revocations {
    pub(crate) fn push(&mut self, token: SecretString, hint: TokenTypeHint) {
        self.waiting.push_back((token, hint));
    }

    /// Nothing to revoke and nothing under way.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.active.is_none() && self.waiting.is_empty()
    }

    pub(crate) fn is_current(&self, id: RequestId) -> bool {
        matches!(&self.active, Some(Active { state: State::InFlight { id: current, .. }, .. }) if *current == id)
    }

    /// Whether a revocation is waiting or under way.
    pub(crate) fn is_busy(&self) -> bool {
        self.active.is_some() || !self.waiting.is_empty()
    }

    pub(crate) fn wake_at(&self) -> Option<Timestamp> {
        self.active.as_ref().map(|active| match active.state {
            State::InFlight { deadline, .. } => deadline,
            State::BackingOff { until } => until,
        })
    }

    /// Does what time demands, and starts the next revocation when none is under way.
    pub(crate) fn tick(
        &mut self,
        now: Timestamp,
        config: &Config,
        next_id: &mut u64,
        rng: &mut Rng,
        emit: &mut dyn FnMut(Emit),
    ) {
        match self.active.as_ref().map(|a| a.state) {
            Some(State::InFlight { deadline, .. }) if now >= deadline => {
                let error = TransportError::timed_out("no answer before the deadline");
                self.retry_or_give_up(now, config, rng, FailureCause::Transport(error), None, emit);
            }
            Some(State::BackingOff { until }) if now >= until => {
                self.send(now, config, next_id, emit);
            }
            _ => {}
        }
        if self.active.is_none() {
            if let Some((token, hint)) = self.waiting.pop_front() {
                self.active = Some(Active {
                    token,
                    hint,
                    sends: 0,
                    state: State::BackingOff { until: now },
                });
                self.send(now, config, next_id, emit);
            }
        }
    }

    /// Ends the revocation under way, keeping its token only while others wait.
    fn finish(&mut self) -> Option<Active> {
        let active = self.active.take()?;
        if self.waiting.is_empty() {
            self.ended.clear();
        } else {
            self.ended.push(active.token.clone());
        }
        Some(active)
    }

    fn send(
        &mut self,
        now: Timestamp,
        config: &Config,
        next_id: &mut u64,
        emit: &mut dyn FnMut(Emit),
    ) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let Some(request) = revocation_request(config, active.token.expose_secret(), active.hint)
        else {
            self.finish();
            return;
        };
        let id = RequestId(*next_id);
        *next_id += 1;
        let deadline = now.checked_add(config.request_timeout).unwrap_or(now);
        active.sends += 1;
        active.state = State::InFlight { id, deadline };
        emit(Emit::Send(HttpRequest {
            id,
            request,
            deadline,
        }));
    }

    /// RFC 7009 §2.2: 200 means revoked (also for a token the server did not know); §2.2.1:
    /// 503 means try again later, honouring `Retry-After`. `held` is the rest of the flow's
    /// secrets (and its configuration), to be scrubbed from an error's text with these.
    pub(crate) fn on_response(
        &mut self,
        now: Timestamp,
        wall: UnixTime,
        held: &Held<'_>,
        rng: &mut Rng,
        response: &http::Response<Vec<u8>>,
        emit: &mut dyn FnMut(Emit),
    ) {
        // Never followed: it would carry the token, and the client's credentials, elsewhere.
        if let Some(redirect) = RefusedRedirect::from_response(Endpoint::Revocation, response) {
            self.give_up(FailureCause::Redirect(redirect), emit);
            return;
        }
        let config = held.config;
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let status = response.status();
        if status.is_success() {
            emit(Emit::Event(Event::Revoked {
                token_type: active.hint,
            }));
            self.finish();
            return;
        }
        let error = match parse_token_response_to(
            status,
            response.headers(),
            response.body(),
            config.max_body_bytes,
            None,
            &(held, &*self),
        ) {
            Err(error) => error,
            Ok(_) => ResponseError::Status {
                status,
                excerpt: String::new(),
            },
        };
        let transient = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        if transient {
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v.as_bytes(), wall).ok());
            self.retry_or_give_up(
                now,
                config,
                rng,
                FailureCause::Endpoint(error),
                retry_after,
                emit,
            );
        } else {
            self.give_up(FailureCause::Endpoint(error), emit);
        }
    }

    pub(crate) fn on_failure(
        &mut self,
        now: Timestamp,
        config: &Config,
        rng: &mut Rng,
        error: TransportError,
        emit: &mut dyn FnMut(Emit),
    ) {
        // Revocation is idempotent: every transport failure may be retried.
        self.retry_or_give_up(now, config, rng, FailureCause::Transport(error), None, emit);
    }

    fn retry_or_give_up(
        &mut self,
        now: Timestamp,
        config: &Config,
        rng: &mut Rng,
        cause: FailureCause,
        retry_after: Option<Duration>,
        emit: &mut dyn FnMut(Emit),
    ) {
        let policy = config.retry;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if active.sends > policy.max_retries {
            self.give_up(cause, emit);
            return;
        }
        if let Some(wait) = retry_after {
            if wait > policy.max_retry_after {
                self.give_up(FailureCause::RetryAfterTooLong(wait), emit);
                return;
            }
        }
        let wait = backoff(&policy, active.sends, rng).max(retry_after.unwrap_or_default());
        active.state = State::BackingOff {
            until: now.checked_add(wait).unwrap_or(now),
        };
    }

    fn give_up(&mut self, cause: FailureCause, emit: &mut dyn FnMut(Emit)) {
        if let Some(active) = self.finish() {
            emit(Emit::Event(Event::RevocationFailed {
                token_type: active.hint,
                attempts: active.sends,
                cause,
            }));
        }
    }
}
