//! Token requests, one per grant: pure functions from configuration to an HTTP request.

mod kind;
mod request;

pub use kind::{Credentials, GrantKind};
pub(crate) use request::form_post;
pub use request::{TokenGrant, build_token_request};
