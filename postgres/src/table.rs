//! The table a store lives in, and every statement the stores send to it.
//!
//! Both stores (blocking and async) send the same statements; they only differ in how they
//! wait for the answers.

use std::fmt;

use crate::error::{InvalidTableName, PgStoreError};

/// The name of the table holding the stores, one row per key. It also names the channel of
/// the change notifications.
///
/// Restricted to a plain lower-case identifier, so that it can be written into statements
/// without quoting and `LISTEN` hears the channel `pg_notify` sends on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName(String);

impl TableName {
    /// The default table: `tokenflow_shared_tokens`.
    pub const DEFAULT: &'static str = "tokenflow_shared_tokens";

    /// A table name: 1 to 63 characters of `a-z`, `0-9` and `_`, not starting with a digit.
    pub fn new(name: &str) -> Result<TableName, InvalidTableName> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if first_ok && rest_ok && name.len() <= 63 {
            Ok(TableName(name.to_owned()))
        } else {
            Err(InvalidTableName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TableName {
    fn default() -> Self {
        TableName(Self::DEFAULT.to_owned())
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest store key. A notification's payload (at most 8000 bytes) carries the key.
pub const MAX_KEY_BYTES: usize = 4096;

/// Checks a store key before anything is created for it.
pub(crate) fn check_key(key: &str) -> Result<(), PgStoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.contains('\0') {
        return Err(PgStoreError::InvalidKey);
    }
    Ok(())
}

/// Serializes concurrent schema creation: `CREATE TABLE IF NOT EXISTS` run by two sessions
/// at once can fail with a unique violation in the catalog.
pub(crate) const SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(7423195066720531301)";

/// The statements for one table, written once when a store opens.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// Creates the table if it does not exist.
    pub create_table: String,
    /// Creates the row of a key (`$1`) if it does not exist.
    pub create_row: String,
    /// The row of `$1`, locked; whether a holder other than `$2` holds a running lease.
    pub lock_for_lease: String,
    /// Gives the lease of `$1` to `$2` for `$3` milliseconds (a `float8`).
    pub take_lease: String,
    /// The row of `$1`.
    pub read: String,
    /// The row of `$1`, locked.
    pub lock_for_write: String,
    /// Marks `$1` in flight since `$3` if `$2` holds a running lease.
    pub mark: String,
    /// Writes tokens `$3` over version `$2` of `$1` and notifies `$4`; returns the new version.
    pub write: String,
    /// Releases the lease of `$1` if `$2` holds it, with `$3` clearing the mark, and notifies.
    pub release: String,
    /// `LISTEN` on the table's channel.
    pub listen: String,
}

/// The columns every snapshot is read from, in the order [`crate::row`] decodes them.
const SNAPSHOT_COLUMNS: &str = "version, tokens, in_flight_since_ms";

impl Statements {
    pub(crate) fn new(table: &TableName) -> Statements {
        let t = table.as_str();
        Statements {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    key text PRIMARY KEY,
                    version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
                    tokens text,
                    in_flight_since_ms bigint,
                    lease_holder text,
                    lease_expires_at timestamptz
                )"
            ),
            create_row: format!("INSERT INTO {t} (key) VALUES ($1) ON CONFLICT (key) DO NOTHING"),
            // The lease is judged by the server's clock, the one clock every replica shares.
            lock_for_lease: format!(
                "SELECT {SNAPSHOT_COLUMNS},
                        COALESCE(lease_holder <> $2 AND lease_expires_at > clock_timestamp(), false)
                 FROM {t} WHERE key = $1 FOR UPDATE"
            ),
            take_lease: format!(
                "UPDATE {t} SET lease_holder = $2,
                                lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond'
                 WHERE key = $1"
            ),
            read: format!("SELECT {SNAPSHOT_COLUMNS} FROM {t} WHERE key = $1"),
            lock_for_write: format!("SELECT {SNAPSHOT_COLUMNS} FROM {t} WHERE key = $1 FOR UPDATE"),
            mark: format!(
                "UPDATE {t} SET in_flight_since_ms = $3
                 WHERE key = $1 AND lease_holder = $2 AND lease_expires_at > clock_timestamp()"
            ),
            // The notification is sent when the transaction commits, never for a rollback.
            write: format!(
                "WITH written AS (
                    UPDATE {t} SET version = version + 1, tokens = $3, in_flight_since_ms = NULL
                    WHERE key = $1 AND version = $2
                    RETURNING version
                 )
                 SELECT version, pg_notify($4, 'w ' || version || ' ' || $1) FROM written"
            ),
            release: format!(
                "WITH released AS (
                    UPDATE {t} SET lease_holder = NULL, lease_expires_at = NULL,
                        in_flight_since_ms = CASE WHEN $3 THEN NULL ELSE in_flight_since_ms END
                    WHERE key = $1 AND lease_holder = $2
                    RETURNING version
                 )
                 SELECT pg_notify($4, 'r ' || version || ' ' || $1) FROM released"
            ),
            listen: format!("LISTEN {t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_not_empty_nor_too_long_for_a_notification() {
        assert_eq!(check_key("client/app"), Ok(()));
        assert_eq!(check_key(&"k".repeat(MAX_KEY_BYTES)), Ok(()));
        for bad in [
            String::new(),
            "k".repeat(MAX_KEY_BYTES + 1),
            "a\0b".to_owned(),
        ] {
            assert_eq!(check_key(&bad), Err(PgStoreError::InvalidKey), "{bad:?}");
        }
    }

    #[test]
    fn only_plain_lower_case_identifiers_name_a_table() {
        for good in ["t", "_t", "tokens_2", &"a".repeat(63)] {
            assert!(TableName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "2t",
            "T",
            "a-b",
            "a b",
            "a;drop",
            "\"a\"",
            "é",
            &"a".repeat(64),
        ] {
            assert_eq!(TableName::new(bad), Err(InvalidTableName), "{bad}");
        }
    }
}
