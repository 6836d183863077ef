//! `parse_token_response` on error answers: non-2xx statuses, JSON error bodies of every
//! shape, and errors inside a 200.
//!
//! Input: either the raw-HTTP-like text of `common::http_response` (a 2xx status is moved to
//! 4xx, except 200 itself, kept for error-in-200), or, after a leading NUL byte, a recipe from
//! which a JSON error body is built with duplicate keys, wrong types, long and odd strings.
#![no_main]

mod common;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenflow::token::{ErrorCode, ResponseError, parse_token_response};

const CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "INVALID_GRANT",
    "",
];

const STATUSES: &[u16] = &[
    200, 301, 302, 400, 401, 403, 404, 405, 408, 409, 418, 429, 499, 500, 502, 503, 504, 599, 999,
];

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => String::new(),
        1 => "x".repeat(u.int_in_range(150..=400usize)?),
        2 => "line\nbreak\ttab\u{7}bell\u{1b}[31m\u{202e}rtl é 🦀".to_owned(),
        3 => format!("AT.secret.{}", u.arbitrary::<u32>()?),
        _ => u.arbitrary::<String>()?,
    })
}

fn value(u: &mut Unstructured<'_>, depth: u8) -> Result<Value> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<f64>()?),
        4 if depth < 3 => {
            let n = u.int_in_range(0..=3usize)?;
            Value::Array((0..n).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        5 if depth < 3 => {
            let mut map = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=3usize)? {
                map.insert(string(u)?, value(u, depth + 1)?);
            }
            Value::Object(map)
        }
        6 => Value::String(u.choose(CODES)?.to_string()),
        _ => Value::String(string(u)?),
    })
}

/// A JSON object written by hand so that keys may repeat.
fn recipe(u: &mut Unstructured<'_>) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
    let status = StatusCode::from_u16(*u.choose(STATUSES)?).unwrap();
    let mut headers = HeaderMap::new();
    let content_type = *u.choose(&[
        "application/json",
        "application/json;charset=UTF-8",
        "text/html",
        "application/x-www-form-urlencoded",
        "text/plain",
    ])?;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let names = [
        "error",
        "error_description",
        "error_uri",
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "status",
    ];
    let mut fields: Vec<(String, Value)> = Vec::new();
    if u.arbitrary()? {
        fields.push(("error".into(), Value::String(u.choose(CODES)?.to_string())));
    }
    for _ in 0..u.int_in_range(0..=8usize)? {
        let name = if u.ratio(1, 8)? {
            string(u)?
        } else {
            u.choose(&names)?.to_string()
        };
        fields.push((name, value(u, 0)?));
    }
    if u.ratio(1, 4)? {
        let at = u.int_in_range(0..=fields.len())?;
        let n: u32 = u.arbitrary()?;
        fields.insert(
            at,
            (
                "access_token".into(),
                Value::String(format!("AT.secret.m{n}")),
            ),
        );
    }
    let mut body = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&serde_json::to_string(name).unwrap());
        body.push(':');
        body.push_str(&serde_json::to_string(value).unwrap());
    }
    body.push('}');
    Ok((status, headers, body.into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let (status, headers, body): (StatusCode, HeaderMap, Vec<u8>) =
        if let Some(rest) = data.strip_prefix(b"\0") {
            match recipe(&mut Unstructured::new(rest)) {
                Ok(built) => built,
                Err(_) => return,
            }
        } else {
            let (status, headers, body) = common::http_response(data);
            let status = if status.is_success() && status != StatusCode::OK {
                StatusCode::from_u16(status.as_u16() + 200).unwrap()
            } else {
                status
            };
            (status, headers, body.to_vec())
        };
    common::check_token_response(status, &headers, &body);

    let result = parse_token_response(status, &headers, &body, common::LIMIT);
    if !status.is_success() {
        assert!(result.is_err(), "a {status} gave tokens");
    }
    if body.len() > common::LIMIT {
        return;
    }
    // An `error` string (the first non-null one) makes an OAuth error with that code and the
    // response's status, whatever else the body holds, unless the body contradicts itself: an
    // `error` given more than once, or an `error` beside an access token, is no verdict.
    let Some((top, _)) = common::body_fields(&headers, &body) else {
        return;
    };
    let errors = top.iter().filter(|(k, _)| k == "error").count();
    let access_token = match common::first(&top, "access_token") {
        Some(Value::String(token)) => !token.is_empty(),
        Some(_) => true,
        None => false,
    };
    let error_string = matches!(common::first(&top, "error"), Some(Value::String(_)));
    if errors > 1 || (error_string && access_token) {
        assert!(
            matches!(&result, Err(ResponseError::Malformed { status: s, .. }) if *s == status),
            "a body that contradicts itself was read as {result:?}"
        );
        return;
    }
    match common::first(&top, "error") {
        Some(Value::String(code)) => match &result {
            Err(ResponseError::OAuth(error)) => {
                assert_eq!(error.status, status);
                assert_eq!(error.code, ErrorCode::parse(code));
                let description = common::first(&top, "error_description");
                assert_eq!(
                    error.description.is_some(),
                    matches!(description, Some(Value::String(_)))
                );
            }
            other => panic!("an error body was read as {other:?}"),
        },
        _ if !status.is_success() => {
            assert!(
                matches!(&result, Err(ResponseError::Status { excerpt, .. }) if excerpt.is_empty()),
                "{result:?}"
            );
        }
        _ => {}
    }
});
