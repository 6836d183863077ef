//! Refresh requests that ended without an answer, remembered so that their answers, should
//! they still come, are recognised.
//!
//! A refresh that timed out may have been applied by a slow server: its answer then carries
//! the only live successor of the refresh token. Thrown away, the token family is lost; so
//! the flow keeps the ids of the last few such requests (a bounded memory: a handful of
//! numbers) with the token epoch they were sent in, and adopts a successful late answer as
//! long as no newer tokens were taken since.

use crate::output::RequestId;

/// How many unanswered refresh requests are remembered. One attempt leaves at most two
/// behind under any reuse setting before it gives up; four also covers an attempt that
/// follows a given-up one.
const REMEMBERED: usize = 4;

/// The last few refresh requests that ended without an answer.
#[derive(Debug, Default)]
pub(crate) struct LateAnswers {
    slots: [Option<Unanswered>; REMEMBERED],
    /// The slot the next request goes to (the oldest one).
    next: usize,
}

#[derive(Debug, Clone, Copy)]
struct Unanswered {
    id: RequestId,
    /// The flow's token epoch when the request was sent.
    epoch: u64,
}

impl LateAnswers {
    /// Remembers `id`, sent in token epoch `epoch`, forgetting the oldest request if full.
    pub(crate) fn remember(&mut self, id: RequestId, epoch: u64) {
        if let Some(slot) = self.slots.get_mut(self.next) {
            *slot = Some(Unanswered { id, epoch });
        }
        self.next = (self.next + 1) % REMEMBERED;
    }

    /// The token epoch `id` was sent in, if it is remembered; it is forgotten (an answer is
    /// adopted at most once).
    pub(crate) fn take(&mut self, id: RequestId) -> Option<u64> {
        let slot = self
            .slots
            .iter_mut()
            .find(|slot| slot.is_some_and(|u| u.id == id))?;
        slot.take().map(|u| u.epoch)
    }
}

impl super::TokenFlow {
    /// An answer to a request the flow no longer waits for. A successful answer to a
    /// remembered refresh is the server's truth and is adopted (announced like any new
    /// tokens, before their release) if no newer tokens were taken since; anything else is
    /// refused harmlessly.
    pub(super) fn on_late_answer(
        &mut self,
        now: crate::time::Timestamp,
        id: RequestId,
        response: http::Response<Vec<u8>>,
    ) {
        let Some(epoch) = self.late.take(id) else {
            return;
        };
        if epoch != self.epoch {
            return;
        }
        let (parts, body) = response.into_parts();
        // A late error changes nothing: the renewal it belonged to has ended, and the flow
        // already acted on the missing answer.
        let Ok(answer) = crate::token::parse_token_response_to(
            parts.status,
            &parts.headers,
            &body,
            self.config.max_body_bytes,
            self.config.scope.as_ref(),
            // Its errors are dropped unread, so there is no text to scrub.
            &(),
        ) else {
            return;
        };
        // A renewal under way presents the token this answer has just retired.
        if self
            .attempt
            .as_ref()
            .is_some_and(|a| a.purpose == super::Purpose::Renewal)
        {
            self.abandon_attempt();
        }
        if self.install_response(now, crate::grant::GrantKind::RefreshToken, answer) {
            self.renewal_hold = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_few_and_each_only_once() {
        let mut late = LateAnswers::default();
        for n in 1..=6 {
            late.remember(RequestId(n), n * 10);
        }
        assert_eq!(late.take(RequestId(1)), None, "the oldest were forgotten");
        assert_eq!(late.take(RequestId(2)), None);
        assert_eq!(late.take(RequestId(3)), Some(30));
        assert_eq!(late.take(RequestId(3)), None, "taken once");
        assert_eq!(late.take(RequestId(6)), Some(60));
        assert_eq!(late.take(RequestId(99)), None);
    }
}
