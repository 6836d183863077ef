//! Token endpoint answers: successful responses, errors, and the tokens kept between runs.

#[cfg(test)]
mod corpus_bodies;
mod error;
pub(crate) mod fields;
mod response;
mod stored;
mod wire;

pub use error::{ErrorCode, Malformation, OAuthError, ResponseError};
pub(crate) use error::{excerpt as error_excerpt, printable};
pub(crate) use fields::MAX_LIFETIME;
pub use response::{TokenResponse, TokenType, parse_token_response};
pub(crate) use response::{parse_token_response_to, salvage_refresh_token};
pub use stored::{RestoreError, STORED_TOKENS_VERSION, StoredTokens};
