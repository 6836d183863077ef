//! The tokens the flow holds, with their deadlines on the monotonic clock.

use std::time::Duration;

use http::HeaderValue;

use crate::config::Config;
use crate::grant::GrantKind;
use crate::reuse::Unanswered;
use crate::scope::Scope;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::time::{Timestamp, UnixTime};
use crate::token::STORED_TOKENS_VERSION;
use crate::token::{StoredTokens, TokenResponse};

use super::clock::Clock;

/// The shortest lifetime believed. A server that says `expires_in: 0` would otherwise make
/// every access find the token expired and renew it in a tight loop.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The current token set.
#[derive(Debug)]
pub(crate) struct TokenSet {
    pub(crate) origin: GrantKind,
    pub(crate) access: Option<HeldAccess>,
    pub(crate) refresh: Option<HeldRefresh>,
    pub(crate) scope: Option<Scope>,
    pub(crate) id_token: Option<IdToken>,
    pub(crate) issued_at: UnixTime,
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug)]
pub(crate) struct HeldAccess {
    pub(crate) token: AccessToken,
    /// `Bearer <token>`, built once so that handing it out costs a reference count.
    pub(crate) bearer: HeaderValue,
    pub(crate) expires_at: Timestamp,
    pub(crate) expires_at_wall: UnixTime,
    /// When proactive renewal starts: expiry minus the (capped) margin.
    pub(crate) renew_at: Timestamp,
    /// An API refused this token (401): it is not handed out again.
    pub(crate) refused: bool,
}

#[derive(Debug)]
pub(crate) struct HeldRefresh {
    pub(crate) token: RefreshToken,
    pub(crate) expires_at: Option<UnixTime>,
    /// Refreshes with this token that went out and got no answer (yet). Each may have been
    /// applied by the server: whether the token may be presented again is the configured
    /// reuse rule's call.
    pub(crate) unanswered: Unanswered,
}

impl HeldAccess {
    /// `token`, received at `now` (`received_wall` on the wall clock) and valid for `lifetime`.
    pub(crate) fn new(
        config: &Config,
        token: AccessToken,
        now: Timestamp,
        received_wall: UnixTime,
        lifetime: Duration,
    ) -> Option<HeldAccess> {
        let lifetime = lifetime.max(MIN_LIFETIME);
        let bearer = bearer_header(&token)?;
        let expires_at = now.checked_add(lifetime)?;
        let renew_at = expires_at
            .checked_sub(config.margin_for(lifetime))
            .unwrap_or(now);
        Some(HeldAccess {
            // The wall clock advances with the monotonic one, so the expiry is as far from
            // the reception on both.
            expires_at_wall: received_wall.saturating_add(lifetime),
            token,
            bearer,
            expires_at,
            renew_at,
            refused: false,
        })
    }

    #[inline]
    pub(crate) fn is_usable(&self, now: Timestamp) -> bool {
        !self.refused && now < self.expires_at
    }
}

const BEARER: &[u8] = b"Bearer ";

/// `Bearer <token>` as a sensitive header value; `None` for a token that cannot be sent.
pub(crate) fn bearer_header(token: &AccessToken) -> Option<HeaderValue> {
    let token = token.expose_secret().as_bytes();
    // Sized exactly, so that the header value takes the buffer over without copying it.
    let mut bytes = Vec::with_capacity(BEARER.len() + token.len());
    bytes.extend_from_slice(BEARER);
    bytes.extend_from_slice(token);
    let mut value = HeaderValue::try_from(bytes).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl TokenSet {
    /// Replaces the token set `held` with the one built from a successful response to a
    /// request with `grant`, carrying over what a refresh response may leave out (RFC 6749 §6:
    /// the old refresh token stays when no new one is issued; the scope stays when not
    /// restated), and returns the new set.
    ///
    /// The held set is replaced only once the new one is sure to be built: when the access
    /// token cannot be held, `None` is returned and the held set is left as it was. The new
    /// set is written in place, where it is kept.
    pub(crate) fn replace_from_response<'h>(
        held: &'h mut Option<TokenSet>,
        config: &Config,
        clock: &Clock,
        now: Timestamp,
        grant: GrantKind,
        response: TokenResponse,
    ) -> Option<&'h TokenSet> {
        let issued_at = clock.wall_at(now);
        let lifetime = response.expires_in.unwrap_or(config.assumed_lifetime);
        let refresh_expires_at = response.refresh_token_expires_at(issued_at);
        let access = HeldAccess::new(config, response.access_token, now, issued_at, lifetime)?;
        let carried = held.take().filter(|_| grant == GrantKind::RefreshToken);
        let renewed = carried.is_some();
        let (origin, old_refresh, old_scope, old_id_token) = match carried {
            Some(previous) => (
                previous.origin,
                previous.refresh,
                previous.scope,
                previous.id_token,
            ),
            None => (grant, None, None, None),
        };
        let refresh = match response.refresh_token {
            Some(token) => Some(HeldRefresh {
                token,
                expires_at: refresh_expires_at,
                unanswered: Unanswered::default(),
            }),
            None => old_refresh.map(|held| HeldRefresh {
                unanswered: Unanswered::default(),
                ..held
            }),
        };
        let new = held.insert(TokenSet {
            origin,
            access: Some(access),
            refresh,
            // Unstated, the scope is the one carried over, or for new tokens the one asked
            // for; the configured scope is copied only then.
            scope: response
                .scope
                .or(old_scope)
                .or_else(|| if renewed { None } else { config.scope.clone() }),
            id_token: response.id_token.or(old_id_token),
            issued_at,
            extra: response.extra,
        });
        Some(new)
    }

    /// The token set described by stored tokens.
    pub(crate) fn from_stored(
        config: &Config,
        clock: &Clock,
        now: Timestamp,
        stored: StoredTokens,
    ) -> Option<TokenSet> {
        let access = match stored.access_token {
            Some(token) => {
                let expires_wall = stored
                    .expires_at
                    .unwrap_or_else(|| stored.issued_at.saturating_add(config.assumed_lifetime));
                let lifetime = expires_wall.saturating_duration_since(stored.issued_at);
                // A wall time the host clock cannot represent is, in practice, never or already.
                let expires_at = clock.timestamp_at(expires_wall).unwrap_or(
                    if expires_wall > clock.wall_at(now) {
                        now.checked_add(crate::token::MAX_LIFETIME).unwrap_or(now)
                    } else {
                        now
                    },
                );
                // A renewal point before the host clock's origin (a clock that starts at zero
                // when the flow is restored) has passed, like any other before now.
                let renew_at = expires_at
                    .checked_sub(config.margin_for(lifetime))
                    .unwrap_or(Timestamp::ORIGIN);
                Some(HeldAccess {
                    bearer: bearer_header(&token)?,
                    token,
                    expires_at,
                    expires_at_wall: expires_wall,
                    renew_at,
                    refused: false,
                })
            }
            None => None,
        };
        Some(TokenSet {
            origin: stored.grant,
            access,
            refresh: stored.refresh_token.map(|token| HeldRefresh {
                token,
                expires_at: stored.refresh_token_expires_at,
                unanswered: Unanswered::default(),
            }),
            scope: stored.scope,
            id_token: stored.id_token,
            issued_at: stored.issued_at,
            extra: stored.extra,
        })
    }

    pub(crate) fn to_stored(&self) -> StoredTokens {
        StoredTokens {
            version: STORED_TOKENS_VERSION,
            grant: self.origin,
            access_token: self.access.as_ref().map(|a| a.token.clone()),
            expires_at: self.access.as_ref().map(|a| a.expires_at_wall),
            refresh_token: self.refresh.as_ref().map(|r| r.token.clone()),
            refresh_token_expires_at: self.refresh.as_ref().and_then(|r| r.expires_at),
            scope: self.scope.clone(),
            id_token: self.id_token.clone(),
            issued_at: self.issued_at,
            extra: self.extra.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenType;

    fn response(access_token: &str) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new(access_token),
            token_type: TokenType::Bearer,
            expires_in: Some(Duration::from_secs(3600)),
            refresh_token: Some(RefreshToken::new("rt-1")),
            scope: None,
            id_token: None,
            refresh_token_expires_in: None,
            refresh_token_issued_at: None,
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn tokens_that_cannot_be_held_leave_the_previous_set_in_place() {
        let config = Config::builder("https://id.example/token", "client")
            .build()
            .unwrap();
        let now = Timestamp::from_secs(86_400);
        let clock = Clock::new(now, UnixTime::from_secs(1_700_000_000));
        let mut held = None;
        let build = |response, held: &mut Option<TokenSet>| {
            TokenSet::replace_from_response(
                held,
                &config,
                &clock,
                now,
                GrantKind::RefreshToken,
                response,
            )
            .is_some()
        };
        assert!(build(response("at-1"), &mut held));
        // A token with a line break cannot go into a header.
        assert!(!build(response("at\n2"), &mut held));
        let kept = held.as_ref().expect("the previous set is still held");
        let access = kept.access.as_ref().map(|a| a.token.expose_secret());
        let refresh = kept.refresh.as_ref().map(|r| r.token.expose_secret());
        assert_eq!((access, refresh), (Some("at-1"), Some("rt-1")));
    }
}
