//! Renewals coordinated with other replicas through a shared token store: the flow's side of
//! the protocol stated in [`crate::shared`].

use crate::time::Timestamp;

use crate::error::FailureCause;
use crate::output::{Event, Generation};
use crate::reuse::Unanswered;
use crate::shared::{InFlightRefresh, LeaseAnswer, SharedSnapshot, StoreReport, StoreRequest};

use super::attempt::{AttemptState, Call, Purpose};
use super::tokens::TokenSet;
use super::{Queued, TokenFlow};

impl TokenFlow {
    /// What the host reports about the shared store. Without a shared store configured,
    /// nothing.
    pub(super) fn on_store_report(&mut self, now: Timestamp, report: StoreReport) {
        if !self.config.shared_store {
            return;
        }
        match report {
            StoreReport::Lease(LeaseAnswer::Granted(snapshot)) => {
                self.on_lease_granted(now, snapshot)
            }
            StoreReport::Lease(LeaseAnswer::Busy(snapshot)) => self.on_lease_busy(now, snapshot),
            StoreReport::Changed(snapshot) => {
                if !self.adopt_if_newer(now, snapshot) && self.waiting_for_store() {
                    // The lease may be free now.
                    self.request_lease(now);
                }
            }
            StoreReport::Conflict(snapshot) => {
                // The tokens announced last were not written: the store's are the truth, at
                // whatever version it holds.
                self.adopt(now, snapshot);
            }
            StoreReport::LeaseLost => self.on_lease_lost(now),
            StoreReport::Unavailable => self.on_store_unavailable(now),
        }
    }

    /// Asks the host for the renewal lease for the attempt under way.
    pub(super) fn request_lease(&mut self, now: Timestamp) {
        let deadline = now.checked_add(self.config.request_timeout).unwrap_or(now);
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        attempt.state = AttemptState::AwaitingLease { deadline };
        self.queue
            .push_back(Queued::Event(Event::Store(StoreRequest::AcquireLease)));
    }

    /// The lease could not be had: retried with backoff, like a request that failed.
    pub(super) fn on_store_unavailable(&mut self, now: Timestamp) {
        if self.awaiting_lease() {
            self.retry_or_fail(now, FailureCause::SharedStoreUnavailable, None);
        }
    }

    fn awaiting_lease(&self) -> bool {
        self.attempt
            .as_ref()
            .is_some_and(|a| matches!(a.state, AttemptState::AwaitingLease { .. }))
    }

    fn waiting_for_store(&self) -> bool {
        self.attempt
            .as_ref()
            .is_some_and(|a| matches!(a.state, AttemptState::WaitingForStore { .. }))
    }

    fn on_lease_granted(&mut self, now: Timestamp, snapshot: SharedSnapshot) {
        if !self.awaiting_lease() {
            // A lease the flow no longer needs (its renewal ended) is handed back at once;
            // one it already holds (an answer repeated) is kept.
            if !self.attempt.as_ref().is_some_and(|a| a.lease_held) {
                self.queue
                    .push_back(Queued::Event(Event::Store(StoreRequest::ReleaseLease {
                        clear_in_flight: false,
                    })));
                self.adopt_if_newer(now, snapshot);
            }
            return;
        }
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.lease_held = true;
        }
        let newer = snapshot.version > self.store_version;
        let mut renewed_elsewhere = false;
        if newer {
            renewed_elsewhere = self.install_snapshot(now, snapshot);
        } else if snapshot.version == self.store_version {
            self.note_in_flight(snapshot.in_flight);
        }
        if renewed_elsewhere && self.bearer(now).is_some() {
            // Another replica renewed: nothing to send.
            self.end_attempt();
            return;
        }
        // Renew what is held now, under the lease; a token marked in flight by a holder that
        // is gone is presented again only as the reuse rule allows.
        match self.renewal_grant() {
            Ok(grant) => {
                if let Some(attempt) = self.attempt.as_mut() {
                    attempt.call = Call::Token(grant);
                }
                self.send(now);
            }
            Err(reason) => self.give_up_refresh(now, None, reason),
        }
    }

    fn on_lease_busy(&mut self, now: Timestamp, snapshot: SharedSnapshot) {
        if self.adopt_if_newer(now, snapshot) || !self.awaiting_lease() {
            return;
        }
        let until = now.checked_add(self.config.request_timeout).unwrap_or(now);
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.state = AttemptState::WaitingForStore { until };
        }
    }

    fn on_lease_lost(&mut self, now: Timestamp) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        if !attempt.lease_held {
            return;
        }
        attempt.lease_held = false;
        let (id, is_refresh) = (attempt.in_flight_id(), attempt.is_refresh());
        // The mark could not be written, so the request must not go: withdrawn unsent, it
        // spent nothing, and the lease is asked for again. Already sent, the compare-and-set
        // will arbitrate its outcome.
        if let Some(id) = id {
            if self.withdraw(id) {
                // Nor does it count as a send: the attempts a failure reports, and the
                // bound of `max_retries + 2` sends, are about requests the host was given.
                if let Some(attempt) = self.attempt.as_mut() {
                    attempt.sends = attempt.sends.saturating_sub(1);
                }
                if let (true, Some(refresh)) = (is_refresh, self.refresh_mut()) {
                    refresh.unanswered.not_sent();
                }
                self.request_lease(now);
            }
        }
    }

    /// Adopts `snapshot` if it is newer than the tokens held (an older one may hold a refresh
    /// token already spent here); true if it brought other tokens than those held.
    fn adopt_if_newer(&mut self, now: Timestamp, snapshot: SharedSnapshot) -> bool {
        if snapshot.version > self.store_version {
            return self.adopt(now, snapshot);
        }
        // Under its own lease the flow knows better: a mark at its version is its own, and
        // stays in the store after the server answered until the lease is released.
        let own_lease = self.attempt.as_ref().is_some_and(|a| a.lease_held);
        if snapshot.version == self.store_version && !own_lease {
            self.note_in_flight(snapshot.in_flight);
        }
        false
    }

    /// Takes the store's tokens in place of the flow's. A renewal under way was for the old
    /// tokens and ends; callers still waiting get a renewal of the new ones if they need it.
    /// True if the store held other tokens than the flow.
    fn adopt(&mut self, now: Timestamp, snapshot: SharedSnapshot) -> bool {
        if !self.install_snapshot(now, snapshot) {
            // The tokens held, handed back: the renewal under way is still theirs. Ending it
            // would refuse the answer to its request (which may carry the successor of the
            // refresh token) and present the token once more in a new attempt.
            return false;
        }
        let renewing = self
            .attempt
            .as_ref()
            .is_some_and(|a| a.purpose == Purpose::Renewal);
        if !renewing {
            return true;
        }
        self.abandon_attempt();
        if self.bearer(now).is_some() || self.tokens.is_none() {
            return true;
        }
        match self.renewal_grant() {
            Ok(grant) => self.begin(now, Call::Token(grant), Purpose::Renewal),
            Err(reason) => self.require_login(reason),
        }
        true
    }

    /// Holds the snapshot's tokens, at its version, and releases a usable access token at
    /// once: they are stored already. True if they are other tokens than those held.
    ///
    /// The tokens held, handed back (a conflict reported at the version held, a repeated
    /// answer), are not new: only the version and the in-flight mark are taken. What the
    /// flow knows of them stays: an access token an API refused, the unanswered
    /// presentations of the refresh token, the pause after a renewal the server just
    /// refused (renewing them again at once would ignore its backoff and Retry-After), and
    /// the token epoch a late answer is recognised in.
    fn install_snapshot(&mut self, now: Timestamp, snapshot: SharedSnapshot) -> bool {
        self.store_version = snapshot.version;
        let held = self.tokens.as_ref().map(TokenSet::to_stored);
        let held = held.as_ref().map(|t| (&t.access_token, &t.refresh_token));
        if held
            == snapshot
                .tokens
                .as_ref()
                .map(|t| (&t.access_token, &t.refresh_token))
        {
            self.note_in_flight(snapshot.in_flight);
            return false;
        }
        self.epoch += 1;
        self.unreleased = false;
        self.releasing = None;
        // The pause after a renewal that failed for good ends with new tokens.
        self.renewal_hold = None;
        // Tokens that do not validate are not presented anywhere: a login will replace them.
        self.tokens = snapshot
            .tokens
            .filter(|stored| stored.validate().is_ok())
            .and_then(|stored| TokenSet::from_stored(&self.config, &self.clock, now, stored));
        self.note_in_flight(snapshot.in_flight);
        let Some(tokens) = &self.tokens else {
            return true;
        };
        if tokens.access.is_some() {
            self.generation += 1;
            self.login_required = None;
            if self.bearer(now).is_some() {
                let generation = Generation(self.generation);
                self.queue
                    .push_back(Queued::Event(Event::AccessReady { generation }));
            }
        }
        true
    }

    /// The store says the held refresh token was sent and never answered.
    fn note_in_flight(&mut self, in_flight: Option<InFlightRefresh>) {
        let (Some(mark), Some(refresh)) = (in_flight, self.refresh_mut()) else {
            return;
        };
        let marked = Unanswered {
            count: 1,
            first_sent_at: Some(mark.since),
        };
        refresh.unanswered = refresh.unanswered.merge(marked);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::TokenFlow;
    use crate::shared::{LeaseAnswer, SharedSnapshot, StoreReport, StoreRequest, StoreVersion};
    use crate::{
        Config, ConfigBuilder, Credentials, Event, Input, Output, RefreshTokenReuse, RetryPolicy,
    };
    use crate::{Timestamp, UnixTime};

    /// Drains the flow: the requests it sent, the store requests it made, and the attempts
    /// each failure reported.
    fn drain(flow: &mut TokenFlow) -> (usize, Vec<StoreRequest>, Vec<u32>) {
        let (mut sent, mut store, mut failed) = (0, Vec::new(), Vec::new());
        for _ in 0..64 {
            match flow.poll_output() {
                Output::Send(_) => sent += 1,
                Output::Event(Event::Store(request)) => store.push(request),
                Output::Event(Event::Failed(error)) => failed.push(error.attempts),
                Output::Event(_) => {}
                Output::Idle { .. } => return (sent, store, failed),
            }
        }
        panic!("no Idle");
    }

    /// A replica's configuration without retries, shaped further by `tune`.
    fn replica_config(tune: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
        let builder = Config::builder("https://id.example/token", "app")
            .client_secret("secret")
            .shared_store(true)
            .retry(RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            });
        tune(builder).build().unwrap()
    }

    /// A JSON answer of the token endpoint.
    fn answer(status: u16, body: &[u8]) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .unwrap()
    }

    /// A flow logged in with `AT1`/`RT1` (60 s), the time, and the store holding its tokens at
    /// version 1.
    fn logged_in(config: Config) -> (TokenFlow, Timestamp, SharedSnapshot) {
        let now = Timestamp::from_secs(86_400);
        let mut flow = TokenFlow::new(config, 1, now, UnixTime::from_secs(1_700_000_000));
        flow.login(now, Credentials::password("joe", "pw"));
        let Output::Send(login) = flow.poll_output() else {
            panic!("no login request");
        };
        let body = br#"{"access_token":"AT1","token_type":"Bearer","expires_in":60,"refresh_token":"RT1"}"#;
        flow.handle_input(
            now,
            Input::Response {
                id: login.id,
                response: answer(200, body),
            },
        );
        drain(&mut flow);
        let held = SharedSnapshot {
            version: StoreVersion::new(1),
            tokens: flow.stored_tokens(),
            in_flight: None,
        };
        (flow, now, held)
    }

    #[test]
    fn a_resend_withdrawn_by_a_lost_lease_is_not_counted_as_an_attempt() {
        let (mut flow, mut now, held) = logged_in(replica_config(|config| {
            config
                .refresh_token_reuse(RefreshTokenReuse::Reusable)
                .request_timeout(Duration::from_secs(1))
        }));

        // The token expires; the renewal takes the lease and sends the refresh.
        now += Duration::from_secs(120);
        flow.handle_input(now, Input::Timeout);
        let (sent, store, _) = drain(&mut flow);
        assert_eq!((sent, store), (0, vec![StoreRequest::AcquireLease]));
        let granted = StoreReport::Lease(LeaseAnswer::Granted(held.clone()));
        flow.handle_input(now, Input::Store(granted.clone()));
        let (sent, _, _) = drain(&mut flow);
        assert_eq!(sent, 1);

        // The host slept through the deadline and the lease: the immediate resend of the
        // unanswered refresh is withdrawn when marking it in flight finds the lease lost.
        now += Duration::from_secs(3_600);
        flow.handle_input(now, Input::Timeout);
        assert!(matches!(
            flow.poll_output(),
            Output::Event(Event::Store(StoreRequest::MarkInFlight { .. }))
        ));
        flow.handle_input(now, Input::Store(StoreReport::LeaseLost));
        let (sent, store, _) = drain(&mut flow);
        assert_eq!((sent, store), (0, vec![StoreRequest::AcquireLease]));
        flow.handle_input(now, Input::Store(granted));
        let (sent, _, _) = drain(&mut flow);
        assert_eq!(sent, 1);

        // That one goes unanswered too: two requests were sent, and the failure says so.
        now += Duration::from_secs(2);
        flow.handle_input(now, Input::Timeout);
        let (sent, _, failed) = drain(&mut flow);
        assert_eq!((sent, failed), (0, vec![2]));
    }

    #[test]
    fn the_same_tokens_handed_back_by_the_store_keep_the_pause_after_a_failed_renewal() {
        let (mut flow, mut now, held) = logged_in(replica_config(|config| config));

        // The token expires; the renewal under the lease is refused.
        now += Duration::from_secs(120);
        flow.handle_input(now, Input::Timeout);
        drain(&mut flow);
        let granted = StoreReport::Lease(LeaseAnswer::Granted(held.clone()));
        flow.handle_input(now, Input::Store(granted));
        let id = flow.request_in_flight().expect("a refresh in flight");
        drain(&mut flow);
        let refused = br#"{"error":"temporarily_unavailable"}"#;
        flow.handle_input(
            now,
            Input::Response {
                id,
                response: answer(503, refused),
            },
        );
        let (_, _, failed) = drain(&mut flow);
        assert_eq!(failed, vec![1]);

        // The store reports a conflict at the version held, with the same tokens: nothing
        // to renew that was not refused a moment ago.
        flow.handle_input(now, Input::Store(StoreReport::Conflict(held)));
        drain(&mut flow);
        flow.handle_input(now, Input::Timeout);
        let (sent, store, failed) = drain(&mut flow);
        assert_eq!((sent, store, failed), (0, vec![], vec![]));
    }

    #[test]
    fn the_tokens_held_handed_back_by_the_store_keep_the_refresh_in_flight() {
        // A conflict reported out of turn, at the version held and with the tokens held,
        // after the lease was lost while the refresh was out: nothing new to adopt. The
        // renewal was abandoned and started again, presenting the refresh token once more,
        // and the answer to the first request, which may carry its successor, was refused.
        let (mut flow, mut now, held) = logged_in(replica_config(|config| {
            config
                .refresh_token_reuse(RefreshTokenReuse::GraceWindow(Duration::from_secs(60)))
                .request_timeout(Duration::from_secs(1))
        }));

        // The token expires; the refresh goes out under the lease, marked in flight.
        now += Duration::from_secs(120);
        flow.handle_input(now, Input::Timeout);
        drain(&mut flow);
        flow.handle_input(
            now,
            Input::Store(StoreReport::Lease(LeaseAnswer::Granted(held.clone()))),
        );
        let refresh = flow.request_in_flight().expect("a refresh in flight");
        let (sent, store, _) = drain(&mut flow);
        assert_eq!(sent, 1);
        let [StoreRequest::MarkInFlight { since }] = store[..] else {
            panic!("{store:?}");
        };

        // The lease is lost with the request out, then the store hands back what is held.
        flow.handle_input(now, Input::Store(StoreReport::LeaseLost));
        drain(&mut flow);
        let marked = SharedSnapshot {
            in_flight: Some(crate::shared::InFlightRefresh { since }),
            ..held
        };
        flow.handle_input(now, Input::Store(StoreReport::Conflict(marked)));
        let (sent, store, failed) = drain(&mut flow);
        assert_eq!((sent, store, failed), (0, vec![], vec![]));
        assert_eq!(flow.request_in_flight(), Some(refresh));

        // The first request's answer is the renewal's.
        let body = br#"{"access_token":"AT2","token_type":"Bearer","expires_in":60,"refresh_token":"RT2"}"#;
        flow.handle_input(
            now,
            Input::Response {
                id: refresh,
                response: answer(200, body),
            },
        );
        let (_, store, _) = drain(&mut flow);
        assert!(
            matches!(
                &store[..],
                [StoreRequest::TokensUpdated { expected_version, .. }]
                    if *expected_version == StoreVersion::new(1)
            ),
            "{store:?}"
        );
    }
}
