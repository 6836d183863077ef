//! A whole token exchange run by the core compiled for `wasm32-unknown-unknown`, where the
//! standard library has no clock (`Instant::now()` panics): time comes from the host as plain
//! numbers.
//!
//! The host (`run.mjs`, under Node) instantiates the module with no imports and calls
//! [`run_exchange`] with one reading of its monotonic clock (nanoseconds) and of its wall
//! clock (Unix milliseconds). It returns 0 when every step held, otherwise the number of the
//! first step that did not, described by the text at [`message_ptr`] ([`message_len`] bytes
//! of UTF-8). A panic aborts, which traps: the host reports that as a failure too, and
//! [`panic_on_purpose`] lets it check that it does.

use std::sync::Mutex;
use std::time::Duration;

use tokenflow::http;
use tokenflow::{
    Access, Config, Credentials, Event, Input, Output, RequestId, Timestamp, TokenFlow, UnixTime,
};

/// The steps, numbered as [`run_exchange`] reports them.
mod step {
    pub const CONFIG: u32 = 1;
    pub const LOGIN_REQUEST: u32 = 2;
    pub const TOKENS_UPDATED: u32 = 3;
    pub const ACCESS_READY: u32 = 4;
    pub const IDLE_UNTIL_RENEWAL: u32 = 5;
    pub const BEARER: u32 = 6;
    pub const TOKEN_INFO: u32 = 7;
    pub const NOTHING_BEFORE_RENEWAL: u32 = 8;
    pub const REFRESH_REQUEST: u32 = 9;
    pub const REFRESHED_TOKENS_UPDATED: u32 = 10;
    pub const REFRESHED_ACCESS_READY: u32 = 11;
    pub const REFRESHED_BEARER: u32 = 12;
    pub const NEXT_RENEWAL: u32 = 13;
}

const LIFETIME: Duration = Duration::from_secs(3600);
/// The default refresh margin.
const MARGIN: Duration = Duration::from_secs(30);

/// The description of the last failure.
static MESSAGE: Mutex<String> = Mutex::new(String::new());

struct Failure {
    step: u32,
    message: String,
}

fn ensure(step: u32, holds: bool, message: impl FnOnce() -> String) -> Result<(), Failure> {
    if holds {
        Ok(())
    } else {
        Err(Failure {
            step,
            message: message(),
        })
    }
}

/// Runs the exchange from `now_nanos` on the host's monotonic clock and `wall_millis` on its
/// wall clock; 0 when it went as it should, else the number of the step that failed.
#[unsafe(no_mangle)]
pub extern "C" fn run_exchange(now_nanos: u64, wall_millis: u64) -> u32 {
    let outcome = exchange(
        Timestamp::from_nanos(now_nanos),
        UnixTime::from_millis(wall_millis),
    );
    let mut message = MESSAGE.lock().unwrap_or_else(|e| e.into_inner());
    match outcome {
        Ok(()) => {
            message.clear();
            0
        }
        Err(failure) => {
            *message = failure.message;
            failure.step
        }
    }
}

/// Where the description of the last failure starts in the module's memory.
#[unsafe(no_mangle)]
pub extern "C" fn message_ptr() -> *const u8 {
    MESSAGE.lock().unwrap_or_else(|e| e.into_inner()).as_ptr()
}

/// The length in bytes of the description of the last failure.
#[unsafe(no_mangle)]
pub extern "C" fn message_len() -> usize {
    MESSAGE.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Panics: the host checks that a panic in the module reaches it as a trap.
#[unsafe(no_mangle)]
pub extern "C" fn panic_on_purpose() -> u32 {
    panic!("a panic on purpose")
}

fn token_answer(body: &str) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body.as_bytes().to_vec());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The body of a token request, as text.
fn form(request: &http::Request<Vec<u8>>) -> String {
    String::from_utf8_lossy(request.body()).into_owned()
}

/// The next output, described for a failure message.
fn next(flow: &mut TokenFlow) -> (Output, String) {
    let output = flow.poll_output();
    let shown = format!("{output:?}");
    (output, shown)
}

fn exchange(start: Timestamp, wall: UnixTime) -> Result<(), Failure> {
    let config = Config::builder("https://id.example/connect/token", "wasm-client")
        .client_secret("client-secret")
        .scope("api offline_access")
        .build()
        .map_err(|error| Failure {
            step: step::CONFIG,
            message: error.to_string(),
        })?;
    let mut flow = TokenFlow::new(config, 42u64, start, wall);

    // Login: one password-grant request.
    flow.login(start, Credentials::password("joe@example.com", "password"));
    let (output, shown) = next(&mut flow);
    let Output::Send(login) = output else {
        return Err(Failure {
            step: step::LOGIN_REQUEST,
            message: format!("expected a token request, got {shown}"),
        });
    };
    let body = form(&login.request);
    ensure(
        step::LOGIN_REQUEST,
        login.request.method() == http::Method::POST && body.contains("grant_type=password"),
        || format!("not a password grant: {shown}"),
    )?;
    ensure(step::LOGIN_REQUEST, login.deadline > start, || {
        format!("a deadline not after the start: {:?}", login.deadline)
    })?;

    // The answer: the tokens to store, then the access token.
    let answer = token_answer(
        r#"{"access_token":"AT1","token_type":"Bearer","expires_in":3600,"refresh_token":"RT1","scope":"api offline_access"}"#,
    );
    flow.handle_input(
        start,
        Input::Response {
            id: login.id,
            response: answer,
        },
    );
    let (output, shown) = next(&mut flow);
    let Output::Event(Event::TokensUpdated(stored)) = output else {
        return Err(Failure {
            step: step::TOKENS_UPDATED,
            message: format!("expected TokensUpdated, got {shown}"),
        });
    };
    let refresh = stored.refresh_token.as_ref().map(|t| t.expose_secret());
    ensure(step::TOKENS_UPDATED, refresh == Some("RT1"), || {
        format!("the refresh token to store is {refresh:?}")
    })?;
    ensure(
        step::TOKENS_UPDATED,
        stored.expires_at == Some(wall.saturating_add(LIFETIME)),
        || format!("the stored expiry is {:?}", stored.expires_at),
    )?;
    let (output, shown) = next(&mut flow);
    ensure(
        step::ACCESS_READY,
        matches!(output, Output::Event(Event::AccessReady { generation }) if generation.get() == 1),
        || format!("expected AccessReady for generation 1, got {shown}"),
    )?;
    let renewal = start + (LIFETIME - MARGIN);
    let (output, shown) = next(&mut flow);
    ensure(
        step::IDLE_UNTIL_RENEWAL,
        matches!(output, Output::Idle { until: Some(until) } if until == renewal),
        || format!("expected Idle until {renewal:?}, got {shown}"),
    )?;

    // The bearer token, and what the flow holds.
    let access = flow.access(start);
    ensure(
        step::BEARER,
        matches!(&access, Access::Ready(bearer) if bearer.header_value() == "Bearer AT1"),
        || format!("expected the bearer AT1, got {access:?}"),
    )?;
    let info = flow.token_info();
    let expiry = info
        .as_ref()
        .and_then(|i| i.access_token)
        .map(|a| (a.generation.get(), a.expires_at, a.expires_at_unix));
    ensure(
        step::TOKEN_INFO,
        expiry == Some((1, start + LIFETIME, wall.saturating_add(LIFETIME)))
            && info.as_ref().is_some_and(|i| i.refresh_token.is_some()),
        || format!("unexpected token info: {info:?}"),
    )?;

    // Time passes: nothing before the renewal point, a refresh at it.
    let just_before = renewal.checked_sub(Duration::from_secs(1)).unwrap_or(start);
    flow.handle_input(just_before, Input::Timeout);
    let (output, shown) = next(&mut flow);
    ensure(
        step::NOTHING_BEFORE_RENEWAL,
        matches!(output, Output::Idle { until: Some(until) } if until == renewal),
        || format!("expected to stay idle until {renewal:?}, got {shown}"),
    )?;
    flow.handle_input(renewal, Input::Timeout);
    let (output, shown) = next(&mut flow);
    let Output::Send(refresh) = output else {
        return Err(Failure {
            step: step::REFRESH_REQUEST,
            message: format!("expected a refresh at the renewal point, got {shown}"),
        });
    };
    let body = form(&refresh.request);
    ensure(
        step::REFRESH_REQUEST,
        body.contains("grant_type=refresh_token") && body.contains("refresh_token=RT1"),
        || format!("not a refresh with RT1: {shown}"),
    )?;
    let id: RequestId = refresh.id;
    flow.handle_input(
        renewal,
        Input::Response {
            id,
            response: token_answer(
                r#"{"access_token":"AT2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT2"}"#,
            ),
        },
    );
    let (output, shown) = next(&mut flow);
    let rotated = match &output {
        Output::Event(Event::TokensUpdated(stored)) => stored
            .refresh_token
            .as_ref()
            .is_some_and(|t| t.expose_secret() == "RT2"),
        _ => false,
    };
    ensure(step::REFRESHED_TOKENS_UPDATED, rotated, || {
        format!("expected TokensUpdated with RT2, got {shown}")
    })?;
    let (output, shown) = next(&mut flow);
    ensure(
        step::REFRESHED_ACCESS_READY,
        matches!(output, Output::Event(Event::AccessReady { generation }) if generation.get() == 2),
        || format!("expected AccessReady for generation 2, got {shown}"),
    )?;
    let access = flow.access(renewal);
    ensure(
        step::REFRESHED_BEARER,
        matches!(&access, Access::Ready(bearer) if bearer.header_value() == "Bearer AT2"),
        || format!("expected the bearer AT2, got {access:?}"),
    )?;
    let next_renewal = renewal + (LIFETIME - MARGIN);
    let (output, shown) = next(&mut flow);
    ensure(
        step::NEXT_RENEWAL,
        matches!(output, Output::Idle { until: Some(until) } if until == next_renewal),
        || format!("expected Idle until {next_renewal:?}, got {shown}"),
    )?;
    Ok(())
}
