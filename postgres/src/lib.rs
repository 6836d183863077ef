//! A PostgreSQL shared token store for [`tokenflow`]. Docs: see README.
#![forbid(unsafe_code)]

mod blocking;
mod change;
mod error;
mod nonblocking;
mod row;
mod table;
#[cfg(feature = "test-server")]
pub mod testing;

pub use blocking::{PgChangeListener, PgStore};
pub use change::{ChangeKind, StoreChange};
pub use error::{InvalidTableName, PgStoreError};
pub use nonblocking::{AsyncChangeListener, AsyncPgStore};
pub use table::TableName;

/// The drivers, for connecting with TLS or other settings before [`PgStore::open`] and
/// [`AsyncPgStore::open`].
pub use postgres;
/// See [`postgres`].
pub use tokio_postgres;
