//! What the flow hands the host: a token to use, a request to send, an event to act on, or
//! when to wake it. Plain values; `repr` never shows a secret.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::tokens::PyStoredTokens;

/// A usable access token: the `Authorization` header value and its generation (to report
/// with a 401).
#[pyclass(module = "tokenflow", name = "Bearer", frozen)]
pub(crate) struct PyBearer {
    pub(crate) header_value: Py<PyString>,
    pub(crate) generation: u64,
}

#[pymethods]
impl PyBearer {
    /// `Bearer <token>`, for the `Authorization` header. Do not log it.
    #[getter]
    fn header_value(&self, py: Python<'_>) -> Py<PyString> {
        self.header_value.clone_ref(py)
    }

    /// The token's generation.
    #[getter]
    fn generation(&self) -> u64 {
        self.generation
    }

    fn __repr__(&self) -> String {
        format!(
            "Bearer(generation={}, header_value=[redacted])",
            self.generation
        )
    }
}

/// Why `access` gave no token: one is being obtained (`Pending`), or none can be had without
/// a new login (`LoginRequired`).
#[pyclass(module = "tokenflow", name = "Access", eq, eq_int, frozen)]
#[derive(PartialEq, Eq, Clone, Copy)]
pub(crate) enum PyAccess {
    /// A token request is under way: drain the flow, then wait for `AccessReady`, `Failed`
    /// or `LoginRequired` and ask again.
    Pending,
    /// No token can be had without a new `login`.
    LoginRequired,
}

/// An HTTP request to send; report its answer with `handle_response` or `handle_failed`,
/// carrying `id`. The body and the `Authorization` header hold credentials: `repr` shows only
/// the method, the URL, the header names and the body's size.
#[pyclass(module = "tokenflow", name = "HttpRequest", frozen)]
pub(crate) struct PyHttpRequest {
    #[pyo3(get)]
    pub(crate) id: u64,
    #[pyo3(get)]
    pub(crate) method: String,
    #[pyo3(get)]
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Py<PyBytes>,
    /// A `time.monotonic_ns()` reading after which the flow no longer waits for the answer.
    #[pyo3(get)]
    pub(crate) deadline: u64,
}

#[pymethods]
impl PyHttpRequest {
    /// The headers, as `(name, value)` pairs.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pairs = self
            .headers
            .iter()
            .map(|(name, value)| PyTuple::new(py, [name.as_str(), value.as_str()]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)
    }

    /// The form-encoded body.
    #[getter]
    fn body(&self, py: Python<'_>) -> Py<PyBytes> {
        self.body.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "HttpRequest(id={}, method={:?}, url={:?}, headers={:?}, body_len={})",
            self.id,
            self.method,
            self.url,
            names,
            self.body.bind(py).as_bytes().len()
        )
    }
}

/// Nothing more to do for now: wait for the next input, or until `until` (a
/// `time.monotonic_ns()` reading; `None` when only an input can wake the flow) and then call
/// `handle_timeout`.
#[pyclass(module = "tokenflow", name = "Idle", frozen)]
pub(crate) struct PyIdle {
    #[pyo3(get)]
    pub(crate) until: Option<u64>,
}

#[pymethods]
impl PyIdle {
    fn __repr__(&self) -> String {
        match self.until {
            Some(until) => format!("Idle(until={until})"),
            None => "Idle(until=None)".to_owned(),
        }
    }
}

/// New tokens: store them durably **before** polling again; the new access token is released
/// only then.
#[pyclass(module = "tokenflow.events", name = "TokensUpdated", frozen)]
pub(crate) struct TokensUpdated {
    pub(crate) tokens: Py<PyStoredTokens>,
}

#[pymethods]
impl TokensUpdated {
    /// The tokens to store.
    #[getter]
    fn tokens(&self, py: Python<'_>) -> Py<PyStoredTokens> {
        self.tokens.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!("TokensUpdated(tokens={})", self.tokens.get().__repr__())
    }
}

/// The tokens are gone (logout, or a rejected refresh token): delete the stored copy.
#[pyclass(module = "tokenflow.events", name = "TokensCleared", frozen)]
pub(crate) struct TokensCleared;

#[pymethods]
impl TokensCleared {
    fn __repr__(&self) -> &'static str {
        "TokensCleared()"
    }
}

/// A new access token is available: callers waiting on `Access.Pending` can ask again.
#[pyclass(module = "tokenflow.events", name = "AccessReady", frozen)]
pub(crate) struct AccessReady {
    #[pyo3(get)]
    pub(crate) generation: u64,
}

#[pymethods]
impl AccessReady {
    fn __repr__(&self) -> String {
        format!("AccessReady(generation={})", self.generation)
    }
}

/// A new login is needed. `error` is the `tokenflow.LoginRequired` exception to raise for
/// the callers waiting; `reason` names why (`refresh_token_rejected`, …).
#[pyclass(module = "tokenflow.events", name = "LoginRequired", frozen)]
pub(crate) struct LoginRequiredEvent {
    #[pyo3(get)]
    pub(crate) reason: &'static str,
    pub(crate) error: Py<PyAny>,
}

#[pymethods]
impl LoginRequiredEvent {
    /// The exception to raise.
    #[getter]
    fn error(&self, py: Python<'_>) -> Py<PyAny> {
        self.error.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!("LoginRequired(reason={:?})", self.reason)
    }
}

/// A token request failed for good, after its retries. `error` is the exception
/// (`TokenEndpointError`, `MalformedTokenResponse`, `TokenTransportError`, …) to raise for
/// the callers waiting; the next `access` starts a new attempt.
#[pyclass(module = "tokenflow.events", name = "Failed", frozen)]
pub(crate) struct Failed {
    pub(crate) error: Py<PyAny>,
}

#[pymethods]
impl Failed {
    /// The exception to raise.
    #[getter]
    fn error(&self, py: Python<'_>) -> Py<PyAny> {
        self.error.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Failed(error={})", self.error.bind(py).repr()?))
    }
}

/// An event of the core that this binding does not model (none can occur through the
/// commands it offers); kept so that a newer core never breaks the host's loop.
#[pyclass(module = "tokenflow.events", name = "OtherEvent", frozen)]
pub(crate) struct OtherEvent {
    #[pyo3(get)]
    pub(crate) name: &'static str,
}

#[pymethods]
impl OtherEvent {
    fn __repr__(&self) -> String {
        format!("OtherEvent(name={:?})", self.name)
    }
}
