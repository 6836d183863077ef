//! Run loops that drive a [`TokenFlow`](crate::TokenFlow) with real IO.
//!
//! Adapters hold no protocol logic: they send what the flow asks, feed back what happened,
//! persist what it hands out, and sleep until it next needs them.

#[cfg(feature = "blocking")]
pub mod blocking;
mod clock;
mod driver;
#[cfg(feature = "blocking")]
mod engine;
mod interactive;
mod log;
pub mod redirect;
pub mod store;
#[cfg(feature = "tokio")]
pub mod tokio;

#[cfg(feature = "blocking")]
pub use engine::Error;
pub use interactive::{LogoutReport, RevocationFailure};
pub use redirect::{LoopbackRedirect, RedirectError};
pub use store::{FileStore, MAX_TOKEN_FILE_BYTES, MemoryStore, StoreError, TokenStore};
