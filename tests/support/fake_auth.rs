//! A deterministic OAuth 2.0 authorization server (token endpoint only) for tests.
//!
//! The server is pure: it never opens a socket, reads a clock or draws a random number. Time is
//! handed in as a [`Timestamp`] with every request, and tokens are derived from counters
//! (`AT.secret.1`, `RT.secret.1`, ...) so that a test can search logs and `Debug` output for them.
//!
//! It follows RFC 6749 strictly unless its [`ServerConfig`] asks for one of the quirks of the
//! providers in `/work/shared/providers`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use serde_json::{Value, json};
use tokenflow::Timestamp;

/// Epoch milliseconds reported by the gateway style at the server's creation instant (the
/// `refresh_token_issued_at` of the 002 provider's sample response).
pub const GATEWAY_EPOCH_BASE_MS: u64 = 1_521_035_756_257;

/// Prefix of every access token the server issues.
pub const ACCESS_TOKEN_PREFIX: &str = "AT.secret.";
/// Prefix of every refresh token the server issues.
pub const REFRESH_TOKEN_PREFIX: &str = "RT.secret.";

/// How successful token responses are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStyle {
    /// RFC 6749 §5.1: numeric `expires_in`, `token_type` `Bearer`.
    Standard,
    /// The 002 provider's API gateway: every value a string, `token_type` `BearerToken`, plus
    /// `status`, `refresh_count`, `refresh_token_expires_in` and `refresh_token_issued_at`.
    Gateway,
    /// Keycloak: the standard shape plus `refresh_expires_in` in seconds, which is `0` for a
    /// refresh token that does not expire (an offline token), `not-before-policy` and
    /// `session_state`.
    Keycloak,
}

/// The unit in which the gateway style writes `refresh_token_issued_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Epoch milliseconds, as in the 002 provider's sample response.
    Millis,
    /// Epoch seconds, as other gateways send it.
    Secs,
}

/// The one client authentication method the server accepts for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthStyle {
    /// RFC 6749 §2.3.1: `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
    Basic,
    /// `Authorization: Basic base64(id ":" secret)` with id and secret used raw.
    BasicUnencoded,
    /// `client_id` and `client_secret` in the request body.
    Post,
    /// A public client: only `client_id` in the body.
    None,
}

/// Behaviour of a [`FakeAuthServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens; `None` means they never expire.
    pub refresh_ttl: Option<Duration>,
    /// Shape of successful responses.
    pub style: ResponseStyle,
    /// Single-use refresh tokens: every refresh returns a new one and supersedes the old one.
    pub rotate_refresh_tokens: bool,
    /// IdentityServer: a refresh token is issued only when the scope holds `offline_access`.
    pub refresh_requires_offline_access: bool,
    /// RFC 9700 §4.14: presenting a superseded refresh token revokes the whole grant (see
    /// also [`FakeAuthServer::set_reuse_grace`]).
    pub revoke_family_on_reuse: bool,
    /// The token endpoint takes `grant_type` in the query string (the body may repeat it).
    pub require_query_grant_type: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::standard()
    }
}

impl ServerConfig {
    /// A plain RFC 6749 server: one-hour access tokens, refresh tokens that never expire and
    /// are not rotated.
    pub fn standard() -> Self {
        ServerConfig {
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: None,
            style: ResponseStyle::Standard,
            rotate_refresh_tokens: false,
            refresh_requires_offline_access: false,
            revoke_family_on_reuse: false,
            require_query_grant_type: false,
        }
    }

    /// Provider 000/001 (IdentityServer): refresh tokens only with `offline_access`, a fresh
    /// refresh token on every refresh, 30-day refresh lifetime.
    pub fn identity_server() -> Self {
        ServerConfig {
            refresh_ttl: Some(Duration::from_secs(30 * 24 * 3600)),
            rotate_refresh_tokens: true,
            refresh_requires_offline_access: true,
            ..Self::standard()
        }
    }

    /// Provider 002 (API gateway): string-valued JSON, `grant_type` in the query, the lifetimes
    /// of its sample response. Its documentation does not say whether refresh tokens rotate;
    /// this preset keeps them.
    pub fn gateway() -> Self {
        ServerConfig {
            access_ttl: Duration::from_secs(86_399),
            refresh_ttl: Some(Duration::from_secs(1_799)),
            style: ResponseStyle::Gateway,
            require_query_grant_type: true,
            ..Self::standard()
        }
    }

    /// Provider 003: single-use refresh tokens that never expire, one-hour access tokens.
    pub fn single_use_refresh() -> Self {
        ServerConfig {
            rotate_refresh_tokens: true,
            ..Self::standard()
        }
    }
}

/// A canned answer that replaces the server's next answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// That status with a small body: JSON `server_error` for 500, JSON
    /// `temporarily_unavailable` for 503, a small HTML page otherwise.
    Status(u16),
    /// 429 with this `Retry-After` value, verbatim.
    TooManyRequests {
        /// The `Retry-After` header value.
        retry_after: String,
    },
    /// 503 with this `Retry-After` value, verbatim, and a JSON `temporarily_unavailable` body.
    ServiceUnavailable {
        /// The `Retry-After` header value.
        retry_after: String,
    },
    /// A gateway's HTML error page with that status.
    HtmlPage(u16),
    /// Anything, verbatim.
    Body {
        /// Status code.
        status: u16,
        /// `Content-Type` header value.
        content_type: &'static str,
        /// Response body.
        body: Vec<u8>,
    },
    /// The request is processed normally (tokens are issued and rotated) but the answer never
    /// reaches the client.
    ApplyThenLose,
}

/// What [`FakeAuthServer::handle_with_faults`] decided.
#[derive(Debug)]
pub enum Reply {
    /// This answer reaches the client.
    Respond(Response<Vec<u8>>),
    /// The request was processed but its answer is lost (the harness should report a
    /// transport error to the client).
    Lost,
}

impl Reply {
    /// The response, panicking when the answer was lost.
    pub fn unwrap_response(self) -> Response<Vec<u8>> {
        match self {
            Reply::Respond(response) => response,
            Reply::Lost => panic!("the answer was lost"),
        }
    }
}

/// How the server answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Tokens were issued.
    Issued,
    /// An RFC 6749 §5.2 error with this `error` code.
    Error(String),
    /// An injected fault other than [`Fault::ApplyThenLose`] replaced the answer; the request
    /// was not processed.
    Fault,
}

/// One request seen by the server, parsed.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// When it arrived.
    pub at: Timestamp,
    /// Its method.
    pub method: http::Method,
    /// Its URI.
    pub uri: http::Uri,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// The form-decoded body, in order, empty values included (empty when the request is not
    /// declared as a form or does not parse as one).
    pub form: Vec<(String, String)>,
    /// The effective grant type (from the query or the body).
    pub grant_type: Option<String>,
    /// The client id claimed by the request (Basic header or body).
    pub client_id: Option<String>,
    /// How the server answered.
    pub outcome: Outcome,
    /// The request was processed but its answer was lost ([`Fault::ApplyThenLose`]).
    pub lost: bool,
}

#[derive(Debug, Clone)]
struct Client {
    secret: Option<String>,
    auth: ClientAuthStyle,
}

#[derive(Debug, Clone)]
struct AccessToken {
    grant: u64,
    expires_at: Timestamp,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Live,
    Superseded,
    Revoked,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    grant: u64,
    client_id: String,
    scope: Vec<String>,
    issued_at: Timestamp,
    expires_at: Option<Timestamp>,
    state: RefreshState,
    /// When it was superseded by a successor.
    superseded_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
struct Grant {
    refresh_count: u64,
}

/// An error answer per RFC 6749 §5.2.
struct OAuthError {
    code: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }
}

/// Tokens to put in a successful answer.
struct Issued {
    access_token: String,
    scope: Vec<String>,
    refresh: Option<(String, Timestamp)>,
    refresh_count: u64,
}

/// A deterministic token endpoint.
#[derive(Debug)]
pub struct FakeAuthServer {
    config: ServerConfig,
    created_at: Option<Timestamp>,
    /// The wall time at `created_at`, in epoch milliseconds, and the unit the gateway style
    /// writes it in.
    epoch_base_ms: u64,
    epoch_unit: EpochUnit,
    clients: HashMap<String, Client>,
    users: HashMap<String, String>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    grants: Vec<Grant>,
    next_access: u64,
    next_refresh: u64,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    /// Whether each request is kept in `requests`.
    recording: bool,
    /// Requests seen, recorded or not.
    seen: usize,
    /// How long a superseded refresh token is still accepted (Auth0's overlap period,
    /// Cognito's `RetryGracePeriodSeconds`); zero by default.
    reuse_grace: Duration,
    /// Superseded refresh tokens presented outside the grace window.
    reuses: usize,
    /// Grants revoked because of a reuse.
    families_revoked: usize,
    /// Superseded refresh tokens accepted inside the grace window.
    grace_refreshes: usize,
}

impl FakeAuthServer {
    /// A server whose creation instant is the first `now` it sees.
    pub fn new(config: ServerConfig) -> Self {
        FakeAuthServer {
            config,
            created_at: None,
            epoch_base_ms: GATEWAY_EPOCH_BASE_MS,
            epoch_unit: EpochUnit::Millis,
            clients: HashMap::new(),
            users: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            grants: Vec::new(),
            next_access: 1,
            next_refresh: 1,
            faults: VecDeque::new(),
            requests: Vec::new(),
            recording: true,
            seen: 0,
            reuse_grace: Duration::ZERO,
            reuses: 0,
            families_revoked: 0,
            grace_refreshes: 0,
        }
    }

    /// Accepts a superseded refresh token for `grace` after it was superseded, as servers
    /// with a reuse grace window do; a fresh pair is issued each time.
    pub fn set_reuse_grace(&mut self, grace: Duration) {
        self.reuse_grace = grace;
    }

    /// How many times a superseded refresh token was presented outside the grace window
    /// (RFC 9700 §4.14.2 reuse detection), whether or not the grant was revoked for it.
    pub fn reuses_detected(&self) -> usize {
        self.reuses
    }

    /// How many grants were revoked because a superseded refresh token was presented.
    pub fn families_revoked(&self) -> usize {
        self.families_revoked
    }

    /// How many superseded refresh tokens were accepted inside the grace window.
    pub fn grace_refreshes(&self) -> usize {
        self.grace_refreshes
    }

    /// A server created at `now` (the base of the gateway style's epoch milliseconds).
    pub fn new_at(config: ServerConfig, now: Timestamp) -> Self {
        let mut server = Self::new(config);
        server.created_at = Some(now);
        server
    }

    /// The gateway style's `refresh_token_issued_at`: the wall time at the server's creation
    /// (epoch milliseconds, [`GATEWAY_EPOCH_BASE_MS`] unless set) and the unit it is written in.
    pub fn set_gateway_epoch(&mut self, base_ms: u64, unit: EpochUnit) {
        self.epoch_base_ms = base_ms;
        self.epoch_unit = unit;
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Registers a client; `auth` is the only authentication method accepted for it.
    pub fn add_client(&mut self, id: &str, secret: Option<&str>, auth: ClientAuthStyle) {
        self.clients.insert(
            id.to_owned(),
            Client {
                secret: secret.map(str::to_owned),
                auth,
            },
        );
    }

    /// Registers a resource owner for the password grant.
    pub fn add_user(&mut self, username: &str, password: &str) {
        self.users.insert(username.to_owned(), password.to_owned());
    }

    /// Queues a fault: the next answers are replaced by the queued faults, first in first out.
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push_back(fault);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }

    /// Every request seen, in order (none after [`Self::stop_recording`]).
    pub fn requests(&self) -> &[RecordedRequest] {
        &self.requests
    }

    /// Stops keeping a parsed copy of each request; [`Self::token_requests`] still counts
    /// them. A fuzz target that sends many thousands of requests a second needs neither the
    /// copies nor the second parse of every form.
    pub fn stop_recording(&mut self) {
        self.recording = false;
    }

    /// How many requests reached the token endpoint (faulted ones included).
    pub fn token_requests(&self) -> usize {
        self.seen
    }

    /// Whether `token` is an access token that is issued, unexpired at `now` and not revoked.
    pub fn is_access_token_valid(&self, token: &str, now: Timestamp) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|t| !t.revoked && now < t.expires_at)
    }

    /// Revokes one access token.
    pub fn revoke_access_token(&mut self, token: &str) {
        if let Some(t) = self.access_tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Revokes every access and refresh token issued so far; new logins still work.
    pub fn revoke_all(&mut self) {
        for t in self.access_tokens.values_mut() {
            t.revoked = true;
        }
        for t in self.refresh_tokens.values_mut() {
            t.state = RefreshState::Revoked;
        }
    }

    /// Refresh tokens neither superseded nor revoked (expiry is not considered).
    pub fn live_refresh_tokens(&self) -> usize {
        self.refresh_tokens
            .values()
            .filter(|t| t.state == RefreshState::Live)
            .count()
    }

    /// Handles one token-endpoint request at `now`, consuming the next queued fault if any.
    ///
    /// # Panics
    /// When the next fault is [`Fault::ApplyThenLose`]: use [`Self::handle_with_faults`].
    pub fn handle(&mut self, now: Timestamp, request: &Request<Vec<u8>>) -> Response<Vec<u8>> {
        match self.handle_with_faults(now, request) {
            Reply::Respond(response) => response,
            Reply::Lost => panic!(
                "Fault::ApplyThenLose was queued: use FakeAuthServer::handle_with_faults to see the lost answer"
            ),
        }
    }

    /// Handles one token-endpoint request at `now`, consuming the next queued fault if any.
    pub fn handle_with_faults(&mut self, now: Timestamp, request: &Request<Vec<u8>>) -> Reply {
        if self.created_at.is_none() {
            self.created_at = Some(now);
        }
        self.seen += 1;
        let mut record = self.recording.then(|| record(now, request));

        let fault = self.faults.pop_front();
        let reply = match fault {
            Some(Fault::ApplyThenLose) => {
                let (outcome, _) = self.process(now, request);
                if let Some(record) = record.as_mut() {
                    record.outcome = outcome;
                    record.lost = true;
                }
                Reply::Lost
            }
            Some(fault) => Reply::Respond(fault_response(&fault)),
            None => {
                let (outcome, response) = self.process(now, request);
                if let Some(record) = record.as_mut() {
                    record.outcome = outcome;
                }
                Reply::Respond(response)
            }
        };
        if let Some(record) = record {
            self.requests.push(record);
        }
        reply
    }

    fn process(
        &mut self,
        now: Timestamp,
        request: &Request<Vec<u8>>,
    ) -> (Outcome, Response<Vec<u8>>) {
        match self.token_endpoint(now, request) {
            Ok(issued) => (Outcome::Issued, self.success_response(now, &issued)),
            Err(error) => (
                Outcome::Error(error.code.to_owned()),
                error_response(&error),
            ),
        }
    }

    fn token_endpoint(
        &mut self,
        now: Timestamp,
        request: &Request<Vec<u8>>,
    ) -> Result<Issued, OAuthError> {
        if request.method() != Method::POST {
            return Err(OAuthError::new(
                "invalid_request",
                "the token endpoint accepts POST only",
            ));
        }
        if !is_form_content_type(request.headers()) {
            return Err(OAuthError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let raw = parse_form(request.body());
        // RFC 6749 §3.2: parameters without a value are treated as omitted; none may repeat.
        let form: Vec<(String, String)> = raw.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        for (i, (name, _)) in form.iter().enumerate() {
            if form[..i].iter().any(|(n, _)| n == name) {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("parameter {name} is repeated"),
                ));
            }
        }
        let grant_type = self.grant_type(request.uri(), &form)?;
        let client_id = self.authenticate(request.headers(), &form)?;
        match grant_type.as_str() {
            "password" => self.password_grant(now, &client_id, &form),
            "client_credentials" => self.client_credentials_grant(now, &client_id, &form),
            "refresh_token" => self.refresh_grant(now, &client_id, &form),
            other => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant type {other} is not supported"),
            )),
        }
    }

    fn grant_type(&self, uri: &Uri, form: &[(String, String)]) -> Result<String, OAuthError> {
        let body = single(form, "grant_type");
        if !self.config.require_query_grant_type {
            return body
                .map(str::to_owned)
                .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is missing"));
        }
        let query = uri
            .query()
            .map(|q| parse_form(q.as_bytes()))
            .unwrap_or_default();
        let in_query: Vec<&str> = query
            .iter()
            .filter(|(n, v)| n == "grant_type" && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect();
        let query_grant = match in_query.as_slice() {
            [] => {
                return Err(OAuthError::new(
                    "invalid_request",
                    "grant_type must be given in the query string",
                ));
            }
            [one] => *one,
            _ => {
                return Err(OAuthError::new(
                    "invalid_request",
                    "grant_type is repeated in the query string",
                ));
            }
        };
        if let Some(body) = body {
            if body != query_grant {
                return Err(OAuthError::new(
                    "invalid_request",
                    "grant_type differs between query and body",
                ));
            }
        }
        Ok(query_grant.to_owned())
    }

    /// RFC 6749 §2.3: returns the authenticated client's id.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &[(String, String)],
    ) -> Result<String, OAuthError> {
        let body_id = single(form, "client_id");
        let body_secret = single(form, "client_secret");
        let basic = match headers.get(header::AUTHORIZATION) {
            Some(value) => parse_basic(value)?,
            None => None,
        };

        if let Some((raw_id, raw_secret)) = basic {
            let fail = |description: &str| OAuthError {
                code: "invalid_client",
                description: description.to_owned(),
                basic_challenge: true,
            };
            if body_secret.is_some() {
                return Err(OAuthError::new(
                    "invalid_request",
                    "more than one client authentication method",
                ));
            }
            // A BasicUnencoded client is matched by the raw id and secret, a Basic client by
            // the form-decoded ones; any other client may not use the header.
            let raw = self
                .clients
                .get(&raw_id)
                .filter(|c| c.auth == ClientAuthStyle::BasicUnencoded)
                .map(|c| (raw_id.clone(), c, raw_secret.clone()));
            let decoded_id = form_urldecode(&raw_id);
            let decoded = self
                .clients
                .get(&decoded_id)
                .filter(|c| c.auth == ClientAuthStyle::Basic)
                .map(|c| (decoded_id.clone(), c, form_urldecode(&raw_secret)));
            let Some((id, client, secret)) = raw.or(decoded) else {
                return Err(fail("unknown client or authentication method not allowed"));
            };
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::new(
                    "invalid_request",
                    "client_id in the body differs from the Authorization header",
                ));
            }
            if client.secret.as_deref().unwrap_or("") != secret {
                return Err(fail("client authentication failed"));
            }
            return Ok(id);
        }

        let Some(id) = body_id else {
            return Err(OAuthError::new(
                "invalid_client",
                "no client authentication",
            ));
        };
        let Some(client) = self.clients.get(id) else {
            return Err(OAuthError::new("invalid_client", "unknown client"));
        };
        match client.auth {
            ClientAuthStyle::Basic | ClientAuthStyle::BasicUnencoded => Err(OAuthError::new(
                "invalid_client",
                "this client must use HTTP Basic authentication",
            )),
            ClientAuthStyle::Post => match body_secret {
                Some(secret) if client.secret.as_deref().unwrap_or("") == secret => {
                    Ok(id.to_owned())
                }
                _ => Err(OAuthError::new(
                    "invalid_client",
                    "client authentication failed",
                )),
            },
            ClientAuthStyle::None => match body_secret {
                None => Ok(id.to_owned()),
                Some(_) => Err(OAuthError::new(
                    "invalid_client",
                    "this client does not authenticate with a secret",
                )),
            },
        }
    }

    fn password_grant(
        &mut self,
        now: Timestamp,
        client_id: &str,
        form: &[(String, String)],
    ) -> Result<Issued, OAuthError> {
        let (Some(username), Some(password)) = (single(form, "username"), single(form, "password"))
        else {
            return Err(OAuthError::new(
                "invalid_request",
                "username and password are required",
            ));
        };
        if self.users.get(username).map(String::as_str) != Some(password) {
            return Err(OAuthError::new(
                "invalid_grant",
                "the resource owner credentials are invalid",
            ));
        }
        let scope = parse_scope(single(form, "scope"));
        let with_refresh = !self.config.refresh_requires_offline_access
            || scope.iter().any(|s| s == "offline_access");
        Ok(self.start_grant(now, client_id, scope, with_refresh))
    }

    fn client_credentials_grant(
        &mut self,
        now: Timestamp,
        client_id: &str,
        form: &[(String, String)],
    ) -> Result<Issued, OAuthError> {
        if self
            .clients
            .get(client_id)
            .is_some_and(|c| c.auth == ClientAuthStyle::None)
        {
            return Err(OAuthError::new(
                "unauthorized_client",
                "public clients may not use the client credentials grant",
            ));
        }
        let scope = parse_scope(single(form, "scope"));
        // §4.4.3: no refresh token; the gateway issues one anyway.
        let with_refresh = self.config.style == ResponseStyle::Gateway;
        Ok(self.start_grant(now, client_id, scope, with_refresh))
    }

    fn refresh_grant(
        &mut self,
        now: Timestamp,
        client_id: &str,
        form: &[(String, String)],
    ) -> Result<Issued, OAuthError> {
        let Some(presented) = single(form, "refresh_token") else {
            return Err(OAuthError::new(
                "invalid_request",
                "refresh_token is missing",
            ));
        };
        let invalid = || OAuthError::new("invalid_grant", "the refresh token is invalid");
        let Some(token) = self.refresh_tokens.get(presented).cloned() else {
            return Err(invalid());
        };
        if token.client_id != client_id {
            return Err(invalid());
        }
        match token.state {
            RefreshState::Live => {}
            RefreshState::Revoked => return Err(invalid()),
            RefreshState::Superseded
                if token
                    .superseded_at
                    .is_some_and(|at| now.saturating_duration_since(at) < self.reuse_grace) =>
            {
                self.grace_refreshes += 1;
            }
            RefreshState::Superseded => {
                self.reuses += 1;
                if self.config.revoke_family_on_reuse {
                    self.families_revoked += 1;
                    self.revoke_grant(token.grant);
                }
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the refresh token was already used",
                ));
            }
        }
        if token.expires_at.is_some_and(|at| now >= at) {
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token expired",
            ));
        }
        let scope = match single(form, "scope") {
            None => token.scope.clone(),
            Some(requested) => {
                let requested = parse_scope(Some(requested));
                if let Some(extra) = requested.iter().find(|s| !token.scope.contains(s)) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("scope {extra} was not originally granted"),
                    ));
                }
                requested
            }
        };

        let grant = token.grant;
        self.grants[grant_index(grant)].refresh_count += 1;
        let refresh_count = self.grants[grant_index(grant)].refresh_count;
        let access_token = self.issue_access_token(now, grant);
        let refresh = if self.config.rotate_refresh_tokens {
            if let Some(old) = self.refresh_tokens.get_mut(presented) {
                if old.state == RefreshState::Live {
                    old.state = RefreshState::Superseded;
                    old.superseded_at = Some(now);
                }
            }
            // §6: the new refresh token keeps the scope of the one presented.
            Some(self.issue_refresh_token(now, grant, client_id, token.scope.clone()))
        } else if self.config.style == ResponseStyle::Gateway {
            Some((presented.to_owned(), token.issued_at))
        } else {
            None
        };
        Ok(Issued {
            access_token,
            scope,
            refresh,
            refresh_count,
        })
    }

    fn start_grant(
        &mut self,
        now: Timestamp,
        client_id: &str,
        scope: Vec<String>,
        with_refresh: bool,
    ) -> Issued {
        self.grants.push(Grant::default());
        let grant = self.grants.len() as u64 - 1;
        let access_token = self.issue_access_token(now, grant);
        let refresh =
            with_refresh.then(|| self.issue_refresh_token(now, grant, client_id, scope.clone()));
        Issued {
            access_token,
            scope,
            refresh,
            refresh_count: 0,
        }
    }

    fn issue_access_token(&mut self, now: Timestamp, grant: u64) -> String {
        let token = format!("{ACCESS_TOKEN_PREFIX}{}", self.next_access);
        self.next_access += 1;
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                grant,
                expires_at: now + self.config.access_ttl,
                revoked: false,
            },
        );
        token
    }

    fn issue_refresh_token(
        &mut self,
        now: Timestamp,
        grant: u64,
        client_id: &str,
        scope: Vec<String>,
    ) -> (String, Timestamp) {
        let token = format!("{REFRESH_TOKEN_PREFIX}{}", self.next_refresh);
        self.next_refresh += 1;
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                grant,
                client_id: client_id.to_owned(),
                scope,
                issued_at: now,
                expires_at: self.config.refresh_ttl.map(|ttl| now + ttl),
                state: RefreshState::Live,
                superseded_at: None,
            },
        );
        (token, now)
    }

    fn revoke_grant(&mut self, grant: u64) {
        for t in self.access_tokens.values_mut().filter(|t| t.grant == grant) {
            t.revoked = true;
        }
        for t in self
            .refresh_tokens
            .values_mut()
            .filter(|t| t.grant == grant)
        {
            t.state = RefreshState::Revoked;
        }
    }

    fn epoch_millis(&self, at: Timestamp) -> u64 {
        let since = self.created_at.map_or(Duration::ZERO, |created| {
            at.saturating_duration_since(created)
        });
        self.epoch_base_ms + since.as_millis() as u64
    }

    /// `refresh_token_issued_at` for a token issued `at`, in the configured unit.
    fn issued_at_value(&self, at: Timestamp) -> String {
        let millis = self.epoch_millis(at);
        match self.epoch_unit {
            EpochUnit::Millis => millis.to_string(),
            EpochUnit::Secs => (millis / 1000).to_string(),
        }
    }

    fn success_response(&self, now: Timestamp, issued: &Issued) -> Response<Vec<u8>> {
        let scope = issued.scope.join(" ");
        let body = match self.config.style {
            ResponseStyle::Standard => {
                let mut body = json!({
                    "access_token": issued.access_token,
                    "token_type": "Bearer",
                    "expires_in": self.config.access_ttl.as_secs(),
                });
                if let Some((refresh, _)) = &issued.refresh {
                    body["refresh_token"] = Value::from(refresh.as_str());
                }
                if !scope.is_empty() {
                    body["scope"] = Value::from(scope);
                }
                body
            }
            ResponseStyle::Gateway => {
                let mut body = json!({
                    "token_type": "BearerToken",
                    "access_token": issued.access_token,
                    "scope": scope,
                    "status": "approved",
                    "expires_in": self.config.access_ttl.as_secs().to_string(),
                    "refresh_count": issued.refresh_count.to_string(),
                });
                if let Some((refresh, issued_at)) = &issued.refresh {
                    let expires_in = self.config.refresh_ttl.map_or(0, |ttl| {
                        ttl.saturating_sub(now.saturating_duration_since(*issued_at))
                            .as_secs()
                    });
                    body["refresh_token"] = Value::from(refresh.as_str());
                    body["refresh_token_expires_in"] = Value::from(expires_in.to_string());
                    body["refresh_token_issued_at"] = Value::from(self.issued_at_value(*issued_at));
                }
                body
            }
            ResponseStyle::Keycloak => {
                let mut body = json!({
                    "access_token": issued.access_token,
                    "expires_in": self.config.access_ttl.as_secs(),
                    "token_type": "Bearer",
                    "not-before-policy": 0,
                    "session_state": "5e5b3e3c-0c55-4f7a-9d0b-6a1c1f2b7a10",
                });
                if let Some((refresh, issued_at)) = &issued.refresh {
                    let expires_in = self.config.refresh_ttl.map_or(0, |ttl| {
                        ttl.saturating_sub(now.saturating_duration_since(*issued_at))
                            .as_secs()
                    });
                    body["refresh_token"] = Value::from(refresh.as_str());
                    body["refresh_expires_in"] = Value::from(expires_in);
                }
                if !scope.is_empty() {
                    body["scope"] = Value::from(scope);
                }
                body
            }
        };
        json_response(StatusCode::OK, &body)
    }
}

/// A request as the server records it, before its outcome is known.
fn record(now: Timestamp, request: &Request<Vec<u8>>) -> RecordedRequest {
    let mut record = RecordedRequest {
        at: now,
        method: request.method().clone(),
        uri: request.uri().clone(),
        headers: request.headers().clone(),
        form: if is_form_content_type(request.headers()) {
            parse_form(request.body())
        } else {
            Vec::new()
        },
        grant_type: None,
        client_id: None,
        outcome: Outcome::Fault,
        lost: false,
    };
    let query = request.uri().query().map(|q| parse_form(q.as_bytes()));
    record.grant_type = query
        .as_deref()
        .and_then(|q| single(q, "grant_type"))
        .or_else(|| single(&record.form, "grant_type"))
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    record.client_id = claimed_client_id(request.headers(), &record.form);
    record
}

fn grant_index(grant: u64) -> usize {
    usize::try_from(grant).expect("grant index fits in usize")
}

fn json_response(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(serde_json::to_vec(body).expect("JSON serializes"))
        .expect("valid response")
}

fn error_response(error: &OAuthError) -> Response<Vec<u8>> {
    let body = json!({ "error": error.code, "error_description": error.description });
    let status = if error.basic_challenge {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut response = json_response(status, &body);
    if error.basic_challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fake\""),
        );
    }
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).expect("fault status is a valid HTTP status code")
}

fn html_page(status: StatusCode) -> Vec<u8> {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>fake-gateway</center>\r\n</body>\r\n</html>\r\n"
    )
    .into_bytes()
}

fn raw_response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .expect("valid fault response")
}

fn with_retry_after(mut response: Response<Vec<u8>>, retry_after: &str) -> Response<Vec<u8>> {
    let value = HeaderValue::from_str(retry_after).expect("Retry-After is a valid header value");
    response.headers_mut().insert(header::RETRY_AFTER, value);
    response
}

fn oauth_error_body(code: &str, description: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "error": code, "error_description": description }))
        .expect("JSON serializes")
}

fn fault_response(fault: &Fault) -> Response<Vec<u8>> {
    const JSON: &str = "application/json;charset=UTF-8";
    const HTML: &str = "text/html";
    match fault {
        Fault::Status(500) => raw_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            JSON,
            oauth_error_body("server_error", "internal error"),
        ),
        Fault::Status(503) => raw_response(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON,
            oauth_error_body("temporarily_unavailable", "try again later"),
        ),
        Fault::Status(status) | Fault::HtmlPage(status) => {
            let status = status_code(*status);
            raw_response(status, HTML, html_page(status))
        }
        Fault::TooManyRequests { retry_after } => with_retry_after(
            raw_response(
                StatusCode::TOO_MANY_REQUESTS,
                "text/plain",
                b"Too Many Requests".to_vec(),
            ),
            retry_after,
        ),
        Fault::ServiceUnavailable { retry_after } => with_retry_after(
            raw_response(
                StatusCode::SERVICE_UNAVAILABLE,
                JSON,
                oauth_error_body("temporarily_unavailable", "try again later"),
            ),
            retry_after,
        ),
        Fault::Body {
            status,
            content_type,
            body,
        } => raw_response(status_code(*status), content_type, body.clone()),
        Fault::ApplyThenLose => unreachable!("ApplyThenLose has no response"),
    }
}

fn is_form_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Every form decodes: malformed escapes stay as they are, invalid UTF-8 becomes U+FFFD.
fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// The value of the only parameter called `name` (the first one when it repeats).
fn single<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn parse_scope(scope: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// `Ok(None)` when the header is not a Basic credential, `Err` when it is a malformed one.
fn parse_basic(value: &HeaderValue) -> Result<Option<(String, String)>, OAuthError> {
    let malformed = || OAuthError {
        code: "invalid_client",
        description: "malformed Basic credentials".to_owned(),
        basic_challenge: true,
    };
    let Ok(text) = value.to_str() else {
        return Err(malformed());
    };
    let Some((scheme, credentials)) = text.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = BASE64.decode(credentials.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((id.to_owned(), secret.to_owned())))
}

/// The client id a request claims, for the record: the Basic header's (form-decoded) or the
/// body's.
fn claimed_client_id(headers: &HeaderMap, form: &[(String, String)]) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| parse_basic(v).ok().flatten())
        .map(|(id, _)| form_urldecode(&id));
    from_header.or_else(|| single(form, "client_id").map(str::to_owned))
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a space, `%XX` a byte;
/// malformed escapes are kept as they are.
pub fn form_urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: &u8) -> Option<u8> {
    char::from(*digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// `application/x-www-form-urlencoded` encoding of one component (as RFC 6749 §2.3.1 asks for
/// client ids and secrets).
pub fn form_urlencode(s: &str) -> String {
    let encoded = serde_urlencoded::to_string([("", s)]).expect("a string pair encodes");
    encoded.trim_start_matches('=').to_owned()
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` per RFC 6749 §2.3.1.
pub fn basic_auth(id: &str, secret: &str) -> String {
    basic_auth_unencoded(&form_urlencode(id), &form_urlencode(secret))
}

/// `Basic base64(id ":" secret)` with id and secret raw.
pub fn basic_auth_unencoded(id: &str, secret: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{id}:{secret}")))
}
