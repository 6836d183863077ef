//! `parse_challenges` and `bearer_challenge` on any bytes.
//!
//! Input: one header value; for `bearer_challenge` it is also split at newlines into several
//! values, as several `WWW-Authenticate` lines would arrive.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tokenflow::challenge::{
    BearerChallenge, BearerErrorCode, Challenge, MAX_VALUE_LEN, bearer_challenge, parse_challenges,
};

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token68(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The challenges written back in a canonical form: every value quoted, one space after the
/// scheme, `", "` between parameters and challenges.
fn render(challenges: &[Challenge]) -> String {
    let mut out = String::new();
    for (i, challenge) in challenges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(challenge.scheme());
        if let Some(token68) = challenge.token68() {
            out.push(' ');
            out.push_str(token68);
        }
        for (j, (name, value)) in challenge.params().enumerate() {
            out.push_str(if j == 0 { " " } else { ", " });
            out.push_str(name);
            out.push('=');
            out.push_str(&quote(value));
        }
    }
    out
}

fn check_value(value: &[u8]) -> Option<Vec<Challenge>> {
    match parse_challenges(value) {
        Ok(challenges) => {
            assert!(value.len() <= MAX_VALUE_LEN);
            for challenge in &challenges {
                assert!(!challenge.scheme().is_empty());
                assert!(challenge.scheme().chars().all(is_tchar), "{challenge:?}");
                if let Some(token68) = challenge.token68() {
                    assert!(is_token68(token68), "{challenge:?}");
                    assert_eq!(challenge.params().count(), 0);
                }
                for (name, value) in challenge.params() {
                    assert!(
                        !name.is_empty() && name.chars().all(is_tchar),
                        "{challenge:?}"
                    );
                    // RFC 9110 allows obs-text (bytes 0x80-0xFF) in quoted strings, so C1
                    // controls may come through; ASCII controls other than tab may not.
                    assert!(
                        !value.chars().any(|c| c.is_ascii_control() && c != '\t'),
                        "{challenge:?}"
                    );
                }
            }
            // What was read can be written back and reads the same.
            let rendered = render(&challenges);
            if rendered.len() <= MAX_VALUE_LEN {
                let again = parse_challenges(rendered.as_bytes());
                assert_eq!(again.as_ref(), Ok(&challenges), "rendered as {rendered:?}");
            }
            Some(challenges)
        }
        Err(error) => {
            assert!(error.offset() <= value.len());
            let message = error.to_string();
            assert!(common::printable_ascii(&message), "{message:?}");
            assert!(message.len() < 400, "{} bytes", message.len());
            let debug = format!("{error:?}");
            assert!(debug.len() < 600);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_value(data);

    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let parsed: Vec<Option<Vec<Challenge>>> = values.iter().map(|v| check_value(v)).collect();
    let expected = parsed
        .iter()
        .flatten()
        .find_map(|cs| cs.iter().find_map(BearerChallenge::from_challenge));
    match bearer_challenge(values.iter().copied()) {
        Ok(found) => {
            assert_eq!(found, expected);
            if found.is_none() {
                assert!(parsed.iter().all(Option::is_some));
            }
            if let Some(bearer) = found {
                if let Some(code) = &bearer.error {
                    assert_eq!(&BearerErrorCode::from_code(code.as_str()), code);
                }
            }
        }
        Err(error) => {
            assert!(expected.is_none());
            // The first malformed value's error.
            let first_bad = values
                .iter()
                .zip(&parsed)
                .find(|(_, p)| p.is_none())
                .map(|(v, _)| parse_challenges(v).unwrap_err());
            assert_eq!(Some(error), first_bad);
        }
    }
});
