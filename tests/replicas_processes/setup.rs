//! What the parent and its replica processes agree on: the client's configuration, the
//! user, the pace of the API calls, and what a parent passes to a replica.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokenflow::{Config, Credentials, RefreshTokenReuse, RetryPolicy};

use crate::servers::{BASIC_CLIENT, JOE};

/// Access tokens live this long on the server: a renewal every 1.8 s (less the margin of a
/// tenth), so that 30 s of calls need a dozen and a half of them.
pub const ACCESS_TTL_SECS: u64 = 2;
/// How long one token request may take; also how long a waiting replica waits without news
/// before it asks for the lease again.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause of each task between two calls: 16 tasks × 4 processes then make some 600 API
/// calls a second, enough to find every token at the moment it is renewed, without the load
/// itself (2 CPU cores, shared) delaying token answers past their timeout.
pub const PACE: Duration = Duration::from_millis(100);
/// The scope: `offline_access` for a refresh token.
pub const SCOPE: &str = "api offline_access";

/// One retry, short backoffs: a renewal lease of 2 s × 3 sends + 1 s = 7 s
/// ([`Config::renewal_lease_duration`]).
pub fn retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(1),
    }
}

/// Every replica's configuration (the parent's login uses it too). Strict reuse is the
/// default and is named here because the test is about it. The shared-store mode is the
/// client's to switch on when it is given a shared store.
pub fn config(token_endpoint: &str) -> Config {
    Config::builder(token_endpoint, BASIC_CLIENT.id)
        .client_secret(BASIC_CLIENT.secret.expect("a confidential client"))
        .scope(SCOPE)
        .request_timeout(REQUEST_TIMEOUT)
        .retry(retry())
        .refresh_token_reuse(RefreshTokenReuse::Strict)
        .build()
        .expect("a valid configuration")
}

/// The credentials every replica logs in with when it must.
pub fn credentials() -> Option<Credentials> {
    Some(Credentials::password(JOE.username, JOE.password))
}

/// Which client a replica runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// `BlockingClient`, one thread per task.
    Blocking,
    /// `AsyncClient` on a two-worker tokio runtime, one task per task.
    Async,
}

/// What the parent tells a replica, as the JSON argument after [`REPLICA_ARG`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaSettings {
    /// The holder name in the store, unique per process.
    pub name: String,
    pub flavour: Flavour,
    pub token_endpoint: String,
    pub api_url: String,
    /// The PostgreSQL connection string.
    pub database: String,
    /// The store's key: the login every replica shares.
    pub key: String,
    pub tasks: usize,
    pub run_for_ms: u64,
}

/// The first argument of a replica process: the parent re-executes its own binary with it.
pub const REPLICA_ARG: &str = "--replica-process";

/// One line a replica prints on stdout (JSON), in this order: `Ready`, any number of
/// `RefreshSending`, and `Report` at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// The client is built: the store and the listener are connected.
    Ready { pid: u32 },
    /// A refresh request is about to go out (printed by the transport, before sending), so
    /// the replica holds the lease and its store holds the in-flight mark.
    RefreshSending { pid: u32 },
    /// The end of the run.
    Report(Report),
}

/// What a replica did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub flavour: Flavour,
    pub pid: u32,
    /// Token requests it sent, by grant type.
    pub logins: u64,
    pub refreshes: u64,
    pub other_token_requests: u64,
    /// Iterations in which `bearer()` and `send()` both succeeded and the API answered 200.
    pub calls_served: u64,
    pub errors: u64,
    /// The first error, as the client's `Display` tells it (never a secret).
    pub first_error: Option<String>,
    /// The longest iteration, in milliseconds: how long a caller waited at worst.
    pub longest_call_ms: u64,
    /// When the last served call ended, in milliseconds since the Unix epoch.
    pub last_served_unix_ms: u64,
}
