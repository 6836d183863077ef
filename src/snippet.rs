//! Short, escaped excerpts of untrusted input for error messages.
//!
//! Parse errors end up in logs and user-facing reports. Header values come from the network,
//! so an excerpt must stay short (a hostile server could send kilobytes) and must not carry raw
//! control bytes or invalid UTF-8 into a terminal or a log line.

use std::fmt::Write;

/// At most `max` bytes of `input` starting at byte `start`, escaped, and whether more input
/// followed the excerpt.
///
/// Printable ASCII is kept as is except `"` and `\`, which are escaped so the excerpt can be
/// shown between quotes; every other byte, UTF-8 or not, is shown as `\xNN`.
pub(crate) fn excerpt(input: &[u8], start: usize, max: usize) -> (String, bool) {
    let rest = input.get(start..).unwrap_or_default();
    let shown = rest.get(..max).unwrap_or(rest);
    let mut out = String::with_capacity(shown.len());
    for &byte in shown {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            // Writing to a String cannot fail.
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    (out, rest.len() > shown.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(
            excerpt(b"ab\"c\\d", 0, 64),
            ("ab\\\"c\\\\d".to_owned(), false)
        );
        assert_eq!(
            excerpt(b"\0\xff\xc3\xa9\t", 0, 64),
            ("\\x00\\xff\\xc3\\xa9\\x09".to_owned(), false)
        );
        assert_eq!(excerpt(b"abcdef", 2, 3), ("cde".to_owned(), true));
        assert_eq!(excerpt(b"abc", 3, 3), (String::new(), false));
        assert_eq!(excerpt(b"abc", 99, 3), (String::new(), false));
    }
}
