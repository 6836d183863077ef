//! What the flow needs to know about the authorization server and the client, validated once.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::Uri;

use crate::api_origin::{ApiRequestError, check_api_uri};
use crate::origin::Origin;
use crate::reuse::RefreshTokenReuse;
use crate::scope::Scope;
use crate::secret::ClientSecret;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3). One method per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1): id and secret are form-urlencoded, joined by
    /// `:`, base64-encoded and sent in `Authorization: Basic`. The RFC's encoding step matters
    /// for secrets holding `:`, `+`, `%` and the like.
    SecretBasic,
    /// `client_secret_basic` without the form-urlencoding step, for servers that decode the
    /// header without it (Cognito, Cloud Foundry UAA, some Keycloak setups).
    SecretBasicUnencoded,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    SecretPost,
    /// A public client: only `client_id` in the form body (RFC 6749 §3.2.1).
    None,
}

impl ClientAuth {
    /// Whether this method sends a client secret.
    pub fn needs_secret(self) -> bool {
        !matches!(self, ClientAuth::None)
    }
}

/// Bounded retries with exponential backoff for token requests that fail transiently
/// (5xx, 429, 408, transport failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying. Where the server accepts a
    /// refresh token twice ([`RefreshTokenReuse`]), a refresh whose answer was lost is also
    /// resent once straight away, outside this budget (grace windows are short), so one
    /// attempt sends at most `max_retries + 2` requests.
    pub max_retries: u32,
    /// The wait before the first retry; doubled for each further one, then jittered.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a server asking for more ends the attempt with an
    /// error instead of holding callers hostage.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// The validated configuration of one [`TokenFlow`](crate::TokenFlow).
///
/// Built with [`Config::builder`]. `Debug` never shows the client secret.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) token_endpoint: Uri,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) scope: Option<Scope>,
    /// `scope` form-encoded, as every token request sends it.
    pub(crate) scope_form: Option<String>,
    pub(crate) refresh_margin: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) assumed_lifetime: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) proactive_refresh: bool,
    pub(crate) refresh_token_reuse: RefreshTokenReuse,
    pub(crate) shared_store: bool,
    pub(crate) issuer: Option<String>,
    pub(crate) authorization_endpoint: Option<Uri>,
    pub(crate) device_authorization_endpoint: Option<Uri>,
    pub(crate) revocation_endpoint: Option<Uri>,
    pub(crate) redirect_uri: Option<String>,
    /// Whether `http://` is accepted off loopback, for the endpoints and the API alike.
    pub(crate) allow_insecure_http: bool,
    /// The origins the access token may be sent to; empty means any.
    pub(crate) api_origins: Vec<Origin>,
    /// The `Authorization: Basic` value, built once: it never changes.
    pub(crate) basic_authorization: Option<http::HeaderValue>,
    /// The headers of every form `POST` to the authorization server, built once and cloned
    /// for each request.
    pub(crate) form_headers: http::HeaderMap,
}

impl Config {
    /// Starts a configuration for the token endpoint `token_endpoint` and the client
    /// `client_id`. The endpoint may carry query parameters of its own, which are kept.
    pub fn builder(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
    ) -> ConfigBuilder {
        ConfigBuilder {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_auth: None,
            scopes: Vec::new(),
            refresh_margin: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            assumed_lifetime: Duration::from_secs(3600),
            max_body_bytes: 64 * 1024,
            proactive_refresh: true,
            refresh_token_reuse: RefreshTokenReuse::default(),
            shared_store: false,
            allow_insecure_http: false,
            preferred_client_auth: None,
            issuer: None,
            authorization_endpoint: None,
            device_authorization_endpoint: None,
            revocation_endpoint: None,
            redirect_uri: None,
            api_origins: Vec::new(),
        }
    }

    /// The issuer identifier, when known (from discovery or
    /// [`ConfigBuilder::issuer`]): authorization responses carrying `iss` must match it
    /// (RFC 9207).
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The authorization endpoint, for the authorization-code grant.
    pub fn authorization_endpoint(&self) -> Option<&Uri> {
        self.authorization_endpoint.as_ref()
    }

    /// The device authorization endpoint (RFC 8628).
    pub fn device_authorization_endpoint(&self) -> Option<&Uri> {
        self.device_authorization_endpoint.as_ref()
    }

    /// The revocation endpoint (RFC 7009); when set, logout revokes the tokens.
    pub fn revocation_endpoint(&self) -> Option<&Uri> {
        self.revocation_endpoint.as_ref()
    }

    /// The redirect URI registered for the authorization-code grant.
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// The origins an API request may carry the access token to
    /// ([`ConfigBuilder::allow_api_origin`]); empty means any origin.
    pub fn api_origins(&self) -> &[Origin] {
        &self.api_origins
    }

    /// Whether an API request to `uri` may carry the access token: it must be `https` (or
    /// `http` on loopback, or anywhere with [`ConfigBuilder::allow_insecure_http`], the rule
    /// the token endpoint follows; RFC 6750 §5.3) and, when API origins are configured, go to
    /// one of them. Both adapters check every request they send this way, before any IO; an
    /// application attaching [`Bearer`](crate::Bearer) to requests of its own should too.
    pub fn check_api_request(&self, uri: &Uri) -> Result<(), ApiRequestError> {
        check_api_uri(uri, &self.api_origins, |host| {
            cleartext_allowed(host, self.allow_insecure_http)
        })
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> &Uri {
        &self.token_endpoint
    }

    /// The client identifier.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret, if any.
    pub fn client_secret(&self) -> Option<&ClientSecret> {
        self.client_secret.as_ref()
    }

    /// How the client authenticates.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// The space-separated scope requested at login, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// How long before expiry an access token is renewed, before the cap of a tenth of the
    /// token's lifetime (see [`Config::margin_for`]).
    pub fn refresh_margin(&self) -> Duration {
        self.refresh_margin
    }

    /// How long one token request may take before it counts as failed.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Retry limits for token requests.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// The lifetime assumed for an access token whose response has no `expires_in`.
    pub fn assumed_lifetime(&self) -> Duration {
        self.assumed_lifetime
    }

    /// The largest token-endpoint response body accepted, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// What the server does with a refresh token presented twice.
    pub fn refresh_token_reuse(&self) -> RefreshTokenReuse {
        self.refresh_token_reuse
    }

    /// Whether the tokens live in a store shared with other processes, renewals being
    /// coordinated through it (see [`crate::shared`]).
    pub fn shared_store(&self) -> bool {
        self.shared_store
    }

    /// How long a renewal lease in a shared store should last: long enough for a whole
    /// renewal attempt (every send up to its deadline, and the longest backoffs between
    /// them), so that the lease of a live holder does not run out under it. A host may choose
    /// longer; a shorter lease lets another replica start while the holder still waits for
    /// an answer (it then finds the token marked in flight and follows the reuse rule).
    pub fn renewal_lease_duration(&self) -> Duration {
        let sends = self.retry.max_retries.saturating_add(2);
        let waits = self.retry.max_backoff.max(self.retry.max_retry_after);
        self.request_timeout
            .saturating_mul(sends)
            .saturating_add(waits.saturating_mul(self.retry.max_retries))
    }

    /// Whether tokens are renewed before they expire, without waiting for a caller or a 401.
    pub fn proactive_refresh(&self) -> bool {
        self.proactive_refresh
    }

    /// The refresh margin used for a token that lives `lifetime`: the configured margin, capped
    /// at a tenth of the lifetime so that a 3-second token is still used for 2.7 seconds
    /// instead of being renewed forever.
    pub fn margin_for(&self, lifetime: Duration) -> Duration {
        self.refresh_margin.min(lifetime / 10)
    }
}

/// Builds a [`Config`]; every check happens in [`ConfigBuilder::build`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    token_endpoint: String,
    client_id: String,
    client_secret: Option<ClientSecret>,
    client_auth: Option<ClientAuth>,
    scopes: Vec<String>,
    refresh_margin: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    assumed_lifetime: Duration,
    max_body_bytes: usize,
    proactive_refresh: bool,
    refresh_token_reuse: RefreshTokenReuse,
    shared_store: bool,
    allow_insecure_http: bool,
    preferred_client_auth: Option<ClientAuth>,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    redirect_uri: Option<String>,
    api_origins: Vec<String>,
}

impl ConfigBuilder {
    /// The issuer identifier; authorization responses that carry `iss` must match it exactly
    /// (RFC 9207).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The authorization endpoint, for the authorization-code grant.
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// The device authorization endpoint (RFC 8628).
    pub fn device_authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.device_authorization_endpoint = Some(url.into());
        self
    }

    /// The revocation endpoint (RFC 7009); logout then revokes the tokens.
    pub fn revocation_endpoint(mut self, url: impl Into<String>) -> Self {
        self.revocation_endpoint = Some(url.into());
        self
    }

    /// The redirect URI registered for the authorization-code grant.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// The client authentication to use when a secret is given and no method is chosen
    /// explicitly (discovery sets it from what the server supports).
    pub fn preferred_client_auth(mut self, auth: ClientAuth) -> Self {
        self.preferred_client_auth = Some(auth);
        self
    }

    /// Sets the client secret. Client authentication then defaults to
    /// [`ClientAuth::SecretBasic`], which every server must support (RFC 6749 §2.3.1).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(ClientSecret::new(secret));
        self
    }

    /// Chooses the client authentication method.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// Adds scopes: one scope, or several separated by spaces (`"datahub-api offline_access"`).
    pub fn scope(mut self, scope: &str) -> Self {
        self.scopes
            .extend(scope.split_ascii_whitespace().map(str::to_owned));
        self
    }

    /// Renews access tokens this long before they expire (default 30 s), capped at a tenth of
    /// each token's lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How long one token request may take (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Retry limits (default: 3 retries from 500 ms up to 30 s, `Retry-After` up to 120 s).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The lifetime to assume when a token response has no `expires_in` (default 1 hour).
    pub fn assumed_lifetime(mut self, lifetime: Duration) -> Self {
        self.assumed_lifetime = lifetime;
        self
    }

    /// The largest token-endpoint response body accepted (default 64 KiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Whether to renew tokens ahead of expiry (default true). Without it, tokens are renewed
    /// when a caller finds them expired or the API answers 401.
    pub fn proactive_refresh(mut self, enabled: bool) -> Self {
        self.proactive_refresh = enabled;
        self
    }

    /// What the server does when a refresh token is presented a second time (default
    /// [`RefreshTokenReuse::Strict`]; the type's documentation says why). It decides whether a
    /// token whose refresh went out unanswered is ever presented again.
    pub fn refresh_token_reuse(mut self, reuse: RefreshTokenReuse) -> Self {
        self.refresh_token_reuse = reuse;
        self
    }

    /// The tokens live in a store shared with other processes of the same client (replicas of
    /// one backend sharing one login), renewals being coordinated through it (default false).
    /// The flow then asks its host for a renewal lease before each renewal, adopts tokens
    /// another replica renewed, marks a refresh in flight before sending it, and writes new
    /// tokens with a compare-and-set; [`crate::shared`] states the protocol.
    pub fn shared_store(mut self, shared: bool) -> Self {
        self.shared_store = shared;
        self
    }

    /// Accepts an `http://` token endpoint on a host that is not loopback. Credentials then
    /// cross the network in clear text (RFC 6749 §3.2 requires TLS): only for closed test
    /// networks.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Allows the access token to be sent to `origin` (`https://api.example.com`, or with a
    /// port). Once one origin is allowed, the adapters' `send` refuses every other one before
    /// any IO; without any, every `https` origin is accepted. Origins compare by scheme, host
    /// and port, default ports filled in. `http://` origins follow the token endpoint's rule
    /// (loopback, or [`allow_insecure_http`](Self::allow_insecure_http)).
    pub fn allow_api_origin(mut self, origin: impl Into<String>) -> Self {
        self.api_origins.push(origin.into());
        self
    }

    /// Checks everything and returns the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        let token_endpoint = validate_endpoint(&self.token_endpoint, self.allow_insecure_http)?;
        if self.client_id.is_empty() {
            return Err(ConfigError::EmptyClientId);
        }
        if self.client_id.chars().any(char::is_control) {
            return Err(ConfigError::ClientIdHasControlCharacters);
        }
        let client_auth = self.client_auth.unwrap_or(if self.client_secret.is_some() {
            self.preferred_client_auth
                .filter(|auth| auth.needs_secret())
                .unwrap_or(ClientAuth::SecretBasic)
        } else {
            ClientAuth::None
        });
        match (client_auth.needs_secret(), &self.client_secret) {
            (true, None) => return Err(ConfigError::MissingClientSecret { auth: client_auth }),
            (false, Some(_)) => return Err(ConfigError::UnusedClientSecret),
            _ => {}
        }
        if client_auth == ClientAuth::SecretBasicUnencoded && self.client_id.contains(':') {
            return Err(ConfigError::ColonInUnencodedClientId);
        }
        for scope in &self.scopes {
            if let Some(bad) = scope.chars().find(|&c| !is_scope_char(c)) {
                return Err(ConfigError::InvalidScope {
                    scope: scope.clone(),
                    character: bad,
                });
            }
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration {
                setting: "request_timeout",
            });
        }
        if self.assumed_lifetime.is_zero() {
            return Err(ConfigError::ZeroDuration {
                setting: "assumed_lifetime",
            });
        }
        if self.retry.initial_backoff.is_zero() {
            return Err(ConfigError::ZeroDuration {
                setting: "retry.initial_backoff",
            });
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        let optional = |url: Option<String>| {
            url.map(|url| validate_endpoint(&url, self.allow_insecure_http))
                .transpose()
        };
        let authorization_endpoint = optional(self.authorization_endpoint)?;
        let device_authorization_endpoint = optional(self.device_authorization_endpoint)?;
        let revocation_endpoint = optional(self.revocation_endpoint)?;
        let api_origins = self
            .api_origins
            .iter()
            .map(|origin| validate_api_origin(origin, self.allow_insecure_http))
            .collect::<Result<Vec<_>, _>>()?;
        let mut scopes: Vec<String> = Vec::with_capacity(self.scopes.len());
        for scope in self.scopes {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let basic_authorization =
            match (client_auth, &self.client_secret) {
                (ClientAuth::SecretBasic, Some(secret)) => Some(crate::client_auth::basic(
                    &self.client_id,
                    secret.expose_secret(),
                    true,
                )),
                (ClientAuth::SecretBasicUnencoded, Some(secret)) => Some(
                    crate::client_auth::basic(&self.client_id, secret.expose_secret(), false),
                ),
                _ => None,
            };
        let scope = (!scopes.is_empty()).then(|| Scope::new(scopes.join(" ")));
        Ok(Config {
            scope_form: scope.as_deref().map(crate::form::encode),
            scope,
            token_endpoint,
            client_id: self.client_id,
            client_secret: self.client_secret,
            client_auth,
            refresh_margin: self.refresh_margin,
            request_timeout: self.request_timeout,
            retry: RetryPolicy {
                max_backoff: self.retry.max_backoff.max(self.retry.initial_backoff),
                ..self.retry
            },
            assumed_lifetime: self.assumed_lifetime,
            max_body_bytes: self.max_body_bytes,
            proactive_refresh: self.proactive_refresh,
            refresh_token_reuse: self.refresh_token_reuse,
            shared_store: self.shared_store,
            issuer: self.issuer,
            authorization_endpoint,
            device_authorization_endpoint,
            revocation_endpoint,
            redirect_uri: self.redirect_uri,
            allow_insecure_http: self.allow_insecure_http,
            api_origins,
            form_headers: crate::client_auth::form_headers(basic_authorization.as_ref()),
            basic_authorization,
        })
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

fn validate_endpoint(raw: &str, allow_insecure_http: bool) -> Result<Uri, ConfigError> {
    let invalid = |reason: &'static str| ConfigError::InvalidEndpoint { reason };
    let uri: Uri = raw
        .parse()
        .map_err(|_| invalid("not a valid absolute URL"))?;
    let authority = uri.authority().ok_or(invalid("the URL has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "credentials belong in the client settings, not the URL",
        ));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if cleartext_allowed(authority.host(), allow_insecure_http) => Ok(uri),
        Some("http") => Err(ConfigError::InsecureEndpoint),
        _ => Err(invalid("the scheme must be https (or http on loopback)")),
    }
}

/// An allowed API origin: an `https` URL (or `http` where cleartext is allowed) with no path
/// beyond `/`, no query and no user information.
fn validate_api_origin(raw: &str, allow_insecure_http: bool) -> Result<Origin, ConfigError> {
    let invalid = |reason: &'static str| ConfigError::InvalidApiOrigin { reason };
    let uri: Uri = raw
        .parse()
        .map_err(|_| invalid("not a valid absolute URL"))?;
    let origin = Origin::of(&uri).ok_or(invalid("the scheme must be https (or http)"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid("an origin has no user information"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "an origin is scheme, host and port, without a path",
        ));
    }
    if !origin.is_https() && !cleartext_allowed(origin.host(), allow_insecure_http) {
        return Err(invalid(
            "http:// on a host that is not loopback; use https, or allow_insecure_http(true)",
        ));
    }
    Ok(origin)
}

/// The one rule for cleartext `http://`, for the authorization server's endpoints and the API
/// alike: only to loopback, unless the configuration opts in.
fn cleartext_allowed(host: &str, allow_insecure_http: bool) -> bool {
    allow_insecure_http || is_loopback(host)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a [`ConfigBuilder`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token endpoint is not a usable URL.
    InvalidEndpoint {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token endpoint is `http://` on a host that is not loopback, and
    /// [`ConfigBuilder::allow_insecure_http`] was not set.
    InsecureEndpoint,
    /// The client id is empty.
    EmptyClientId,
    /// The client id holds control characters.
    ClientIdHasControlCharacters,
    /// The chosen client authentication sends a secret, and none was given.
    MissingClientSecret {
        /// The method chosen.
        auth: ClientAuth,
    },
    /// A client secret was given for a public client ([`ClientAuth::None`]).
    UnusedClientSecret,
    /// Unencoded basic authentication cannot carry a client id holding `:`.
    ColonInUnencodedClientId,
    /// A scope holds a character RFC 6749 §3.3 does not allow.
    InvalidScope {
        /// The scope.
        scope: String,
        /// The first character not allowed.
        character: char,
    },
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// The setting's name.
        setting: &'static str,
    },
    /// The response body limit is zero.
    ZeroBodyLimit,
    /// An origin given to [`ConfigBuilder::allow_api_origin`] is not usable.
    InvalidApiOrigin {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidEndpoint { reason } => {
                write!(f, "invalid token endpoint: {reason}")
            }
            ConfigError::InsecureEndpoint => f.write_str(
                "the token endpoint uses http:// on a host that is not loopback; \
                 use https, or allow_insecure_http(true) for a closed test network",
            ),
            ConfigError::EmptyClientId => f.write_str("the client id is empty"),
            ConfigError::ClientIdHasControlCharacters => {
                f.write_str("the client id holds control characters")
            }
            ConfigError::MissingClientSecret { auth } => {
                write!(f, "client authentication {auth:?} needs a client secret")
            }
            ConfigError::UnusedClientSecret => f.write_str(
                "a client secret was given but client authentication is None (a public client)",
            ),
            ConfigError::ColonInUnencodedClientId => f.write_str(
                "the client id holds ':' which unencoded basic authentication cannot carry",
            ),
            ConfigError::InvalidScope { scope, character } => write!(
                f,
                "scope {scope:?} holds {character:?}, which RFC 6749 section 3.3 does not allow"
            ),
            ConfigError::ZeroDuration { setting } => write!(f, "{setting} must be positive"),
            ConfigError::ZeroBodyLimit => f.write_str("max_body_bytes must be positive"),
            ConfigError::InvalidApiOrigin { reason } => {
                write!(f, "invalid API origin: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(endpoint: &str) -> Result<Config, ConfigError> {
        Config::builder(endpoint, "client").build()
    }

    #[test]
    fn endpoints_must_be_tls_unless_loopback_or_opted_in() {
        assert!(build("https://id.example.com/connect/token").is_ok());
        assert!(build("http://127.0.0.1:8080/token").is_ok());
        assert!(build("http://[::1]:8080/token").is_ok());
        assert!(build("http://localhost/token").is_ok());
        assert_eq!(
            build("http://id.example.com/token").unwrap_err(),
            ConfigError::InsecureEndpoint
        );
        assert!(
            Config::builder("http://id.example.com/token", "c")
                .allow_insecure_http(true)
                .build()
                .is_ok()
        );
        assert!(matches!(
            build("ftp://id.example.com/token"),
            Err(ConfigError::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            build("/relative"),
            Err(ConfigError::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            build("https://user:pw@id.example.com/token"),
            Err(ConfigError::InvalidEndpoint { .. })
        ));
    }

    fn uri(url: &str) -> Uri {
        url.parse().unwrap()
    }

    #[test]
    fn the_bearer_goes_over_cleartext_only_where_the_token_endpoint_may() {
        let config = build("https://id.example.com/token").unwrap();
        assert!(
            config
                .check_api_request(&uri("https://api.example.com/x"))
                .is_ok()
        );
        assert!(
            config
                .check_api_request(&uri("http://127.0.0.1:8080/x"))
                .is_ok()
        );
        assert!(
            config
                .check_api_request(&uri("http://[::1]:8080/x"))
                .is_ok()
        );
        assert!(config.check_api_request(&uri("http://localhost/x")).is_ok());
        let refused = config
            .check_api_request(&uri("http://api.example.com/x?access_token=1"))
            .unwrap_err();
        assert!(matches!(refused, ApiRequestError::Cleartext { .. }));
        assert!(
            refused
                .to_string()
                .contains("http://api.example.com over cleartext")
        );
        assert!(!refused.to_string().contains("access_token"));
        assert_eq!(
            config.check_api_request(&uri("/relative")),
            Err(ApiRequestError::NotHttp)
        );
        assert_eq!(
            config.check_api_request(&uri("ftp://api.example.com/")),
            Err(ApiRequestError::NotHttp)
        );
        let opted_in = Config::builder("https://id.example.com/token", "c")
            .allow_insecure_http(true)
            .build()
            .unwrap();
        assert!(
            opted_in
                .check_api_request(&uri("http://api.example.com/x"))
                .is_ok()
        );
    }

    #[test]
    fn allowed_api_origins_refuse_every_other_origin() {
        let config = Config::builder("https://id.example.com/token", "c")
            .allow_api_origin("https://API.example.com")
            .allow_api_origin("http://127.0.0.1:8080/")
            .build()
            .unwrap();
        for allowed in [
            "https://api.example.com/v1/meters",
            "https://api.example.com:443/",
            "http://127.0.0.1:8080/x",
        ] {
            assert!(config.check_api_request(&uri(allowed)).is_ok(), "{allowed}");
        }
        for refused in [
            "https://api.example.com:8443/",
            "http://api.example.com/",
            "https://evil.example.com/",
            "https://api.example.com.evil.example/",
            "http://127.0.0.1:8081/x",
        ] {
            let error = config.check_api_request(&uri(refused)).unwrap_err();
            assert!(
                matches!(
                    error,
                    ApiRequestError::OriginNotAllowed { .. } | ApiRequestError::Cleartext { .. }
                ),
                "{refused}: {error}"
            );
        }
        assert_eq!(
            config.check_api_request(&uri("https://evil.example.com/x")),
            Err(ApiRequestError::OriginNotAllowed {
                origin: Origin::parse("https://evil.example.com").unwrap()
            })
        );
    }

    #[test]
    fn allowed_api_origins_are_validated() {
        let build_with = |origin: &str| {
            Config::builder("https://id.example.com/token", "c")
                .allow_api_origin(origin)
                .build()
        };
        assert!(build_with("https://api.example.com").is_ok());
        for bad in [
            "api.example.com",
            "https://api.example.com/v1",
            "https://api.example.com/?x=1",
            "https://user:pw@api.example.com",
            "http://api.example.com",
            "ftp://api.example.com",
        ] {
            assert!(
                matches!(build_with(bad), Err(ConfigError::InvalidApiOrigin { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn query_parameters_in_the_endpoint_are_kept() {
        let config =
            build("https://gw.example.com/auth/v2/accesstoken?grant_type=client_credentials")
                .unwrap();
        assert_eq!(
            config.token_endpoint().query(),
            Some("grant_type=client_credentials")
        );
    }

    #[test]
    fn secret_and_method_must_agree() {
        let with_secret = Config::builder("https://a.example/t", "c").client_secret("s");
        assert_eq!(
            with_secret.clone().build().unwrap().client_auth(),
            ClientAuth::SecretBasic
        );
        assert_eq!(
            with_secret
                .client_auth(ClientAuth::None)
                .build()
                .unwrap_err(),
            ConfigError::UnusedClientSecret
        );
        assert_eq!(
            Config::builder("https://a.example/t", "c")
                .client_auth(ClientAuth::SecretPost)
                .build()
                .unwrap_err(),
            ConfigError::MissingClientSecret {
                auth: ClientAuth::SecretPost
            }
        );
    }

    #[test]
    fn scopes_are_split_validated_and_joined() {
        let config = Config::builder("https://a.example/t", "c")
            .scope("qflowapi openid")
            .scope("offline_access")
            .build()
            .unwrap();
        assert_eq!(config.scope(), Some("qflowapi openid offline_access"));
        assert!(matches!(
            Config::builder("https://a.example/t", "c")
                .scope("bad\"quote")
                .build(),
            Err(ConfigError::InvalidScope { character: '"', .. })
        ));
    }

    #[test]
    fn margin_is_capped_at_a_tenth_of_the_lifetime() {
        let config = build("https://a.example/t").unwrap();
        assert_eq!(
            config.margin_for(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            config.margin_for(Duration::from_secs(3)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let config = Config::builder("https://a.example/t", "c")
            .client_secret("hunter2")
            .build()
            .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
