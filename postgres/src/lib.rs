#![doc = include_str!("../README.md")]
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
pub use table::{MAX_KEY_BYTES, TableName};

/// The blocking driver, for connecting with TLS or other settings before [`PgStore::open`].
pub use postgres;
/// The async driver, for connecting with TLS or other settings before [`AsyncPgStore::open`].
pub use tokio_postgres;
