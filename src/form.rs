//! Writing `application/x-www-form-urlencoded` bodies, as RFC 6749 appendix B asks for every
//! request to an OAuth endpoint.
//!
//! A body is written straight into the bytes that will be sent, eight bytes at a time where
//! nothing needs escaping. Token requests are built on every login and refresh, and their
//! values (tokens, usernames, scopes) are mostly such bytes.

/// A form body being written: `name=value` pairs joined by `&`, each side percent-encoded with
/// space as `+` (the WHATWG URL standard's form serializer, which servers expect).
pub(crate) struct FormBody {
    bytes: Vec<u8>,
}

impl FormBody {
    /// An empty body with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> FormBody {
        FormBody {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// Appends `name=value`.
    #[inline]
    pub(crate) fn pair(&mut self, name: &'static str, value: &str) {
        self.name(name);
        encode_into(&mut self.bytes, value);
    }

    /// Appends `name=encoded`, the value being form-encoded already: values that never
    /// change, such as the configured scope, are encoded once rather than for every request.
    #[inline]
    pub(crate) fn pair_encoded(&mut self, name: &'static str, encoded: &str) {
        self.name(name);
        self.bytes.extend_from_slice(encoded.as_bytes());
    }

    /// Appends the separator and `name=`. Names are the fixed parameter names of the OAuth
    /// specifications, which need no escaping, so they are written as they are.
    #[inline]
    fn name(&mut self, name: &'static str) {
        debug_assert!(name.bytes().all(is_unescaped), "{name} needs escaping");
        if !self.bytes.is_empty() {
            self.bytes.push(b'&');
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(b'=');
    }

    /// The finished body.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Appends `value` form-encoded to `out`.
///
/// Eight bytes are judged at a time, without branching, and copied in one go when none needs
/// escaping, which is most of every token and username. The bytes of any other word are each
/// written as their four-byte code from [`ENCODED`], again without branching, into a
/// fixed-size block that is appended whole and then cut to the codes' length: the vector's
/// length is updated once per word, not once per byte. The last few bytes are padded to a
/// word with bytes that need no escaping, which are cut off with the rest.
fn encode_into(out: &mut Vec<u8>, value: &str) {
    let mut rest = value.as_bytes();
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        if word
            .iter()
            .fold(true, |plain, &byte| plain & is_unescaped(byte))
        {
            out.extend_from_slice(word);
        } else {
            append_codes(out, word, 0);
        }
        rest = tail;
    }
    if !rest.is_empty() {
        let mut word = [b'-'; 8];
        if let Some(start) = word.get_mut(..rest.len()) {
            start.copy_from_slice(rest);
        }
        append_codes(out, &word, 8 - rest.len());
    }
}

/// Appends the codes of `word`, leaving out its last `padding` bytes (each a one-byte code).
#[inline]
fn append_codes(out: &mut Vec<u8>, word: &[u8; 8], padding: usize) {
    // Four spare bytes, so that each code is written whole.
    let mut codes = [0; 28];
    let mut length = 0;
    for &byte in word {
        let code = code(byte);
        if let Some(slot) = codes.get_mut(length..length + 4) {
            slot.copy_from_slice(&code.to_le_bytes());
        }
        length += code_length(code);
    }
    let kept = out.len() + length - padding;
    out.extend_from_slice(codes.first_chunk::<24>().unwrap_or(&[0; 24]));
    out.truncate(kept);
}

/// The code of `byte` in [`ENCODED`].
#[inline]
fn code(byte: u8) -> u32 {
    ENCODED.get(usize::from(byte)).copied().unwrap_or_default()
}

/// The number of bytes in `code`: one, or three for `%XY`.
#[inline]
fn code_length(code: u32) -> usize {
    (code >> 24 & 3) as usize
}

/// `value` form-encoded, as a string of its own.
pub(crate) fn encode(value: &str) -> String {
    let mut out = Vec::new();
    encode_into(&mut out, value);
    // Every byte written is ASCII, so the conversion cannot fail; the fallback is never taken.
    String::from_utf8(out).unwrap_or_default()
}

/// The bytes the form serializer leaves as they are.
fn is_unescaped(byte: u8) -> bool {
    UNESCAPED.get(usize::from(byte)).copied().unwrap_or(false)
}

/// [`is_unescaped`] as a table: one load per byte.
// Built at compile time, where an index out of range fails the build instead of panicking.
#[allow(clippy::indexing_slicing)]
const UNESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = matches!(
            byte as u8,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_'
        );
        byte += 1;
    }
    table
};

/// What each byte is written as, packed little-endian into a `u32`: the byte itself, `+` for a
/// space, or `%XY`, with the length of that in the top byte.
// Built at compile time, where an index out of range fails the build instead of panicking.
#[allow(clippy::indexing_slicing)]
const ENCODED: [u32; 256] = {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = if UNESCAPED[byte] {
            1 << 24 | byte as u32
        } else if byte == b' ' as usize {
            1 << 24 | b'+' as u32
        } else {
            3 << 24 | (HEX[byte & 0x0F] as u32) << 16 | (HEX[byte >> 4] as u32) << 8 | b'%' as u32
        };
        byte += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pairs_are_joined_and_escaped() {
        let mut form = FormBody::with_capacity(0);
        form.pair("username", "{enterprise_pin}/joe.bloggs@acme.com");
        form.pair("scope", "qflowapi openid offline_access");
        form.pair("secret", "s3cr:t/+%&= x é");
        assert_eq!(
            form.finish(),
            b"username=%7Benterprise_pin%7D%2Fjoe.bloggs%40acme.com\
              &scope=qflowapi+openid+offline_access\
              &secret=s3cr%3At%2F%2B%25%26%3D+x+%C3%A9"
        );
    }

    proptest! {
        /// The same bytes as the `form_urlencoded` crate, the reference serializer.
        #[test]
        fn matches_the_reference_serializer(
            name in proptest::sample::select(vec!["grant_type", "scope", "client_id", "code"]),
            value in prop_oneof![".*", "[ -~]{0,40}", "[a-zA-Z0-9._ -]{0,40}"],
        ) {
            let mut form = FormBody::with_capacity(0);
            form.pair(name, &value);
            let expected = form_urlencoded::Serializer::new(String::new())
                .append_pair(name, &value)
                .finish();
            prop_assert_eq!(form.finish(), expected.into_bytes());
            prop_assert_eq!(
                encode(&value),
                form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            );
        }
    }
}
