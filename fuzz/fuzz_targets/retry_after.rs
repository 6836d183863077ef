//! `parse_retry_after` on any bytes, read at several wall-clock times.
//!
//! Input: the header value.
#![no_main]

mod common;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokenflow::UnixTime;
use tokenflow::retry_after::{MAX_DELAY, parse_retry_after};

const NOWS: [u64; 5] = [
    0,
    784_111_777_000,     // 1994-11-06T08:49:37Z, the RFC's example date
    1_700_000_000_000,   // 2023
    253_402_300_799_000, // 9999-12-31T23:59:59Z
    u64::MAX,
];

fuzz_target!(|data: &[u8]| {
    let results: Vec<_> = NOWS
        .iter()
        .map(|&now| parse_retry_after(data, UnixTime::from_millis(now)))
        .collect();
    let trimmed: &[u8] = {
        let start = data.iter().position(|b| !matches!(b, b' ' | b'\t'));
        let end = data.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
        match (start, end) {
            (Some(s), Some(e)) => &data[s..=e],
            _ => &[],
        }
    };
    let digits = !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit);
    for window in results.windows(2) {
        // The same value means the same kind of thing at every instant, and a later instant
        // never asks for a longer wait.
        match (&window[0], &window[1]) {
            (Ok(earlier), Ok(later)) => assert!(later <= earlier, "{earlier:?} then {later:?}"),
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("{a:?} and {b:?} for the same value"),
        }
    }
    for result in &results {
        match result {
            Ok(delay) => {
                assert!(*delay <= MAX_DELAY);
                if digits {
                    let text = std::str::from_utf8(trimmed).unwrap();
                    let want = text
                        .parse::<u64>()
                        .map_or(MAX_DELAY, |s| Duration::from_secs(s).min(MAX_DELAY));
                    assert_eq!(*delay, want);
                }
            }
            Err(error) => {
                assert!(!digits);
                let message = error.to_string();
                assert!(common::printable_ascii(&message), "{message:?}");
                assert!(message.len() < 300, "{} bytes", message.len());
            }
        }
    }
});
