//! tokenflow: a sans-IO OAuth 2.0 token lifecycle.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(any(feature = "blocking", feature = "tokio"))]
pub mod adapters;
pub mod challenge;
pub mod client_auth;
pub mod config;
mod error;
mod flow;
pub mod grant;
mod input;
mod output;
pub mod retry_after;
pub mod secret;
mod snippet;
pub mod time;
pub mod token;

pub use config::{ClientAuth, Config, ConfigBuilder, ConfigError, RetryPolicy};
pub use error::{FailureCause, FlowError};
pub use flow::TokenFlow;
pub use grant::{Credentials, GrantKind};
pub use input::{Input, TransportError, TransportErrorKind};
pub use output::{
    Access, Bearer, Event, Generation, HttpRequest, LoginRequiredReason, Output, RequestId,
};
pub use secret::{AccessToken, ClientSecret, IdToken, Password, RefreshToken, SecretString};
pub use time::UnixTime;
pub use token::{StoredTokens, TokenResponse};
