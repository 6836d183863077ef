//! `StoredTokens` (what a store keeps) and `Credentials` (what a login uses). Their `repr`
//! shows no token and no password.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors;

/// Everything needed to carry on after a restart: write it to durable storage on every
/// `TokensUpdated`. Tokens are reached only through the `expose_…` methods.
#[pyclass(module = "tokenflow", name = "StoredTokens", frozen)]
pub(crate) struct PyStoredTokens {
    pub(crate) inner: tokenflow::StoredTokens,
}

#[pymethods]
impl PyStoredTokens {
    /// Reads tokens from the JSON written by `to_json`; raises `StoredTokensError` (which
    /// never quotes the data) when it is unusable.
    #[staticmethod]
    fn from_json(py: Python<'_>, data: &[u8]) -> PyResult<PyStoredTokens> {
        tokenflow::StoredTokens::from_json(data)
            .map(|inner| PyStoredTokens { inner })
            .map_err(|e| errors::raise(py, "StoredTokensError", e.to_string()))
    }

    /// The JSON to store. It holds the tokens in clear: keep it where only the application
    /// can read it.
    fn to_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_json())
    }

    /// The grant that first obtained these tokens (`password`, `client_credentials`, …).
    #[getter]
    fn grant(&self) -> &'static str {
        self.inner.grant.as_str()
    }

    /// When the access token expires, in Unix milliseconds.
    #[getter]
    fn expires_at_ms(&self) -> Option<u64> {
        self.inner.expires_at.map(|t| t.as_millis())
    }

    /// When the refresh token expires, in Unix milliseconds, when the server said.
    #[getter]
    fn refresh_token_expires_at_ms(&self) -> Option<u64> {
        self.inner.refresh_token_expires_at.map(|t| t.as_millis())
    }

    /// When these tokens were issued, in Unix milliseconds.
    #[getter]
    fn issued_at_ms(&self) -> u64 {
        self.inner.issued_at.as_millis()
    }

    /// The granted scope.
    #[getter]
    fn scope(&self) -> Option<String> {
        self.inner.scope.as_deref().map(str::to_owned)
    }

    /// Whether an access token is held.
    #[getter]
    fn has_access_token(&self) -> bool {
        self.inner.access_token.is_some()
    }

    /// Whether a refresh token is held.
    #[getter]
    fn has_refresh_token(&self) -> bool {
        self.inner.refresh_token.is_some()
    }

    /// The access token itself. Do not log it.
    fn expose_access_token(&self) -> Option<String> {
        self.inner
            .access_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    }

    /// The refresh token itself. Do not log it.
    fn expose_refresh_token(&self) -> Option<String> {
        self.inner
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    }

    pub(crate) fn __repr__(&self) -> String {
        let held = |present: bool| if present { "[redacted]" } else { "None" };
        let expires_at = match self.inner.expires_at {
            Some(t) => t.as_millis().to_string(),
            None => "None".to_owned(),
        };
        let scope = match self.inner.scope.as_deref() {
            Some(scope) => format!("{scope:?}"),
            None => "None".to_owned(),
        };
        format!(
            "StoredTokens(grant={:?}, access_token={}, refresh_token={}, expires_at_ms={expires_at}, scope={scope})",
            self.inner.grant.as_str(),
            held(self.inner.access_token.is_some()),
            held(self.inner.refresh_token.is_some()),
        )
    }
}

/// What a login uses: a resource owner's username and password, or the client's own
/// credentials from the configuration.
#[pyclass(module = "tokenflow", name = "Credentials", frozen)]
pub(crate) struct PyCredentials {
    pub(crate) inner: tokenflow::Credentials,
}

#[pymethods]
impl PyCredentials {
    /// Resource-owner password credentials. The username is sent verbatim
    /// (`1234/joe.bloggs@acme.com` arrives as that string).
    #[staticmethod]
    fn password(username: &str, password: &str) -> PyCredentials {
        PyCredentials {
            inner: tokenflow::Credentials::password(username, password),
        }
    }

    /// The client's own credentials (RFC 6749 §4.4).
    #[staticmethod]
    fn client_credentials() -> PyCredentials {
        PyCredentials {
            inner: tokenflow::Credentials::ClientCredentials,
        }
    }

    /// `password` or `client_credentials`.
    #[getter]
    fn grant(&self) -> &'static str {
        self.inner.grant_kind().as_str()
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            tokenflow::Credentials::Password { username, .. } => {
                format!("Credentials.password(username={username:?}, password=[redacted])")
            }
            _ => "Credentials.client_credentials()".to_owned(),
        }
    }
}
