//! Python exceptions for the core's errors. The classes live in `tokenflow/errors.py`; this
//! module picks the class and fills in its details. Messages come from the core's `Display`,
//! which never holds a secret.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use tokenflow::token::ResponseError;
use tokenflow::{FailureCause, FlowError, LoginRequiredReason};

/// An instance of `tokenflow.errors.<class>` with `message` and keyword details.
pub(crate) fn exception<'py>(
    py: Python<'py>,
    class: &str,
    message: String,
    details: &[(&str, Bound<'py, PyAny>)],
) -> PyResult<Bound<'py, PyAny>> {
    let module = PyModule::import(py, "tokenflow.errors")?;
    let kwargs = PyDict::new(py);
    for (key, value) in details {
        kwargs.set_item(*key, value)?;
    }
    module.getattr(class)?.call((message,), Some(&kwargs))
}

/// The same, ready to raise.
pub(crate) fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match exception(py, class, message, &[]) {
        Ok(error) => PyErr::from_value(error),
        Err(error) => error,
    }
}

/// The exception for a token request that failed for good.
pub(crate) fn flow_error<'py>(py: Python<'py>, error: &FlowError) -> PyResult<Bound<'py, PyAny>> {
    let none = || py.None().into_bound(py);
    let status = |s: Option<http::StatusCode>| match s {
        Some(s) => s.as_u16().into_pyobject(py).map(|v| v.into_any()),
        None => Ok(none()),
    };
    let (class, status, code, extra): (&str, _, Option<String>, Option<(&str, String)>) =
        match &error.cause {
            FailureCause::Endpoint(response) => match response {
                ResponseError::OAuth(oauth) => (
                    "TokenEndpointError",
                    status(Some(oauth.status))?,
                    Some(oauth.code.as_str().to_owned()),
                    None,
                ),
                ResponseError::Status { status: s, .. } => {
                    ("TokenEndpointError", status(Some(*s))?, None, None)
                }
                ResponseError::Malformed { status: s, problem } => (
                    "MalformedTokenResponse",
                    status(Some(*s))?,
                    None,
                    Some(("problem", problem.to_string())),
                ),
                ResponseError::UnsupportedTokenType { .. } => (
                    "MalformedTokenResponse",
                    status(None)?,
                    None,
                    Some(("problem", "unsupported token type".to_owned())),
                ),
                ResponseError::TooLarge { .. } => (
                    "MalformedTokenResponse",
                    status(None)?,
                    None,
                    Some(("problem", "the body is larger than the limit".to_owned())),
                ),
                _ => ("TokenRequestFailed", status(response.status())?, None, None),
            },
            FailureCause::Transport(transport) => (
                "TokenTransportError",
                status(None)?,
                None,
                Some(("kind", transport_kind(transport.kind()).to_owned())),
            ),
            _ => ("TokenRequestFailed", status(None)?, None, None),
        };
    let mut details = vec![
        ("grant", error.grant.as_str().into_pyobject(py)?.into_any()),
        ("attempts", error.attempts.into_pyobject(py)?.into_any()),
        ("status", status),
        (
            "error_code",
            match code {
                Some(code) => code.into_pyobject(py)?.into_any(),
                None => none(),
            },
        ),
    ];
    if let Some((key, value)) = extra {
        details.push((key, value.into_pyobject(py)?.into_any()));
    }
    exception(py, class, error.to_string(), &details)
}

/// The exception that says a new login is needed, and why.
pub(crate) fn login_required<'py>(
    py: Python<'py>,
    reason: &LoginRequiredReason,
) -> PyResult<Bound<'py, PyAny>> {
    let code = match reason {
        LoginRequiredReason::RefreshTokenRejected(oauth) => Some(oauth.code.as_str().to_owned()),
        _ => None,
    };
    let details = [
        ("reason", reason_name(reason).into_pyobject(py)?.into_any()),
        (
            "error_code",
            match code {
                Some(code) => code.into_pyobject(py)?.into_any(),
                None => py.None().into_bound(py),
            },
        ),
    ];
    exception(
        py,
        "LoginRequired",
        format!("a new login is needed: {reason}"),
        &details,
    )
}

/// A stable name for each reason, for code that branches on it.
pub(crate) fn reason_name(reason: &LoginRequiredReason) -> &'static str {
    match reason {
        LoginRequiredReason::NoRefreshToken => "no_refresh_token",
        LoginRequiredReason::RefreshTokenRejected(_) => "refresh_token_rejected",
        LoginRequiredReason::RefreshTokenExpired => "refresh_token_expired",
        LoginRequiredReason::RefreshOutcomeUnknown => "refresh_outcome_unknown",
        _ => "other",
    }
}

fn transport_kind(kind: tokenflow::TransportErrorKind) -> &'static str {
    use tokenflow::TransportErrorKind as K;
    match kind {
        K::NotSent => "not_sent",
        K::TimedOut => "timed_out",
        K::Interrupted => "interrupted",
        K::BodyTooLarge => "body_too_large",
        _ => "other",
    }
}
