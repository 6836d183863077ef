//! A response body as a list of fields, and the lenient readers real providers need.
//!
//! The list keeps every top-level field in order, a repeated one included, for what the typed
//! reading of [`wire`](super::wire) cannot answer: what a body with a field given twice says
//! (an error? one that contradicts itself?), which refresh token an unusable answer carries,
//! and the device authorization response. No error from it quotes a value back.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::time::UnixTime;
use crate::token::error::Malformation;

/// The longest lifetime believed; anything larger is clamped to it (ten years).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The top-level fields of a response body, in order, with the first duplicated name noted.
///
/// Names borrow from the body when they can; values are owned, since the ones kept (tokens,
/// scope) outlive the body.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Fields<'a> {
    entries: Vec<(Cow<'a, str>, Value)>,
    duplicate: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// Reads a JSON object. Anything else, or invalid JSON, is a [`Malformation`] that quotes
    /// nothing from the body.
    pub(crate) fn from_json(body: &'a [u8]) -> Result<Fields<'a>, Malformation> {
        serde_json::from_slice::<Fields<'a>>(body).map_err(|err| match err.classify() {
            serde_json::error::Category::Data => Malformation::NotAnObject,
            _ => Malformation::NotJson {
                line: err.line(),
                column: err.column(),
            },
        })
    }

    /// Reads an `application/x-www-form-urlencoded` body (some older servers answer so).
    pub(crate) fn from_form(body: &'a [u8]) -> Fields<'a> {
        let mut fields = Fields::default();
        for (name, value) in form_urlencoded::parse(body) {
            fields.push(name, Value::String(value.into_owned()));
        }
        fields
    }

    pub(crate) fn push(&mut self, name: Cow<'a, str>, value: Value) {
        if self.duplicate.is_none() && self.entries.iter().any(|(n, _)| *n == name) {
            self.duplicate = Some(name.clone());
        }
        self.entries.push((name, value));
    }

    /// The names of the fields, in order, repeated ones as often as they came.
    #[cfg(test)]
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_ref())
    }

    /// The first field that appeared twice, if any.
    pub(crate) fn duplicate(&self) -> Option<&str> {
        self.duplicate.as_deref()
    }

    /// Whether `name` was given more than once, whatever its values.
    pub(crate) fn appears_more_than_once(&self, name: &str) -> bool {
        self.entries
            .iter()
            .filter(|(n, _)| n == name)
            .nth(1)
            .is_some()
    }

    /// The value of `name`, treating JSON `null` as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(n, v)| n == name && !v.is_null())
            .map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    let value = map.next_value::<Value>()?;
                    fields.push(name, value);
                }
                Ok(fields)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A field name, borrowed from the body unless it held escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                name: &'de str,
            ) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, name: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name)))
            }
        }

        deserializer.deserialize_str(NameVisitor)
    }
}

/// Why a lenient number could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberProblem {
    /// A negative value where only non-negative ones make sense.
    Negative,
    /// Not a number, not a numeric string, or NaN / infinity.
    NotANumber,
}

/// A duration in seconds, as providers send it: an integer, a float, or either inside a string
/// (`"86399"`). Values past [`MAX_LIFETIME`] are clamped; an empty string is absent.
pub(crate) fn lenient_seconds(value: &Value) -> Result<Option<Duration>, NumberProblem> {
    let seconds = match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(whole), _, _) => return Ok(Some(Duration::from_secs(whole).min(MAX_LIFETIME))),
            (None, Some(_), _) => return Err(NumberProblem::Negative),
            (None, None, Some(float)) => float,
            _ => return Err(NumberProblem::NotANumber),
        },
        Value::String(text) => return seconds_in_text(text),
        _ => return Err(NumberProblem::NotANumber),
    };
    seconds_from_float(seconds)
}

/// [`lenient_seconds`] for a number inside a string.
pub(crate) fn seconds_in_text(text: &str) -> Result<Option<Duration>, NumberProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(whole) = text.parse::<u64>() {
        return Ok(Some(Duration::from_secs(whole).min(MAX_LIFETIME)));
    }
    seconds_from_float(text.parse::<f64>().map_err(|_| NumberProblem::NotANumber)?)
}

fn seconds_from_float(seconds: f64) -> Result<Option<Duration>, NumberProblem> {
    if !seconds.is_finite() {
        return Err(NumberProblem::NotANumber);
    }
    if seconds < 0.0 {
        return Err(NumberProblem::Negative);
    }
    Ok(Some(
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(MAX_LIFETIME)
            .min(MAX_LIFETIME),
    ))
}

/// Epoch values below this are seconds, values from it on milliseconds. As seconds it is the
/// year 5138; as milliseconds, March 1973, before any token was issued: every time a server
/// can mean reads right in its own unit.
pub(crate) const EPOCH_MILLIS_FROM: u64 = 100_000_000_000;

/// A point in time given as epoch seconds or epoch milliseconds, told apart by magnitude (see
/// [`EPOCH_MILLIS_FROM`]), as a number or a numeric string. Zero says nothing and is absent.
pub(crate) fn lenient_epoch(value: &Value) -> Option<UnixTime> {
    match value {
        Value::Number(n) => n.as_u64().and_then(epoch_from_number),
        Value::String(text) => epoch_in_text(text),
        _ => None,
    }
}

/// [`lenient_epoch`] for a number inside a string.
pub(crate) fn epoch_in_text(text: &str) -> Option<UnixTime> {
    text.trim().parse::<u64>().ok().and_then(epoch_from_number)
}

fn epoch_from_number(number: u64) -> Option<UnixTime> {
    match number {
        0 => None,
        seconds if seconds < EPOCH_MILLIS_FROM => Some(UnixTime::from_secs(seconds)),
        millis => Some(UnixTime::from_millis(millis)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_accept_what_providers_send() {
        let cases = [
            (json!(3600), Ok(Some(Duration::from_secs(3600)))),
            (json!("86399"), Ok(Some(Duration::from_secs(86399)))),
            (json!(" 60 "), Ok(Some(Duration::from_secs(60)))),
            (json!(1.5), Ok(Some(Duration::from_millis(1500)))),
            (json!("2.25"), Ok(Some(Duration::from_millis(2250)))),
            (json!(""), Ok(None)),
            (json!(u64::MAX), Ok(Some(MAX_LIFETIME))),
            (json!(1e300), Ok(Some(MAX_LIFETIME))),
            (json!(-1), Err(NumberProblem::Negative)),
            (json!("-5"), Err(NumberProblem::Negative)),
            (json!(-0.5), Err(NumberProblem::Negative)),
            (json!("NaN"), Err(NumberProblem::NotANumber)),
            (json!("inf"), Err(NumberProblem::NotANumber)),
            (json!("soon"), Err(NumberProblem::NotANumber)),
            (json!(true), Err(NumberProblem::NotANumber)),
            (json!([1]), Err(NumberProblem::NotANumber)),
        ];
        for (value, expected) in cases {
            assert_eq!(lenient_seconds(&value), expected, "{value}");
        }
    }

    #[test]
    fn duplicates_are_noticed_and_nulls_are_absent() {
        let fields = Fields::from_json(br#"{"a":1,"b":null,"a":2}"#).unwrap();
        assert_eq!(fields.duplicate(), Some("a"));
        assert!(fields.get("b").is_none());
        assert!(matches!(
            Fields::from_json(b"[1]"),
            Err(Malformation::NotAnObject)
        ));
        assert!(matches!(
            Fields::from_json(b"{\"a\":"),
            Err(Malformation::NotJson { .. })
        ));
    }

    #[test]
    fn epoch_millis_from_strings() {
        assert_eq!(
            lenient_epoch(&json!("1521035756257")),
            Some(UnixTime::from_millis(1_521_035_756_257))
        );
        assert_eq!(lenient_epoch(&json!("x")), None);
    }

    #[test]
    fn epoch_seconds_and_milliseconds_are_told_apart_by_magnitude() {
        let cases = [
            (
                json!(1_521_035_756),
                Some(UnixTime::from_secs(1_521_035_756)),
            ),
            (
                json!("1521035756"),
                Some(UnixTime::from_secs(1_521_035_756)),
            ),
            (
                json!(1_521_035_756_257u64),
                Some(UnixTime::from_millis(1_521_035_756_257)),
            ),
            (
                json!(EPOCH_MILLIS_FROM - 1),
                Some(UnixTime::from_secs(EPOCH_MILLIS_FROM - 1)),
            ),
            (
                json!(EPOCH_MILLIS_FROM),
                Some(UnixTime::from_millis(EPOCH_MILLIS_FROM)),
            ),
            (json!(u64::MAX), Some(UnixTime::from_millis(u64::MAX))),
            (json!(0), None),
            (json!("0"), None),
            (json!(-1), None),
        ];
        for (value, expected) in cases {
            assert_eq!(lenient_epoch(&value), expected, "{value}");
        }
    }
}
