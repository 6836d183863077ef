//! A token endpoint's answer as serde reads it: the fields this crate understands, each kept
//! as sent (borrowed from the body when it can be) so that it is judged on its own, and every
//! other field as JSON.
//!
//! serde's derive reports a field given twice as an error; [`read_wire`] turns that, like
//! every other failure, into a [`Malformation`] that quotes nothing from the body.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::time::UnixTime;
use crate::token::error::Malformation;
use crate::token::fields::{
    NumberProblem, epoch_in_text, lenient_epoch, lenient_seconds, seconds_in_text,
};

/// The fields of a token endpoint answer, success or error. Each known field is absent when
/// missing or `null`, except the error fields, whose `null` is kept so that a success can
/// keep them among its extra fields as sent.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Wire<'a> {
    #[serde(borrow)]
    pub(crate) access_token: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) token_type: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) expires_in: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) refresh_token: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) scope: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) id_token: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) refresh_token_expires_in: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) refresh_expires_in: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(crate) refresh_token_issued_at: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) error: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) error_description: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) error_uri: Option<Raw<'a>>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub(crate) extra: Extra,
}

/// A field's value: text (borrowed from the body when it holds no escapes) or any other JSON
/// value.
#[derive(Debug, PartialEq)]
pub(crate) enum Raw<'a> {
    /// A JSON string.
    Text(Cow<'a, str>),
    /// Any other JSON value.
    Json(Value),
}

impl Raw<'_> {
    /// The value as JSON, for fields kept as sent.
    pub(crate) fn into_json(self) -> Value {
        match self {
            Raw::Text(text) => Value::String(text.into_owned()),
            Raw::Json(value) => value,
        }
    }

    /// The text, when the value is a string.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Raw::Text(text) => Some(text),
            Raw::Json(_) => None,
        }
    }

    /// A duration in seconds, read as leniently as [`lenient_seconds`].
    pub(crate) fn seconds(&self) -> Result<Option<Duration>, NumberProblem> {
        match self {
            Raw::Text(text) => seconds_in_text(text),
            Raw::Json(value) => lenient_seconds(value),
        }
    }

    /// Epoch seconds or milliseconds, read as leniently as [`lenient_epoch`].
    pub(crate) fn epoch_time(&self) -> Option<UnixTime> {
        match self {
            Raw::Text(text) => epoch_in_text(text),
            Raw::Json(value) => lenient_epoch(value),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor(PhantomData))
    }
}

struct RawVisitor<'a>(PhantomData<Raw<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for RawVisitor<'a> {
    type Value = Raw<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Raw<'a>, E> {
        Ok(Raw::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Raw<'a>, E> {
        Ok(Raw::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Raw<'a>, E> {
        Ok(Raw::Text(Cow::Owned(text)))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Raw<'a>, E> {
        Ok(Raw::Json(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Raw<'a>, E> {
        Ok(Raw::Json(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Raw<'a>, E> {
        Ok(Raw::Json(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Raw<'a>, E> {
        Ok(Raw::Json(Value::from(value)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw<'a>, E> {
        Ok(Raw::Json(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw<'a>, E> {
        Ok(Raw::Json(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw<'a>, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Raw<'a>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Raw::Json)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw<'a>, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Raw::Json)
    }
}

/// A field that is there, `null` included.
fn present<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Raw<'a>>, D::Error> {
    Raw::deserialize(deserializer).map(Some)
}

/// The fields outside [`Wire`]'s, as sent. A name given twice is an error, as it is for the
/// known fields: which value counts would be a guess.
#[derive(Debug, Default)]
pub(crate) struct Extra(pub(crate) serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for Extra {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExtraVisitor;

        impl<'de> Visitor<'de> for ExtraVisitor {
            type Value = Extra;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extra, A::Error> {
                let mut extra = serde_json::Map::new();
                while let Some(name) = map.next_key::<String>()? {
                    if extra.contains_key(&name) {
                        // The wording of serde's own `duplicate_field`, which `read_wire` reads.
                        return Err(de::Error::custom(format_args!("{DUPLICATE}{name}`")));
                    }
                    let value = map.next_value::<Value>()?;
                    extra.insert(name, value);
                }
                Ok(Extra(extra))
            }
        }

        deserializer.deserialize_map(ExtraVisitor)
    }
}

/// How serde's derive begins the message of a field given twice.
const DUPLICATE: &str = "duplicate field `";

/// Reads a JSON body (`body` starts at its first non-blank byte), or a form-encoded one when
/// `form` (some older servers answer so).
pub(crate) fn read_wire(body: &[u8], form: bool) -> Result<Wire<'_>, Malformation> {
    if form {
        // Every value a string, owned: the form decoder unescapes them.
        let mut object = serde_json::Map::new();
        for (name, value) in form_urlencoded::parse(body) {
            if object.contains_key(name.as_ref()) {
                return Err(duplicate_field(&name));
            }
            object.insert(name.into_owned(), Value::String(value.into_owned()));
        }
        return Wire::deserialize(Value::Object(object)).map_err(|_| Malformation::NotAnObject);
    }
    serde_json::from_slice::<Wire<'_>>(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => {
            duplicate(&error.to_string()).unwrap_or(Malformation::NotAnObject)
        }
        _ => Malformation::NotJson {
            line: error.line(),
            column: error.column(),
        },
    })
}

/// The field named in a "duplicate field" message. Only names reach such a message, never
/// values; the name is shortened and made printable all the same.
fn duplicate(message: &str) -> Option<Malformation> {
    let (name, _) = message.strip_prefix(DUPLICATE)?.rsplit_once('`')?;
    Some(duplicate_field(name))
}

/// A field given twice. The reader knows no secrets, so the name is only cleaned and cut
/// here; the response reader judges such a body again on its field list, with the flow's
/// secrets, and that answer is the one reported.
fn duplicate_field(name: &str) -> Malformation {
    let no_secrets = crate::redact::Redactor::new(&());
    Malformation::DuplicateField(crate::token::printable(name, 64, &no_secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<Wire<'_>, Malformation> {
        read_wire(body.as_bytes(), false)
    }

    #[test]
    fn known_fields_borrow_from_the_body_and_others_are_kept() {
        let wire = json(
            r#"{"access_token":"eyJ.x-y_z~","expires_in":3600,"scope":["a","b"],
                "refresh_token":null,"status":"approved","not_before":null}"#,
        )
        .unwrap();
        assert!(matches!(
            wire.access_token,
            Some(Raw::Text(Cow::Borrowed("eyJ.x-y_z~")))
        ));
        assert_eq!(wire.expires_in, Some(Raw::Json(Value::from(3600u64))));
        assert_eq!(wire.scope, Some(Raw::Json(serde_json::json!(["a", "b"]))));
        assert_eq!(wire.refresh_token, None, "null is absent");
        assert_eq!(wire.extra.0["status"], "approved");
        assert_eq!(wire.extra.0["not_before"], Value::Null);
        let escaped = json(r#"{"access_token":"a\u0041"}"#).unwrap();
        assert_eq!(
            escaped.access_token,
            Some(Raw::Text(Cow::Owned("aA".into())))
        );
    }

    #[test]
    fn error_fields_keep_their_null() {
        let wire = json(r#"{"access_token":"a","error_description":null}"#).unwrap();
        assert_eq!(wire.error_description, Some(Raw::Json(Value::Null)));
        assert_eq!(wire.error, None);
    }

    #[test]
    fn a_field_given_twice_is_named_known_or_not() {
        for (body, name) in [
            (r#"{"access_token":"a","access_token":"b"}"#, "access_token"),
            (r#"{"error":"a","error":null}"#, "error"),
            (r#"{"x":1,"access_token":"a","x":2}"#, "x"),
            (r#"{"a`b":1,"a`b":2}"#, "a`b"),
        ] {
            assert_eq!(
                json(body).unwrap_err(),
                Malformation::DuplicateField(name.into()),
                "{body}"
            );
        }
        let form = read_wire(b"access_token=a&x=1&x=2", true).unwrap_err();
        assert_eq!(form, Malformation::DuplicateField("x".into()));
    }

    #[test]
    fn other_shapes_are_not_objects_and_broken_json_is_not_json() {
        for body in ["[1]", "null", "\"a\"", "42", "true"] {
            assert_eq!(json(body).unwrap_err(), Malformation::NotAnObject, "{body}");
        }
        for body in [r#"{"a":"#, r#"{"a":1} x"#, "{'a':1}"] {
            assert!(
                matches!(json(body).unwrap_err(), Malformation::NotJson { .. }),
                "{body}"
            );
        }
    }

    #[test]
    fn form_bodies_are_text() {
        let wire = read_wire(b"access_token=abc&expires_in=60&scope=a+b&x=%20y", true).unwrap();
        assert_eq!(wire.access_token.as_ref().and_then(Raw::text), Some("abc"));
        assert_eq!(
            wire.expires_in.as_ref().map(Raw::seconds),
            Some(Ok(Some(Duration::from_secs(60))))
        );
        assert_eq!(wire.scope.as_ref().and_then(Raw::text), Some("a b"));
        assert_eq!(wire.extra.0["x"], " y");
    }
}
