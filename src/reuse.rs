//! What the authorization server does when a refresh token is presented a second time, and
//! therefore when the flow may present again a token whose refresh went out unanswered.

use std::time::Duration;

use crate::output::LoginRequiredReason;
use crate::time::UnixTime;

/// How the authorization server treats a refresh token presented a second time
/// ([`ConfigBuilder::refresh_token_reuse`](crate::ConfigBuilder::refresh_token_reuse)).
///
/// A refresh that went out and got no answer (a timeout, a connection reset, a process that
/// died) may have been applied: with rotation the server then retired the token, and under
/// RFC 9700 §4.14.2 a retired token presented again can make it revoke the whole grant (the
/// "token family"), logging out every process that shares it. The client cannot detect how the
/// server is set up, so it is told here, and presents such a token again only when this
/// setting says the server accepts it. A late answer to the unanswered request is still
/// adopted whatever the setting (it carries the successor).
///
/// # The default: [`Strict`](RefreshTokenReuse::Strict)
///
/// The providers this crate serves and most identity providers, as commonly configured, do not
/// accept a spent token: the resource-owner provider documents single-use refresh tokens (the
/// old one dies on every refresh) without saying what a replay does, Auth0 revokes the family
/// on reuse outside an opt-in overlap period, Cognito's `RetryGracePeriodSeconds` and Curity's
/// `grace-period` default to 0, oidc-provider with rotation revokes the grant, Keycloak with
/// "Revoke Refresh Token" on and django-oauth-toolkit with reuse protection refuse it. The two
/// ways of being wrong cost very differently: assuming `Strict` of a lenient server costs one
/// new login (done by itself by a backend with a credentials source); assuming leniency of a
/// strict server costs the whole grant, for every replica, at the moment the network was
/// already failing. So the flow assumes the worst unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RefreshTokenReuse {
    /// A refresh token is single-use: a second presentation is refused and may revoke the
    /// grant (Auth0 outside its overlap period, Cognito and Curity with no grace period,
    /// oidc-provider, Keycloak "Revoke Refresh Token", django-oauth-toolkit with reuse
    /// protection). A token that was sent and got no answer is never presented again: the
    /// flow emits [`LoginRequired`](crate::Event::LoginRequired) with
    /// [`LoginRequiredReason::RefreshTokenMayBeSpent`] and keeps the tokens, so that a late
    /// answer can still be adopted.
    #[default]
    Strict,
    /// The server accepts the previous refresh token again for this long after it was first
    /// presented (Auth0's overlap period, Cognito's `RetryGracePeriodSeconds` of up to 60 s,
    /// Ory Hydra's grace period, django-oauth-toolkit's `REFRESH_TOKEN_GRACE_PERIOD_SECONDS`).
    /// A token sent without an answer is presented again only while the window, measured
    /// from when the first unanswered presentation was sent, is open; after it, as
    /// [`Strict`](Self::Strict). Give the server's window, not more: clocks differ a little
    /// between replicas.
    GraceWindow(Duration),
    /// The server keeps accepting the same refresh token (no rotation, Keycloak's default,
    /// Duende IdentityServer's `ReUse`). A refresh lost in transport is resent once at once,
    /// and the token is given up after two presentations without an answer
    /// ([`LoginRequiredReason::RefreshOutcomeUnknown`]).
    Reusable,
}

/// The presentations of one refresh token that went out and have not been answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Unanswered {
    /// How many.
    pub(crate) count: u8,
    /// When the first of them was sent, on the wall clock (so that it can be shared with
    /// other processes through a token store).
    pub(crate) first_sent_at: Option<UnixTime>,
}

impl Unanswered {
    /// The token was presented at `at`.
    pub(crate) fn sent(&mut self, at: UnixTime) {
        self.count = self.count.saturating_add(1);
        self.first_sent_at.get_or_insert(at);
    }

    /// The last presentation never reached the server: it does not count.
    pub(crate) fn not_sent(&mut self) {
        self.count = self.count.saturating_sub(1);
        if self.count == 0 {
            self.first_sent_at = None;
        }
    }

    /// The server answered: whatever it did, the flow knows.
    pub(crate) fn answered(&mut self) {
        *self = Unanswered::default();
    }

    /// What is known from both `self` and `other` (a record kept elsewhere, such as a shared
    /// store's in-flight mark): the larger count, the earlier first presentation.
    pub(crate) fn merge(self, other: Unanswered) -> Unanswered {
        let first_sent_at = match (self.first_sent_at, other.first_sent_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Unanswered {
            count: self.count.max(other.count),
            first_sent_at,
        }
    }
}

impl RefreshTokenReuse {
    /// Whether a refresh token with these unanswered presentations may be presented (again)
    /// at `now`, or why it must not.
    pub(crate) fn may_present(
        self,
        unanswered: Unanswered,
        now: UnixTime,
    ) -> Result<(), LoginRequiredReason> {
        if unanswered.count == 0 {
            return Ok(());
        }
        match self {
            RefreshTokenReuse::Strict => Err(LoginRequiredReason::RefreshTokenMayBeSpent),
            RefreshTokenReuse::GraceWindow(window) => {
                // Without a first time the window cannot be placed: assume it closed.
                let open = unanswered
                    .first_sent_at
                    .is_some_and(|first| now < first.saturating_add(window));
                if open {
                    Ok(())
                } else {
                    Err(LoginRequiredReason::RefreshTokenMayBeSpent)
                }
            }
            RefreshTokenReuse::Reusable if unanswered.count >= 2 => {
                Err(LoginRequiredReason::RefreshOutcomeUnknown)
            }
            RefreshTokenReuse::Reusable => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_at(secs: u64, times: u8) -> Unanswered {
        let mut unanswered = Unanswered::default();
        for _ in 0..times {
            unanswered.sent(UnixTime::from_secs(secs));
        }
        unanswered
    }

    #[test]
    fn a_token_never_left_unanswered_may_always_be_presented() {
        for reuse in [
            RefreshTokenReuse::Strict,
            RefreshTokenReuse::GraceWindow(Duration::ZERO),
            RefreshTokenReuse::Reusable,
        ] {
            assert_eq!(
                reuse.may_present(Unanswered::default(), UnixTime::from_secs(9)),
                Ok(())
            );
        }
    }

    #[test]
    fn strict_never_presents_an_unanswered_token_again() {
        let reuse = RefreshTokenReuse::Strict;
        assert_eq!(
            reuse.may_present(sent_at(100, 1), UnixTime::from_secs(100)),
            Err(LoginRequiredReason::RefreshTokenMayBeSpent)
        );
    }

    #[test]
    fn a_grace_window_is_measured_from_the_first_unanswered_presentation() {
        let reuse = RefreshTokenReuse::GraceWindow(Duration::from_secs(10));
        let mut unanswered = sent_at(100, 1);
        assert_eq!(
            reuse.may_present(unanswered, UnixTime::from_secs(109)),
            Ok(())
        );
        // A second presentation later does not move the window.
        unanswered.sent(UnixTime::from_secs(105));
        assert_eq!(unanswered.first_sent_at, Some(UnixTime::from_secs(100)));
        assert_eq!(
            reuse.may_present(unanswered, UnixTime::from_secs(110)),
            Err(LoginRequiredReason::RefreshTokenMayBeSpent)
        );
    }

    #[test]
    fn reusable_tokens_are_given_up_after_two_unanswered_presentations() {
        let reuse = RefreshTokenReuse::Reusable;
        assert_eq!(
            reuse.may_present(sent_at(1, 1), UnixTime::from_secs(1_000)),
            Ok(())
        );
        assert_eq!(
            reuse.may_present(sent_at(1, 2), UnixTime::from_secs(1)),
            Err(LoginRequiredReason::RefreshOutcomeUnknown)
        );
    }

    #[test]
    fn a_presentation_that_never_left_does_not_count() {
        let mut unanswered = sent_at(5, 1);
        unanswered.not_sent();
        assert_eq!(unanswered, Unanswered::default());
    }

    #[test]
    fn merging_keeps_the_larger_count_and_the_earlier_time() {
        let merged = sent_at(20, 2).merge(sent_at(10, 1));
        assert_eq!(merged.count, 2);
        assert_eq!(merged.first_sent_at, Some(UnixTime::from_secs(10)));
    }
}
