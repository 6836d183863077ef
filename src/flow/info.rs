//! [`TokenInfo`]: what the flow holds, for a host to look at, without a secret in it.

use std::fmt;

use serde_json::{Map, Value};

use crate::grant::GrantKind;
use crate::output::Generation;
use crate::scope::Scope;
use crate::time::{Timestamp, UnixTime};

use super::tokens::TokenSet;

/// A view of the tokens a [`TokenFlow`](crate::TokenFlow) holds, from
/// [`TokenFlow::token_info`](crate::TokenFlow::token_info): their expiries, scope, generation
/// and the provider's extra fields, but none of the tokens themselves.
///
/// `Debug` shows the names of the extra fields, not their values: a provider may put anything
/// there.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// The grant that first obtained these tokens (a refresh keeps it).
    pub grant: GrantKind,
    /// The access token, when one is held.
    pub access_token: Option<AccessTokenInfo>,
    /// The refresh token, when one is held.
    pub refresh_token: Option<RefreshTokenInfo>,
    /// The granted scope: as the server stated it, else as carried over from earlier tokens,
    /// else as asked for.
    pub scope: Option<Scope>,
    /// Whether an OpenID Connect ID token is held (raw and unvalidated; see
    /// [`StoredTokens::id_token`](crate::StoredTokens::id_token)).
    pub has_id_token: bool,
    /// When these tokens were issued, on the wall clock.
    pub issued_at: UnixTime,
    /// The token response's fields outside RFC 6749, as the provider sent them (a gateway's
    /// `status` or `refresh_count`, for example).
    pub extra: Map<String, Value>,
}

/// The access token a flow holds, without the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessTokenInfo {
    /// Its generation, as handed out with it in [`Bearer`](crate::Bearer).
    pub generation: Generation,
    /// When it expires, on the host's monotonic clock.
    pub expires_at: Timestamp,
    /// When it expires, on the wall clock (as stored in
    /// [`StoredTokens::expires_at`](crate::StoredTokens::expires_at)).
    pub expires_at_unix: UnixTime,
    /// An API refused it (a 401 for its generation), so it is no longer handed out.
    pub refused: bool,
}

/// The refresh token a flow holds, without the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshTokenInfo {
    /// When it expires, when the server said (`refresh_token_expires_in`, or a provider's
    /// equivalent).
    pub expires_at: Option<UnixTime>,
}

impl TokenInfo {
    /// The view of `tokens`, whose access token (if any) is of `generation`.
    pub(super) fn of(tokens: &TokenSet, generation: Generation) -> TokenInfo {
        TokenInfo {
            grant: tokens.origin,
            access_token: tokens.access.as_ref().map(|access| AccessTokenInfo {
                generation,
                expires_at: access.expires_at,
                expires_at_unix: access.expires_at_wall,
                refused: access.refused,
            }),
            refresh_token: tokens.refresh.as_ref().map(|refresh| RefreshTokenInfo {
                expires_at: refresh.expires_at,
            }),
            scope: tokens.scope.clone(),
            has_id_token: tokens.id_token.is_some(),
            issued_at: tokens.issued_at,
            extra: tokens.extra.clone(),
        }
    }
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("grant", &self.grant)
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("has_id_token", &self.has_id_token)
            .field("issued_at", &self.issued_at)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Config, Credentials, Event, Input, Output, TokenFlow};

    const WALL: UnixTime = UnixTime::from_secs(1_700_000_000);

    fn answer(body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// Drains the flow; returns the id of the last request sent.
    fn drain(flow: &mut TokenFlow) -> Option<crate::RequestId> {
        let mut sent = None;
        loop {
            match flow.poll_output() {
                Output::Send(request) => sent = Some(request.id),
                Output::Event(Event::Failed(error)) => panic!("{error}"),
                Output::Event(_) => {}
                Output::Idle { .. } => return sent,
            }
        }
    }

    fn text(info: &TokenInfo) -> String {
        format!("{info:?} {:?} {:?}", info.access_token, info.refresh_token)
    }

    #[test]
    fn token_info_shows_what_is_held_and_no_secret() {
        let config = Config::builder("https://id.example/token", "app")
            .client_secret("cs.secret")
            .scope("api offline_access openid")
            .build()
            .unwrap();
        let start = Timestamp::from_secs(50);
        let mut flow = TokenFlow::new(config, 1, start, WALL);
        assert_eq!(flow.token_info(), None, "nothing held before a login");

        flow.login(start, Credentials::password("joe", "pw.secret"));
        let id = drain(&mut flow).expect("a token request");
        assert_eq!(flow.token_info(), None, "nothing held before the answer");
        flow.handle_input(
            start,
            Input::Response {
                id,
                response: answer(
                    r#"{"access_token":"AT.secret.1","token_type":"Bearer","expires_in":600,
                        "refresh_token":"RT.secret.1","refresh_token_expires_in":86400,
                        "scope":"api offline_access","id_token":"ID.secret.1",
                        "status":"approved.value","refresh_count":"0"}"#,
                ),
            },
        );
        drain(&mut flow);
        let info = flow.token_info().expect("tokens are held");
        assert_eq!(info.grant, GrantKind::Password);
        let access = info.access_token.expect("an access token");
        assert_eq!(access.generation, Generation(1));
        assert_eq!(Some(access.generation), flow.generation());
        assert_eq!(access.expires_at, start + Duration::from_secs(600));
        assert_eq!(access.expires_at_unix, UnixTime::from_secs(1_700_000_600));
        assert!(!access.refused);
        assert_eq!(
            info.refresh_token,
            Some(RefreshTokenInfo {
                expires_at: Some(UnixTime::from_secs(1_700_086_400)),
            })
        );
        assert_eq!(info.scope.as_deref(), Some("api offline_access"));
        assert!(info.has_id_token);
        assert_eq!(info.issued_at, WALL);
        assert_eq!(info.extra["status"], "approved.value");
        assert_eq!(info.extra["refresh_count"], "0");
        let shown = text(&info);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("approved.value"), "{shown}");
        assert!(shown.contains("refresh_count"), "{shown}");

        // A refresh that restates neither the refresh token, the scope nor the ID token: they
        // are carried over, and the extra fields are the new answer's.
        let later = start + Duration::from_secs(590);
        flow.handle_input(later, Input::Timeout);
        let id = drain(&mut flow).expect("a proactive refresh");
        flow.handle_input(
            later,
            Input::Response {
                id,
                response: answer(
                    r#"{"access_token":"AT.secret.2","token_type":"Bearer","expires_in":600,
                        "refresh_count":"1"}"#,
                ),
            },
        );
        drain(&mut flow);
        let info = flow.token_info().expect("tokens are held");
        assert_eq!(info.grant, GrantKind::Password, "the original grant");
        let access = info.access_token.expect("an access token");
        assert_eq!(access.generation, Generation(2));
        assert_eq!(access.expires_at, later + Duration::from_secs(600));
        assert_eq!(access.expires_at_unix, UnixTime::from_secs(1_700_001_190));
        assert!(info.refresh_token.is_some());
        assert_eq!(info.scope.as_deref(), Some("api offline_access"));
        assert!(info.has_id_token);
        assert_eq!(info.issued_at, UnixTime::from_secs(1_700_000_590));
        assert_eq!(info.extra.len(), 1);
        assert_eq!(info.extra["refresh_count"], "1");

        // An API refuses the token: it is held, and no longer handed out.
        flow.handle_input(
            later,
            Input::Unauthorized {
                generation: Generation(2),
                www_authenticate: Vec::new(),
            },
        );
        let access = flow.token_info().and_then(|i| i.access_token).unwrap();
        assert!(access.refused);
        drain(&mut flow);

        flow.logout(later);
        assert_eq!(flow.token_info(), None, "nothing held after a logout");
    }

    #[test]
    fn token_info_of_client_credentials_without_a_refresh_token() {
        let config = Config::builder("https://id.example/token", "app")
            .client_secret("cs.secret")
            .build()
            .unwrap();
        let start = Timestamp::from_secs(7);
        let mut flow = TokenFlow::new(config, 1, start, WALL);
        flow.login(start, Credentials::ClientCredentials);
        let id = drain(&mut flow).expect("a token request");
        flow.handle_input(
            start,
            Input::Response {
                id,
                response: answer(r#"{"access_token":"AT.secret.1","token_type":"Bearer"}"#),
            },
        );
        drain(&mut flow);
        let info = flow.token_info().expect("tokens are held");
        assert_eq!(info.grant, GrantKind::ClientCredentials);
        assert_eq!(info.refresh_token, None);
        assert!(!info.has_id_token);
        assert_eq!(info.scope, None);
        assert!(info.extra.is_empty());
        let access = info.access_token.expect("an access token");
        // No `expires_in`: the configured assumed lifetime.
        let assumed = flow.config().assumed_lifetime;
        assert_eq!(access.expires_at, start + assumed);
        assert_eq!(access.expires_at_unix, WALL.saturating_add(assumed));
        assert!(!text(&info).contains("secret"));
    }
}
