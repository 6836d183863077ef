//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0): where to fetch it,
//! how to read it, and the check that keeps a metadata document from speaking for another
//! issuer.

use std::fmt;

use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use serde_json::Value;

use crate::config::Config;
use crate::config::{ClientAuth, ConfigBuilder};
use crate::redact::Redactor;
use crate::refused_redirect::RefusedRedirect;
use crate::token::{error_excerpt, printable};

/// Which well-known document to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// `/.well-known/openid-configuration`, appended to the issuer (OpenID Connect Discovery §4).
    OpenIdConnect,
    /// `/.well-known/oauth-authorization-server`, inserted between host and path (RFC 8414 §3.1).
    OAuth,
}

/// The `GET` that fetches the metadata of `issuer`.
pub fn metadata_request(
    issuer: &str,
    kind: MetadataKind,
) -> Result<Request<Vec<u8>>, DiscoveryError> {
    let uri = metadata_url(issuer, kind)?;
    let mut request = Request::new(Vec::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    request
        .headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    Ok(request)
}

/// The metadata URL of `issuer`.
pub fn metadata_url(issuer: &str, kind: MetadataKind) -> Result<Uri, DiscoveryError> {
    let parsed: Uri = issuer
        .parse()
        .map_err(|_| DiscoveryError::InvalidIssuer("not an absolute URL"))?;
    let (Some(scheme), Some(authority)) = (parsed.scheme_str(), parsed.authority()) else {
        return Err(DiscoveryError::InvalidIssuer("not an absolute URL"));
    };
    if parsed.query().is_some() || issuer.contains('#') {
        return Err(DiscoveryError::InvalidIssuer(
            "an issuer has no query or fragment (RFC 8414 section 2)",
        ));
    }
    let path = parsed.path().trim_end_matches('/');
    let url = match kind {
        MetadataKind::OpenIdConnect => {
            format!("{scheme}://{authority}{path}/.well-known/openid-configuration")
        }
        MetadataKind::OAuth => {
            format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}")
        }
    };
    url.parse()
        .map_err(|_| DiscoveryError::InvalidIssuer("not an absolute URL"))
}

/// What an authorization server says about itself. Only the fields this crate uses are read;
/// the whole document is kept in [`ProviderMetadata::document`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderMetadata {
    /// The issuer identifier, checked to be exactly the one asked for.
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The authorization endpoint, if the server has one.
    pub authorization_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628), if any.
    pub device_authorization_endpoint: Option<String>,
    /// The revocation endpoint (RFC 7009), if any.
    pub revocation_endpoint: Option<String>,
    /// The introspection endpoint (RFC 7662), if any.
    pub introspection_endpoint: Option<String>,
    /// The JWK set URL, if any.
    pub jwks_uri: Option<String>,
    /// Scopes the server names.
    pub scopes_supported: Vec<String>,
    /// Grant types the server names; empty means the RFC 8414 default of
    /// `authorization_code` and `implicit`.
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint; empty means
    /// `client_secret_basic` (RFC 8414 §2).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// PKCE methods the server names.
    pub code_challenge_methods_supported: Vec<String>,
    /// Whether the server sends `iss` in authorization responses (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    /// The whole document.
    pub document: serde_json::Map<String, Value>,
}

impl ProviderMetadata {
    /// Reads the metadata response for `expected_issuer`. The document's `issuer` must be
    /// exactly `expected_issuer` (RFC 8414 §3.3): otherwise a compromised or misconfigured
    /// document could send tokens to another server.
    pub fn from_response(
        expected_issuer: &str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<ProviderMetadata, DiscoveryError> {
        if !status.is_success() {
            return Err(DiscoveryError::Status {
                status,
                excerpt: error_excerpt(body, &Redactor::NONE),
            });
        }
        let document: serde_json::Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| DiscoveryError::NotJson)?;
        let text = |name: &'static str| -> Result<Option<String>, DiscoveryError> {
            match document.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(value)) => Ok(Some(value.clone())),
                Some(_) => Err(DiscoveryError::WrongType(name)),
            }
        };
        let list = |name: &'static str| -> Result<Vec<String>, DiscoveryError> {
            match document.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(value) => Ok(value.clone()),
                        _ => Err(DiscoveryError::WrongType(name)),
                    })
                    .collect(),
                Some(_) => Err(DiscoveryError::WrongType(name)),
            }
        };
        let issuer = text("issuer")?.ok_or(DiscoveryError::Missing("issuer"))?;
        if issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: printable(expected_issuer, 200, &Redactor::NONE),
                found: printable(&issuer, 200, &Redactor::NONE),
            });
        }
        Ok(ProviderMetadata {
            token_endpoint: text("token_endpoint")?
                .ok_or(DiscoveryError::Missing("token_endpoint"))?,
            authorization_endpoint: text("authorization_endpoint")?,
            device_authorization_endpoint: text("device_authorization_endpoint")?,
            revocation_endpoint: text("revocation_endpoint")?,
            introspection_endpoint: text("introspection_endpoint")?,
            jwks_uri: text("jwks_uri")?,
            scopes_supported: list("scopes_supported")?,
            grant_types_supported: list("grant_types_supported")?,
            token_endpoint_auth_methods_supported: list("token_endpoint_auth_methods_supported")?,
            code_challenge_methods_supported: list("code_challenge_methods_supported")?,
            authorization_response_iss_parameter_supported: matches!(
                document.get("authorization_response_iss_parameter_supported"),
                Some(Value::Bool(true))
            ),
            issuer,
            document,
        })
    }

    /// A configuration builder for `client_id` with every endpoint the metadata names, the
    /// issuer to check in authorization responses, and a client authentication method the
    /// server supports (basic when it names none or basic; post when it names only post).
    pub fn config_builder(&self, client_id: impl Into<String>) -> ConfigBuilder {
        let methods = &self.token_endpoint_auth_methods_supported;
        let supports = |m: &str| methods.iter().any(|x| x == m);
        let mut builder =
            Config::builder(self.token_endpoint.clone(), client_id).issuer(self.issuer.clone());
        if !methods.is_empty() && !supports("client_secret_basic") && supports("client_secret_post")
        {
            builder = builder.preferred_client_auth(ClientAuth::SecretPost);
        }
        if let Some(url) = &self.authorization_endpoint {
            builder = builder.authorization_endpoint(url.clone());
        }
        if let Some(url) = &self.device_authorization_endpoint {
            builder = builder.device_authorization_endpoint(url.clone());
        }
        if let Some(url) = &self.revocation_endpoint {
            builder = builder.revocation_endpoint(url.clone());
        }
        builder
    }
}

/// Why metadata could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer is not a valid issuer identifier.
    InvalidIssuer(&'static str),
    /// The server answered with an error status.
    Status {
        /// The status.
        status: StatusCode,
        /// A short excerpt of the body.
        excerpt: String,
    },
    /// The body is not a JSON object.
    NotJson,
    /// A required field is missing.
    Missing(&'static str),
    /// A field has the wrong type.
    WrongType(&'static str),
    /// The document names another issuer than the one asked for (RFC 8414 §3.3).
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
    /// The server answered with a redirect, which is never followed.
    Redirect(RefusedRedirect),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::InvalidIssuer(reason) => write!(f, "invalid issuer: {reason}"),
            DiscoveryError::Status { status, excerpt } => {
                write!(f, "the metadata endpoint answered {status}")?;
                if !excerpt.is_empty() {
                    write!(f, ": \"{excerpt}\"")?;
                }
                Ok(())
            }
            DiscoveryError::NotJson => f.write_str("the metadata is not a JSON object"),
            DiscoveryError::Missing(field) => write!(f, "the metadata has no `{field}`"),
            DiscoveryError::WrongType(field) => {
                write!(f, "the metadata's `{field}` has the wrong type")
            }
            DiscoveryError::IssuerMismatch { expected, found } => write!(
                f,
                "the metadata names issuer {found:?}, not {expected:?} as asked (RFC 8414 section 3.3)"
            ),
            DiscoveryError::Redirect(redirect) => redirect.fmt(f),
        }
    }
}

impl std::error::Error for DiscoveryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_each_spec() {
        let oidc =
            metadata_url("https://id.example/tenant1/", MetadataKind::OpenIdConnect).unwrap();
        assert_eq!(
            oidc,
            "https://id.example/tenant1/.well-known/openid-configuration"
        );
        let oauth = metadata_url("https://id.example/tenant1", MetadataKind::OAuth).unwrap();
        assert_eq!(
            oauth,
            "https://id.example/.well-known/oauth-authorization-server/tenant1"
        );
        let root = metadata_url("https://id.example", MetadataKind::OAuth).unwrap();
        assert_eq!(
            root,
            "https://id.example/.well-known/oauth-authorization-server"
        );
        assert!(metadata_url("https://id.example/?x=1", MetadataKind::OAuth).is_err());
        assert!(metadata_url("relative/path", MetadataKind::OAuth).is_err());
    }

    const DOC: &str = r#"{
        "issuer": "https://id.example",
        "token_endpoint": "https://id.example/token",
        "authorization_endpoint": "https://id.example/auth",
        "device_authorization_endpoint": "https://id.example/device",
        "revocation_endpoint": "https://id.example/revoke",
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true
    }"#;

    #[test]
    fn metadata_is_read_and_the_issuer_must_match_exactly() {
        let metadata =
            ProviderMetadata::from_response("https://id.example", StatusCode::OK, DOC.as_bytes())
                .unwrap();
        assert_eq!(metadata.token_endpoint, "https://id.example/token");
        assert!(metadata.authorization_response_iss_parameter_supported);
        let config = metadata
            .config_builder("app")
            .client_secret("s")
            .build()
            .unwrap();
        assert_eq!(config.client_auth(), ClientAuth::SecretPost);
        assert_eq!(
            config
                .revocation_endpoint()
                .map(|u| u.to_string())
                .as_deref(),
            Some("https://id.example/revoke")
        );

        let mismatch =
            ProviderMetadata::from_response("https://id.example/", StatusCode::OK, DOC.as_bytes())
                .unwrap_err();
        assert!(matches!(mismatch, DiscoveryError::IssuerMismatch { .. }));
    }

    #[test]
    fn errors_are_typed() {
        let missing = ProviderMetadata::from_response(
            "https://a",
            StatusCode::OK,
            br#"{"issuer":"https://a"}"#,
        );
        assert_eq!(
            missing.unwrap_err(),
            DiscoveryError::Missing("token_endpoint")
        );
        let html = ProviderMetadata::from_response(
            "https://a",
            StatusCode::NOT_FOUND,
            b"<h1>Not Found</h1>",
        );
        assert_eq!(
            html.unwrap_err().to_string(),
            "the metadata endpoint answered 404 Not Found: \"Not Found\""
        );
        let wrong =
            ProviderMetadata::from_response("https://a", StatusCode::OK, br#"{"issuer":1}"#);
        assert_eq!(wrong.unwrap_err(), DiscoveryError::WrongType("issuer"));
    }
}
