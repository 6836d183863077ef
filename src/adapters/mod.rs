//! Clients that drive a [`TokenFlow`](crate::TokenFlow) with real IO: one engine, two thin
//! shells.
//!
//! Everything a client keeps track of besides the flow — who waits for what, the credentials
//! source, the order of store writes (a token is never released before it is saved), the
//! logout report, why a login is needed, answers that arrive too late, and the token at hand
//! that callers read without a lock — is the engine's, written once for both clients. The
//! shells only perform IO and wait:
//!
//! * [`blocking::BlockingClient`] performs each work item on the calling thread and waits on
//!   a condition variable;
//! * [`tokio::AsyncClient`] hands each work item to a task of its own (so that dropping a
//!   caller's future never abandons it) and waits on a `tokio::sync::Notify`.
//!
//! Both are built the same way, with a [`ClientBuilder`], and fail with the same [`Error`].
//!
//! A token request is given one request timeout more than the flow gives it: the flow gives
//! up at its deadline (and retries, or reports), while the transport keeps waiting, so that an
//! answer that comes late still reaches the flow, which adopts a renewal's late answer (the
//! only live successor of a rotated refresh token) while the token it renews is held. A
//! blocking caller performing such a request may so wait up to twice the request timeout.
//!
//! # Replicas
//!
//! Several clients — in one process or many — share one login with
//! [`ClientBuilder::replicas`]: each is given the same
//! [`SharedTokenStore`](crate::shared::SharedTokenStore) (a database's, or
//! [`shared::MemoryStore`](crate::shared::MemoryStore) within a process) and a holder name of
//! its own, and the engine drives the shared-store protocol of [`crate::shared`]: each store
//! request the flow makes is performed outside the lock (by the calling thread, or on
//! tokio's blocking pool) and reported back, writes one at a time and in order, marks and
//! writes before the flow goes on. With [`ClientBuilder::store_changes`], a background waiter
//! reports each change of the store, so a replica waiting for another's renewal adopts its
//! tokens at once.

mod approved_origin;
mod builder;
mod cache;
mod clock;
mod coarse_clock;
#[cfg(feature = "tokio")]
mod deadline_watch;
mod driver;
mod engine;
mod error;
mod interactive;
mod log;
mod off_runtime;
pub mod redirect;
mod replica;
#[cfg(feature = "tokio")]
mod reqwest_request;
mod shared;
pub mod store;
#[cfg(feature = "blocking")]
mod ureq_transport;

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use builder::{Client, ClientBuilder, DEFAULT_API_MAX_BODY, DEFAULT_API_TIMEOUT};
pub use error::Error;
pub use interactive::{LogoutReport, RevocationFailure};
pub use redirect::{LoopbackRedirect, RedirectError};
pub use replica::ReplicaSetupError;
pub use store::{FileStore, MAX_TOKEN_FILE_BYTES, MemoryStore, StoreError, TokenStore};
