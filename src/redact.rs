//! Scrubbing the secrets the crate holds from text a server sent back.
//!
//! Servers echo what they were sent: a password in an `error_description`, a refresh token in
//! a gateway's error page, the `Authorization` header in a debugging dump. That text ends up in
//! errors, events and log lines, so every secret is replaced by [`MARKER`] in every form the
//! crate sends it in: as it is, form-encoded, percent-encoded, as the HTTP Basic credentials,
//! and as it reads once control characters are cleaned from it.
//!
//! Text is scrubbed before it is cleaned and cut to length. Cut first, a secret straddling the
//! cut would no longer match and its first part would be shown; cleaned first, a secret holding
//! a tab would no longer match either. On top of whole matches, any run of 8 or more bytes that
//! also occurs in a secret is scrubbed, ignoring ASCII case and reading ASCII control bytes as
//! spaces: a secret that a server cut short, or quoted with `%2f` for `%2F`, leaves no piece
//! long enough to matter. The price is that text merely resembling a secret for 8 bytes is
//! scrubbed too, which in an error message costs nothing.
//!
//! Scrubbing runs only on error paths. The success path hands over a [`Secrets`] holder, which
//! borrows what the flow already has and is only visited when an error needs scrubbing.

use std::borrow::Cow;

/// What replaces a secret.
pub(crate) const MARKER: &str = "[redacted]";

/// Runs shorter than this are only scrubbed as whole secrets.
const PIECE: usize = 8;

/// Something holding secrets, visited only when server text must be scrubbed.
pub(crate) trait Secrets {
    /// Adds every secret held to `patterns`.
    fn visit(&self, patterns: &mut Patterns);
}

/// No secrets: what a caller of the public parsers, who holds none the crate knows of, gets.
impl Secrets for () {
    fn visit(&self, _: &mut Patterns) {}
}

/// Both holders' secrets.
impl<A: Secrets + ?Sized, B: Secrets + ?Sized> Secrets for (&A, &B) {
    fn visit(&self, patterns: &mut Patterns) {
        self.0.visit(patterns);
        self.1.visit(patterns);
    }
}

/// The forms of the secrets to scrub, gathered from a [`Secrets`].
#[derive(Default)]
pub(crate) struct Patterns {
    /// Every 8-byte window of every form of 8 bytes or more, folded (see [`fold`]).
    windows: Vec<u64>,
    /// Forms shorter than 8 bytes, folded; scrubbed only where they occur whole.
    short: Vec<Vec<u8>>,
}

impl Patterns {
    /// A secret as held: scrubbed as it is, form-encoded (as it goes in a request body),
    /// percent-encoded (RFC 3986, as a server may quote it back in a URI) and with its control
    /// characters read as spaces (as server text is cleaned).
    pub(crate) fn secret(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        self.sent(secret);
        let form = crate::form::encode(secret);
        if form != secret {
            self.sent(&form);
            let percent = percent_encode(secret);
            if percent != form {
                self.sent(&percent);
            }
        }
        if secret.chars().any(char::is_control) {
            let cleaned: String = secret
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            self.sent(&cleaned);
        }
    }

    /// A value exactly as it was sent, such as the credentials of an HTTP Basic header.
    pub(crate) fn sent(&mut self, value: &str) {
        let bytes = value.as_bytes();
        if bytes.len() < PIECE {
            if !bytes.is_empty() {
                self.short.push(bytes.iter().map(|&b| fold(b)).collect());
            }
            return;
        }
        self.windows.extend(bytes.windows(PIECE).map(key));
    }

    /// The credentials of the HTTP Basic header `value` (`Basic <base64>`), as sent.
    pub(crate) fn basic(&mut self, value: &http::HeaderValue) {
        if let Some(credentials) = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) {
            self.sent(credentials);
        }
    }
}

/// Scrubs the secrets of one [`Secrets`] from any number of texts.
pub(crate) struct Redactor {
    windows: Vec<u64>,
    short: Vec<Vec<u8>>,
}

impl Redactor {
    /// Scrubs nothing.
    pub(crate) const NONE: Redactor = Redactor {
        windows: Vec::new(),
        short: Vec::new(),
    };

    /// Gathers the forms of every secret `secrets` holds.
    pub(crate) fn new(secrets: &(impl Secrets + ?Sized)) -> Redactor {
        let mut patterns = Patterns::default();
        secrets.visit(&mut patterns);
        let Patterns {
            mut windows,
            mut short,
        } = patterns;
        windows.sort_unstable();
        windows.dedup();
        short.sort_unstable();
        short.dedup();
        Redactor { windows, short }
    }

    /// `text` with every secret, and every run of 8 bytes or more that also occurs in a
    /// secret, replaced by [`MARKER`]; overlapping and adjacent matches become one marker.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.windows.is_empty() && self.short.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut ranges = self.matches(text.as_bytes());
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut shown = 0;
        let mut iter = ranges.into_iter().peekable();
        while let Some((start, mut end)) = iter.next() {
            while let Some(&(next_start, next_end)) = iter.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                iter.next();
            }
            let start = floor_char_boundary(text, start.max(shown));
            let end = ceil_char_boundary(text, end);
            out.push_str(text.get(shown..start).unwrap_or_default());
            out.push_str(MARKER);
            shown = end;
        }
        out.push_str(text.get(shown..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// The byte ranges of `text` to scrub, unsorted and possibly overlapping.
    fn matches(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        if !self.windows.is_empty() && text.len() >= PIECE {
            // A rolling key: each step shifts one folded byte in.
            let mut window = 0u64;
            for (i, &byte) in text.iter().enumerate() {
                window = window >> 8 | u64::from(fold(byte)) << 56;
                if i + 1 >= PIECE && self.windows.binary_search(&window).is_ok() {
                    let start = i + 1 - PIECE;
                    match ranges.last_mut() {
                        Some((_, end)) if *end >= start => *end = i + 1,
                        _ => ranges.push((start, i + 1)),
                    }
                }
            }
        }
        for pattern in &self.short {
            let mut start = 0;
            while let Some(candidate) = text.get(start..start + pattern.len()) {
                if candidate
                    .iter()
                    .map(|&b| fold(b))
                    .eq(pattern.iter().copied())
                {
                    ranges.push((start, start + pattern.len()));
                }
                start += 1;
            }
        }
        ranges
    }
}

/// The bytes compared: ASCII letters in lower case, ASCII control bytes as spaces.
fn fold(byte: u8) -> u8 {
    if byte.is_ascii_control() {
        b' '
    } else {
        byte.to_ascii_lowercase()
    }
}

/// An 8-byte window, folded, as the rolling key of [`Redactor::matches`] builds it.
fn key(window: &[u8]) -> u64 {
    window
        .iter()
        .fold(0u64, |key, &byte| key >> 8 | u64::from(fold(byte)) << 56)
}

/// `value` percent-encoded as RFC 3986 §2 has it: all but the unreserved characters.
fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() * 3);
    for &byte in value.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(
                HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(byte & 15)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    at.min(text.len())
}

/// The first `max` characters of `text`, and whether anything was left out. A cut that would
/// fall inside a [`MARKER`] is moved to before it, so that no half marker is shown.
pub(crate) fn cut(text: &str, max: usize) -> (&str, bool) {
    let Some((mut end, _)) = text.char_indices().nth(max) else {
        return (text, false);
    };
    let bytes = text.as_bytes();
    for start in end.saturating_sub(MARKER.len() - 1)..end {
        if bytes.get(start) == Some(&b'[')
            && bytes
                .get(start..start + MARKER.len())
                .is_some_and(|m| m == MARKER.as_bytes())
        {
            end = start;
            break;
        }
    }
    (text.get(..end).unwrap_or_default(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Held<'a>(&'a [&'a str]);

    impl Secrets for Held<'_> {
        fn visit(&self, patterns: &mut Patterns) {
            for secret in self.0 {
                patterns.secret(secret);
            }
        }
    }

    fn redact(secrets: &[&str], text: &str) -> String {
        Redactor::new(&Held(secrets)).redact(text).into_owned()
    }

    #[test]
    fn every_form_the_crate_sends_is_scrubbed() {
        let pw = "PW-SECRET hunter2&=%";
        assert_eq!(redact(&[pw], "x PW-SECRET hunter2&=% y"), "x [redacted] y");
        assert_eq!(
            redact(&[pw], "x PW-SECRET+hunter2%26%3D%25 y"),
            "x [redacted] y"
        );
        assert_eq!(
            redact(&[pw], "x PW-SECRET%20hunter2%26%3D%25 y"),
            "x [redacted] y"
        );
        // Lower-case escapes, as some servers write them.
        assert_eq!(
            redact(&[pw], "x pw-secret%20hunter2%26%3d%25 y"),
            "x [redacted] y"
        );
        // A control character, as it reads once cleaned.
        assert_eq!(
            redact(&["PW\tSECRET-1"], "x PW SECRET-1 y"),
            "x [redacted] y"
        );
        assert_eq!(
            redact(&["PW\tSECRET-1"], "x PW\tSECRET-1 y"),
            "x [redacted] y"
        );
    }

    struct Basic(http::HeaderValue);

    impl Secrets for Basic {
        fn visit(&self, patterns: &mut Patterns) {
            patterns.basic(&self.0);
        }
    }

    #[test]
    fn the_basic_credentials_are_scrubbed() {
        let header = crate::client_auth::basic("app", "CS-SECRET:s3", true);
        let credentials = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let redactor = Redactor::new(&Basic(header.clone()));
        assert_eq!(
            redactor.redact(&format!("got Basic {credentials}!")),
            "got Basic [redacted]!"
        );
    }

    #[test]
    fn pieces_of_eight_bytes_or_more_are_scrubbed() {
        let rt = "RT-SECRET-0123456789";
        // Cut short by the server, or starting mid-way.
        assert_eq!(redact(&[rt], "token RT-SECRET-01…"), "token [redacted]…");
        assert_eq!(
            redact(&[rt], "token …23456789 gone"),
            "token …[redacted] gone"
        );
        // Seven bytes are not enough.
        assert_eq!(redact(&[rt], "token RT-SECR"), "token RT-SECR");
        // A short secret is scrubbed whole only.
        assert_eq!(redact(&["pw1"], "pw1 and pw"), "[redacted] and pw");
    }

    #[test]
    fn overlapping_secrets_leave_no_piece_of_either() {
        let a = "AAAAXXXXYYYY";
        let b = "XXXXYYYYZZZZZZZZ";
        assert_eq!(redact(&[a, b], "<AAAAXXXXYYYYZZZZZZZZ>"), "<[redacted]>");
        assert_eq!(
            redact(&[a, b], "AAAAXXXXYYYY ZZZZZZZZ"),
            "[redacted] [redacted]"
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let secret = "S\u{eb}cret-\u{e9}\u{e9}\u{e9}";
        assert_eq!(
            redact(
                &[secret],
                "\u{e9}\u{e9}S\u{eb}cret-\u{e9}\u{e9}\u{e9}\u{e9}"
            ),
            "\u{e9}\u{e9}[redacted]\u{e9}"
        );
    }

    #[test]
    fn nothing_to_scrub_borrows() {
        let redactor = Redactor::new(&Held(&["SECRET-123"]));
        assert!(matches!(redactor.redact("plain text"), Cow::Borrowed(_)));
        assert!(matches!(
            Redactor::NONE.redact("SECRET-123"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_cut_never_splits_a_marker() {
        let text = "abc [redacted] def";
        for max in 0..text.len() + 2 {
            let (kept, more) = cut(text, max);
            assert!(
                !kept.contains('[') || kept.contains(MARKER),
                "{max}: {kept}"
            );
            assert_eq!(more, max < text.len());
        }
        assert_eq!(cut(text, 6), ("abc ", true));
        assert_eq!(cut(text, 14), ("abc [redacted]", true));
        assert_eq!(cut("\u{e9}\u{e9}\u{e9}", 2), ("\u{e9}\u{e9}", true));
    }

    proptest! {
        /// Redacted and then cut at any length, text that holds a secret anywhere shows no
        /// 8-character piece of it.
        #[test]
        fn redacted_then_cut_shows_no_piece(
            secret in "[A-Z+&=%:/~ \t\u{e9}]{8,40}",
            before in "[a-z ]{0,60}",
            after in "[a-z ]{0,60}",
            max in 0usize..160,
        ) {
            let redactor = Redactor::new(&Held(&[&secret]));
            let text = format!("{before}{secret}{after}");
            let redacted = redactor.redact(&text);
            let (shown, _) = cut(&redacted, max);
            let chars: Vec<char> = secret.chars().collect();
            for piece in chars.windows(8) {
                let piece: String = piece.iter().collect();
                prop_assert!(!shown.contains(&piece), "{piece:?} in {shown:?}");
            }
        }
    }
}
