//! `tokenflow.Config`: the Rust `ConfigBuilder`'s settings as keyword arguments, validated
//! once. Durations are seconds (`float`).

use std::time::Duration;

use pyo3::prelude::*;

use tokenflow::{ClientAuth, RetryPolicy};

use crate::errors;

/// The validated configuration of one flow. `repr` never shows the client secret.
#[pyclass(module = "tokenflow", name = "Config", frozen)]
pub(crate) struct PyConfig {
    pub(crate) inner: tokenflow::Config,
}

#[pymethods]
impl PyConfig {
    #[new]
    #[pyo3(signature = (
        token_endpoint,
        client_id,
        *,
        client_secret = None,
        client_auth = None,
        scope = None,
        refresh_margin = None,
        request_timeout = None,
        max_retries = None,
        initial_backoff = None,
        max_backoff = None,
        max_retry_after = None,
        assumed_lifetime = None,
        max_body_bytes = None,
        proactive_refresh = None,
        allow_insecure_http = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        token_endpoint: &str,
        client_id: &str,
        client_secret: Option<&str>,
        client_auth: Option<&str>,
        scope: Option<&str>,
        refresh_margin: Option<f64>,
        request_timeout: Option<f64>,
        max_retries: Option<u32>,
        initial_backoff: Option<f64>,
        max_backoff: Option<f64>,
        max_retry_after: Option<f64>,
        assumed_lifetime: Option<f64>,
        max_body_bytes: Option<usize>,
        proactive_refresh: Option<bool>,
        allow_insecure_http: Option<bool>,
    ) -> PyResult<PyConfig> {
        let seconds = |setting: &str, value: f64| {
            Duration::try_from_secs_f64(value).map_err(|_| {
                errors::raise(
                    py,
                    "ConfigError",
                    format!("{setting} must be a finite, non-negative number of seconds"),
                )
            })
        };
        let mut builder = tokenflow::Config::builder(token_endpoint, client_id);
        if let Some(secret) = client_secret {
            builder = builder.client_secret(secret);
        }
        if let Some(auth) = client_auth {
            builder = builder.client_auth(parse_client_auth(py, auth)?);
        }
        if let Some(scope) = scope {
            builder = builder.scope(scope);
        }
        if let Some(margin) = refresh_margin {
            builder = builder.refresh_margin(seconds("refresh_margin", margin)?);
        }
        if let Some(timeout) = request_timeout {
            builder = builder.request_timeout(seconds("request_timeout", timeout)?);
        }
        let mut retry = RetryPolicy::default();
        if let Some(n) = max_retries {
            retry.max_retries = n;
        }
        if let Some(v) = initial_backoff {
            retry.initial_backoff = seconds("initial_backoff", v)?;
        }
        if let Some(v) = max_backoff {
            retry.max_backoff = seconds("max_backoff", v)?;
        }
        if let Some(v) = max_retry_after {
            retry.max_retry_after = seconds("max_retry_after", v)?;
        }
        builder = builder.retry(retry);
        if let Some(lifetime) = assumed_lifetime {
            builder = builder.assumed_lifetime(seconds("assumed_lifetime", lifetime)?);
        }
        if let Some(bytes) = max_body_bytes {
            builder = builder.max_body_bytes(bytes);
        }
        if let Some(enabled) = proactive_refresh {
            builder = builder.proactive_refresh(enabled);
        }
        if let Some(allow) = allow_insecure_http {
            builder = builder.allow_insecure_http(allow);
        }
        builder
            .build()
            .map(|inner| PyConfig { inner })
            .map_err(|e| errors::raise(py, "ConfigError", e.to_string()))
    }

    /// The token endpoint, with any query it was given.
    #[getter]
    fn token_endpoint(&self) -> String {
        self.inner.token_endpoint().to_string()
    }

    /// The client id.
    #[getter]
    fn client_id(&self) -> &str {
        self.inner.client_id()
    }

    /// How the client authenticates: `client_secret_basic`, `client_secret_basic_unencoded`,
    /// `client_secret_post` or `none`.
    #[getter]
    fn client_auth(&self) -> &'static str {
        client_auth_name(self.inner.client_auth())
    }

    /// The requested scope, space-separated.
    #[getter]
    fn scope(&self) -> Option<&str> {
        self.inner.scope()
    }

    /// The largest token response body read, in bytes.
    #[getter]
    fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes()
    }

    /// The time allowed for one token request, in seconds.
    #[getter]
    fn request_timeout(&self) -> f64 {
        self.inner.request_timeout().as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "Config(token_endpoint={:?}, client_id={:?}, client_auth={:?}, scope={:?}, client_secret={})",
            self.inner.token_endpoint().to_string(),
            self.inner.client_id(),
            client_auth_name(self.inner.client_auth()),
            self.inner.scope().unwrap_or(""),
            if self.inner.client_secret().is_some() {
                "[redacted]"
            } else {
                "None"
            },
        )
    }
}

fn parse_client_auth(py: Python<'_>, name: &str) -> PyResult<ClientAuth> {
    Ok(match name {
        "client_secret_basic" => ClientAuth::SecretBasic,
        "client_secret_basic_unencoded" => ClientAuth::SecretBasicUnencoded,
        "client_secret_post" => ClientAuth::SecretPost,
        "none" => ClientAuth::None,
        other => {
            return Err(errors::raise(
                py,
                "ConfigError",
                format!(
                    "unknown client_auth {other:?}; known: client_secret_basic, \
                     client_secret_basic_unencoded, client_secret_post, none"
                ),
            ));
        }
    })
}

fn client_auth_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::SecretBasic => "client_secret_basic",
        ClientAuth::SecretBasicUnencoded => "client_secret_basic_unencoded",
        ClientAuth::SecretPost => "client_secret_post",
        ClientAuth::None => "none",
        _ => "other",
    }
}
