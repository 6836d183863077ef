//! placeholder
#![allow(missing_docs)]
use crate::time::UnixTime;
use std::time::Duration;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfterError;
pub fn parse_retry_after(value: &[u8], _now: UnixTime) -> Result<Duration, RetryAfterError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Duration::from_secs)
        .ok_or(RetryAfterError)
}
