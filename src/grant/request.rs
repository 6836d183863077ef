//! Building the token request for each grant (RFC 6749 §3.2, §4.3.2, §4.4.2, §6).

use http::{Method, Request, Uri};

use crate::client_auth;
use crate::config::Config;
use crate::form::FormBody;
use crate::grant::GrantKind;
use crate::secret::{Password, RefreshToken, SecretString};

/// The grant-specific part of one token request.
///
/// `Debug` never shows the password or the refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenGrant {
    /// `grant_type=password` with the username verbatim and the configured scope.
    Password {
        /// The username, sent exactly as given.
        username: String,
        /// The password.
        password: Password,
    },
    /// `grant_type=client_credentials` with the configured scope.
    ClientCredentials,
    /// `grant_type=refresh_token`; no scope is sent, so the original scope is kept (§6).
    RefreshToken(RefreshToken),
    /// `grant_type=authorization_code` with the PKCE verifier (RFC 6749 §4.1.3, RFC 7636 §4.5).
    AuthorizationCode {
        /// The code from the callback.
        code: SecretString,
        /// The redirect URI used in the authorization request.
        redirect_uri: String,
        /// The PKCE code verifier.
        code_verifier: SecretString,
    },
    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
    DeviceCode(SecretString),
}

impl TokenGrant {
    /// The grant type this request uses.
    pub fn kind(&self) -> GrantKind {
        match self {
            TokenGrant::Password { .. } => GrantKind::Password,
            TokenGrant::ClientCredentials => GrantKind::ClientCredentials,
            TokenGrant::RefreshToken(_) => GrantKind::RefreshToken,
            TokenGrant::AuthorizationCode { .. } => GrantKind::AuthorizationCode,
            TokenGrant::DeviceCode(_) => GrantKind::DeviceCode,
        }
    }
}

/// Builds the `POST` to the token endpoint for `grant`: a form-urlencoded UTF-8 body, JSON
/// asked for, client authentication per the configuration. Query parameters already in the
/// endpoint URL (as some gateways want `?grant_type=…`) are kept as they are.
pub fn build_token_request(config: &Config, grant: &TokenGrant) -> Request<Vec<u8>> {
    let mut form = FormBody::with_capacity(body_capacity(config, grant));
    form.pair_encoded("grant_type", grant.kind().form_value());
    match grant {
        TokenGrant::Password { username, password } => {
            form.pair("username", username);
            form.pair("password", password.expose_secret());
            if let Some(scope) = &config.scope_form {
                form.pair_encoded("scope", scope);
            }
        }
        TokenGrant::ClientCredentials => {
            if let Some(scope) = &config.scope_form {
                form.pair_encoded("scope", scope);
            }
        }
        TokenGrant::RefreshToken(token) => {
            form.pair("refresh_token", token.expose_secret());
        }
        TokenGrant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            form.pair("code", code.expose_secret());
            form.pair("redirect_uri", redirect_uri);
            form.pair("code_verifier", code_verifier.expose_secret());
        }
        TokenGrant::DeviceCode(device_code) => {
            form.pair("device_code", device_code.expose_secret());
        }
    }
    client_auth::authenticate(config, &mut form);
    form_post(config, config.token_endpoint.clone(), form.finish())
}

/// Room for the body without growing it: names and separators, and three bytes for each byte
/// of a value, its longest encoding, which the encoder sets aside while it writes the value.
fn body_capacity(config: &Config, grant: &TokenGrant) -> usize {
    let values = match grant {
        TokenGrant::Password { username, password } => {
            username.len() + password.expose_secret().len() + 20
        }
        TokenGrant::ClientCredentials => 0,
        TokenGrant::RefreshToken(token) => token.expose_secret().len() + 15,
        TokenGrant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            code.expose_secret().len()
                + redirect_uri.len()
                + code_verifier.expose_secret().len()
                + 40
        }
        TokenGrant::DeviceCode(code) => code.expose_secret().len() + 15,
    };
    let scope = config
        .scope_form
        .as_ref()
        .map_or(0, |scope| scope.len() + 7);
    let client = config.client_id.len()
        + config
            .client_secret
            .as_ref()
            .map_or(0, |s| s.expose_secret().len())
        + 30;
    // `grant_type=urn:ietf:params:oauth:grant-type:device_code` is the longest grant type.
    64 + 3 * (values + client) + scope
}

/// A form `POST` asking for JSON: the shape of every request to an OAuth endpoint.
pub(crate) fn form_post(config: &Config, uri: Uri, body: Vec<u8>) -> Request<Vec<u8>> {
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = config.form_headers.clone();
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientAuth;
    use http::header;

    fn body(request: &Request<Vec<u8>>) -> &str {
        std::str::from_utf8(request.body()).unwrap()
    }

    #[test]
    fn password_grant_sends_the_pin_username_verbatim() {
        let config = Config::builder(
            "https://identity.example/core/connect/token",
            "acme_resowner",
        )
        .client_secret("cb81")
        .client_auth(ClientAuth::SecretPost)
        .scope("qflowapi openid offline_access")
        .build()
        .unwrap();
        let grant = TokenGrant::Password {
            username: "{enterprise_pin}/joe.bloggs@acme.com".into(),
            password: Password::new("secret1234"),
        };
        let request = build_token_request(&config, &grant);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            body(&request),
            "grant_type=password&username=%7Benterprise_pin%7D%2Fjoe.bloggs%40acme.com\
             &password=secret1234&scope=qflowapi+openid+offline_access\
             &client_id=acme_resowner&client_secret=cb81"
        );
        let decoded: Vec<(String, String)> = form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        assert!(decoded.contains(&(
            "username".into(),
            "{enterprise_pin}/joe.bloggs@acme.com".into()
        )));
    }

    proptest::proptest! {
        /// The body is written into the room set aside for it and never grown, which would
        /// copy it to a new buffer.
        #[test]
        fn the_body_never_outgrows_its_room(
            username in ".{0,40}",
            password in ".{0,40}",
            secret in "[ -~]{0,20}",
            post in proptest::bool::ANY,
        ) {
            let config = Config::builder("https://id.example/token", "client id")
                .client_secret(secret)
                .client_auth(if post { ClientAuth::SecretPost } else { ClientAuth::SecretBasic })
                .scope("api offline_access")
                .scope("https://graph.example/.default")
                .build()
                .unwrap();
            for grant in [
                TokenGrant::Password { username, password: Password::new(password.clone()) },
                TokenGrant::RefreshToken(RefreshToken::new(password)),
                TokenGrant::ClientCredentials,
            ] {
                let request = build_token_request(&config, &grant);
                proptest::prop_assert_eq!(
                    request.body().capacity(),
                    body_capacity(&config, &grant)
                );
            }
        }
    }

    #[test]
    fn refresh_sends_no_scope_and_keeps_the_endpoint_query() {
        let config = Config::builder(
            "https://gw.example/auth/v2/accesstoken?grant_type=client_credentials",
            "key",
        )
        .client_secret("sec")
        .scope("a")
        .build()
        .unwrap();
        let request =
            build_token_request(&config, &TokenGrant::RefreshToken(RefreshToken::new("rt")));
        assert_eq!(body(&request), "grant_type=refresh_token&refresh_token=rt");
        assert_eq!(request.uri().query(), Some("grant_type=client_credentials"));
        assert!(request.headers()[header::AUTHORIZATION].is_sensitive());
    }
}
