//! A scope: the space-separated scope tokens of RFC 6749 §3.3.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A scope as requested or granted: scope tokens separated by single spaces
/// (`"datahub-api offline_access"`).
///
/// Clones share one buffer. The configured scope, the scope of the tokens held and the copy
/// handed to the host for storage are then one string: servers nearly always grant the scope
/// asked for, and it is neither copied nor reallocated on each exchange. It reads as a `&str`
/// (`Deref`), and serializes as a plain string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

impl Scope {
    /// The scope `value`, taken as it is.
    pub fn new(value: impl Into<String>) -> Scope {
        Scope(Arc::from(value.into()))
    }

    /// The scope as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scope tokens, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|token| !token.is_empty())
    }

    /// Whether `token` is one of the scope tokens.
    pub fn contains_token(&self, token: &str) -> bool {
        self.tokens().any(|t| t == token)
    }
}

impl Deref for Scope {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Scope {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Scope {
    fn from(value: String) -> Scope {
        Scope::new(value)
    }
}

impl From<&str> for Scope {
    fn from(value: &str) -> Scope {
        Scope(Arc::from(value))
    }
}

impl PartialEq<str> for Scope {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Scope {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Scope::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_buffer() {
        let scope = Scope::from("api offline_access");
        let copy = scope.clone();
        assert!(std::ptr::eq(scope.as_str(), copy.as_str()));
        assert_eq!(copy, "api offline_access");
    }

    #[test]
    fn reads_as_its_tokens() {
        let scope = Scope::from("qflowapi openid offline_access");
        assert_eq!(
            scope.tokens().collect::<Vec<_>>(),
            ["qflowapi", "openid", "offline_access"]
        );
        assert!(scope.contains_token("openid"));
        assert!(!scope.contains_token("open"));
        assert_eq!(Scope::from("").tokens().count(), 0);
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let scope = Scope::from("datahub-api offline_access");
        let json = serde_json::to_string(&scope).unwrap();
        assert_eq!(json, r#""datahub-api offline_access""#);
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        assert_eq!(
            format!("{scope} {scope:?}"),
            r#"datahub-api offline_access "datahub-api offline_access""#
        );
    }
}
