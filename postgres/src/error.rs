//! What can go wrong with a PostgreSQL store, with no secret in any message.

use std::error::Error as StdError;
use std::fmt;

use tokenflow::token::RestoreError;
use tokio_postgres::error::SqlState;

/// An error of [`PgStore`](crate::PgStore), [`AsyncPgStore`](crate::AsyncPgStore) or a change
/// listener.
///
/// It never carries a token: from the database's own errors it keeps only the SQLSTATE code
/// and the primary message, never the `DETAIL` (which can quote a whole row, tokens
/// included), and the driver's error itself is not kept as a [`source`](StdError::source).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PgStoreError {
    /// Talking to the database failed, or the database refused a statement.
    Database {
        /// What the store was doing.
        during: &'static str,
        /// The SQLSTATE code, when the server answered with an error.
        code: Option<SqlState>,
        /// The driver's description, or the server's primary message.
        message: String,
        /// Whether the connection is closed: the store must be opened again.
        closed: bool,
    },
    /// The stored tokens cannot be read back.
    CorruptTokens(RestoreError),
    /// A column of the store's row holds a value the store never writes (a negative version
    /// or time, or a NULL version).
    CorruptRow {
        /// The column.
        column: &'static str,
    },
    /// The store's row is gone (deleted by hand while the store was open). Opening the store
    /// again creates an empty one.
    MissingRow,
    /// A time or version too large for a PostgreSQL `bigint`.
    OutOfRange {
        /// Which value.
        what: &'static str,
    },
    /// A change listener's connection ended.
    ListenerClosed,
    /// A store key that cannot be used: empty, longer than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)
    /// (notifications carry it, and their payload is limited), or holding a NUL character.
    InvalidKey,
}

impl PgStoreError {
    /// Whether the store could not be reached, or the server could not serve it for now (as
    /// opposed to holding bad data or refusing a statement): the case a host reports as
    /// [`StoreReport::Unavailable`](tokenflow::shared::StoreReport::Unavailable) when acquiring
    /// the lease. True for a failed or closed connection (no SQLSTATE), a connection exception
    /// (SQLSTATE class 08), insufficient resources (53), an operator intervention such as a
    /// shutdown (57), and a serialization failure or deadlock (40).
    pub fn is_unavailable(&self) -> bool {
        match self {
            PgStoreError::Database { code: None, .. } | PgStoreError::ListenerClosed => true,
            PgStoreError::Database {
                code: Some(code),
                closed,
                ..
            } => {
                *closed
                    || ["08", "40", "53", "57"]
                        .iter()
                        .any(|c| code.code().starts_with(c))
            }
            _ => false,
        }
    }

    pub(crate) fn database(during: &'static str, error: &tokio_postgres::Error) -> PgStoreError {
        let message = match error.as_db_error() {
            // The primary message only: the DETAIL may quote the row, tokens and all.
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => match error.source() {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            },
        };
        PgStoreError::Database {
            during,
            code: error.code().cloned(),
            message,
            closed: error.is_closed(),
        }
    }
}

impl fmt::Display for PgStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgStoreError::Database {
                during,
                code,
                message,
                ..
            } => {
                write!(f, "{during} failed: {message}")?;
                if let Some(code) = code {
                    write!(f, " (SQLSTATE {})", code.code())?;
                }
                Ok(())
            }
            PgStoreError::CorruptTokens(error) => {
                write!(f, "the shared store holds unreadable tokens: {error}")
            }
            PgStoreError::CorruptRow { column } => {
                write!(f, "the shared store's row holds an invalid {column}")
            }
            PgStoreError::MissingRow => {
                f.write_str("the shared store's row was deleted while the store was open")
            }
            PgStoreError::OutOfRange { what } => {
                write!(f, "the {what} is too large for the database")
            }
            PgStoreError::ListenerClosed => {
                f.write_str("the connection listening for store changes is closed")
            }
            PgStoreError::InvalidKey => write!(
                f,
                "a store key is 1 to {} bytes with no NUL character",
                crate::MAX_KEY_BYTES
            ),
        }
    }
}

impl StdError for PgStoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PgStoreError::CorruptTokens(error) => Some(error),
            _ => None,
        }
    }
}

/// A table name refused by [`TableName::new`](crate::TableName::new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTableName;

impl fmt::Display for InvalidTableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a table name is 1 to 63 characters of a-z, 0-9 and _, not starting with a digit",
        )
    }
}

impl StdError for InvalidTableName {}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(code: Option<&str>) -> PgStoreError {
        PgStoreError::Database {
            during: "testing",
            code: code.map(SqlState::from_code),
            message: String::new(),
            closed: false,
        }
    }

    #[test]
    fn unreachable_or_busy_servers_are_unavailable_and_refusals_are_not() {
        for code in [
            None,
            Some("08006"),
            Some("57P01"),
            Some("53300"),
            Some("40001"),
        ] {
            assert!(database(code).is_unavailable(), "{code:?}");
        }
        for code in ["42P01", "23514", "42501", "22P02"] {
            assert!(!database(Some(code)).is_unavailable(), "{code}");
        }
        assert!(PgStoreError::ListenerClosed.is_unavailable());
        assert!(!PgStoreError::MissingRow.is_unavailable());
        assert!(!PgStoreError::InvalidKey.is_unavailable());
    }
}
