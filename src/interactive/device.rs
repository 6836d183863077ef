//! The device authorization grant's first step (RFC 8628 §3.1–3.3): asking for a user code.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, Request, StatusCode};
use serde_json::Value;

use crate::client_auth;
use crate::config::Config;
use crate::form::FormBody;
use crate::grant::form_post;
use crate::redact::Secrets;
use crate::secret::SecretString;
use crate::token::Malformation;
use crate::token::fields::{Fields, lenient_seconds};
use crate::token::{ResponseError, parse_token_response_to};

/// RFC 8628 §3.2: the default polling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// RFC 8628 §3.5: `slow_down` adds this much to every later poll.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// What the user must do to approve a device login, carried by
/// [`Event::DeviceAuthorization`](crate::Event::DeviceAuthorization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it (`verification_url` is accepted as an alias).
    pub verification_uri: String,
    /// A URL with the code already filled in, when the server offers one.
    pub verification_uri_complete: Option<String>,
    /// How long the code stays valid.
    pub expires_in: Duration,
    /// How long to wait between polls, as the server first asked.
    pub interval: Duration,
}

/// A parsed device authorization response: the public part and the device code.
pub(crate) struct DeviceGrant {
    pub(crate) public: DeviceAuthorization,
    pub(crate) device_code: SecretString,
}

/// The device authorization request: the configured scope and client authentication.
pub(crate) fn device_authorization_request(config: &Config) -> Option<Request<Vec<u8>>> {
    let endpoint = config.device_authorization_endpoint.clone()?;
    let mut form = FormBody::with_capacity(64);
    if let Some(scope) = &config.scope_form {
        form.pair_encoded("scope", scope);
    }
    client_auth::authenticate(config, &mut form);
    Some(form_post(config, endpoint, form.finish()))
}

/// Reads the device authorization response (RFC 8628 §3.2), accepting the
/// `verification_url` spelling some servers use and numbers sent as strings.
pub(crate) fn parse_device_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    max_body_bytes: usize,
    secrets: &dyn Secrets,
) -> Result<DeviceGrant, ResponseError> {
    if !status.is_success() || body.len() > max_body_bytes {
        // The error shapes are those of the token endpoint (§3.2 refers to RFC 6749 §5.2).
        return match parse_token_response_to(status, headers, body, max_body_bytes, None, secrets) {
            Err(error) => Err(error),
            Ok(_) => Err(ResponseError::Status {
                status,
                excerpt: String::new(),
            }),
        };
    }
    let malformed = |problem| ResponseError::Malformed { status, problem };
    let fields = Fields::from_json(body).map_err(malformed)?;
    if let Some(Value::String(_)) = fields.get("error") {
        return match parse_token_response_to(status, headers, body, max_body_bytes, None, secrets) {
            Err(error) => Err(error),
            Ok(_) => Err(malformed(Malformation::NotAnObject)),
        };
    }
    let text = |name: &'static str| match fields.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
        None => Ok(None),
        Some(_) => Err(malformed(Malformation::WrongType {
            field: name,
            expected: "a string",
        })),
    };
    let device_code =
        text("device_code")?.ok_or(malformed(Malformation::MissingField("device_code")))?;
    let user_code = text("user_code")?.ok_or(malformed(Malformation::MissingField("user_code")))?;
    let verification_uri = match text("verification_uri")? {
        Some(uri) => uri,
        None => text("verification_url")?
            .ok_or(malformed(Malformation::MissingField("verification_uri")))?,
    };
    let seconds = |name: &'static str| match fields.get(name).map(lenient_seconds) {
        None => Ok(None),
        Some(Ok(value)) => Ok(value),
        Some(Err(_)) => Err(malformed(Malformation::WrongType {
            field: name,
            expected: "a number of seconds",
        })),
    };
    let expires_in =
        seconds("expires_in")?.ok_or(malformed(Malformation::MissingField("expires_in")))?;
    let interval = seconds("interval")?
        .filter(|i| !i.is_zero())
        .unwrap_or(DEFAULT_INTERVAL);
    Ok(DeviceGrant {
        public: DeviceAuthorization {
            user_code,
            verification_uri,
            verification_uri_complete: text("verification_uri_complete")?,
            expires_in,
            interval,
        },
        device_code: SecretString::new(device_code),
    })
}

impl fmt::Display for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "open {} and enter the code {}",
            self.verification_uri, self.user_code
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<DeviceGrant, ResponseError> {
        parse_device_response(
            StatusCode::OK,
            &HeaderMap::new(),
            body.as_bytes(),
            4096,
            &(),
        )
    }

    #[test]
    fn rfc_8628_example_and_its_variants() {
        let grant = parse(
            r#"{"device_code":"GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS","user_code":"WDJB-MJHT",
            "verification_uri":"https://example.com/device",
            "verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT",
            "expires_in":1800,"interval":5}"#,
        )
        .unwrap();
        assert_eq!(grant.public.user_code, "WDJB-MJHT");
        assert_eq!(grant.public.expires_in, Duration::from_secs(1800));
        let legacy = parse(
            r#"{"device_code":"d","user_code":"u","verification_url":"https://g.co/device","expires_in":"900"}"#,
        )
        .unwrap();
        assert_eq!(legacy.public.verification_uri, "https://g.co/device");
        assert_eq!(legacy.public.interval, DEFAULT_INTERVAL);
        assert!(matches!(
            parse(r#"{"user_code":"u","verification_uri":"v","expires_in":1}"#),
            Err(ResponseError::Malformed {
                problem: Malformation::MissingField("device_code"),
                ..
            })
        ));
    }
}
