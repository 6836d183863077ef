//! Servers echo what they were sent. Here a server puts each secret the flow holds — the
//! password, the client secret, the access and refresh tokens, the authorization code and its
//! PKCE verifier, the device code — into every piece of text it controls (the error
//! description, `error_uri`, the error code, a non-JSON page, a duplicated field's name, the
//! token type), in every form the flow sends it (raw, form-encoded, percent-encoded, as the
//! HTTP Basic credentials, with its control characters cleaned), at every offset, so that the
//! flow's cut to length falls before, inside and after it. Everything the host can format —
//! every output, event and error, with `Debug` and `Display` — must then hold neither the
//! secret nor any 8-character piece of it.

mod support;

use std::time::Duration;

use http::{HeaderValue, Request, Response};
use proptest::prelude::*;
use support::clock::VirtualClock;
use support::fake_auth::{form_urldecode, form_urlencode};
use tokenflow::{
    ClientAuth, Config, Credentials, Event, Input, Output, RequestId, RetryPolicy, TokenFlow,
    UnixTime,
};

/// When the flow holds the secrets, and which request the server answers with its echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The password login's token request.
    PasswordLogin,
    /// The refresh after a 401, with an access and a refresh token held.
    Refresh,
    /// The exchange of an authorization code, with its PKCE verifier.
    CodeExchange,
    /// A device-code poll.
    DevicePoll,
    /// The revocation of the refresh token at logout.
    Revocation,
}

/// A piece of text the server controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Description,
    Uri,
    Code,
    Page,
    DuplicateField,
    TokenType,
}

impl Slot {
    /// Where the flow cuts this text.
    fn limit(self) -> usize {
        match self {
            Slot::Description | Slot::Uri => 200,
            Slot::Code | Slot::DuplicateField => 64,
            Slot::Page => 100,
            Slot::TokenType => 32,
        }
    }

    /// The response carrying `text` in this slot.
    fn response(self, text: &str) -> Response<Vec<u8>> {
        let json = |value: &str| serde_json::to_string(value).unwrap();
        let (status, content_type, body) = match self {
            Slot::Description => (
                400,
                "application/json",
                format!(
                    r#"{{"error":"invalid_grant","error_description":{}}}"#,
                    json(text)
                ),
            ),
            Slot::Uri => (
                400,
                "application/json",
                format!(
                    r#"{{"error":"invalid_request","error_uri":{}}}"#,
                    json(text)
                ),
            ),
            Slot::Code => (
                400,
                "application/json",
                format!(r#"{{"error":{}}}"#, json(text)),
            ),
            Slot::Page => (
                400,
                "text/html",
                format!("<html><body><p>{text}</p></body></html>"),
            ),
            Slot::DuplicateField => (
                200,
                "application/json",
                format!(
                    r#"{{"access_token":"fresh","expires_in":60,{k}:1,{k}:2}}"#,
                    k = json(text)
                ),
            ),
            Slot::TokenType => (
                200,
                "application/json",
                format!(r#"{{"access_token":"fresh","token_type":{}}}"#, json(text)),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body.into_bytes())
            .unwrap()
    }
}

/// A secret the flow holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Password,
    ClientSecret,
    AccessToken,
    RefreshToken,
    Code,
    Verifier,
    DeviceCode,
}

impl Stage {
    /// The secrets the flow holds when its request is answered.
    fn secrets(self) -> &'static [Which] {
        match self {
            Stage::PasswordLogin => &[Which::Password, Which::ClientSecret],
            Stage::Refresh | Stage::Revocation => {
                &[Which::AccessToken, Which::RefreshToken, Which::ClientSecret]
            }
            Stage::CodeExchange => &[Which::Code, Which::Verifier, Which::ClientSecret],
            Stage::DevicePoll => &[Which::DeviceCode, Which::ClientSecret],
        }
    }

    /// The texts the server controls in its answer to this stage's request: a revocation
    /// answered with a success status is a success, whatever its body.
    fn slots(self) -> &'static [Slot] {
        match self {
            Stage::Revocation => &[Slot::Description, Slot::Uri, Slot::Code, Slot::Page],
            _ => &[
                Slot::Description,
                Slot::Uri,
                Slot::Code,
                Slot::Page,
                Slot::DuplicateField,
                Slot::TokenType,
            ],
        }
    }
}

/// How the server writes the secret back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    FormEncoded,
    PercentEncoded,
    /// Control characters replaced by spaces, as server text is cleaned.
    Cleaned,
    /// The credentials of the `Authorization: Basic` header as sent (client secret only).
    Basic,
}

const FORMS: [Encoding; 5] = [
    Encoding::Raw,
    Encoding::FormEncoded,
    Encoding::PercentEncoded,
    Encoding::Cleaned,
    Encoding::Basic,
];

/// The values of the secrets a scenario starts with.
#[derive(Debug, Clone)]
struct Values {
    password: String,
    client_secret: String,
    access_token: String,
    refresh_token: String,
    code: String,
    device_code: String,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            password: "PW-SECRET hunter2&=%\u{eb}\tX".into(),
            client_secret: "CS-SECRET:s3/+%&=".into(),
            access_token: "AT-SECRET-QWERTYUIOP".into(),
            refresh_token: "RT-SECRET-ASDFGHJKL".into(),
            code: "CODE-SECRET/ZXCVBNM+".into(),
            device_code: "DC-SECRET-POIUYTREWQ".into(),
        }
    }
}

/// One echo: which secret, in what form, in which text, where.
#[derive(Debug, Clone)]
struct Echo {
    stage: Stage,
    auth: ClientAuth,
    which: Which,
    form: Encoding,
    slot: Slot,
    /// Characters of filler before the secret.
    at: usize,
    /// Characters of filler after it.
    after: usize,
}

/// A host following the run loop and writing down all it can format.
struct World {
    clock: VirtualClock,
    flow: TokenFlow,
    outbox: Vec<(RequestId, Request<Vec<u8>>)>,
    text: String,
}

impl World {
    fn new(auth: ClientAuth, values: &Values) -> World {
        let config = Config::builder("https://id.example/token", "app")
            .client_secret(values.client_secret.as_str())
            .client_auth(auth)
            .authorization_endpoint("https://id.example/authorize")
            .redirect_uri("https://app.example/callback")
            .device_authorization_endpoint("https://id.example/device")
            .revocation_endpoint("https://id.example/revoke")
            .scope("read")
            .retry(RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let clock = VirtualClock::new();
        let flow = TokenFlow::new(
            config,
            7,
            clock.now(),
            UnixTime::from_millis(clock.wall_millis()),
        );
        World {
            clock,
            flow,
            outbox: Vec::new(),
            text: String::new(),
        }
    }

    fn record(&mut self, text: String) {
        self.text.push_str(&text);
        self.text.push('\n');
    }

    fn record_error(&mut self, error: &dyn std::error::Error) {
        let mut text = format!("{error} | {error:?}");
        let mut source = error.source();
        while let Some(inner) = source {
            text.push_str(&format!(" | {inner} | {inner:?}"));
            source = inner.source();
        }
        self.record(text);
    }

    /// Polls until idle, writing down every output.
    fn drain(&mut self) {
        for _ in 0..64 {
            let output = self.flow.poll_output();
            self.record(format!("{output:?}"));
            match output {
                Output::Idle { .. } => {
                    let flow = format!("{:?}", self.flow);
                    self.record(flow);
                    return;
                }
                Output::Send(request) => self.outbox.push((request.id, request.request)),
                Output::Event(event) => match &event {
                    Event::Failed(error) => self.record_error(error),
                    Event::LoginRequired { reason } => self.record(format!("{reason}")),
                    Event::RevocationFailed { cause, .. } => {
                        self.record(format!("{cause} | {cause:?}"))
                    }
                    Event::DeviceAuthorization(device) => self.record(format!("{device}")),
                    _ => {}
                },
            }
        }
        panic!("no Idle within 64 outputs");
    }

    /// The one request the flow is waiting on.
    fn take_request(&mut self) -> (RequestId, Request<Vec<u8>>) {
        self.drain();
        assert_eq!(self.outbox.len(), 1, "one request is waiting");
        self.outbox.pop().unwrap()
    }

    fn answer(&mut self, id: RequestId, response: Response<Vec<u8>>) {
        let input = Input::Response { id, response };
        self.record(format!("{input:?}"));
        self.flow.handle_input(self.clock.now(), input);
        self.drain();
        let access = self.flow.access(self.clock.now());
        self.record(format!("{access:?}"));
        self.drain();
    }

    fn json(status: u16, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// Logs in with a password and is answered with `values`' tokens.
    fn log_in(&mut self, values: &Values) {
        self.flow.login(
            self.clock.now(),
            Credentials::password("joe", &values.password),
        );
        let (id, _) = self.take_request();
        let body = serde_json::json!({
            "access_token": values.access_token,
            "refresh_token": values.refresh_token,
            "token_type": "Bearer",
            "expires_in": 3600,
        });
        self.answer(id, World::json(200, &body.to_string()));
        assert!(self.flow.generation().is_some(), "logged in");
    }

    /// Brings the flow to `stage` and returns the request the server will answer.
    fn reach(&mut self, stage: Stage, values: &Values) -> (RequestId, Request<Vec<u8>>) {
        let now = self.clock.now();
        match stage {
            Stage::PasswordLogin => {
                self.flow
                    .login(now, Credentials::password("joe", &values.password));
            }
            Stage::Refresh => {
                self.log_in(values);
                let generation = self.flow.generation().unwrap();
                self.flow.handle_input(
                    self.clock.now(),
                    Input::Unauthorized {
                        generation,
                        www_authenticate: vec![HeaderValue::from_static("Bearer")],
                    },
                );
            }
            Stage::CodeExchange => {
                let request = self.flow.start_authorization(now).unwrap();
                let callback = format!(
                    "https://app.example/callback?code={}&state={}",
                    form_urlencode(&values.code),
                    request.state
                );
                self.flow.complete_authorization(now, &callback).unwrap();
            }
            Stage::DevicePoll => {
                self.flow.start_device_authorization(now).unwrap();
                let (id, _) = self.take_request();
                let body = serde_json::json!({
                    "device_code": values.device_code,
                    "user_code": "wxyz",
                    "verification_uri": "https://id.example/device",
                    "expires_in": 600,
                    "interval": 5,
                });
                self.answer(id, World::json(200, &body.to_string()));
                self.clock.advance(Duration::from_secs(5));
                self.flow.handle_input(self.clock.now(), Input::Timeout);
            }
            Stage::Revocation => {
                self.log_in(values);
                self.flow.logout(self.clock.now());
            }
        }
        self.take_request()
    }

    /// Fails if `secret`, or any 8-character piece of it, shows in the captured text.
    fn assert_absent(&self, secret: &str, echo: &Echo) {
        let chars: Vec<char> = secret.chars().collect();
        let pieces: Vec<String> = if chars.len() < 8 {
            vec![secret.to_owned()]
        } else {
            chars.windows(8).map(|w| w.iter().collect()).collect()
        };
        for piece in pieces {
            if let Some(at) = self.text.find(&piece) {
                let start = self.text[..at]
                    .char_indices()
                    .rev()
                    .nth(100)
                    .map_or(0, |(i, _)| i);
                let end = (at + piece.len() + 40).min(self.text.len());
                let end = (end..=self.text.len())
                    .find(|&i| self.text.is_char_boundary(i))
                    .unwrap();
                panic!(
                    "{echo:?}: {piece:?} of {secret:?} shows in: …{}…",
                    &self.text[start..end]
                );
            }
        }
    }
}

/// `value` percent-encoded as RFC 3986 §2 has it.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Lower-case words, one space apart, none of which a secret here contains.
fn filler(chars: usize) -> String {
    "the server could not process this request because it did not like it at all "
        .chars()
        .cycle()
        .take(chars)
        .collect()
}

/// The secret `echo` is about and the form the server writes it in, read from the request
/// the flow sent (the verifier and the Basic credentials are the flow's own).
fn secret_and_placed(values: &Values, echo: &Echo, request: &Request<Vec<u8>>) -> (String, String) {
    let secret = match echo.which {
        Which::Password => values.password.clone(),
        Which::ClientSecret => values.client_secret.clone(),
        Which::AccessToken => values.access_token.clone(),
        Which::RefreshToken => values.refresh_token.clone(),
        Which::Code => values.code.clone(),
        Which::DeviceCode => values.device_code.clone(),
        Which::Verifier => form_urldecode_all(request.body())
            .into_iter()
            .find(|(name, _)| name == "code_verifier")
            .map(|(_, value)| value)
            .expect("the exchange sends its verifier"),
    };
    let placed = match echo.form {
        Encoding::Raw => secret.clone(),
        Encoding::FormEncoded => form_urlencode(&secret),
        Encoding::PercentEncoded => percent_encode(&secret),
        Encoding::Cleaned => secret
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        Encoding::Basic => match request.headers().get("authorization") {
            Some(basic) if echo.which == Which::ClientSecret => basic
                .to_str()
                .unwrap()
                .strip_prefix("Basic ")
                .unwrap()
                .to_owned(),
            _ => secret.clone(),
        },
    };
    (secret, placed)
}

/// What `echo` places, without answering.
fn placed(values: &Values, echo: &Echo) -> String {
    let mut world = World::new(echo.auth, values);
    let (_, request) = world.reach(echo.stage, values);
    secret_and_placed(values, echo, &request).1
}

/// Runs one echo through the flow and checks what the host saw.
fn check(values: &Values, echo: &Echo) {
    let mut world = World::new(echo.auth, values);
    let (id, request) = world.reach(echo.stage, values);
    let (secret, placed) = secret_and_placed(values, echo, &request);
    let text = format!("{}{placed}{}", filler(echo.at), filler(echo.after));
    world.answer(id, echo.slot.response(&text));
    // A revocation's next request (the access token's, after the refresh token's) hears the
    // same echo: the refresh token is no longer under way, yet must not show.
    for _ in 0..4 {
        let Some((id, _)) = world.outbox.pop() else {
            break;
        };
        world.answer(id, echo.slot.response(&text));
    }
    // The test could not fail if the text never reached the host.
    if echo.at + "[redacted]".len() <= echo.slot.limit() {
        assert!(
            world.text.contains("[redacted]"),
            "{echo:?}: the echo reached the host"
        );
    }
    world.assert_absent(&secret, echo);
    world.assert_absent(&placed, echo);
}

fn form_urldecode_all(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (form_urldecode(name), form_urldecode(value)))
        .collect()
}

const AUTHS: [ClientAuth; 3] = [
    ClientAuth::SecretBasic,
    ClientAuth::SecretBasicUnencoded,
    ClientAuth::SecretPost,
];

const STAGES: [Stage; 5] = [
    Stage::PasswordLogin,
    Stage::Refresh,
    Stage::CodeExchange,
    Stage::DevicePoll,
    Stage::Revocation,
];

/// Every offset that puts the cut before, inside or just after a secret of `len` characters,
/// and the start of the text.
fn offsets_across_the_cut(slot: Slot, len: usize) -> impl Iterator<Item = usize> {
    let limit = slot.limit();
    std::iter::once(0).chain(limit.saturating_sub(len + 1)..=limit + 1)
}

#[test]
fn a_secret_straddling_the_cut_leaves_no_piece() {
    let values = Values::default();
    for slot in [Slot::Description, Slot::Page, Slot::Code] {
        for (stage, which) in [
            (Stage::PasswordLogin, Which::ClientSecret),
            (Stage::Refresh, Which::RefreshToken),
        ] {
            for at in offsets_across_the_cut(slot, 30) {
                let echo = Echo {
                    stage,
                    auth: ClientAuth::SecretPost,
                    which,
                    form: Encoding::Raw,
                    slot,
                    at,
                    after: 50,
                };
                check(&values, &echo);
            }
        }
    }
}

#[test]
fn secrets_echoed_in_another_encoding_are_scrubbed() {
    let values = Values::default();
    for (which, form, auth) in [
        (
            Which::Password,
            Encoding::FormEncoded,
            ClientAuth::SecretPost,
        ),
        (
            Which::Password,
            Encoding::PercentEncoded,
            ClientAuth::SecretPost,
        ),
        (Which::Password, Encoding::Cleaned, ClientAuth::SecretPost),
        (
            Which::ClientSecret,
            Encoding::FormEncoded,
            ClientAuth::SecretPost,
        ),
        (
            Which::ClientSecret,
            Encoding::Basic,
            ClientAuth::SecretBasic,
        ),
        (
            Which::ClientSecret,
            Encoding::Basic,
            ClientAuth::SecretBasicUnencoded,
        ),
    ] {
        let echo = Echo {
            stage: Stage::PasswordLogin,
            auth,
            which,
            form,
            slot: Slot::Description,
            at: 10,
            after: 10,
        };
        check(&values, &echo);
    }
}

#[test]
fn a_duplicated_field_name_is_scrubbed() {
    let values = Values::default();
    for stage in [Stage::PasswordLogin, Stage::Refresh] {
        for which in stage.secrets() {
            let echo = Echo {
                stage,
                auth: ClientAuth::SecretPost,
                which: *which,
                form: Encoding::Raw,
                slot: Slot::DuplicateField,
                at: 4,
                after: 4,
            };
            check(&values, &echo);
        }
    }
}

#[test]
fn revocation_errors_are_scrubbed() {
    let values = Values::default();
    for which in Stage::Revocation.secrets() {
        for slot in Stage::Revocation.slots() {
            let echo = Echo {
                stage: Stage::Revocation,
                auth: ClientAuth::SecretBasic,
                which: *which,
                form: Encoding::Raw,
                slot: *slot,
                at: 3,
                after: 3,
            };
            check(&values, &echo);
        }
    }
}

/// Every stage, secret, form and text, with the cut at every character of the secret.
#[test]
fn every_cut_through_every_secret_in_every_text() {
    let values = Values::default();
    let mut runs = 0;
    for stage in STAGES {
        for &which in stage.secrets() {
            for form in FORMS {
                if form == Encoding::Basic && which != Which::ClientSecret {
                    continue;
                }
                for &slot in stage.slots() {
                    let mut echo = Echo {
                        stage,
                        auth: if form == Encoding::Basic {
                            ClientAuth::SecretBasic
                        } else {
                            ClientAuth::SecretPost
                        },
                        which,
                        form,
                        slot,
                        at: 0,
                        after: 20,
                    };
                    let len = placed(&values, &echo).chars().count();
                    for at in offsets_across_the_cut(slot, len) {
                        echo.at = at;
                        check(&values, &echo);
                        runs += 1;
                    }
                }
            }
        }
    }
    assert!(runs > 5_000, "{runs} runs");
}

/// Secrets of up to 40 characters: letters, the characters that form and percent encodings
/// change, spaces, a tab, a control character and a non-ASCII letter. No digits or lower-case
/// letters, so that no 8-character piece can appear by chance in the flow's own text.
fn secret() -> impl Strategy<Value = String> {
    "[A-Z][A-Z+&=%:/~!* \t\u{e9}\u{1}]{7,39}"
}

/// Tokens go in headers: visible ASCII only.
fn token() -> impl Strategy<Value = String> {
    "[A-Z][A-Z+&=%:/~!*]{7,39}"
}

fn values() -> impl Strategy<Value = Values> {
    (secret(), secret(), token(), token(), token(), secret()).prop_map(
        |(password, client_secret, access_token, refresh_token, code, device_code)| Values {
            password,
            client_secret,
            access_token,
            refresh_token,
            code,
            device_code,
        },
    )
}

fn echo() -> impl Strategy<Value = Echo> {
    (
        proptest::sample::select(STAGES.to_vec()),
        proptest::sample::select(AUTHS.to_vec()),
        proptest::sample::select(FORMS.to_vec()),
        any::<proptest::sample::Index>(),
        any::<proptest::sample::Index>(),
        any::<bool>(),
        0usize..130,
        0usize..220,
        0usize..60,
    )
        .prop_map(
            |(stage, auth, form, which, slot, near_cut, back, anywhere, after)| {
                let slot = *slot.get(stage.slots());
                Echo {
                    stage,
                    auth,
                    which: *which.get(stage.secrets()),
                    form,
                    slot,
                    // Mostly so that the cut falls inside the secret.
                    at: if near_cut {
                        slot.limit().saturating_sub(back)
                    } else {
                        anywhere
                    },
                    after,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For every secret the flow holds, in every form and every text, at any offset: no
    /// piece of it reaches the host.
    #[test]
    fn no_piece_of_a_held_secret_survives_an_echo(values in values(), echo in echo()) {
        check(&values, &echo);
    }
}
