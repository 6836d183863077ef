//! What the examples print: a timeline, the exchanges the client has with the token endpoint
//! and the API, and the saves its token store sees. Nothing here prints a secret: token
//! requests are described by their grant type and how the client authenticated, answers by
//! their status and error code, stored tokens by their lifetimes and the names of their fields.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use http::{Request, Response, StatusCode, Uri, header};
use serde_json::Value;
use tokenflow::adapters::blocking::{Transport, UreqTransport};
use tokenflow::adapters::{StoreError, TokenStore};
use tokenflow::{StoredTokens, TransportError, UnixTime};

/// Token-response fields whose values are shown as they came (none of them is a secret).
const SHOWN_FIELDS: &[&str] = &[
    "token_type",
    "expires_in",
    "scope",
    "status",
    "refresh_count",
    "refresh_token_expires_in",
    "refresh_token_issued_at",
];

/// Prints lines stamped with the time since the example started.
#[derive(Clone)]
pub struct Timeline {
    started: Instant,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline {
            started: Instant::now(),
        }
    }

    /// One line, from `who` (`app`, `token`, `api`, `store`, `server`, …).
    pub fn say(&self, who: &str, line: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        println!("{elapsed:>6.2}s  {who:<7} {line}");
    }

    pub fn chapter(&self, title: &str) {
        println!("\n        {title}");
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a [`Watch`] saw, shared with the example.
#[derive(Default)]
pub struct Seen {
    grants: Mutex<BTreeMap<String, usize>>,
    api_calls: AtomicUsize,
    api_refused: AtomicUsize,
    refuse_next: AtomicBool,
    last_scheme: Mutex<Option<String>>,
    last_fields: Mutex<Vec<(String, String)>>,
}

impl Seen {
    /// Token requests per grant type, as `2 password, 1 refresh_token`.
    pub fn grants(&self) -> String {
        let grants = lock(&self.grants);
        if grants.is_empty() {
            return "none".to_owned();
        }
        grants
            .iter()
            .map(|(grant, n)| format!("{n} {grant}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Token requests with this grant type.
    pub fn grant_count(&self, grant: &str) -> usize {
        lock(&self.grants).get(grant).copied().unwrap_or(0)
    }

    /// API requests sent (simulated refusals included).
    pub fn api_calls(&self) -> usize {
        self.api_calls.load(Ordering::SeqCst)
    }

    /// API requests answered 401.
    pub fn api_refused(&self) -> usize {
        self.api_refused.load(Ordering::SeqCst)
    }

    /// Answers the next API request with a 401 without sending it, as an API does for a token
    /// it no longer accepts: a way to see the client's 401 handling against a real provider
    /// whose tokens live for an hour.
    pub fn refuse_next_api_call(&self) {
        self.refuse_next.store(true, Ordering::SeqCst);
    }

    /// The authentication scheme of the last API request's `Authorization` header.
    pub fn last_scheme(&self) -> Option<String> {
        lock(&self.last_scheme).clone()
    }

    /// The fields of the last successful token response: the values of those that are not
    /// secret, the JSON type of the others.
    pub fn last_fields(&self) -> Vec<(String, String)> {
        lock(&self.last_fields).clone()
    }
}

/// A transport over `ureq` that tells what goes through it.
pub struct Watch {
    inner: UreqTransport,
    token_endpoint: Uri,
    timeline: Timeline,
    seen: Arc<Seen>,
}

impl Watch {
    pub fn new(token_endpoint: &str, timeline: &Timeline) -> Result<(Watch, Arc<Seen>), String> {
        let token_endpoint: Uri = token_endpoint
            .parse()
            .map_err(|_| format!("{token_endpoint:?} is not a URL"))?;
        let seen = Arc::new(Seen::default());
        let watch = Watch {
            inner: UreqTransport::new(),
            token_endpoint,
            timeline: timeline.clone(),
            seen: Arc::clone(&seen),
        };
        Ok((watch, seen))
    }

    fn is_token_endpoint(&self, uri: &Uri) -> bool {
        uri.authority() == self.token_endpoint.authority()
            && uri.path() == self.token_endpoint.path()
    }

    fn token_request(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        let query = request.uri().query().unwrap_or("");
        let body = request.body();
        let grant = form_value(query.as_bytes(), "grant_type")
            .or_else(|| form_value(body, "grant_type"))
            .unwrap_or_else(|| "?".to_owned());
        let auth = if request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Basic "))
        {
            "client secret in the Basic header"
        } else if form_value(body, "client_secret").is_some() {
            "client_id and client_secret in the body"
        } else {
            "no client secret"
        };
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *lock(&self.seen.grants).entry(grant.clone()).or_default() += 1;
        let result = self.inner.send(request, deadline, max_body);
        let outcome = match &result {
            Ok(response) if response.status().is_success() => {
                *lock(&self.seen.last_fields) = shown_fields(response.body());
                format!("{}: tokens issued", status(response.status()))
            }
            Ok(response) => {
                let code = serde_json::from_slice::<Value>(response.body())
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| "no OAuth error code".to_owned());
                format!("{}: {code}", status(response.status()))
            }
            Err(error) => format!("failed: {error}"),
        };
        self.timeline.say(
            "token",
            &format!("POST {path}  grant_type={grant}, {auth} → {outcome}"),
        );
        result
    }

    fn api_request(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        self.seen.api_calls.fetch_add(1, Ordering::SeqCst);
        let scheme = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(' ').next())
            .map(str::to_owned);
        *lock(&self.seen.last_scheme) = scheme.clone();
        let line = format!(
            "{} {} (Authorization: {} …)",
            request.method(),
            request.uri().path(),
            scheme.as_deref().unwrap_or("none")
        );
        if self.seen.refuse_next.swap(false, Ordering::SeqCst) {
            self.seen.api_refused.fetch_add(1, Ordering::SeqCst);
            self.timeline.say(
                "api",
                &format!("{line} → 401, simulated here: the request was not sent"),
            );
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")
                .body(Vec::new())
                .map_err(|e| TransportError::not_sent(e.to_string()));
        }
        let result = self.inner.send(request, deadline, max_body);
        if let Ok(response) = &result {
            if response.status() == StatusCode::UNAUTHORIZED {
                self.seen.api_refused.fetch_add(1, Ordering::SeqCst);
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("no challenge");
                self.timeline
                    .say("api", &format!("{line} → 401 ({challenge})"));
            }
        }
        result
    }
}

impl Transport for Watch {
    fn send(
        &self,
        request: Request<Vec<u8>>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response<Vec<u8>>, TransportError> {
        if self.is_token_endpoint(request.uri()) {
            self.token_request(request, deadline, max_body)
        } else {
            self.api_request(request, deadline, max_body)
        }
    }
}

fn form_value(form: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(form)
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

fn status(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

fn shown_fields(body: &[u8]) -> Vec<(String, String)> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let shown = if SHOWN_FIELDS.contains(&name.as_str()) {
                value.to_string()
            } else {
                format!("({}, not shown)", json_type(&value))
            };
            (name, shown)
        })
        .collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What an [`ObservedStore`] saw, shared with the example.
#[derive(Default)]
pub struct Saves {
    saves: AtomicUsize,
    /// Fingerprints of the refresh tokens saved, in order, to count distinct ones without
    /// keeping or printing them.
    refresh_fingerprints: Mutex<Vec<u64>>,
    hasher: RandomState,
    last: Mutex<Option<StoredTokens>>,
}

impl Saves {
    pub fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    /// How many different refresh tokens were saved.
    pub fn distinct_refresh_tokens(&self) -> usize {
        let mut seen = lock(&self.refresh_fingerprints).clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// The last tokens saved (to describe, never to print).
    pub fn last(&self) -> Option<StoredTokens> {
        lock(&self.last).clone()
    }
}

/// A [`TokenStore`] that says when tokens are loaded, saved and deleted.
pub struct ObservedStore<S> {
    inner: S,
    timeline: Timeline,
    saves: Arc<Saves>,
}

impl<S: TokenStore> ObservedStore<S> {
    pub fn new(inner: S, timeline: &Timeline) -> (ObservedStore<S>, Arc<Saves>) {
        let saves = Arc::new(Saves::default());
        let store = ObservedStore {
            inner,
            timeline: timeline.clone(),
            saves: Arc::clone(&saves),
        };
        (store, saves)
    }
}

impl<S: TokenStore> TokenStore for ObservedStore<S> {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        let loaded = self.inner.load()?;
        let line = match &loaded {
            Some(tokens) => format!("found saved tokens: {}", describe(tokens)),
            None => "nothing saved yet".to_owned(),
        };
        self.timeline.say("store", &line);
        *lock(&self.saves.last) = loaded.clone();
        Ok(loaded)
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        self.inner.save(tokens)?;
        let number = self.saves.saves.fetch_add(1, Ordering::SeqCst) + 1;
        let refresh = {
            let mut fingerprints = lock(&self.saves.refresh_fingerprints);
            match &tokens.refresh_token {
                None => "no refresh token",
                Some(token) => {
                    let fingerprint = self.saves.hasher.hash_one(token.expose_secret());
                    let new = fingerprints.last() != Some(&fingerprint);
                    fingerprints.push(fingerprint);
                    if new {
                        "a new refresh token"
                    } else {
                        "the same refresh token"
                    }
                }
            }
        };
        self.timeline.say(
            "store",
            &format!("saved tokens #{number}: {}, {refresh}", describe(tokens)),
        );
        *lock(&self.saves.last) = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear()?;
        self.timeline.say("store", "tokens deleted");
        *lock(&self.saves.last) = None;
        Ok(())
    }
}

/// Stored tokens without their secrets: origin grant, access lifetime, scope.
pub fn describe(tokens: &StoredTokens) -> String {
    let lifetime = lifetime(tokens).map_or_else(
        || "no access token".to_owned(),
        |l| format!("access token for {}", seconds(l)),
    );
    let scope = tokens
        .scope
        .as_deref()
        .filter(|s| !s.is_empty())
        .map_or(String::new(), |s| format!(", scope \"{s}\""));
    format!("{lifetime} (grant {}){scope}", tokens.grant)
}

/// The access token's lifetime as the client understood it.
pub fn lifetime(tokens: &StoredTokens) -> Option<Duration> {
    tokens
        .expires_at
        .map(|at| at.saturating_duration_since(tokens.issued_at))
}

pub fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}

/// `2018-03-14 14:25:55 UTC`.
pub fn utc(time: UnixTime) -> String {
    let secs = time.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let of_day = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// `in 1799 s`, or `2195 days ago`.
pub fn from_now(time: UnixTime) -> String {
    let now = UnixTime::from_system_time(SystemTime::now());
    let (span, ago) = if time >= now {
        (time.saturating_duration_since(now), false)
    } else {
        (now.saturating_duration_since(time), true)
    };
    let span = if span.as_secs() >= 2 * 86_400 {
        format!("{} days", span.as_secs() / 86_400)
    } else {
        seconds(span)
    };
    if ago {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}
