//! What the adapters log through `tracing` (feature `tracing`), one function per occasion so
//! that the run loops stay readable. Without the feature every function is empty.
//!
//! Nothing here logs a secret: requests are shown by method and URL without the query,
//! responses by status, events by kind, errors by their `Display` (which the crate keeps free
//! of tokens and passwords). Never a body, a header value or a token.
#![cfg_attr(not(feature = "tracing"), allow(unused_variables))]

use http::{Method, StatusCode, Uri};

use crate::adapters::store::StoreError;
use crate::grant::Credentials;
use crate::input::TransportError;
use crate::output::{Event, Generation, HttpRequest, RequestId};

/// A URI without its query, which may carry anything.
#[cfg(feature = "tracing")]
fn without_query(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or(""),
        uri.path()
    )
}

pub(crate) fn restored(generation: Option<Generation>) {
    #[cfg(feature = "tracing")]
    match generation {
        Some(generation) => tracing::debug!(%generation, "restored stored tokens"),
        None => tracing::debug!("starting without stored tokens"),
    }
}

pub(crate) fn login(credentials: &Credentials) {
    #[cfg(feature = "tracing")]
    tracing::info!(grant = %credentials.grant_kind(), "logging in");
}

pub(crate) fn logout() {
    #[cfg(feature = "tracing")]
    tracing::info!("logged out");
}

pub(crate) fn token_request(request: &HttpRequest) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        id = %request.id,
        method = %request.request.method(),
        url = %without_query(request.request.uri()),
        "token request"
    );
}

pub(crate) fn token_response(id: RequestId, status: StatusCode) {
    #[cfg(feature = "tracing")]
    tracing::debug!(%id, status = status.as_u16(), "token response");
}

pub(crate) fn token_transport_failure(id: RequestId, error: &TransportError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%id, %error, "token request failed in transport");
}

pub(crate) fn event(event: &Event) {
    #[cfg(feature = "tracing")]
    match event {
        Event::TokensUpdated(_) => tracing::debug!("new tokens, saving them"),
        Event::TokensCleared => tracing::info!("tokens cleared"),
        Event::AccessReady { generation } => tracing::info!(%generation, "access token ready"),
        Event::LoginRequired { reason } => tracing::warn!(%reason, "login required"),
        Event::Failed(error) => tracing::warn!(%error, "token request failed"),
        Event::DeviceAuthorization(device) => {
            tracing::info!(uri = %device.verification_uri, "device login waiting for the user")
        }
        Event::Revoked { token_type } => tracing::info!(%token_type, "token revoked"),
        Event::RevocationFailed {
            token_type, cause, ..
        } => tracing::warn!(%token_type, %cause, "revocation failed"),
        Event::Store(_) => tracing::debug!("shared store operation"),
    }
}

pub(crate) fn store_failure(operation: &'static str, error: &StoreError) {
    #[cfg(feature = "tracing")]
    tracing::error!(operation, %error, "token store failed");
}

pub(crate) fn unauthorized(generation: Generation) {
    #[cfg(feature = "tracing")]
    tracing::debug!(%generation, "API refused the token (401)");
}

pub(crate) fn api_request(method: &Method, uri: &Uri) {
    #[cfg(feature = "tracing")]
    tracing::debug!(%method, url = %without_query(uri), "API request");
}

pub(crate) fn api_retry(refused: Generation, newer: Generation) {
    #[cfg(feature = "tracing")]
    tracing::info!(%refused, %newer, "retrying the API request once with a newer token");
}
