//! The async store, over `tokio-postgres`.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokenflow::UnixTime;
use tokenflow::shared::{CasOutcome, LeaseAnswer, MarkOutcome, SharedSnapshot, StoreVersion};
use tokenflow::token::StoredTokens;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};

use crate::change::StoreChange;
use crate::error::PgStoreError;
use crate::row::{lease_millis, millis_param, snapshot, tokens_param, version_param};
use crate::table::{SCHEMA_LOCK, Statements, TableName, check_key};

/// The store of [`PgStore`](crate::PgStore) for async hosts: the same table, rows, lease and
/// notifications, and the operations of
/// [`SharedTokenStore`](tokenflow::shared::SharedTokenStore) as `async fn`s of the same names.
/// Stores of both kinds can serve replicas of one client together.
///
/// Calls from several tasks take turns on the connection.
pub struct AsyncPgStore {
    client: tokio::sync::Mutex<Client>,
    table: TableName,
    key: String,
    sql: Statements,
}

impl fmt::Debug for AsyncPgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgStore")
            .field("table", &self.table)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl AsyncPgStore {
    /// Connects without TLS with a connection string and opens the store of `key` in the
    /// default table. The connection is driven by a task spawned on the current tokio runtime.
    ///
    /// For TLS, or any other connection setting, connect yourself (spawning the
    /// [`Connection`]) and use [`AsyncPgStore::open`].
    pub async fn connect(config: &str, key: &str) -> Result<AsyncPgStore, PgStoreError> {
        let (client, connection) = tokio_postgres::connect(config, NoTls)
            .await
            .map_err(|error| PgStoreError::database("connecting", &error))?;
        tokio::spawn(async move {
            // Its end shows as errors of the client's calls.
            let _ = connection.await;
        });
        AsyncPgStore::open(client, TableName::default(), key).await
    }

    /// Opens the store of `key` in `table` over a connected client (whose connection is
    /// driven elsewhere): creates the table and the key's row if they do not exist yet.
    pub async fn open(
        mut client: Client,
        table: TableName,
        key: &str,
    ) -> Result<AsyncPgStore, PgStoreError> {
        check_key(key)?;
        let sql = Statements::new(&table);
        let during = "creating the store";
        let fail = |error| PgStoreError::database(during, &error);
        let transaction = client.transaction().await.map_err(fail)?;
        transaction.execute(SCHEMA_LOCK, &[]).await.map_err(fail)?;
        transaction
            .execute(&sql.create_table, &[])
            .await
            .map_err(fail)?;
        transaction
            .execute(&sql.create_row, &[&key])
            .await
            .map_err(fail)?;
        transaction.commit().await.map_err(fail)?;
        Ok(AsyncPgStore {
            client: tokio::sync::Mutex::new(client),
            table,
            key: key.to_owned(),
            sql,
        })
    }

    /// The key this store serves.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The table it lives in.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// As [`SharedTokenStore::acquire_lease`](tokenflow::shared::SharedTokenStore::acquire_lease),
    /// with the lease judged by the server's clock (`now` is not used).
    pub async fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
        _now: UnixTime,
    ) -> Result<LeaseAnswer, PgStoreError> {
        let during = "acquiring the lease";
        let fail = |error| PgStoreError::database(during, &error);
        let mut client = self.client.lock().await;
        let transaction = client.transaction().await.map_err(fail)?;
        let row = transaction
            .query_opt(&self.sql.lock_for_lease, &[&self.key, &holder])
            .await
            .map_err(fail)?
            .ok_or(PgStoreError::MissingRow)?;
        // Unreadable tokens end the transaction here, before the lease is taken.
        let held = snapshot(&row, during)?;
        let busy: bool = row.try_get(3).map_err(fail)?;
        if !busy {
            transaction
                .execute(
                    &self.sql.take_lease,
                    &[&self.key, &holder, &lease_millis(duration)],
                )
                .await
                .map_err(fail)?;
        }
        transaction.commit().await.map_err(fail)?;
        Ok(if busy {
            LeaseAnswer::Busy(held)
        } else {
            LeaseAnswer::Granted(held)
        })
    }

    /// As [`SharedTokenStore::snapshot`](tokenflow::shared::SharedTokenStore::snapshot).
    pub async fn snapshot(&self) -> Result<SharedSnapshot, PgStoreError> {
        let during = "reading the store";
        let row = self
            .client
            .lock()
            .await
            .query_opt(&self.sql.read, &[&self.key])
            .await
            .map_err(|error| PgStoreError::database(during, &error))?
            .ok_or(PgStoreError::MissingRow)?;
        snapshot(&row, during)
    }

    /// As [`SharedTokenStore::mark_in_flight`](tokenflow::shared::SharedTokenStore::mark_in_flight),
    /// with the lease judged by the server's clock (`now` is not used).
    pub async fn mark_in_flight(
        &self,
        holder: &str,
        since: UnixTime,
        _now: UnixTime,
    ) -> Result<MarkOutcome, PgStoreError> {
        let since = millis_param(since, "in-flight time")?;
        let marked = self
            .client
            .lock()
            .await
            .execute(&self.sql.mark, &[&self.key, &holder, &since])
            .await
            .map_err(|error| PgStoreError::database("marking in flight", &error))?;
        Ok(if marked == 1 {
            MarkOutcome::Marked
        } else {
            MarkOutcome::LeaseLost
        })
    }

    /// As [`SharedTokenStore::compare_and_set`](tokenflow::shared::SharedTokenStore::compare_and_set).
    pub async fn compare_and_set(
        &self,
        expected: StoreVersion,
        tokens: Option<&StoredTokens>,
    ) -> Result<CasOutcome, PgStoreError> {
        let during = "writing tokens";
        let fail = |error| PgStoreError::database(during, &error);
        let mut client = self.client.lock().await;
        let transaction = client.transaction().await.map_err(fail)?;
        // Locked, so that what a conflict reports is what the store holds.
        let row = transaction
            .query_opt(&self.sql.lock_for_write, &[&self.key])
            .await
            .map_err(fail)?
            .ok_or(PgStoreError::MissingRow)?;
        let held_version: i64 = row.try_get(0).map_err(fail)?;
        let Some(expected) = version_param(expected).filter(|&v| v == held_version) else {
            let held = snapshot(&row, during)?;
            transaction.commit().await.map_err(fail)?;
            return Ok(CasOutcome::Conflict(held));
        };
        let written = transaction
            .query_one(
                &self.sql.write,
                &[
                    &self.key,
                    &expected,
                    &tokens_param(tokens),
                    &self.table.as_str(),
                ],
            )
            .await
            .map_err(fail)?;
        let version: i64 = written.try_get(0).map_err(fail)?;
        transaction.commit().await.map_err(fail)?;
        let version =
            u64::try_from(version).map_err(|_| PgStoreError::CorruptRow { column: "version" })?;
        Ok(CasOutcome::Written(StoreVersion::new(version)))
    }

    /// As [`SharedTokenStore::release_lease`](tokenflow::shared::SharedTokenStore::release_lease).
    pub async fn release_lease(
        &self,
        holder: &str,
        clear_in_flight: bool,
    ) -> Result<(), PgStoreError> {
        self.client
            .lock()
            .await
            .execute(
                &self.sql.release,
                &[&self.key, &holder, &clear_in_flight, &self.table.as_str()],
            )
            .await
            .map_err(|error| PgStoreError::database("releasing the lease", &error))?;
        Ok(())
    }
}

/// Waits for changes of one store, as [`PgChangeListener`](crate::PgChangeListener) does, on
/// a connection of its own whose messages a spawned task reads.
///
/// Create it when the replica starts: changes are heard from the moment it exists, and a
/// change made while nobody waits is kept for the next
/// [`wait_for_change`](AsyncChangeListener::wait_for_change).
pub struct AsyncChangeListener {
    _client: Client,
    inbox: Arc<Inbox>,
    key: String,
}

impl fmt::Debug for AsyncChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncChangeListener")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What the connection's task hands the listener.
#[derive(Default)]
struct Inbox {
    /// This key's changes not yet reported, merged into the latest.
    pending: Mutex<Option<StoreChange>>,
    /// The connection ended.
    closed: AtomicBool,
    /// Woken on each change and at the end (a wake with nobody waiting is kept).
    wake: Notify,
}

impl AsyncChangeListener {
    /// Connects without TLS and listens for changes of `key` in the default table. The
    /// connection is read by a task spawned on the current tokio runtime.
    pub async fn connect(config: &str, key: &str) -> Result<AsyncChangeListener, PgStoreError> {
        let (client, connection) = tokio_postgres::connect(config, NoTls)
            .await
            .map_err(|error| PgStoreError::database("connecting", &error))?;
        AsyncChangeListener::open(client, connection, &TableName::default(), key).await
    }

    /// Listens for changes of `key` in `table` on a connected client and its connection
    /// (which it drives itself, on a spawned task: a connection merely awaited drops the
    /// notifications).
    pub async fn open<S, T>(
        client: Client,
        connection: Connection<S, T>,
        table: &TableName,
        key: &str,
    ) -> Result<AsyncChangeListener, PgStoreError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        check_key(key)?;
        let inbox = Arc::new(Inbox::default());
        tokio::spawn(read_messages(
            connection,
            key.to_owned(),
            Arc::clone(&inbox),
        ));
        client
            .batch_execute(&Statements::new(table).listen)
            .await
            .map_err(|error| PgStoreError::database("listening", &error))?;
        Ok(AsyncChangeListener {
            _client: client,
            inbox,
            key: key.to_owned(),
        })
    }

    /// Waits up to `timeout` for a change of the store; `None` when none came. Changes
    /// already announced are reported at once, merged into one (the latest).
    pub async fn wait_for_change(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<StoreChange>, PgStoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self
                .inbox
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if pending.is_some() {
                return Ok(pending);
            }
            if self.inbox.closed.load(Ordering::Acquire) {
                return Err(PgStoreError::ListenerClosed);
            }
            if tokio::time::timeout_at(deadline, self.inbox.wake.notified())
                .await
                .is_err()
            {
                return Ok(None);
            }
        }
    }
}

/// Drives the listener's connection, keeping its key's notifications, until it ends (when
/// the listener, and with it the client, is dropped, or the server goes away).
async fn read_messages<S, T>(mut connection: Connection<S, T>, key: String, inbox: Arc<Inbox>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = poll_fn(|cx| connection.poll_message(cx)).await {
        let AsyncMessage::Notification(notification) = message else {
            continue;
        };
        if let Some(change) = StoreChange::parse(notification.payload(), &key) {
            let mut pending = inbox.pending.lock().unwrap_or_else(PoisonError::into_inner);
            *pending = Some(pending.map_or(change, |seen| seen.merge(change)));
            drop(pending);
            inbox.wake.notify_one();
        }
    }
    inbox.closed.store(true, Ordering::Release);
    inbox.wake.notify_one();
}
