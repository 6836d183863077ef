//! One token request and its retries.

use std::time::Duration;

use crate::grant::{GrantKind, TokenGrant};
use crate::output::RequestId;
use crate::time::Timestamp;

/// Why a token request is being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The application asked to log in.
    Login,
    /// The flow renews tokens it holds (refresh, or client credentials asked again).
    Renewal,
}

/// The token request under way. There is at most one: this is what makes many waiting
/// callers and many 401s cost a single request.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// What the request is; for a password login, the only place the password lives.
    pub(crate) call: Call,
    pub(crate) purpose: Purpose,
    pub(crate) state: AttemptState,
    /// How many times it has been sent.
    pub(crate) sends: u32,
    /// Transient failures so far, against the retry budget.
    pub(crate) failures: u32,
    /// Whether the one immediate resend after a refresh went unanswered has been made.
    /// Later losses go through the retry budget, so an attempt sends at most
    /// `max_retries + 2` times.
    pub(crate) resent_unanswered: bool,
    /// With a shared store: this attempt holds the renewal lease.
    pub(crate) lease_held: bool,
    /// The flow's token epoch when the request was last sent: a late answer to it is adopted
    /// only while the tokens it renews are still the ones held.
    pub(crate) epoch: u64,
    /// For device-code polling: the current interval and when the code expires.
    pub(crate) poll: Option<DevicePoll>,
}

/// The request an attempt makes.
#[derive(Debug)]
pub(crate) enum Call {
    /// A token request.
    Token(TokenGrant),
    /// The device authorization request that precedes device-code polling (RFC 8628 §3.1).
    DeviceAuthorization,
}

/// Device-code polling (RFC 8628 §3.4, §3.5).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DevicePoll {
    pub(crate) interval: Duration,
    pub(crate) expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptState {
    /// Sent as `id`; given up at `deadline`.
    InFlight { id: RequestId, deadline: Timestamp },
    /// Waiting to be sent again at `until`.
    BackingOff { until: Timestamp },
    /// With a shared store: the renewal lease was asked for; without an answer by `deadline`
    /// the store counts as unreachable.
    AwaitingLease { deadline: Timestamp },
    /// With a shared store: another replica holds the lease; the flow waits for the store to
    /// change, and asks again at `until`.
    WaitingForStore { until: Timestamp },
}

impl Attempt {
    pub(crate) fn new(call: Call, purpose: Purpose, now: Timestamp) -> Attempt {
        Attempt {
            call,
            purpose,
            state: AttemptState::BackingOff { until: now },
            sends: 0,
            failures: 0,
            resent_unanswered: false,
            lease_held: false,
            epoch: 0,
            poll: None,
        }
    }

    /// The grant this attempt ends in.
    pub(crate) fn kind(&self) -> GrantKind {
        match &self.call {
            Call::Token(grant) => grant.kind(),
            Call::DeviceAuthorization => GrantKind::DeviceCode,
        }
    }

    pub(crate) fn is_refresh(&self) -> bool {
        matches!(self.call, Call::Token(TokenGrant::RefreshToken(_)))
    }

    pub(crate) fn in_flight_id(&self) -> Option<RequestId> {
        match self.state {
            AttemptState::InFlight { id, .. } => Some(id),
            AttemptState::BackingOff { .. }
            | AttemptState::AwaitingLease { .. }
            | AttemptState::WaitingForStore { .. } => None,
        }
    }

    /// When the attempt next needs the flow's attention.
    pub(crate) fn wake_at(&self) -> Timestamp {
        match self.state {
            AttemptState::InFlight { deadline, .. } | AttemptState::AwaitingLease { deadline } => {
                deadline
            }
            AttemptState::BackingOff { until } | AttemptState::WaitingForStore { until } => until,
        }
    }
}
