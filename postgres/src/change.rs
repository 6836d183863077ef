//! The change notifications the stores send, and what a listener makes of them.
//!
//! Every write and every release of a lease sends `NOTIFY` on the table's channel (with
//! `pg_notify`, in the same statement, so only committed changes are announced). The payload
//! is `w <version> <key>` for a write and `r <version> <key>` for a release; several keys share
//! a table, so a listener keeps only its own key's.

use tokenflow::shared::StoreVersion;

/// A change of a store, announced by the replica that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The version the store held right after it.
    pub version: StoreVersion,
}

/// What a [`StoreChange`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Tokens were written with a compare-and-set (or cleared).
    Written,
    /// A lease was released.
    Released,
}

impl StoreChange {
    /// The change a notification payload announces for `key`; `None` for another key's, or
    /// a payload this crate did not send.
    pub(crate) fn parse(payload: &str, key: &str) -> Option<StoreChange> {
        let (kind, rest) = payload.split_once(' ')?;
        let (version, payload_key) = rest.split_once(' ')?;
        if payload_key != key {
            return None;
        }
        let kind = match kind {
            "w" => ChangeKind::Written,
            "r" => ChangeKind::Released,
            _ => return None,
        };
        let version = StoreVersion::new(version.parse().ok()?);
        Some(StoreChange { kind, version })
    }

    /// Of two changes seen in one wait, the one to report: the later version; at equal
    /// versions a release (it follows the write it ends).
    pub(crate) fn merge(self, later: StoreChange) -> StoreChange {
        if later.version >= self.version {
            later
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_kind_version_and_key() {
        assert_eq!(
            StoreChange::parse("w 7 app one", "app one"),
            Some(StoreChange {
                kind: ChangeKind::Written,
                version: StoreVersion::new(7)
            })
        );
        assert_eq!(
            StoreChange::parse("r 0 k", "k"),
            Some(StoreChange {
                kind: ChangeKind::Released,
                version: StoreVersion::EMPTY
            })
        );
    }

    #[test]
    fn other_keys_and_foreign_payloads_are_not_changes() {
        for payload in [
            "w 7 other",
            "w 7 k2",
            "x 7 k",
            "w -1 k",
            "w seven k",
            "w 7",
            "",
            "w",
        ] {
            assert_eq!(StoreChange::parse(payload, "k"), None, "{payload:?}");
        }
    }

    #[test]
    fn the_later_version_wins_a_merge() {
        let w = |v| StoreChange {
            kind: ChangeKind::Written,
            version: StoreVersion::new(v),
        };
        let r = |v| StoreChange {
            kind: ChangeKind::Released,
            version: StoreVersion::new(v),
        };
        assert_eq!(w(3).merge(w(2)), w(3));
        assert_eq!(w(3).merge(r(3)), r(3));
        assert_eq!(w(3).merge(w(4)), w(4));
    }
}
