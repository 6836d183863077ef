//! placeholder
#![allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerErrorCode {
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    Other(String),
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: Option<String>,
    pub error: Option<BearerErrorCode>,
    pub error_description: Option<String>,
    pub scope: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeError;
pub fn bearer_challenge<'a, I: IntoIterator<Item = &'a [u8]>>(
    _values: I,
) -> Result<Option<BearerChallenge>, ChallengeError> {
    Ok(None)
}
