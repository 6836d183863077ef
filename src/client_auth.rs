//! Client authentication at the token endpoint (RFC 6749 §2.3): exactly one method per request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, header};

use crate::config::{ClientAuth, Config};
use crate::form::{self, FormBody};

/// Adds the client's credentials to a token request's form when they go there: `client_id`,
/// and `client_secret` with [`ClientAuth::SecretPost`]. With HTTP Basic they are in
/// [`form_headers`] instead.
pub(crate) fn authenticate(config: &Config, form: &mut FormBody) {
    if config.basic_authorization.is_some() {
        return;
    }
    match (config.client_auth, &config.client_secret) {
        (ClientAuth::SecretPost, Some(secret)) => {
            form.pair("client_id", &config.client_id);
            form.pair("client_secret", secret.expose_secret());
        }
        // A public client (or a basic method, whose header `Config::build` always makes)
        // identifies itself by id alone.
        _ => {
            form.pair("client_id", &config.client_id);
        }
    }
}

/// The headers of a form `POST` to the authorization server: HTTP Basic client
/// authentication when configured, the form's content type, and JSON asked for.
pub(crate) fn form_headers(basic: Option<&HeaderValue>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    if let Some(basic) = basic {
        headers.insert(header::AUTHORIZATION, basic.clone());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers
}

/// The `Authorization` header value for HTTP Basic client authentication, marked sensitive so
/// that `http`'s `Debug` hides it.
///
/// With `form_encode`, id and secret are first form-urlencoded as RFC 6749 §2.3.1 requires:
/// a secret holding `:` would otherwise split in the wrong place on the server.
pub fn basic(client_id: &str, secret: &str, form_encode: bool) -> HeaderValue {
    let credentials = if form_encode {
        format!("{}:{}", form::encode(client_id), form::encode(secret))
    } else {
        format!("{client_id}:{secret}")
    };
    let encoded = format!("Basic {}", STANDARD.encode(credentials.as_bytes()));
    // Base64 output is always a valid header value.
    let mut value =
        HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(value: &HeaderValue) -> String {
        let text = value.to_str().unwrap();
        let b64 = text.strip_prefix("Basic ").unwrap();
        String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn basic_form_encodes_id_and_secret_before_base64() {
        let value = basic("my client", "s3cr:t/+%&=ü x", true);
        assert_eq!(decode(&value), "my+client:s3cr%3At%2F%2B%25%26%3D%C3%BC+x");
        assert!(value.is_sensitive());
    }

    #[test]
    fn basic_unencoded_sends_them_raw() {
        let value = basic("client", "a:b+c", false);
        assert_eq!(decode(&value), "client:a:b+c");
    }

    #[test]
    fn rfc_7617_example_is_reproduced_when_nothing_needs_encoding() {
        // RFC 7617 §2: "Aladdin" / "open sesame" (the space is form-encoded to '+').
        assert_eq!(
            basic("Aladdin", "opensesame", true).to_str().unwrap(),
            "Basic QWxhZGRpbjpvcGVuc2VzYW1l"
        );
    }
}
