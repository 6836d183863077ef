//! The log lines of the `tracing` feature carry no secret a server echoed back: the blocking
//! client logs in, refreshes after a 401 and revokes at logout against a server that writes
//! the password, the client secret or a token into the text of its errors, in every form the
//! client sends it, with the cut to length falling anywhere in it. Every log line, and every
//! error the client returns (`Display`, `Debug` and sources), must hold no 8-character piece of
//! the secret.
#![cfg(all(feature = "tracing", feature = "blocking"))]

use std::fmt::{Debug, Write as _};
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use proptest::prelude::*;
use tokenflow::adapters::MemoryStore;
use tokenflow::adapters::blocking::BlockingClient;
use tokenflow::{ClientAuth, Config, Credentials, RetryPolicy, TransportError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Writes every event and span field into one string, as a log would.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.0.lock().unwrap();
        span.record(&mut Line(&mut text));
        text.push('\n');
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut text = self.0.lock().unwrap();
        values.record(&mut Line(&mut text));
        text.push('\n');
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = self.0.lock().unwrap();
        text.push_str(event.metadata().level().as_str());
        event.record(&mut Line(&mut text));
        text.push('\n');
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

const USERNAME: &str = "joe";

/// What the client does when the server echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Login,
    Refresh,
    Revocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Password,
    ClientSecret,
    AccessToken,
    RefreshToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    FormEncoded,
    Basic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Description,
    Code,
    Page,
}

impl Slot {
    fn limit(self) -> usize {
        match self {
            Slot::Description => 200,
            Slot::Code => 64,
            Slot::Page => 100,
        }
    }

    fn response(self, text: &str) -> Response<Vec<u8>> {
        let json = |value: &str| serde_json::to_string(value).unwrap();
        let (content_type, body) = match self {
            Slot::Description => (
                "application/json",
                format!(
                    r#"{{"error":"invalid_grant","error_description":{}}}"#,
                    json(text)
                ),
            ),
            Slot::Code => ("application/json", format!(r#"{{"error":{}}}"#, json(text))),
            Slot::Page => ("text/html", format!("<html><body>{text}</body></html>")),
        };
        Response::builder()
            .status(400)
            .header("content-type", content_type)
            .body(body.into_bytes())
            .unwrap()
    }
}

#[derive(Debug, Clone)]
struct Echo {
    stage: Stage,
    which: Which,
    form: Encoding,
    slot: Slot,
    at: usize,
    password: String,
    client_secret: String,
    access_token: String,
    refresh_token: String,
}

fn filler(chars: usize) -> String {
    "the server could not process this request because it did not like it "
        .chars()
        .cycle()
        .take(chars)
        .collect()
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Runs `echo` through a blocking client and returns everything logged and returned.
fn run(echo: &Echo) -> String {
    let config = Config::builder("https://id.example/token", "app")
        .client_secret(echo.client_secret.as_str())
        .client_auth(ClientAuth::SecretBasic)
        .revocation_endpoint("https://id.example/revoke")
        .retry(RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let tokens = serde_json::json!({
        "access_token": echo.access_token,
        "refresh_token": echo.refresh_token,
        "token_type": "Bearer",
        "expires_in": 3600,
    })
    .to_string();
    let echo_in = |request: &Request<Vec<u8>>| {
        let secret = match echo.which {
            Which::Password => echo.password.clone(),
            Which::ClientSecret => echo.client_secret.clone(),
            Which::AccessToken => echo.access_token.clone(),
            Which::RefreshToken => echo.refresh_token.clone(),
        };
        let placed = match echo.form {
            Encoding::Raw => secret,
            Encoding::FormEncoded => form_encode(&secret),
            Encoding::Basic => request.headers()["authorization"]
                .to_str()
                .unwrap()
                .strip_prefix("Basic ")
                .unwrap()
                .to_owned(),
        };
        echo.slot
            .response(&format!("{}{placed}{}", filler(echo.at), filler(30)))
    };
    let stage = echo.stage;
    let transport = move |request: Request<Vec<u8>>| -> Result<Response<Vec<u8>>, TransportError> {
        let body = String::from_utf8_lossy(request.body()).into_owned();
        let path = request.uri().path().to_owned();
        Ok(match path.as_str() {
            "/token" if body.contains("grant_type=password") && stage != Stage::Login => {
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(tokens.clone().into_bytes())
                    .unwrap()
            }
            "/token" | "/revoke" => echo_in(&request),
            _ => Response::builder().status(401).body(Vec::new()).unwrap(),
        })
    };
    let capture = Capture::default();
    let mut returned = String::new();
    tracing::subscriber::with_default(capture.clone(), || {
        let client = BlockingClient::builder(config, transport)
            .store(MemoryStore::new())
            .build()
            .unwrap();
        let mut record = |error: &dyn std::error::Error| {
            let _ = write!(returned, "{error} | {error:?}");
            let mut source = error.source();
            while let Some(inner) = source {
                let _ = write!(returned, " | {inner} | {inner:?}");
                source = inner.source();
            }
            returned.push('\n');
        };
        let login = client.login(Credentials::password(USERNAME, &echo.password));
        match stage {
            Stage::Login => record(&login.expect_err("the login is refused")),
            Stage::Refresh => {
                login.unwrap();
                let api = Request::get("https://api.example/data")
                    .body(Vec::new())
                    .unwrap();
                if let Err(error) = client.send(api) {
                    record(&error);
                }
            }
            Stage::Revocation => {
                login.unwrap();
                let report = client.logout().unwrap();
                let _ = write!(returned, "{report:?}");
                assert!(!report.is_complete(), "the revocation failed");
            }
        }
    });
    let logged = capture.0.lock().unwrap().clone();
    // The test could not fail if the failure were never logged.
    assert!(
        logged.contains("failed") || logged.contains("login required"),
        "{echo:?}: the failure was logged:\n{logged}"
    );
    logged + &returned
}

fn assert_no_piece(text: &str, secret: &str, echo: &Echo) {
    let chars: Vec<char> = secret.chars().collect();
    for piece in chars.windows(8) {
        let piece: String = piece.iter().collect();
        assert!(
            !text.contains(&piece),
            "{echo:?}: {piece:?} shows in:\n{text}"
        );
    }
}

fn check(echo: &Echo) {
    let text = run(echo);
    for secret in [
        &echo.password,
        &echo.client_secret,
        &echo.access_token,
        &echo.refresh_token,
    ] {
        assert_no_piece(&text, secret, echo);
        assert_no_piece(&text, &form_encode(secret), echo);
    }
}

fn echo() -> impl Strategy<Value = Echo> {
    let secret = "[A-Z][A-Z+&=%:/~!* \u{e9}]{7,30}";
    let token = "[A-Z][A-Z+&=%:/~!*]{7,30}";
    (
        prop_oneof![
            Just(Stage::Login),
            Just(Stage::Refresh),
            Just(Stage::Revocation)
        ],
        prop_oneof![
            Just(Encoding::Raw),
            Just(Encoding::FormEncoded),
            Just(Encoding::Basic)
        ],
        prop_oneof![Just(Slot::Description), Just(Slot::Code), Just(Slot::Page)],
        any::<proptest::sample::Index>(),
        0usize..40,
        (secret, secret, token, token),
    )
        .prop_map(|(stage, form, slot, which, back, secrets)| {
            let (password, client_secret, access_token, refresh_token) = secrets;
            let held: &[Which] = match stage {
                Stage::Login => &[Which::Password, Which::ClientSecret],
                _ => &[Which::ClientSecret, Which::AccessToken, Which::RefreshToken],
            };
            Echo {
                stage,
                which: *which.get(held),
                form,
                slot,
                // The cut falls inside the secret, or near it.
                at: slot.limit().saturating_sub(back),
                password,
                client_secret,
                access_token,
                refresh_token,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn log_lines_hold_no_piece_of_an_echoed_secret(echo in echo()) {
        check(&echo);
    }
}

#[test]
fn a_refresh_token_cut_by_the_description_limit_is_not_logged() {
    check(&Echo {
        stage: Stage::Refresh,
        which: Which::RefreshToken,
        form: Encoding::Raw,
        slot: Slot::Description,
        at: 190,
        password: "PW-SECRET+hunter2&=%".into(),
        client_secret: "CS-SECRET-s3cr3t".into(),
        access_token: "AT-SECRET-QWERTYUIOP".into(),
        refresh_token: "RT-SECRET-ASDFGHJKL".into(),
    });
}
