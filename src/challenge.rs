//! `WWW-Authenticate` challenges (RFC 9110 §11.3, §11.6.1) and what a `Bearer` challenge says
//! (RFC 6750 §3).
//!
//! A resource server that refuses a token answers 401 (or 403) with one or more challenges. The
//! `Bearer` one tells the client whether the token expired (`invalid_token`, so refreshing may
//! help) or lacks scope (`insufficient_scope`, so refreshing will not), which is what the token
//! lifecycle needs to decide its next step.
//!
//! The grammar is
//!
//! ```text
//! challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! and one header value may hold several challenges separated by commas, the same commas that
//! separate the parameters of one challenge. A comma therefore starts a new challenge when the
//! token after it is not followed by `=`.
//!
//! The parser accepts what real servers send (extra whitespace, empty list elements, lowercase
//! schemes, unquoted values) and refuses input it cannot read unambiguously, such as an
//! unterminated quoted string, with a [`ChallengeError`] that says what and where.

use std::fmt;

use crate::snippet::excerpt;

/// Header values longer than this many bytes are refused without being parsed.
///
/// Real challenges are a few hundred bytes; the limit bounds the work and memory a hostile
/// server can cause.
pub const MAX_VALUE_LEN: usize = 8 * 1024;

/// How many bytes of the input an error message may quote.
const MAX_EXCERPT: usize = 64;

/// One challenge from a `WWW-Authenticate` header: an auth scheme with either a token68 or a
/// list of parameters (or neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The auth scheme as sent (compare it with [`str::eq_ignore_ascii_case`]: schemes are
    /// case-insensitive).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The token68 that followed the scheme, if the challenge carried one instead of parameters.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// The value of the first parameter called `name`, compared case-insensitively; quoted
    /// values are returned with their quotes and escapes removed.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All parameters in the order sent, names as sent, values unquoted. Repeated names are
    /// kept, although RFC 9110 forbids them, so nothing a server sent is hidden.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

/// What was wrong with a `WWW-Authenticate` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeErrorKind {
    /// The value is longer than [`MAX_VALUE_LEN`] bytes.
    TooLong,
    /// The value is not valid UTF-8.
    InvalidUtf8,
    /// A challenge did not start with an auth scheme token.
    ExpectedScheme,
    /// A parameter name token was expected after a comma.
    ExpectedParamName,
    /// The first word after a scheme is neither a token68 nor followed by `=`.
    ExpectedEquals,
    /// A parameter's `=` was not followed by a token or a quoted string.
    ExpectedValue,
    /// Something other than a comma or the end followed a scheme or a parameter.
    ExpectedSeparator,
    /// A quoted string has no closing quote.
    UnterminatedQuotedString,
    /// A quoted string contains a control character.
    ControlCharacter,
}

impl ChallengeErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ChallengeErrorKind::TooLong => "value is longer than 8192 bytes",
            ChallengeErrorKind::InvalidUtf8 => "value is not valid UTF-8",
            ChallengeErrorKind::ExpectedScheme => "expected an auth scheme",
            ChallengeErrorKind::ExpectedParamName => "expected a parameter name",
            ChallengeErrorKind::ExpectedEquals => "expected '=' after a parameter name",
            ChallengeErrorKind::ExpectedValue => "expected a parameter value",
            ChallengeErrorKind::ExpectedSeparator => "expected ',' or the end of the value",
            ChallengeErrorKind::UnterminatedQuotedString => "quoted string is not closed",
            ChallengeErrorKind::ControlCharacter => "control character in a quoted string",
        }
    }
}

/// A `WWW-Authenticate` value that could not be parsed: what was wrong, at which byte offset,
/// and a short escaped excerpt of the input from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeError {
    kind: ChallengeErrorKind,
    offset: usize,
    // Escaped, at most MAX_EXCERPT input bytes: errors get logged, and the input is untrusted.
    excerpt: String,
    truncated: bool,
}

impl ChallengeError {
    fn new(kind: ChallengeErrorKind, offset: usize, input: &[u8]) -> Self {
        let (excerpt, truncated) = excerpt(input, offset, MAX_EXCERPT);
        ChallengeError {
            kind,
            offset,
            excerpt,
            truncated,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> ChallengeErrorKind {
        self.kind
    }

    /// The byte offset in the value where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid WWW-Authenticate value: {} at byte {}",
            self.kind.describe(),
            self.offset
        )?;
        if !self.excerpt.is_empty() {
            write!(f, " near \"{}\"", self.excerpt)?;
            if self.truncated {
                f.write_str("...")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ChallengeError {}

/// Parses one header value into its challenges.
///
/// An empty value, or one holding only commas and whitespace, has no challenges. Use it once per
/// header line: several `WWW-Authenticate` lines are several values.
pub fn parse_challenges(value: &[u8]) -> Result<Vec<Challenge>, ChallengeError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ChallengeError::new(
            ChallengeErrorKind::TooLong,
            MAX_VALUE_LEN,
            value,
        ));
    }
    let text = std::str::from_utf8(value).map_err(|e| {
        ChallengeError::new(ChallengeErrorKind::InvalidUtf8, e.valid_up_to(), value)
    })?;
    let mut parser = Parser {
        text,
        bytes: value,
        pos: 0,
    };
    let mut challenges = Vec::new();
    loop {
        parser.skip_separators();
        if parser.at_end() {
            return Ok(challenges);
        }
        challenges.push(parser.challenge()?);
    }
}

/// A cursor over a value already checked to be UTF-8.
///
/// Every delimiter in the grammar is ASCII, so the positions where tokens start and end are
/// always character boundaries and the text can be cut there with `str::get`.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn error(&self, kind: ChallengeErrorKind, offset: usize) -> ChallengeError {
        ChallengeError::new(kind, offset, self.bytes)
    }

    /// Skips optional whitespace and returns how much there was.
    fn skip_ows(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips whitespace and commas: RFC 9110 §5.6.1 asks recipients to accept empty list
    /// elements such as `a, , b`.
    fn skip_separators(&mut self) {
        loop {
            self.skip_ows();
            if self.peek() == Some(b',') {
                self.pos += 1;
            } else {
                return;
            }
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            None
        } else {
            self.text.get(start..self.pos)
        }
    }

    /// Consumes a token68 if the text at the cursor is one.
    ///
    /// It only counts as one when it is all that stands before the next comma or the end;
    /// otherwise (`realm="x"`, `realm = x`) the text is the first auth-param and the cursor is
    /// left where it was.
    fn token68(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let mut end = start;
        while self.bytes.get(end).copied().is_some_and(is_token68_char) {
            end += 1;
        }
        if end == start {
            return None;
        }
        while self.bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        let mut after = end;
        while matches!(self.bytes.get(after), Some(b' ' | b'\t')) {
            after += 1;
        }
        match self.bytes.get(after) {
            None | Some(b',') => {
                let token68 = self.text.get(start..end)?;
                self.pos = after;
                Some(token68)
            }
            Some(_) => None,
        }
    }

    /// Reads a quoted string at the cursor (which is on the opening quote), removing the
    /// quotes and the backslashes of quoted pairs.
    fn quoted_string(&mut self) -> Result<String, ChallengeError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error(ChallengeErrorKind::UnterminatedQuotedString, open)),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => match self.bytes.get(self.pos + 1).copied() {
                    None => {
                        return Err(self.error(ChallengeErrorKind::UnterminatedQuotedString, open));
                    }
                    Some(byte) if is_quotable(byte) => {
                        out.push(byte);
                        self.pos += 2;
                    }
                    Some(_) => {
                        return Err(self.error(ChallengeErrorKind::ControlCharacter, self.pos + 1));
                    }
                },
                Some(byte) if is_qdtext(byte) => {
                    out.push(byte);
                    self.pos += 1;
                }
                Some(_) => return Err(self.error(ChallengeErrorKind::ControlCharacter, self.pos)),
            }
        }
        // Only ASCII backslashes were removed from valid UTF-8, so this cannot fail; the error
        // arm keeps the parser free of panics all the same.
        String::from_utf8(out).map_err(|_| self.error(ChallengeErrorKind::InvalidUtf8, open))
    }

    /// Reads one challenge; the cursor is on its scheme.
    ///
    /// Stops before the comma that precedes the next challenge, or at the end.
    fn challenge(&mut self) -> Result<Challenge, ChallengeError> {
        let scheme = self
            .token()
            .ok_or_else(|| self.error(ChallengeErrorKind::ExpectedScheme, self.pos))?;
        let mut challenge = Challenge {
            scheme: scheme.to_owned(),
            token68: None,
            params: Vec::new(),
        };
        let spaces = self.skip_ows();
        match self.peek() {
            None | Some(b',') => return Ok(challenge),
            Some(_) if spaces == 0 => {
                return Err(self.error(ChallengeErrorKind::ExpectedSeparator, self.pos));
            }
            Some(_) => {}
        }
        if let Some(token68) = self.token68() {
            challenge.token68 = Some(token68.to_owned());
            return Ok(challenge);
        }
        loop {
            let name_start = self.pos;
            let name = self
                .token()
                .ok_or_else(|| self.error(ChallengeErrorKind::ExpectedParamName, self.pos))?;
            self.skip_ows();
            if self.peek() != Some(b'=') {
                if challenge.params.is_empty() {
                    return Err(self.error(ChallengeErrorKind::ExpectedEquals, self.pos));
                }
                // A token without `=` after a comma is the next challenge's scheme: that comma
                // separated challenges, not parameters.
                self.pos = name_start;
                return Ok(challenge);
            }
            self.pos += 1;
            self.skip_ows();
            let value = if self.peek() == Some(b'"') {
                self.quoted_string()?
            } else {
                self.token()
                    .ok_or_else(|| self.error(ChallengeErrorKind::ExpectedValue, self.pos))?
                    .to_owned()
            };
            challenge.params.push((name.to_owned(), value));
            self.skip_ows();
            match self.peek() {
                None => return Ok(challenge),
                Some(b',') => {
                    self.skip_separators();
                    if self.at_end() {
                        return Ok(challenge);
                    }
                }
                Some(_) => return Err(self.error(ChallengeErrorKind::ExpectedSeparator, self.pos)),
            }
        }
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The characters of a token68 before its `=` padding (RFC 9110 §11.2).
fn is_token68_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte)
}

/// `qdtext` of RFC 9110 §5.6.4: anything but controls, `"` and `\`.
fn is_qdtext(byte: u8) -> bool {
    byte == b'\t' || (byte >= 0x20 && byte != 0x7f && byte != b'"' && byte != b'\\')
}

/// What may follow a backslash in a quoted pair: anything but controls.
fn is_quotable(byte: u8) -> bool {
    byte == b'\t' || (byte >= 0x20 && byte != 0x7f)
}

/// An RFC 6750 §3.1 error code from a `Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerErrorCode {
    /// `invalid_request`: the request was malformed; retrying it unchanged will not help.
    InvalidRequest,
    /// `invalid_token`: the token is expired, revoked or otherwise invalid; a fresh one may
    /// help.
    InvalidToken,
    /// `insufficient_scope`: the token is valid but lacks the scope the resource needs.
    InsufficientScope,
    /// Any other code, as sent (extensions such as DPoP's `use_dpop_nonce`).
    Other(String),
}

impl BearerErrorCode {
    /// The code from its wire form. Codes are case-sensitive (RFC 6750 §3), so anything that
    /// is not exactly one of the three registered codes is [`BearerErrorCode::Other`].
    pub fn from_code(code: &str) -> Self {
        match code {
            "invalid_request" => BearerErrorCode::InvalidRequest,
            "invalid_token" => BearerErrorCode::InvalidToken,
            "insufficient_scope" => BearerErrorCode::InsufficientScope,
            other => BearerErrorCode::Other(other.to_owned()),
        }
    }

    /// The code in its wire form.
    pub fn as_str(&self) -> &str {
        match self {
            BearerErrorCode::InvalidRequest => "invalid_request",
            BearerErrorCode::InvalidToken => "invalid_token",
            BearerErrorCode::InsufficientScope => "insufficient_scope",
            BearerErrorCode::Other(code) => code,
        }
    }
}

/// What a `Bearer` challenge says (RFC 6750 §3). Every field is optional: a bare `Bearer`
/// challenge only says that a bearer token is required.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The protection space (`realm`).
    pub realm: Option<String>,
    /// Why the request was refused (`error`).
    pub error: Option<BearerErrorCode>,
    /// Human-readable detail for developers (`error_description`); not for end users, and not
    /// to be trusted as more than a hint.
    pub error_description: Option<String>,
    /// The space-separated scopes the resource requires (`scope`).
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// Reads a parsed challenge, or `None` when its scheme is not `Bearer`.
    pub fn from_challenge(challenge: &Challenge) -> Option<Self> {
        if !challenge.is_scheme("Bearer") {
            return None;
        }
        Some(BearerChallenge {
            realm: challenge.param("realm").map(str::to_owned),
            error: challenge.param("error").map(BearerErrorCode::from_code),
            error_description: challenge.param("error_description").map(str::to_owned),
            scope: challenge.param("scope").map(str::to_owned),
        })
    }
}

/// Finds the first `Bearer` challenge (scheme case-insensitive) among all given header values;
/// Ok(None) when there is none. A malformed value yields an error only if no Bearer challenge
/// can be found in the well-formed values.
///
/// A malformed value is skipped as a whole, even if a `Bearer` challenge precedes the fault:
/// the parser cannot tell whether the fault belongs to that challenge. When several values are
/// malformed and none has a `Bearer` challenge, the error is the first one.
pub fn bearer_challenge<'a, I: IntoIterator<Item = &'a [u8]>>(
    values: I,
) -> Result<Option<BearerChallenge>, ChallengeError> {
    let mut first_error = None;
    for value in values {
        match parse_challenges(value) {
            Ok(challenges) => {
                if let Some(bearer) = challenges.iter().find_map(BearerChallenge::from_challenge) {
                    return Ok(Some(bearer));
                }
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Expected<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
    type Owned = (String, Option<String>, Vec<(String, String)>);

    fn summary(challenges: &[Challenge]) -> Vec<Owned> {
        challenges
            .iter()
            .map(|c| {
                (
                    c.scheme().to_owned(),
                    c.token68().map(str::to_owned),
                    c.params()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    fn expected(challenges: &[Expected<'_>]) -> Vec<Owned> {
        challenges
            .iter()
            .map(|(scheme, token68, params)| {
                (
                    (*scheme).to_owned(),
                    token68.map(str::to_owned),
                    params
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn well_formed_values() {
        let cases: &[(&str, &[Expected<'_>])] = &[
            ("Bearer", &[("Bearer", None, &[])]),
            ("bearer", &[("bearer", None, &[])]),
            ("  Bearer  ", &[("Bearer", None, &[])]),
            ("Bearer ,,,", &[("Bearer", None, &[])]),
            (", ,Bearer, ,", &[("Bearer", None, &[])]),
            ("", &[]),
            (" , , ", &[]),
            (
                r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
                &[(
                    "Bearer",
                    None,
                    &[
                        ("realm", "example"),
                        ("error", "invalid_token"),
                        ("error_description", "The access token expired"),
                    ],
                )],
            ),
            (
                r#"Basic realm="x", Bearer error="insufficient_scope", scope="a b""#,
                &[
                    ("Basic", None, &[("realm", "x")]),
                    (
                        "Bearer",
                        None,
                        &[("error", "insufficient_scope"), ("scope", "a b")],
                    ),
                ],
            ),
            (
                r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
                &[
                    (
                        "Newauth",
                        None,
                        &[
                            ("realm", "apps"),
                            ("type", "1"),
                            ("title", "Login to \"apps\""),
                        ],
                    ),
                    ("Basic", None, &[("realm", "simple")]),
                ],
            ),
            (
                r#"DPoP algs="ES256 PS256", error="use_dpop_nonce""#,
                &[(
                    "DPoP",
                    None,
                    &[("algs", "ES256 PS256"), ("error", "use_dpop_nonce")],
                )],
            ),
            (
                "Negotiate abc123==",
                &[("Negotiate", Some("abc123=="), &[])],
            ),
            (
                "Negotiate a+b/c.d-e_f~ , Bearer",
                &[
                    ("Negotiate", Some("a+b/c.d-e_f~"), &[]),
                    ("Bearer", None, &[]),
                ],
            ),
            // The grammar reads a lone `name=` as a token68, not as a parameter without a value.
            ("Bearer realm=", &[("Bearer", Some("realm="), &[])]),
            ("Bearer realm= ,", &[("Bearer", Some("realm="), &[])]),
            (
                "Bearer   realm = example ,, ,  error\t=\tinvalid_token  ,",
                &[(
                    "Bearer",
                    None,
                    &[("realm", "example"), ("error", "invalid_token")],
                )],
            ),
            (
                r#"Bearer realm="", scope="a,b=c", x="\\ \é""#,
                &[(
                    "Bearer",
                    None,
                    &[("realm", ""), ("scope", "a,b=c"), ("x", "\\ é")],
                )],
            ),
            (
                "Basic, Bearer realm=x, Negotiate abc=",
                &[
                    ("Basic", None, &[]),
                    ("Bearer", None, &[("realm", "x")]),
                    ("Negotiate", Some("abc="), &[]),
                ],
            ),
            (
                "Bearer error=invalid_token, error=other",
                &[(
                    "Bearer",
                    None,
                    &[("error", "invalid_token"), ("error", "other")],
                )],
            ),
        ];
        for (input, want) in cases {
            let got = parse_challenges(input.as_bytes());
            assert_eq!(
                got.as_deref().map(summary),
                Ok(expected(want)),
                "input: {input:?}"
            );
        }
    }

    #[test]
    fn malformed_values() {
        use ChallengeErrorKind::*;
        let long = vec![b'a'; MAX_VALUE_LEN + 1];
        let cases: &[(&[u8], ChallengeErrorKind, usize)] = &[
            (b"=", ExpectedScheme, 0),
            (b"\"", ExpectedScheme, 0),
            (b"Bearer realm=\"example", UnterminatedQuotedString, 13),
            (b"Bearer realm=\"ex\\", UnterminatedQuotedString, 13),
            (b"Bearer realm=\"a\nb\"", ControlCharacter, 15),
            (b"Bearer realm=\"a\\\0b\"", ControlCharacter, 16),
            (b"Bearer\0", ExpectedSeparator, 6),
            (b"Bearer realm=\"x\"\0", ExpectedSeparator, 16),
            (b"\0", ExpectedScheme, 0),
            (b"Bearer=x", ExpectedSeparator, 6),
            (b"Bearer\"x\"", ExpectedSeparator, 6),
            (b"Bearer foo bar", ExpectedEquals, 11),
            (b"Bearer a=b, realm= ,", ExpectedValue, 19),
            (b"Bearer a=b, realm=,", ExpectedValue, 18),
            (b"Bearer a=b, realm=", ExpectedValue, 18),
            (b"Bearer realm=x, =y", ExpectedParamName, 16),
            (b"Bearer realm=\"x\" error=\"y\"", ExpectedSeparator, 17),
            (b"Bearer realm=x y", ExpectedSeparator, 15),
            (b"Negotiate abc==, realm=x", ExpectedSeparator, 22),
            (b"Bearer realm=\"\xff\"", InvalidUtf8, 14),
            (b"\xc3", InvalidUtf8, 0),
            (&long, TooLong, MAX_VALUE_LEN),
        ];
        for (input, kind, offset) in cases {
            let err = parse_challenges(input).expect_err(&format!("input: {input:?}"));
            assert_eq!(
                (err.kind(), err.offset()),
                (*kind, *offset),
                "input: {input:?}"
            );
        }
        assert!(parse_challenges(&long[..MAX_VALUE_LEN]).is_ok());
    }

    #[test]
    fn error_messages_quote_little_and_escape() {
        let mut input = b"Bearer realm=\"".to_vec();
        input.extend_from_slice(&[b'x'; 500]);
        let message = parse_challenges(&input).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "invalid WWW-Authenticate value: quoted string is not closed at byte 13 near \"\\\"{}\"...",
                "x".repeat(63)
            )
        );

        let message = parse_challenges(b"Bearer realm=\"a\x01\x1b[31m\"")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "invalid WWW-Authenticate value: control character in a quoted string at byte 15 \
             near \"\\x01\\x1b[31m\\\"\""
        );

        let message = parse_challenges(b"Bearer \xff\xfe")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "invalid WWW-Authenticate value: value is not valid UTF-8 at byte 7 near \"\\xff\\xfe\""
        );

        let long = vec![b'a'; 100_000];
        let message = parse_challenges(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.ends_with("\"..."), "{message}");
    }

    #[test]
    fn param_names_and_schemes_are_case_insensitive() {
        let challenges = parse_challenges(b"BEARER Realm=x, REALM=y").unwrap();
        let [challenge] = challenges.as_slice() else {
            panic!("{challenges:?}");
        };
        assert_eq!(challenge.param("realm"), Some("x"));
        assert_eq!(challenge.param("rEaLm"), Some("x"));
        assert_eq!(challenge.param("scope"), None);
        assert_eq!(challenge.token68(), None);
        let bearer = BearerChallenge::from_challenge(challenge).unwrap();
        assert_eq!(bearer.realm.as_deref(), Some("x"));
        assert_eq!(
            BearerChallenge::from_challenge(&parse_challenges(b"Basic").unwrap()[0]),
            None
        );
    }

    #[test]
    fn bearer_error_codes() {
        let cases = [
            ("invalid_request", BearerErrorCode::InvalidRequest),
            ("invalid_token", BearerErrorCode::InvalidToken),
            ("insufficient_scope", BearerErrorCode::InsufficientScope),
            (
                "use_dpop_nonce",
                BearerErrorCode::Other("use_dpop_nonce".into()),
            ),
            (
                "Invalid_Token",
                BearerErrorCode::Other("Invalid_Token".into()),
            ),
            ("", BearerErrorCode::Other(String::new())),
        ];
        for (code, want) in cases {
            let parsed = BearerErrorCode::from_code(code);
            assert_eq!(parsed, want);
            assert_eq!(parsed.as_str(), code);
        }
    }

    #[test]
    fn bearer_challenge_across_values() {
        let expired = BearerChallenge {
            realm: Some("example".into()),
            error: Some(BearerErrorCode::InvalidToken),
            error_description: Some("The access token expired".into()),
            scope: None,
        };
        let scope = BearerChallenge {
            realm: None,
            error: Some(BearerErrorCode::InsufficientScope),
            error_description: None,
            scope: Some("a b".into()),
        };
        let expired_value: &[u8] = br#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#;
        let scope_value: &[u8] =
            br#"Basic realm="x", bearer error="insufficient_scope", scope="a b""#;
        let broken: &[u8] = br#"Bearer error="invalid_token"#;
        type Case<'a> = (
            &'a [&'a [u8]],
            Result<Option<BearerChallenge>, ChallengeErrorKind>,
        );
        let cases: &[Case<'_>] = &[
            (&[], Ok(None)),
            (&[b"Basic realm=x", b"Negotiate abc=="], Ok(None)),
            (&[expired_value], Ok(Some(expired.clone()))),
            (&[scope_value], Ok(Some(scope.clone()))),
            (
                &[b"Basic realm=x", scope_value, expired_value],
                Ok(Some(scope.clone())),
            ),
            (&[broken, expired_value], Ok(Some(expired.clone()))),
            (&[expired_value, broken], Ok(Some(expired.clone()))),
            (&[b"Bearer"], Ok(Some(BearerChallenge::default()))),
            (&[b"Bearer abc"], Ok(Some(BearerChallenge::default()))),
            (&[broken], Err(ChallengeErrorKind::UnterminatedQuotedString)),
            (
                &[b"Basic", broken, b"="],
                Err(ChallengeErrorKind::UnterminatedQuotedString),
            ),
            (&[b"=", broken], Err(ChallengeErrorKind::ExpectedScheme)),
        ];
        for (values, want) in cases {
            let got = bearer_challenge(values.iter().copied()).map_err(|e| e.kind());
            assert_eq!(&got, want, "values: {values:?}");
        }
        // Header values as the `http` crate hands them over.
        let mut headers = http::HeaderMap::new();
        headers.append(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=x"),
        );
        headers.append(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer scope=\"a b\", error=insufficient_scope"),
        );
        let got = bearer_challenge(
            headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.as_bytes()),
        );
        assert_eq!(got, Ok(Some(scope)));
    }

    fn token() -> impl Strategy<Value = String> {
        "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,10}"
    }

    fn ows() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", " ", "  ", "\t"])
    }

    /// A list separator with optional whitespace and empty elements around it.
    fn comma() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![",", ", ", " , ", ",,", ", , ", "\t,\t"])
    }

    #[derive(Debug, Clone)]
    enum Value {
        Token(String),
        Quoted(String),
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            token().prop_map(Value::Token),
            "[\t -~\u{80}-\u{10ffff}]{0,16}".prop_map(Value::Quoted),
        ]
    }

    fn render(value: &Value) -> String {
        match value {
            Value::Token(token) => token.clone(),
            Value::Quoted(text) => {
                let mut out = String::from("\"");
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
                out
            }
        }
    }

    fn plain(value: &Value) -> &str {
        match value {
            Value::Token(text) | Value::Quoted(text) => text,
        }
    }

    #[derive(Debug, Clone)]
    struct Generated {
        scheme: String,
        token68: Option<String>,
        params: Vec<(String, Value, &'static str, &'static str, &'static str)>,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let param = (token(), value(), ows(), ows(), comma());
        prop_oneof![
            (token(), prop::collection::vec(param, 0..4)).prop_map(|(scheme, params)| Generated {
                scheme,
                token68: None,
                params,
            }),
            (token(), "[A-Za-z0-9._~+/-]{1,12}={0,2}").prop_map(|(scheme, token68)| Generated {
                scheme,
                token68: Some(token68),
                params: Vec::new(),
            }),
        ]
    }

    fn render_challenge(challenge: &Generated) -> String {
        let mut out = challenge.scheme.clone();
        if let Some(token68) = &challenge.token68 {
            out.push(' ');
            out.push_str(token68);
        }
        for (i, (name, value, before, after, comma)) in challenge.params.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { comma });
            out.push_str(name);
            out.push_str(before);
            out.push('=');
            out.push_str(after);
            out.push_str(&render(value));
        }
        out
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Err(error) = parse_challenges(&input) {
                prop_assert!(error.offset() <= input.len());
                prop_assert!(error.to_string().len() < 400);
            }
            let _ = bearer_challenge([input.as_slice()]);
        }

        #[test]
        fn never_panics_on_grammar_soup(
            input in prop::collection::vec(
                prop::sample::select(b"aB0=\",\\ \t/\x00\xff\xc3\xa9".to_vec()),
                0..60,
            )
        ) {
            if let Ok(challenges) = parse_challenges(&input) {
                for challenge in &challenges {
                    prop_assert!(!challenge.scheme().is_empty());
                }
            }
        }

        #[test]
        fn generated_challenges_round_trip(
            challenges in prop::collection::vec(generated(), 1..4),
            separators in prop::collection::vec(comma(), 3),
            lead in ows(),
            trail in ows(),
        ) {
            let mut text = String::from(lead);
            for (i, challenge) in challenges.iter().enumerate() {
                if i > 0 {
                    text.push_str(separators.get(i - 1).copied().unwrap_or(","));
                }
                text.push_str(&render_challenge(challenge));
            }
            text.push_str(trail);
            let parsed = parse_challenges(text.as_bytes());
            prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
            let parsed = parsed.unwrap();
            prop_assert_eq!(parsed.len(), challenges.len(), "{:?}", text);
            for (got, want) in parsed.iter().zip(&challenges) {
                prop_assert_eq!(got.scheme(), want.scheme.as_str());
                prop_assert_eq!(got.token68(), want.token68.as_deref());
                let want_params: Vec<(&str, &str)> =
                    want.params.iter().map(|(n, v, ..)| (n.as_str(), plain(v))).collect();
                prop_assert_eq!(got.params().collect::<Vec<_>>(), want_params);
            }
        }
    }
}
