//! Helpers shared by the parser targets: a readable input format for HTTP responses, and the
//! checks every parser must pass (bounded, printable messages that never quote a token).
#![allow(dead_code)]

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tokenflow::token::{ErrorCode, ResponseError, parse_token_response};

/// The body limit the parser targets use (the crate's default).
pub const LIMIT: usize = 64 * 1024;

/// Splits an input written like a raw HTTP response into its parts:
///
/// ```text
/// 200
/// Content-Type: application/json
///
/// {"access_token":"…"}
/// ```
///
/// The first line is the status; header lines follow until an empty line; the rest is the
/// body. An input without an empty line is all body, with status 200. Unparseable statuses
/// and header lines are skipped so that every input means something.
pub fn http_response(data: &[u8]) -> (StatusCode, HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let Some(split) = find(data, b"\n\n") else {
        return (StatusCode::OK, headers, data);
    };
    let (head, body) = data.split_at(split);
    let body = &body[2..];
    let mut lines = head.split(|&b| b == b'\n');
    let status = lines
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| line.trim().get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = trim(&value[1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    (status, headers, body)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// Every string in a JSON document: keys and values, at every depth, duplicates kept.
#[derive(Default)]
struct Strings {
    top: Vec<(String, Value)>,
    all: Vec<String>,
}

struct Collect<'a>(&'a mut Vec<String>);

impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(v.to_owned());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            self.0.push(key);
            map.next_value_seed(Collect(self.0))?;
        }
        Ok(())
    }
}

/// The top-level entries of a JSON object, in order, duplicates kept.
struct TopLevel(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(TopLevel(entries))
            }
        }
        d.deserialize_map(V)
    }
}

fn strip_body(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    &body[start..]
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// The body's top-level fields as the token parser reads them (JSON, or a declared form), and
/// every string it holds; `None` when it is neither.
pub fn body_fields(
    headers: &HeaderMap,
    body: &[u8],
) -> Option<(Vec<(String, Value)>, Vec<String>)> {
    let trimmed = strip_body(body);
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.first() != Some(&b'{') && is_form(headers) {
        let mut top = Vec::new();
        let mut all = Vec::new();
        for (k, v) in form_urlencoded::parse(trimmed) {
            all.push(k.to_string());
            all.push(v.to_string());
            top.push((k.into_owned(), Value::String(v.into_owned())));
        }
        return Some((top, all));
    }
    let top = serde_json::from_slice::<TopLevel>(trimmed).ok()?.0;
    let mut all = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(trimmed);
    serde::de::DeserializeSeed::deserialize(Collect(&mut all), &mut de).ok()?;
    Some((top, all))
}

/// A token value worth searching for in messages: long, mixing letters and digits, without
/// white space, and appearing in the input only once (so that any copy in a message came
/// from the token field and not from, say, an error description that repeats it).
pub fn is_distinctive(token: &str, all: &[String], headers: &HeaderMap) -> bool {
    token.chars().count() >= 8
        && !borrows_vocabulary(token)
        && token.chars().any(|c| c.is_ascii_alphabetic())
        && token.chars().any(|c| c.is_ascii_digit())
        && !token.chars().any(|c| c.is_whitespace() || c.is_control())
        && all.iter().map(|s| s.matches(token).count()).sum::<usize>() == 1
        && !headers
            .values()
            .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(token))
}

/// Every word the crate's messages and `Debug` output can contain comes from its source.
const VOCABULARY: &str = concat!(
    include_str!("../../../src/challenge.rs"),
    include_str!("../../../src/client_auth.rs"),
    include_str!("../../../src/config.rs"),
    include_str!("../../../src/discovery.rs"),
    include_str!("../../../src/error.rs"),
    include_str!("../../../src/input.rs"),
    include_str!("../../../src/lib.rs"),
    include_str!("../../../src/output.rs"),
    include_str!("../../../src/retry_after.rs"),
    include_str!("../../../src/revocation.rs"),
    include_str!("../../../src/secret.rs"),
    include_str!("../../../src/seed.rs"),
    include_str!("../../../src/snippet.rs"),
    include_str!("../../../src/time.rs"),
    include_str!("../../../src/flow/attempt.rs"),
    include_str!("../../../src/flow/backoff.rs"),
    include_str!("../../../src/flow/clock.rs"),
    include_str!("../../../src/flow/mod.rs"),
    include_str!("../../../src/flow/revocation.rs"),
    include_str!("../../../src/flow/tokens.rs"),
    include_str!("../../../src/grant/kind.rs"),
    include_str!("../../../src/grant/mod.rs"),
    include_str!("../../../src/grant/request.rs"),
    include_str!("../../../src/interactive/authorization.rs"),
    include_str!("../../../src/interactive/device.rs"),
    include_str!("../../../src/interactive/mod.rs"),
    include_str!("../../../src/interactive/pkce.rs"),
    include_str!("../../../src/token/error.rs"),
    include_str!("../../../src/token/fields.rs"),
    include_str!("../../../src/token/mod.rs"),
    include_str!("../../../src/token/response.rs"),
    include_str!("../../../src/token/stored.rs"),
);

/// Whether `token` carries a run of five or more letters that the crate's own text has: such
/// a token can turn up in a message without leaking (the fuzzer once built
/// `nsupportedVersion(2)` from a `RestoreError`'s `Debug`).
fn borrows_vocabulary(token: &str) -> bool {
    token
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|run| run.len() >= 5 && VOCABULARY.contains(run))
}

/// The distinctive `access_token` and `refresh_token` values of a token response body.
pub fn token_markers(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let Some((top, all)) = body_fields(headers, body) else {
        return Vec::new();
    };
    top.iter()
        .filter(|(k, _)| k == "access_token" || k == "refresh_token" || k == "id_token")
        .filter_map(|(_, v)| v.as_str())
        .filter(|t| is_distinctive(t, &all, headers))
        .map(str::to_owned)
        .collect()
}

pub fn assert_no_marker(text: &str, markers: &[String]) {
    for marker in markers {
        assert!(
            !text.contains(marker.as_str()),
            "a token from the input leaked into a message: {text}"
        );
    }
}

/// The first non-null value of `name`, as the token parser reads fields.
pub fn first<'a>(top: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    top.iter()
        .find(|(k, v)| k == name && !v.is_null())
        .map(|(_, v)| v)
}

fn visible(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Runs the token parser and checks what it must always guarantee.
pub fn check_token_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    let markers = token_markers(headers, body);
    let result = parse_token_response(status, headers, body, LIMIT);
    match &result {
        Ok(response) => {
            assert!(status.is_success(), "a {status} was read as tokens");
            assert!(body.len() <= LIMIT);
            assert!(visible(response.access_token.expose_secret()));
            if let Some(refresh) = &response.refresh_token {
                assert!(visible(refresh.expose_secret()));
            }
            let ten_years = std::time::Duration::from_secs(10 * 365 * 24 * 3600);
            assert!(response.expires_in.is_none_or(|d| d <= ten_years));
            assert!(
                response
                    .refresh_token_expires_in
                    .is_none_or(|d| d <= ten_years)
            );
            let debug = format!("{response:?}");
            assert_no_marker(&debug, &markers);
        }
        Err(error) => check_error(error, &markers),
    }
    // The body limit is exact.
    if !body.is_empty() {
        let smaller = parse_token_response(status, headers, body, body.len() - 1);
        assert!(
            matches!(smaller, Err(ResponseError::TooLarge { limit, size }) if limit == body.len() - 1 && size == body.len())
        );
        let exact = parse_token_response(status, headers, body, body.len());
        assert_eq!(
            exact, result,
            "a limit of exactly the body's size changed the result"
        );
    }
    // Error codes read from the body round-trip through their wire form.
    if let Err(ResponseError::OAuth(error)) = &result {
        assert_eq!(ErrorCode::parse(error.code.as_str()), error.code);
    }
}

/// What every `ResponseError` must be: short, printable, free of the input's tokens.
pub fn check_error(error: &ResponseError, markers: &[String]) {
    let display = error.to_string();
    let debug = format!("{error:?}");
    assert_no_marker(&display, markers);
    assert_no_marker(&debug, markers);
    assert!(
        display.chars().count() < 1024,
        "an error message of {} characters",
        display.chars().count()
    );
    assert!(
        !display.chars().any(|c| c.is_control()),
        "a control character in an error message: {display:?}"
    );
    match error {
        ResponseError::OAuth(oauth) => {
            if let Some(description) = &oauth.description {
                assert!(description.chars().count() <= 201);
            }
            if let Some(uri) = &oauth.uri {
                assert!(uri.chars().count() <= 201);
                assert!(!uri.chars().any(char::is_control));
            }
            if let ErrorCode::Other(code) = &oauth.code {
                assert!(code.chars().count() <= 65);
            }
        }
        ResponseError::Status { excerpt, .. } => assert!(excerpt.chars().count() <= 101),
        ResponseError::UnsupportedTokenType { token_type } => {
            assert!(token_type.chars().count() <= 33)
        }
        _ => {}
    }
}

/// True when every character is printable ASCII (what escaped excerpts promise).
pub fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..=0x7e).contains(&b))
}
