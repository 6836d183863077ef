//! The fields of a token response this crate understands, gathered by either reader.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

use crate::time::UnixTime;
use crate::token::fields::{
    Fields, NumberProblem, epoch_in_text, lenient_epoch, lenient_seconds, seconds_in_text,
};

/// A field's value: text (borrowed from the body when it can be) or any other JSON value.
#[derive(Debug, PartialEq)]
pub(crate) enum Raw<'a> {
    /// A JSON string.
    Text(Cow<'a, str>),
    /// Any other JSON value, `null` included.
    Json(Value),
}

impl Raw<'_> {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Raw::Json(Value::Null))
    }

    /// The value as JSON, for fields kept as sent.
    pub(crate) fn into_json(self) -> Value {
        match self {
            Raw::Text(text) => Value::String(text.into_owned()),
            Raw::Json(value) => value,
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

impl From<Value> for Raw<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::String(text) => Raw::Text(Cow::Owned(text)),
            other => Raw::Json(other),
        }
    }
}

/// The known fields of a token response, each absent when missing or `null`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct KnownFields<'a> {
    pub(crate) access_token: Option<Raw<'a>>,
    pub(crate) token_type: Option<Raw<'a>>,
    pub(crate) expires_in: Option<Raw<'a>>,
    pub(crate) refresh_token: Option<Raw<'a>>,
    pub(crate) scope: Option<Raw<'a>>,
    pub(crate) id_token: Option<Raw<'a>>,
    pub(crate) refresh_token_expires_in: Option<Raw<'a>>,
    pub(crate) refresh_expires_in: Option<Raw<'a>>,
    pub(crate) refresh_token_issued_at: Option<Raw<'a>>,
}

/// The names of the known fields.
pub(crate) const KNOWN_FIELDS: [&str; 9] = [
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
    "id_token",
    "refresh_token_expires_in",
    "refresh_expires_in",
    "refresh_token_issued_at",
];

impl<'a> KnownFields<'a> {
    /// The slot for the field `name`, with a bit of its own (for noticing repeats), when
    /// `name` is a known field.
    pub(crate) fn slot(&mut self, name: &str) -> Option<(u16, &mut Option<Raw<'a>>)> {
        let index = KNOWN_FIELDS.iter().position(|&known| known == name)?;
        self.slot_at(index)
    }

    /// The slot for the known field `KNOWN_FIELDS[index]`, with the bit `1 << index`.
    pub(crate) fn slot_at(&mut self, index: usize) -> Option<(u16, &mut Option<Raw<'a>>)> {
        let slot = match index {
            0 => &mut self.access_token,
            1 => &mut self.token_type,
            2 => &mut self.expires_in,
            3 => &mut self.refresh_token,
            4 => &mut self.scope,
            5 => &mut self.id_token,
            6 => &mut self.refresh_token_expires_in,
            7 => &mut self.refresh_expires_in,
            8 => &mut self.refresh_token_issued_at,
            _ => return None,
        };
        Some((1 << index, slot))
    }

    /// Takes the known fields out of `fields`, leaving the others.
    pub(crate) fn take_from(fields: &mut Fields<'a>) -> KnownFields<'a> {
        let mut known = KnownFields::default();
        for name in KNOWN_FIELDS {
            let value = fields.take(name).map(Raw::from);
            if let Some((_, slot)) = known.slot(name) {
                *slot = value;
            }
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_has_a_slot_and_a_bit_of_its_own() {
        let mut known = KnownFields::default();
        let mut bits = 0u16;
        for name in KNOWN_FIELDS {
            let (bit, _) = known.slot(name).expect("a slot");
            assert_eq!(bits & bit, 0, "{name}");
            bits |= bit;
        }
        assert!(known.slot("error").is_none());
        assert!(known.slot_at(KNOWN_FIELDS.len()).is_none());
    }

    #[test]
    fn text_and_json_read_alike() {
        let text = Raw::Text(Cow::Borrowed("86399"));
        let json = Raw::from(Value::String("86399".into()));
        assert_eq!(text.seconds(), json.seconds());
        assert_eq!(text.seconds(), Ok(Some(Duration::from_secs(86399))));
        assert_eq!(
            Raw::Text(Cow::Borrowed("1521035756257")).epoch_time(),
            Some(UnixTime::from_millis(1_521_035_756_257))
        );
        assert!(Raw::Json(Value::Null).is_null());
    }
}
