//! tokenflow: a sans-IO OAuth 2.0 token lifecycle.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod challenge;
pub mod retry_after;
mod snippet;
pub mod time;
