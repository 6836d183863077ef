//! The authorization-code grant's front channel (RFC 6749 §4.1): the URL the user opens, and
//! the callback the browser comes back with.

use std::fmt;

use crate::config::Config;
use crate::redact::Redactor;
use crate::secret::SecretString;
use crate::token::{ErrorCode, printable};

/// An authorization request to open in the user's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The URL to open.
    pub url: String,
    /// The `state` value the callback must carry back.
    pub state: String,
    /// The `nonce` sent when `openid` is in the scope. The flow does not validate ID tokens;
    /// an application that relies on one checks its signature, `iss`, `aud`, `exp` and this
    /// `nonce` itself (OpenID Connect Core §3.1.3.7).
    pub nonce: Option<String>,
}

/// What the flow remembers between the authorization request and the callback.
#[derive(Debug)]
pub(crate) struct PendingAuthorization {
    pub(crate) state: String,
    pub(crate) verifier: SecretString,
    pub(crate) redirect_uri: String,
}

/// The authorization URL: the endpoint (keeping any query it has) with `response_type=code`,
/// the client, redirect URI, scope, `state`, the S256 PKCE challenge and, when `openid` is
/// asked, a `nonce`.
pub(crate) fn authorization_url(
    config: &Config,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
    nonce: Option<&str>,
) -> Result<String, AuthorizationError> {
    let endpoint = config
        .authorization_endpoint
        .as_ref()
        .ok_or(AuthorizationError::NotConfigured("authorization_endpoint"))?;
    let mut query = form_urlencoded::Serializer::new(String::with_capacity(256));
    query.append_pair("response_type", "code");
    query.append_pair("client_id", &config.client_id);
    query.append_pair("redirect_uri", redirect_uri);
    if let Some(scope) = &config.scope {
        query.append_pair("scope", scope);
    }
    query.append_pair("state", state);
    query.append_pair("code_challenge", challenge);
    query.append_pair("code_challenge_method", "S256");
    if let Some(nonce) = nonce {
        query.append_pair("nonce", nonce);
    }
    let query = query.finish();
    let base = endpoint.to_string();
    let separator = match endpoint.query() {
        Some(existing) if !existing.is_empty() => '&',
        Some(_) => ' ',
        None => '?',
    };
    Ok(if separator == ' ' {
        format!("{base}{query}")
    } else {
        format!("{base}{separator}{query}")
    })
}

/// The parameters of the redirect back from the authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Callback {
    pub(crate) code: SecretString,
    pub(crate) state: Option<String>,
    pub(crate) iss: Option<String>,
}

/// Reads the callback: a full redirect URL, or just its query string. The `state` is checked
/// before anything else — an error response with a wrong `state` is as suspect as a code with
/// one — then the issuer (RFC 9207), then the error or the code.
pub(crate) fn parse_callback(
    callback: &str,
    expected_state: &str,
    expected_issuer: Option<&str>,
) -> Result<Callback, AuthorizationError> {
    let query = match callback.split_once('?') {
        Some((_, query)) => query,
        None if callback.contains('=') => callback,
        None => return Err(AuthorizationError::Malformed("the callback has no query")),
    };
    let query = query.split('#').next().unwrap_or_default();
    let mut code = None;
    let mut state = None;
    let mut iss = None;
    let mut error = None;
    let mut description = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "iss" => &mut iss,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.is_some() {
            // RFC 6749 §3.1: parameters must not be repeated.
            return Err(AuthorizationError::Malformed("a parameter appears twice"));
        }
        *slot = Some(value.into_owned());
    }
    if state.as_deref() != Some(expected_state) {
        return Err(AuthorizationError::StateMismatch);
    }
    if let (Some(expected), Some(found)) = (expected_issuer, iss.as_deref()) {
        if expected != found {
            return Err(AuthorizationError::IssuerMismatch {
                expected: printable(expected, 200, &Redactor::NONE),
                found: printable(found, 200, &Redactor::NONE),
            });
        }
    }
    if let Some(error) = error {
        return Err(AuthorizationError::Denied {
            code: ErrorCode::parse(&error),
            description: description.map(|d| printable(&d, 200, &Redactor::NONE)),
        });
    }
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(AuthorizationError::Malformed("the callback has no code"))?;
    Ok(Callback {
        code: SecretString::new(code),
        state,
        iss,
    })
}

/// Why an interactive login could not start or complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The configuration lacks something this login needs.
    NotConfigured(&'static str),
    /// A callback arrived but no authorization was started (or it was superseded).
    NoPendingAuthorization,
    /// The callback's `state` is not the one sent: possibly a forged redirect (CSRF).
    StateMismatch,
    /// The callback's `iss` names another server (RFC 9207): a mix-up attack or a
    /// misconfiguration.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the callback.
        found: String,
    },
    /// The user or the server refused (`error` in the callback).
    Denied {
        /// The error code.
        code: ErrorCode,
        /// `error_description`, truncated.
        description: Option<String>,
    },
    /// The callback is not a valid authorization response.
    Malformed(&'static str),
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorizationError::NotConfigured(what) => {
                write!(f, "the configuration has no {what}")
            }
            AuthorizationError::NoPendingAuthorization => {
                f.write_str("no authorization is waiting for a callback")
            }
            AuthorizationError::StateMismatch => f.write_str(
                "the callback's state does not match the authorization request (possible CSRF)",
            ),
            AuthorizationError::IssuerMismatch { expected, found } => write!(
                f,
                "the callback comes from issuer {found:?}, not {expected:?} (RFC 9207)"
            ),
            AuthorizationError::Denied { code, description } => {
                write!(f, "authorization was refused: {code}")?;
                if let Some(description) = description {
                    write!(f, ": {description}")?;
                }
                Ok(())
            }
            AuthorizationError::Malformed(what) => write!(f, "invalid callback: {what}"),
        }
    }
}

impl std::error::Error for AuthorizationError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str) -> Config {
        Config::builder("https://id.example/token", "app")
            .authorization_endpoint(endpoint)
            .scope("openid api")
            .build()
            .unwrap()
    }

    #[test]
    fn the_url_carries_pkce_state_and_nonce_and_keeps_the_endpoint_query() {
        let url = authorization_url(
            &config("https://id.example/auth?tenant=a"),
            "http://127.0.0.1:8000/cb",
            "st",
            "ch",
            Some("nn"),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://id.example/auth?tenant=a&response_type=code&client_id=app\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2Fcb&scope=openid+api&state=st\
             &code_challenge=ch&code_challenge_method=S256&nonce=nn"
        );
    }

    #[test]
    fn callbacks_are_checked_state_first() {
        let ok = parse_callback(
            "http://127.0.0.1/cb?code=C1&state=S&iss=https%3A%2F%2Fid",
            "S",
            Some("https://id"),
        )
        .unwrap();
        assert_eq!(ok.code.expose_secret(), "C1");
        assert_eq!(
            parse_callback("code=C1&state=X", "S", None).unwrap_err(),
            AuthorizationError::StateMismatch
        );
        assert_eq!(
            parse_callback("error=access_denied&state=X", "S", None).unwrap_err(),
            AuthorizationError::StateMismatch
        );
        assert!(matches!(
            parse_callback(
                "code=C&state=S&iss=https%3A%2F%2Fevil",
                "S",
                Some("https://id")
            ),
            Err(AuthorizationError::IssuerMismatch { .. })
        ));
        assert_eq!(
            parse_callback(
                "error=access_denied&error_description=no&state=S",
                "S",
                None
            )
            .unwrap_err(),
            AuthorizationError::Denied {
                code: ErrorCode::AccessDenied,
                description: Some("no".into())
            }
        );
        assert!(matches!(
            parse_callback("code=a&code=b&state=S", "S", None),
            Err(AuthorizationError::Malformed(_))
        ));
        assert!(matches!(
            parse_callback("state=S", "S", None),
            Err(AuthorizationError::Malformed(_))
        ));
    }

    #[test]
    fn errors_never_show_the_code() {
        let error = parse_callback("code=SECRET-CODE&state=wrong", "S", None).unwrap_err();
        assert!(!format!("{error} {error:?}").contains("SECRET-CODE"));
    }
}
