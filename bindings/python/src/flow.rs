//! `tokenflow.TokenFlow`: the core's state machine as a Python class. It does no IO: the host
//! sends the requests it asks for and reports what happened, with time as
//! `time.monotonic_ns()` readings, which the core takes as they are (`Timestamp::from_nanos`).

use http::{HeaderName, HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use tokenflow::{
    Access, Event, Generation, Input, Output, RequestId, Timestamp, TransportError,
    TransportErrorKind,
};

use crate::config::PyConfig;
use crate::errors;
use crate::outputs::{
    AccessReady, Failed, LoginRequiredEvent, OtherEvent, PyAccess, PyBearer, PyHttpRequest, PyIdle,
    TokensCleared, TokensUpdated,
};
use crate::tokens::{PyCredentials, PyStoredTokens};

/// The token lifecycle as a state machine that never does IO.
///
/// Not thread-safe by itself: a host sharing one flow between threads holds a lock around
/// each call and the drain that follows it (the drivers in this package do).
#[pyclass(module = "tokenflow", name = "TokenFlow")]
pub(crate) struct PyTokenFlow {
    flow: tokenflow::TokenFlow,
    /// The last token handed out, so a held token costs no allocation per call.
    bearer: Option<Py<PyBearer>>,
    /// An output `access_if_idle` took from the core to look at; `poll_output` hands it out
    /// before asking the core for more.
    lookahead: Option<Output>,
}

/// A seed for the flow's random generator: 32 bytes (from `os.urandom(32)` in production) or
/// an integer (for tests).
#[derive(FromPyObject)]
enum SeedArg {
    Bytes(Vec<u8>),
    Int(u64),
}

fn seed(py: Python<'_>, seed: SeedArg) -> PyResult<tokenflow::Seed> {
    match seed {
        SeedArg::Int(n) => Ok(tokenflow::Seed::from_u64(n)),
        SeedArg::Bytes(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
            .map(tokenflow::Seed::from_bytes)
            .map_err(|_| errors::raise(py, "ConfigError", "a seed is 32 bytes or an int".into())),
    }
}

#[pymethods]
impl PyTokenFlow {
    /// A flow with no tokens yet. `now` is a `time.monotonic_ns()` reading, `wall_ms` the
    /// wall clock in Unix milliseconds (`time.time_ns() // 1_000_000`) at the same moment.
    #[new]
    fn new(
        py: Python<'_>,
        config: &PyConfig,
        seed: SeedArg,
        now: u64,
        wall_ms: u64,
    ) -> PyResult<PyTokenFlow> {
        let flow = tokenflow::TokenFlow::new(
            config.inner.clone(),
            self::seed(py, seed)?,
            Timestamp::from_nanos(now),
            tokenflow::UnixTime::from_millis(wall_ms),
        );
        Ok(PyTokenFlow {
            flow,
            bearer: None,
            lookahead: None,
        })
    }

    /// A flow that carries on with tokens stored by an earlier run; raises
    /// `StoredTokensError` when they cannot be used.
    #[staticmethod]
    fn restore(
        py: Python<'_>,
        config: &PyConfig,
        tokens: &PyStoredTokens,
        seed: SeedArg,
        now: u64,
        wall_ms: u64,
    ) -> PyResult<PyTokenFlow> {
        let flow = tokenflow::TokenFlow::restore(
            config.inner.clone(),
            tokens.inner.clone(),
            self::seed(py, seed)?,
            Timestamp::from_nanos(now),
            tokenflow::UnixTime::from_millis(wall_ms),
        )
        .map_err(|e| errors::raise(py, "StoredTokensError", e.to_string()))?;
        Ok(PyTokenFlow {
            flow,
            bearer: None,
            lookahead: None,
        })
    }

    /// Logs in with `credentials`, replacing any login or renewal under way.
    fn login(&mut self, now: u64, credentials: &PyCredentials) {
        self.flow
            .login(Timestamp::from_nanos(now), credentials.inner.clone());
    }

    /// A `Bearer` to use now, or `Access.Pending` (a token request is under way: drain, then
    /// wait for `AccessReady`, `Failed` or `LoginRequired`) or `Access.LoginRequired`.
    fn access(&mut self, py: Python<'_>, now: u64) -> PyResult<Py<PyAny>> {
        match self.flow.access(Timestamp::from_nanos(now)) {
            Access::Ready(bearer) => {
                let generation = bearer.generation().get();
                if let Some(held) = &self.bearer {
                    if held.get().generation == generation {
                        return Ok(held.clone_ref(py).into_any());
                    }
                }
                let header = String::from_utf8_lossy(bearer.header_value().as_bytes());
                let fresh = Py::new(
                    py,
                    PyBearer {
                        header_value: PyString::new(py, &header).unbind(),
                        generation,
                    },
                )?;
                self.bearer = Some(fresh.clone_ref(py));
                Ok(fresh.into_any())
            }
            Access::Pending => Ok(Py::new(py, PyAccess::Pending)?.into_any()),
            _ => Ok(Py::new(py, PyAccess::LoginRequired)?.into_any()),
        }
    }

    /// A shortcut for a host's hot path: the token, when `access` gives one and the flow
    /// has nothing else for the host (its next output is `Idle`); `None` otherwise, and then
    /// `access` and a drain are due. An output looked at is not lost: `poll_output` hands it
    /// out next.
    fn access_if_idle(&mut self, py: Python<'_>, now: u64) -> PyResult<Option<Py<PyAny>>> {
        if self.lookahead.is_some() {
            return Ok(None);
        }
        let bearer = self.access(py, now)?;
        if !bearer.bind(py).is_instance_of::<PyBearer>() {
            return Ok(None);
        }
        match self.flow.poll_output() {
            Output::Idle { .. } => Ok(Some(bearer)),
            other => {
                self.lookahead = Some(other);
                Ok(None)
            }
        }
    }

    /// Forgets the tokens (`TokensCleared`) and abandons any request under way.
    fn logout(&mut self, now: u64) {
        self.bearer = None;
        self.flow.logout(Timestamp::from_nanos(now));
    }

    /// Reports the answer to the request `id`, whatever its status. `headers` is any iterable
    /// of `(name, value)` pairs; pairs that are not valid HTTP are skipped (the flow reads only
    /// `Content-Type` and `Retry-After`, and a client that parsed the response cannot have
    /// produced such a header for them).
    fn handle_response(
        &mut self,
        py: Python<'_>,
        now: u64,
        id: u64,
        status: u16,
        headers: &Bound<'_, PyAny>,
        body: &[u8],
    ) -> PyResult<()> {
        let id = RequestId::from_raw(id);
        let status = StatusCode::from_u16(status).map_err(|_| {
            errors::raise(
                py,
                "InvalidInput",
                format!("{status} is not an HTTP status"),
            )
        })?;
        let mut response = http::Response::new(body.to_vec());
        *response.status_mut() = status;
        for pair in headers.try_iter()? {
            let (name, value): (String, String) = pair?.extract()?;
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        self.flow
            .handle_input(Timestamp::from_nanos(now), Input::Response { id, response });
        Ok(())
    }

    /// Reports that the request `id` could not be completed. `kind` is `not_sent` (it never
    /// reached the server), `timed_out`, `interrupted` (the connection failed after sending),
    /// `body_too_large` or `other`; `message` describes it and must hold no secret.
    fn handle_failed(
        &mut self,
        py: Python<'_>,
        now: u64,
        id: u64,
        kind: &str,
        message: &str,
    ) -> PyResult<()> {
        let kind = match kind {
            "not_sent" => TransportErrorKind::NotSent,
            "timed_out" => TransportErrorKind::TimedOut,
            "interrupted" => TransportErrorKind::Interrupted,
            "body_too_large" => TransportErrorKind::BodyTooLarge,
            "other" => TransportErrorKind::Other,
            other => {
                return Err(errors::raise(
                    py,
                    "InvalidInput",
                    format!(
                        "unknown failure kind {other:?}; known: not_sent, timed_out, \
                         interrupted, body_too_large, other"
                    ),
                ));
            }
        };
        let id = RequestId::from_raw(id);
        let error = TransportError::new(kind, message);
        self.flow
            .handle_input(Timestamp::from_nanos(now), Input::Failed { id, error });
        Ok(())
    }

    /// Reports that an API answered 401 to a request made with the token of `generation`,
    /// with the response's `WWW-Authenticate` values (possibly none).
    #[pyo3(signature = (now, generation, www_authenticate = Vec::new()))]
    fn handle_unauthorized(&mut self, now: u64, generation: u64, www_authenticate: Vec<String>) {
        let generation = Generation::from_raw(generation);
        let www_authenticate = www_authenticate
            .iter()
            .filter_map(|v| HeaderValue::from_str(v).ok())
            .collect();
        self.flow.handle_input(
            Timestamp::from_nanos(now),
            Input::Unauthorized {
                generation,
                www_authenticate,
            },
        );
    }

    /// Reports that time has passed (the `until` of an `Idle` was reached).
    fn handle_timeout(&mut self, now: u64) {
        self.flow
            .handle_input(Timestamp::from_nanos(now), Input::Timeout);
    }

    /// The next thing to do: an `HttpRequest` to send, an event (`tokenflow.events`) to act
    /// on, or `Idle`. Drain it until `Idle` after every command and every input.
    fn poll_output(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let output = match self.lookahead.take() {
            Some(output) => output,
            None => self.flow.poll_output(),
        };
        Ok(match output {
            Output::Send(request) => {
                let (parts, body) = request.request.into_parts();
                let headers = parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        (name.as_str().to_owned(), value)
                    })
                    .collect();
                Py::new(
                    py,
                    PyHttpRequest {
                        id: request.id.get(),
                        method: parts.method.as_str().to_owned(),
                        url: parts.uri.to_string(),
                        headers,
                        body: PyBytes::new(py, &body).unbind(),
                        deadline: request.deadline.as_nanos(),
                    },
                )?
                .into_any()
            }
            Output::Event(event) => event_object(py, event)?,
            Output::Idle { until } => Py::new(
                py,
                PyIdle {
                    until: until.map(Timestamp::as_nanos),
                },
            )?
            .into_any(),
        })
    }

    /// The current tokens as they would be stored, if any.
    fn stored_tokens(&self) -> Option<PyStoredTokens> {
        self.flow
            .stored_tokens()
            .map(|inner| PyStoredTokens { inner })
    }

    /// The generation of the current access token, if one is held.
    fn generation(&self) -> Option<u64> {
        self.flow.generation().map(Generation::get)
    }

    /// The id of the token request awaiting an answer, if any.
    fn request_in_flight(&self) -> Option<u64> {
        self.flow.request_in_flight().map(RequestId::get)
    }

    fn __repr__(&self) -> String {
        format!(
            "TokenFlow(token_endpoint={:?}, generation={:?}, request_in_flight={:?})",
            self.flow.config().token_endpoint().to_string(),
            self.flow.generation().map(Generation::get),
            self.flow.request_in_flight().map(RequestId::get),
        )
    }
}

fn event_object(py: Python<'_>, event: Event) -> PyResult<Py<PyAny>> {
    Ok(match event {
        Event::TokensUpdated(stored) => {
            let tokens = Py::new(py, PyStoredTokens { inner: stored })?;
            Py::new(py, TokensUpdated { tokens })?.into_any()
        }
        Event::TokensCleared => Py::new(py, TokensCleared)?.into_any(),
        Event::AccessReady { generation } => Py::new(
            py,
            AccessReady {
                generation: generation.get(),
            },
        )?
        .into_any(),
        Event::LoginRequired { reason } => Py::new(
            py,
            LoginRequiredEvent {
                reason: errors::reason_name(&reason),
                error: errors::login_required(py, &reason)?.unbind(),
            },
        )?
        .into_any(),
        Event::Failed(error) => Py::new(
            py,
            Failed {
                error: errors::flow_error(py, &error)?.unbind(),
            },
        )?
        .into_any(),
        Event::Revoked { .. } => Py::new(py, OtherEvent { name: "Revoked" })?.into_any(),
        Event::RevocationFailed { .. } => Py::new(
            py,
            OtherEvent {
                name: "RevocationFailed",
            },
        )?
        .into_any(),
        _ => Py::new(py, OtherEvent { name: "Other" })?.into_any(),
    })
}
