//! One token request and its retries.

use std::time::Instant;

use crate::grant::TokenGrant;
use crate::output::RequestId;

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
    /// What the request carries; for a password login, the only place the password lives.
    pub(crate) grant: TokenGrant,
    pub(crate) purpose: Purpose,
    pub(crate) state: AttemptState,
    /// How many times it has been sent.
    pub(crate) sends: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptState {
    /// Sent as `id`; given up at `deadline`.
    InFlight { id: RequestId, deadline: Instant },
    /// Waiting to be sent again at `until`.
    BackingOff { until: Instant },
}

impl Attempt {
    pub(crate) fn in_flight_id(&self) -> Option<RequestId> {
        match self.state {
            AttemptState::InFlight { id, .. } => Some(id),
            AttemptState::BackingOff { .. } => None,
        }
    }

    /// When the attempt next needs the flow's attention.
    pub(crate) fn wake_at(&self) -> Instant {
        match self.state {
            AttemptState::InFlight { deadline, .. } => deadline,
            AttemptState::BackingOff { until } => until,
        }
    }
}
