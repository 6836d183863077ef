//! The `Retry-After` header (RFC 9110 §10.2.3): how long a 429 or 503 asks the client to wait.
//!
//! ```text
//! Retry-After  = HTTP-date / delay-seconds
//! delay-seconds = 1*DIGIT
//! ```
//!
//! The result is a [`Duration`] rather than a deadline so the caller can add it to the
//! monotonic clock; an HTTP-date is turned into a delay against the wall-clock time at which the
//! response was received.

use std::fmt;
use std::time::Duration;

use crate::snippet::excerpt;
use crate::time::UnixTime;

/// The longest delay returned: `u32::MAX` seconds (about 136 years).
///
/// Larger numbers and later dates are clamped to it rather than refused, because the server
/// plainly asked for "a very long time", and a bounded value cannot overflow when the caller
/// adds it to a clock.
pub const MAX_DELAY: Duration = Duration::from_secs(u32::MAX as u64);

/// How many bytes of the input an error message may quote.
const MAX_EXCERPT: usize = 40;

/// The delay a `Retry-After` value asks for, measured from `now` (the wall-clock time the
/// response was received).
///
/// Whitespace around the value is ignored. A number of seconds above [`MAX_DELAY`], or a date
/// further ahead than that, gives [`MAX_DELAY`]; a date in the past gives zero. The three date
/// formats of RFC 9110 §5.6.7 are accepted (IMF-fixdate, RFC 850 and asctime); the weekday must
/// match the date.
pub fn parse_retry_after(value: &[u8], now: UnixTime) -> Result<Duration, RetryAfterError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| RetryAfterError::new(RetryAfterErrorKind::InvalidUtf8, value))?;
    let trimmed = text.trim_matches([' ', '\t']);
    if trimmed.is_empty() {
        return Err(RetryAfterError::new(RetryAfterErrorKind::Empty, value));
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        // Saturating arithmetic: the number of digits is unbounded, and an overflow must not
        // wrap into a short delay.
        let secs = trimmed.bytes().fold(0u64, |acc, digit| {
            acc.saturating_mul(10)
                .saturating_add(u64::from(digit - b'0'))
        });
        return Ok(Duration::from_secs(secs).min(MAX_DELAY));
    }
    match httpdate::parse_http_date(trimmed) {
        Ok(date) => Ok(UnixTime::from_system_time(date)
            .saturating_duration_since(now)
            .min(MAX_DELAY)),
        Err(_) => Err(RetryAfterError::new(classify(trimmed), value)),
    }
}

/// Why a trimmed value that is neither digits nor a date was refused, for a clearer message.
fn classify(trimmed: &str) -> RetryAfterErrorKind {
    let numeric = |s: &str| {
        s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    };
    match trimmed.strip_prefix('-') {
        Some(rest) if numeric(rest) => RetryAfterErrorKind::Negative,
        _ if numeric(trimmed) => RetryAfterErrorKind::NotWholeSeconds,
        _ => RetryAfterErrorKind::Invalid,
    }
}

/// What was wrong with a `Retry-After` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfterErrorKind {
    /// The value is empty or only whitespace.
    Empty,
    /// The value is not valid UTF-8.
    InvalidUtf8,
    /// The value is a negative number.
    Negative,
    /// The value is a number with a fraction (`1.5`): delay-seconds are whole seconds.
    NotWholeSeconds,
    /// The value is neither a number of seconds nor an HTTP-date.
    Invalid,
}

impl RetryAfterErrorKind {
    fn describe(self) -> &'static str {
        match self {
            RetryAfterErrorKind::Empty => "empty value",
            RetryAfterErrorKind::InvalidUtf8 => "not valid UTF-8",
            RetryAfterErrorKind::Negative => "negative delay",
            RetryAfterErrorKind::NotWholeSeconds => "delay is not a whole number of seconds",
            RetryAfterErrorKind::Invalid => "neither a number of seconds nor an HTTP-date",
        }
    }
}

/// A `Retry-After` value that could not be parsed, with a short escaped excerpt of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfterError {
    kind: RetryAfterErrorKind,
    // Escaped, at most MAX_EXCERPT input bytes: errors get logged, and the input is untrusted.
    excerpt: String,
    truncated: bool,
}

impl RetryAfterError {
    fn new(kind: RetryAfterErrorKind, input: &[u8]) -> Self {
        let (excerpt, truncated) = excerpt(input, 0, MAX_EXCERPT);
        RetryAfterError {
            kind,
            excerpt,
            truncated,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> RetryAfterErrorKind {
        self.kind
    }
}

impl fmt::Display for RetryAfterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = if self.truncated { "..." } else { "" };
        write!(
            f,
            "invalid Retry-After value \"{}\"{more}: {}",
            self.excerpt,
            self.kind.describe()
        )
    }
}

impl std::error::Error for RetryAfterError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 1994-11-06T08:49:37Z, the date in RFC 9110's examples.
    const RFC_DATE: u64 = 784_111_777;

    #[test]
    fn delays() {
        let now = UnixTime::from_secs(RFC_DATE);
        let cases: &[(&[u8], UnixTime, Duration)] = &[
            (b"0", now, Duration::ZERO),
            (b"120", now, Duration::from_secs(120)),
            (b"  120\t", now, Duration::from_secs(120)),
            (b"000042", now, Duration::from_secs(42)),
            (b"4294967295", now, MAX_DELAY),
            (b"4294967296", now, MAX_DELAY),
            (b"18446744073709551616", now, MAX_DELAY),
            (&[b'9'; 5000], now, MAX_DELAY),
            // The three formats of the same instant.
            (b"Sun, 06 Nov 1994 08:49:37 GMT", now, Duration::ZERO),
            (b"Sunday, 06-Nov-94 08:49:37 GMT", now, Duration::ZERO),
            (b"Sun Nov  6 08:49:37 1994", now, Duration::ZERO),
            (
                b" Sun, 06 Nov 1994 08:49:37 GMT ",
                UnixTime::from_secs(RFC_DATE - 90),
                Duration::from_secs(90),
            ),
            (
                b"Sunday, 06-Nov-94 08:49:37 GMT",
                UnixTime::from_millis(RFC_DATE * 1000 - 1500),
                Duration::from_millis(1500),
            ),
            (
                b"Sun Nov  6 08:49:37 1994",
                UnixTime::from_secs(RFC_DATE - 3600),
                Duration::from_secs(3600),
            ),
            // In the past: no wait.
            (
                b"Sun, 06 Nov 1994 08:49:37 GMT",
                UnixTime::from_secs(RFC_DATE + 10),
                Duration::ZERO,
            ),
            (b"Thu, 01 Jan 1970 00:00:00 GMT", now, Duration::ZERO),
            // Further ahead than the cap.
            (b"Fri, 31 Dec 9999 23:59:59 GMT", now, MAX_DELAY),
        ];
        for (input, now, want) in cases {
            let got = parse_retry_after(input, *now);
            assert_eq!(
                got,
                Ok(*want),
                "input: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn malformed() {
        use RetryAfterErrorKind::*;
        let cases: &[(&[u8], RetryAfterErrorKind)] = &[
            (b"", Empty),
            (b" \t ", Empty),
            (b"-1", Negative),
            (b" -120 ", Negative),
            (b"-1.5", Negative),
            (b"1.5", NotWholeSeconds),
            (b"120.", NotWholeSeconds),
            (b".5", NotWholeSeconds),
            (b"+5", Invalid),
            (b"1e3", Invalid),
            (b"12 34", Invalid),
            (b"0x10", Invalid),
            (b"-", Invalid),
            (b"soon", Invalid),
            (b"12\0", Invalid),
            (b"\0", Invalid),
            (b"\n120", Invalid),
            (b"\xff\xfe", InvalidUtf8),
            (b"12\xc3", InvalidUtf8),
            ("１２".as_bytes(), Invalid),
            // Wrong weekday, impossible day, two-digit year in IMF-fixdate, missing zone.
            (b"Mon, 06 Nov 1994 08:49:37 GMT", Invalid),
            (b"Sun, 31 Feb 1994 08:49:37 GMT", Invalid),
            (b"Sun, 06 Nov 94 08:49:37 GMT", Invalid),
            (b"Sun, 06 Nov 1994 08:49:37", Invalid),
            (b"Sun, 06 Nov 1994 08:49:37 UTC", Invalid),
            (b"1994-11-06T08:49:37Z", Invalid),
        ];
        for (input, kind) in cases {
            let got = parse_retry_after(input, UnixTime::from_secs(RFC_DATE)).map_err(|e| e.kind());
            assert_eq!(
                got,
                Err(*kind),
                "input: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn error_messages_quote_little_and_escape() {
        let err = parse_retry_after(b"soon\x00\xff\"", UnixTime::EPOCH).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Retry-After value \"soon\\x00\\xff\\\"\": not valid UTF-8"
        );
        let long = [b"x".as_slice(), &[b'a'; 1000]].concat();
        let err = parse_retry_after(&long, UnixTime::EPOCH).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid Retry-After value \"x{}\"...: neither a number of seconds nor an HTTP-date",
                "a".repeat(39)
            )
        );
        let err = parse_retry_after(b"-1", UnixTime::EPOCH).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Retry-After value \"-1\": negative delay"
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            input in prop::collection::vec(any::<u8>(), 0..64),
            now in any::<u64>(),
        ) {
            let now = UnixTime::from_millis(now);
            if let Ok(delay) = parse_retry_after(&input, now) {
                prop_assert!(delay <= MAX_DELAY);
            }
        }

        #[test]
        fn seconds_round_trip(secs in any::<u64>(), now in any::<u64>()) {
            let got = parse_retry_after(secs.to_string().as_bytes(), UnixTime::from_millis(now));
            prop_assert_eq!(got, Ok(Duration::from_secs(secs.min(u64::from(u32::MAX)))));
        }

        #[test]
        fn dates_round_trip(date in 0u64..253_402_300_799, now in 0u64..253_402_300_799) {
            let text = httpdate::fmt_http_date(
                std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(date),
            );
            let got = parse_retry_after(text.as_bytes(), UnixTime::from_secs(now));
            let want = Duration::from_secs(date.saturating_sub(now)).min(MAX_DELAY);
            prop_assert_eq!(got, Ok(want));
        }
    }
}
