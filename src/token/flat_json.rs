//! A one-pass reader for the body token endpoints nearly always send: one JSON object whose
//! values are strings, whole numbers, booleans or `null`, with strings of printable ASCII and
//! no escapes.
//!
//! It gives up — returns `None` — at anything else: nesting, escapes, signs, fractions and
//! exponents, text outside ASCII, any syntax error. serde_json then reads the body, so this
//! reader never decides what a body means; it only reads the easy ones without building
//! serde's intermediate values. [`read`] gives the same field list serde_json would;
//! [`read_token_response`] puts a token response's known fields straight into their slots.
//! The tests here and in `response.rs` check, on generated bodies and on the fuzz corpora,
//! that whatever this reader accepts reads exactly as it does through serde_json.

use std::borrow::Cow;

use serde_json::Value;

use super::fields::Fields;
use super::known::{KnownFields, Raw};

/// The fields of `body`, or `None` when the body is not of the simple shape.
pub(crate) fn read(body: &[u8]) -> Option<Fields<'_>> {
    let mut fields = Fields::with_typical_capacity();
    scan(body, Cursor::string, |name, value| {
        fields.push(Cow::Borrowed(name), value.into_json());
        Some(())
    })?;
    Some(fields)
}

/// Reads a successful token response: its known fields into `known`, which starts empty, and
/// the others into the map returned. `None` when the body is not of the simple shape or needs
/// the general reader's judgement: a field given twice, or an `error`.
///
/// `known` is the caller's rather than returned: it is a few hundred bytes, and filling it in
/// place saves copying it on the way out.
pub(crate) fn read_token_response<'a>(
    body: &'a [u8],
    known: &mut KnownFields<'a>,
) -> Option<serde_json::Map<String, Value>> {
    let mut seen = 0u16;
    let mut extra = serde_json::Map::new();
    scan(body, Cursor::name, |name, value| {
        let slot = match name {
            Name::Known(index) => known.slot_at(index),
            // The rarer known names are read as any other name.
            Name::Other(name) => known.slot(name),
        };
        if let Some((bit, slot)) = slot {
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            if !value.is_null() {
                *slot = Some(value);
            }
        } else if let Name::Other(name) = name {
            if name == "error" && matches!(value, Raw::Text(_)) {
                return None;
            }
            if extra.insert(name.to_owned(), value.into_json()).is_some() {
                return None;
            }
        }
        Some(())
    })?;
    Some(extra)
}

/// A field name as read for a token response: a common known field, by its index in
/// [`KNOWN_FIELDS`](super::known::KNOWN_FIELDS), or any other name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Name<'a> {
    Known(usize),
    Other(&'a str),
}

/// Calls `each` with every field of `body` in order, its name read by `name` once the opening
/// quote is past; `None` when the body is not of the simple shape or `each` gives up.
fn scan<'a, N>(
    body: &'a [u8],
    mut name: impl FnMut(&mut Cursor<'a>) -> Option<N>,
    mut each: impl FnMut(N, Raw<'a>) -> Option<()>,
) -> Option<()> {
    // One validation of the whole body: every slice taken below starts and ends next to an
    // ASCII delimiter, so it is a `str` of its own without being checked again.
    let mut cursor = Cursor {
        rest: simdutf8::basic::from_utf8(body).ok()?,
    };
    cursor.skip_whitespace();
    cursor.expect(b'{')?;
    cursor.skip_whitespace();
    if cursor.peek()? == b'}' {
        cursor.advance(1);
    } else {
        loop {
            cursor.expect(b'"')?;
            let name = name(&mut cursor)?;
            cursor.skip_whitespace();
            cursor.expect(b':')?;
            cursor.skip_whitespace();
            each(name, cursor.value()?)?;
            cursor.skip_whitespace();
            match cursor.next()? {
                b',' => cursor.skip_whitespace(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    cursor.skip_whitespace();
    cursor.rest.is_empty().then_some(())
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.rest.as_bytes().first().copied()
    }

    /// Moves past `count` bytes, all of them ASCII.
    fn advance(&mut self, count: usize) {
        self.rest = self.rest.get(count..).unwrap_or_default();
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        // A byte that is not ASCII starts a multi-byte character; no simple body has one
        // outside a string, and strings never let one through.
        if !byte.is_ascii() {
            return None;
        }
        self.advance(1);
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// JSON's four whitespace characters, and no others.
    fn skip_whitespace(&mut self) {
        let count = self
            .rest
            .bytes()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(self.rest.len());
        self.advance(count);
    }

    /// A field name whose opening quote was read, up to and past its closing quote. The names
    /// of nearly every token response are recognised in place, by their first letter and one
    /// comparison of a length known when compiling, rather than scanned for their end and
    /// then looked up; any other name is read as a string.
    fn name(&mut self) -> Option<Name<'a>> {
        let bytes = self.rest.as_bytes();
        let (index, length) = match bytes.first()? {
            b'a' if bytes.starts_with(b"access_token\"") => (0, 13),
            b't' if bytes.starts_with(b"token_type\"") => (1, 11),
            b'e' if bytes.starts_with(b"expires_in\"") => (2, 11),
            b'r' if bytes.starts_with(b"refresh_token\"") => (3, 14),
            b's' if bytes.starts_with(b"scope\"") => (4, 6),
            b'i' if bytes.starts_with(b"id_token\"") => (5, 9),
            _ => return self.string().map(Name::Other),
        };
        self.advance(length);
        Some(Name::Known(index))
    }

    /// The rest of a string whose opening quote was read, up to and past its closing quote.
    // Inlined into its two callers: it runs for every name and most values, and a call costs
    // more than the scan of a typical name.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let length = plain_prefix(self.rest.as_bytes());
        let (text, rest) = self.rest.split_at_checked(length)?;
        self.rest = rest.strip_prefix('"')?;
        Some(text)
    }

    fn value(&mut self) -> Option<Raw<'a>> {
        match self.next()? {
            b'"' => Some(Raw::Text(Cow::Borrowed(self.string()?))),
            digit @ b'0'..=b'9' => self.whole_number(digit),
            b't' => self.literal("rue", Value::Bool(true)),
            b'f' => self.literal("alse", Value::Bool(false)),
            b'n' => self.literal("ull", Value::Null),
            _ => None,
        }
    }

    fn literal(&mut self, tail: &str, value: Value) -> Option<Raw<'a>> {
        self.rest = self.rest.strip_prefix(tail)?;
        Some(Raw::Json(value))
    }

    /// `0` or a digit string without a leading zero that fits a `u64`, as serde_json reads
    /// it. Anything that continues as a fraction or exponent is left to serde_json.
    fn whole_number(&mut self, first: u8) -> Option<Raw<'a>> {
        let mut number = u64::from(first - b'0');
        if first != b'0' {
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                number = number
                    .checked_mul(10)?
                    .checked_add(u64::from(digit - b'0'))?;
                self.advance(1);
            }
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E' | b'0'..=b'9') => None,
            _ => Some(Raw::Json(Value::from(number))),
        }
    }
}

/// How many leading bytes of `bytes` are printable ASCII other than `"` and `\`: the part of
/// a string that needs no decoding. Tokens are long, so bytes are judged in blocks: sixteen at
/// a time in a vector register where the target has SSE2 (every x86-64 does), then eight at a
/// time in a word.
fn plain_prefix(bytes: &[u8]) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        let mut done = 0;
        for block in bytes.chunks_exact(16) {
            let Ok(block) = <&[u8; 16]>::try_from(block) else {
                break;
            };
            let stops = sse2::stops(block);
            if stops != 0 {
                return done + stops.trailing_zeros() as usize;
            }
            done += 16;
        }
        done + plain_prefix_in_words(bytes.get(done..).unwrap_or_default())
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    plain_prefix_in_words(bytes)
}

/// Judging sixteen bytes at once with SSE2, through `safe_arch`'s safe wrappers.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };

    /// One bit for each byte of `block` that ends a plain run: a control character, a byte
    /// outside ASCII, `"` or `\`.
    #[inline]
    pub(super) fn stops(block: &[u8; 16]) -> u32 {
        let bytes = load_unaligned_m128i(block);
        // Compared as signed bytes, those outside ASCII are negative: one comparison finds
        // them and the control characters.
        let unprintable = cmp_lt_mask_i8_m128i(bytes, set_splat_i8_m128i(0x20));
        let quote = cmp_eq_mask_i8_m128i(bytes, set_splat_i8_m128i(b'"' as i8));
        let backslash = cmp_eq_mask_i8_m128i(bytes, set_splat_i8_m128i(b'\\' as i8));
        move_mask_i8_m128i(unprintable | quote | backslash) as u32
    }
}

/// [`plain_prefix`] eight bytes at a time, in a `u64`.
fn plain_prefix_in_words(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `word` below `limit` (at most 0x80) is set in the result.
    // Bits above the lowest set one may be spurious (a borrow runs upwards), so only the
    // lowest is read, and it is always exact.
    let below = |word: u64, limit: u64| word.wrapping_sub(ONES * limit) & !word & HIGH;
    let mut done = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let stop = below(word, 0x20) // a control character
            | (word & HIGH) // not ASCII
            | below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1);
        if stop != 0 {
            return done + (stop.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let tail = bytes.get(done..).unwrap_or_default();
    done + tail
        .iter()
        .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\')
        .unwrap_or(tail.len())
}

#[cfg(test)]
mod tests {
    use super::super::known::KNOWN_FIELDS;
    use super::*;
    use proptest::prelude::*;

    fn both(
        body: &str,
    ) -> (
        Option<Fields<'_>>,
        Result<Fields<'_>, super::super::Malformation>,
    ) {
        (
            read(body.as_bytes()),
            Fields::from_any_json(body.as_bytes()),
        )
    }

    /// Whenever the fast reader accepts a body, serde_json reads the same fields from it.
    fn agrees(body: &[u8]) -> Result<(), String> {
        if let Some(fast) = read(body) {
            match Fields::from_any_json(body) {
                Ok(general) if general == fast => {}
                other => {
                    return Err(format!(
                        "{:?}: fast {fast:?}, general {other:?}",
                        String::from_utf8_lossy(body)
                    ));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn typical_bodies_are_read() {
        let body = r#" {"access_token":"eyJ.x-y_z~","token_type":"Bearer","expires_in":3600,
            "refresh_token":"r/t+=","scope":"a b","ok":true,"no":false,"id_token":null} "#;
        let (fast, general) = both(body);
        let fast = fast.expect("a simple body");
        assert_eq!(Ok(&fast), general.as_ref());
        assert_eq!(fast.get("expires_in"), Some(&Value::from(3600u64)));
        assert_eq!(
            fast.get("refresh_token"),
            Some(&Value::String("r/t+=".into()))
        );
        assert_eq!(read(b"{}").map(|f| f.duplicate().is_none()), Some(true));
    }

    #[test]
    fn anything_unusual_is_left_to_serde_json() {
        for body in [
            r#"{"a":"\u0041"}"#,
            r#"{"a":"é"}"#,
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{}}"#,
            r#"{"a":"x",}"#,
            r#"{"a":"x"} x"#,
            r#"{"a":tru}"#,
            "{\"a\":\"\t\"}",
            "{\"a\":1}\u{c}",
            r#"["a"]"#,
            r#"{"a""#,
            "",
        ] {
            assert_eq!(read(body.as_bytes()), None, "{body}");
        }
        assert_eq!(
            read(br#"{"a":18446744073709551615}"#).and_then(|f| f.get("a").cloned()),
            Some(Value::from(u64::MAX))
        );
    }

    #[test]
    fn names_recognised_in_place_are_the_known_names() {
        let others = ["access_tokens", "acc", "scope2", "error", "r", "token", "é"];
        for name in KNOWN_FIELDS.into_iter().chain(others) {
            let quoted = format!("{name}\",");
            let mut cursor = Cursor { rest: &quoted };
            match cursor.name() {
                Some(Name::Known(index)) => assert_eq!(KNOWN_FIELDS.get(index), Some(&name)),
                Some(Name::Other(read)) => assert_eq!(read, name),
                None => assert_eq!(name, "é"),
            }
            assert!(name == "é" || cursor.rest == ",", "{name}");
        }
    }

    #[test]
    fn duplicates_are_noted_as_serde_json_would() {
        let (fast, general) = both(r#"{"a":1,"b":2,"a":3}"#);
        assert_eq!(fast.as_ref().and_then(Fields::duplicate), Some("a"));
        assert_eq!(fast, general.ok());
    }

    #[test]
    fn the_fuzz_corpora_read_alike() {
        for body in crate::token::corpus_bodies::corpus_bodies() {
            agrees(&body).unwrap();
        }
    }

    fn json_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            ".{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| serde_json::to_string(&n).unwrap()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            Just("[\"x\"]".to_owned()),
            Just("{}".to_owned()),
            "[0-9.eE+-]{1,6}",
            "\"[ -~]{0,4}",
        ];
        let name = prop_oneof![
            Just("access_token".to_owned()),
            Just("expires_in".to_owned()),
            Just("scope".to_owned()),
            "[a-z_]{1,6}",
            "[ -~]{0,4}",
        ];
        let space = "[ \t\r\n\u{c}]{0,2}";
        proptest::collection::vec((name, space, scalar), 0..6).prop_map(|fields| {
            let mut body = String::from("{");
            for (i, (name, space, value)) in fields.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&format!("{space}\"{name}\"{space}:{space}{value}{space}"));
            }
            body.push('}');
            body
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_generated_bodies(body in json_text()) {
            agrees(body.as_bytes()).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn simple_bodies_are_read_by_the_fast_reader(
            fields in proptest::collection::vec(
                ("[a-z_]{1,8}", prop_oneof![
                    "[!-~&&[^\"\\\\]]{0,40}".prop_map(|s| format!("\"{s}\"")),
                    any::<u64>().prop_map(|n| n.to_string()),
                    Just("false".to_owned()),
                    Just("null".to_owned()),
                ]),
                0..8,
            ),
            space in "[ \t\r\n]{0,2}",
        ) {
            let body = format!(
                "{space}{{{}}}{space}",
                fields
                    .iter()
                    .map(|(name, value)| format!("\"{name}\"{space}:{space}{value}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            prop_assert!(read(body.as_bytes()).is_some(), "{}", body);
            agrees(body.as_bytes()).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn agrees_with_serde_json_on_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            agrees(&body).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn plain_prefix_stops_where_a_byte_needs_decoding(
            bytes in proptest::collection::vec(
                // Mostly plain, so that whole words pass before the first stop.
                prop_oneof![30 => 0x20u8..0x7f, 1 => any::<u8>()],
                0..80,
            )
        ) {
            let expected = bytes
                .iter()
                .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\')
                .unwrap_or(bytes.len());
            prop_assert_eq!(plain_prefix(&bytes), expected);
            prop_assert_eq!(plain_prefix_in_words(&bytes), expected);
        }
    }
}
