//! Writing `application/x-www-form-urlencoded` bodies, as RFC 6749 appendix B asks for every
//! request to an OAuth endpoint.
//!
//! A body is written straight into the bytes that will be sent, copying each run of characters
//! that need no escaping in one go. Token requests are built on every login and refresh, and
//! their values (tokens, usernames, scopes) are mostly such runs.

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
    pub(crate) fn pair(&mut self, name: &str, value: &str) {
        if !self.bytes.is_empty() {
            self.bytes.push(b'&');
        }
        encode_into(&mut self.bytes, name);
        self.bytes.push(b'=');
        encode_into(&mut self.bytes, value);
    }

    /// The finished body.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Appends `value` form-encoded to `out`.
fn encode_into(out: &mut Vec<u8>, value: &str) {
    let mut rest = value.as_bytes();
    out.reserve(rest.len());
    loop {
        let run = rest
            .iter()
            .position(|&b| !is_unescaped(b))
            .unwrap_or(rest.len());
        let (plain, tail) = rest.split_at(run);
        out.extend_from_slice(plain);
        let Some((&byte, tail)) = tail.split_first() else {
            return;
        };
        escape(out, byte);
        rest = tail;
    }
}

/// `value` form-encoded, as a string of its own.
pub(crate) fn encode(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len());
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

fn escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if byte == b' ' {
        out.push(b'+');
        return;
    }
    let high = HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0');
    let low = HEX.get(usize::from(byte & 0x0F)).copied().unwrap_or(b'0');
    out.extend_from_slice(&[b'%', high, low]);
}

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
        fn matches_the_reference_serializer(name in ".*", value in ".*") {
            let mut form = FormBody::with_capacity(0);
            form.pair(&name, &value);
            let expected = form_urlencoded::Serializer::new(String::new())
                .append_pair(&name, &value)
                .finish();
            prop_assert_eq!(form.finish(), expected.into_bytes());
            prop_assert_eq!(
                encode(&value),
                form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            );
        }
    }
}
