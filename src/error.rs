//! Why a token request failed for good.

use std::fmt;
use std::time::Duration;

use crate::grant::GrantKind;
use crate::input::TransportError;
use crate::refused_redirect::RefusedRedirect;
use crate::token::ResponseError;

/// A token request that failed after every retry it was allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    /// The grant that was being used.
    pub grant: GrantKind,
    /// How many times the request was sent.
    pub attempts: u32,
    /// What went wrong the last time.
    pub cause: FailureCause,
}

/// What made a token request fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The token endpoint answered, but not with usable tokens.
    Endpoint(ResponseError),
    /// No answer could be had.
    Transport(TransportError),
    /// The server asked, with `Retry-After`, for a longer wait than the configured maximum.
    RetryAfterTooLong(Duration),
    /// The device code expired before the user approved the login (RFC 8628 §3.5).
    DeviceCodeExpired,
    /// The server answered with a redirect, which is never followed (it would carry the
    /// request's credentials elsewhere) and never retried.
    Redirect(RefusedRedirect),
    /// The shared token store could not be reached for the renewal lease.
    SharedStoreUnavailable,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let times = if self.attempts == 1 {
            "attempt"
        } else {
            "attempts"
        };
        write!(
            f,
            "{} grant failed after {} {times}: ",
            self.grant, self.attempts
        )?;
        self.cause.fmt(f)
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Endpoint(error) => error.fmt(f),
            FailureCause::Transport(error) => error.fmt(f),
            FailureCause::RetryAfterTooLong(wait) => write!(
                f,
                "the server asked to retry after {}s, longer than allowed",
                wait.as_secs()
            ),
            FailureCause::DeviceCodeExpired => {
                f.write_str("the device code expired before the login was approved")
            }
            FailureCause::Redirect(redirect) => redirect.fmt(f),
            FailureCause::SharedStoreUnavailable => {
                f.write_str("the shared token store could not be reached")
            }
        }
    }
}

impl std::error::Error for FlowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            FailureCause::Endpoint(error) => Some(error),
            FailureCause::Transport(error) => Some(error),
            FailureCause::Redirect(redirect) => Some(redirect),
            FailureCause::RetryAfterTooLong(_)
            | FailureCause::DeviceCodeExpired
            | FailureCause::SharedStoreUnavailable => None,
        }
    }
}
