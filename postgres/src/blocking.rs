//! The blocking store, over the `postgres` crate.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tokenflow::UnixTime;
use tokenflow::shared::{
    CasOutcome, LeaseAnswer, MarkOutcome, SharedSnapshot, SharedTokenStore, StoreChanges,
    StoreVersion,
};
use tokenflow::token::StoredTokens;

use crate::change::StoreChange;
use crate::error::PgStoreError;
use crate::row::{lease_millis, millis_param, snapshot, tokens_param, version_param};
use crate::table::{SCHEMA_LOCK, Statements, TableName, check_key};

/// A [`SharedTokenStore`] in a PostgreSQL table, over one blocking connection.
///
/// One store serves one key (one row): every replica of a client opens a store for the same
/// key. Calls from several threads take turns on the connection. The lease is judged by the
/// database server's clock, so the `now` arguments of the trait are not used; `since` (the
/// start of a refresh's grace window) is stored as given. See the [crate docs](crate).
///
/// Like every `postgres` client, it runs a tokio runtime of its own inside: do not use it, nor
/// drop it, on an async runtime's threads (use [`AsyncPgStore`](crate::AsyncPgStore) there, or
/// `spawn_blocking`).
pub struct PgStore {
    client: Mutex<Client>,
    table: TableName,
    key: String,
    sql: Statements,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.table)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects without TLS with a connection string (`host=… user=… dbname=…` or a
    /// `postgresql://` URL) and opens the store of `key` in the default table.
    ///
    /// For TLS, or any other connection setting, connect the [`Client`] yourself and use
    /// [`PgStore::open`].
    pub fn connect(config: &str, key: &str) -> Result<PgStore, PgStoreError> {
        let client = Client::connect(config, NoTls)
            .map_err(|error| PgStoreError::database("connecting", &error))?;
        PgStore::open(client, TableName::default(), key)
    }

    /// Opens the store of `key` in `table` over a connected client: creates the table and the
    /// key's row if they do not exist yet.
    pub fn open(mut client: Client, table: TableName, key: &str) -> Result<PgStore, PgStoreError> {
        check_key(key)?;
        let sql = Statements::new(&table);
        let during = "creating the store";
        let fail = |error| PgStoreError::database(during, &error);
        let mut transaction = client.transaction().map_err(fail)?;
        transaction.execute(SCHEMA_LOCK, &[]).map_err(fail)?;
        transaction.execute(&sql.create_table, &[]).map_err(fail)?;
        transaction
            .execute(&sql.create_row, &[&key])
            .map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(PgStore {
            client: Mutex::new(client),
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

    fn client(&self) -> MutexGuard<'_, Client> {
        // A panic while holding the connection cannot leave a transaction half done: an
        // unfinished transaction rolls back when dropped.
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SharedTokenStore for PgStore {
    type Error = PgStoreError;

    fn acquire_lease(
        &self,
        holder: &str,
        duration: Duration,
        _now: UnixTime,
    ) -> Result<LeaseAnswer, PgStoreError> {
        let during = "acquiring the lease";
        let fail = |error| PgStoreError::database(during, &error);
        let mut client = self.client();
        let mut transaction = client.transaction().map_err(fail)?;
        let row = transaction
            .query_opt(&self.sql.lock_for_lease, &[&self.key, &holder])
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
                .map_err(fail)?;
        }
        transaction.commit().map_err(fail)?;
        Ok(if busy {
            LeaseAnswer::Busy(held)
        } else {
            LeaseAnswer::Granted(held)
        })
    }

    fn snapshot(&self) -> Result<SharedSnapshot, PgStoreError> {
        let during = "reading the store";
        let row = self
            .client()
            .query_opt(&self.sql.read, &[&self.key])
            .map_err(|error| PgStoreError::database(during, &error))?
            .ok_or(PgStoreError::MissingRow)?;
        snapshot(&row, during)
    }

    fn mark_in_flight(
        &self,
        holder: &str,
        since: UnixTime,
        _now: UnixTime,
    ) -> Result<MarkOutcome, PgStoreError> {
        let since = millis_param(since, "in-flight time")?;
        let marked = self
            .client()
            .execute(&self.sql.mark, &[&self.key, &holder, &since])
            .map_err(|error| PgStoreError::database("marking in flight", &error))?;
        Ok(if marked == 1 {
            MarkOutcome::Marked
        } else {
            MarkOutcome::LeaseLost
        })
    }

    fn compare_and_set(
        &self,
        expected: StoreVersion,
        tokens: Option<&StoredTokens>,
    ) -> Result<CasOutcome, PgStoreError> {
        let during = "writing tokens";
        let fail = |error| PgStoreError::database(during, &error);
        let mut client = self.client();
        let mut transaction = client.transaction().map_err(fail)?;
        // Locked, so that what a conflict reports is what the store holds.
        let row = transaction
            .query_opt(&self.sql.lock_for_write, &[&self.key])
            .map_err(fail)?
            .ok_or(PgStoreError::MissingRow)?;
        let held_version: i64 = row.try_get(0).map_err(fail)?;
        let Some(expected) = version_param(expected).filter(|&v| v == held_version) else {
            let held = snapshot(&row, during)?;
            transaction.commit().map_err(fail)?;
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
            .map_err(fail)?;
        let version: i64 = written.try_get(0).map_err(fail)?;
        transaction.commit().map_err(fail)?;
        let version =
            u64::try_from(version).map_err(|_| PgStoreError::CorruptRow { column: "version" })?;
        Ok(CasOutcome::Written(StoreVersion::new(version)))
    }

    fn release_lease(&self, holder: &str, clear_in_flight: bool) -> Result<(), PgStoreError> {
        self.client()
            .execute(
                &self.sql.release,
                &[&self.key, &holder, &clear_in_flight, &self.table.as_str()],
            )
            .map_err(|error| PgStoreError::database("releasing the lease", &error))?;
        Ok(())
    }
}

/// Waits for changes of one store, announced by `NOTIFY` from every replica, on a connection
/// of its own (a connection that waits cannot serve the store meanwhile).
///
/// Create it when the replica starts, before its first [`acquire_lease`](PgStore::acquire_lease):
/// changes are heard from the moment it exists, and a change made while nobody waits is kept
/// for the next [`wait_for_change`](PgChangeListener::wait_for_change).
///
/// It is a [`StoreChanges`] feed, which tokenflow's clients take with
/// `ClientBuilder::store_changes`: their waiter reads the store after each change and reports
/// it (see the [crate docs](crate)).
pub struct PgChangeListener {
    client: Client,
    key: String,
}

impl fmt::Debug for PgChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgChangeListener")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PgChangeListener {
    /// Connects without TLS and listens for changes of `key` in the default table.
    pub fn connect(config: &str, key: &str) -> Result<PgChangeListener, PgStoreError> {
        let client = Client::connect(config, NoTls)
            .map_err(|error| PgStoreError::database("connecting", &error))?;
        PgChangeListener::open(client, &TableName::default(), key)
    }

    /// Listens for changes of `key` in `table` on a connected client (which it keeps for
    /// itself).
    pub fn open(
        mut client: Client,
        table: &TableName,
        key: &str,
    ) -> Result<PgChangeListener, PgStoreError> {
        check_key(key)?;
        client
            .batch_execute(&Statements::new(table).listen)
            .map_err(|error| PgStoreError::database("listening", &error))?;
        Ok(PgChangeListener {
            client,
            key: key.to_owned(),
        })
    }

    /// Waits up to `timeout` for a change of the store; `None` when none came.
    ///
    /// Changes already announced are reported at once, merged into one (the latest). The
    /// host then reads the store ([`PgStore::snapshot`](SharedTokenStore::snapshot)) and
    /// reports it with
    /// [`StoreReport::Changed`](tokenflow::shared::StoreReport::Changed).
    pub fn wait_for_change(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<StoreChange>, PgStoreError> {
        let deadline = Instant::now() + timeout;
        let fail = |error| PgStoreError::database("waiting for a change", &error);
        let mut notifications = self.client.notifications();
        let key = self.key.as_str();
        // Everything already announced, merged into the latest of this key's changes.
        let drain = |notifications: &mut postgres::Notifications<'_>,
                     seen: &mut Option<StoreChange>| {
            let mut pending = notifications.iter();
            while let Some(notification) = pending.next().map_err(fail)? {
                if let Some(change) = StoreChange::parse(notification.payload(), key) {
                    *seen = Some(seen.map_or(change, |s| s.merge(change)));
                }
            }
            Ok::<_, PgStoreError>(())
        };
        let mut seen = None;
        drain(&mut notifications, &mut seen)?;
        while seen.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut waiting = notifications.timeout_iter(left);
            let Some(notification) = waiting.next().map_err(fail)? else {
                return Ok(None);
            };
            seen = StoreChange::parse(notification.payload(), key);
        }
        drain(&mut notifications, &mut seen)?;
        Ok(seen)
    }
}

/// The feed tokenflow's clients wait on: `true` when [`PgChangeListener::wait_for_change`]
/// heard a change (which one does not matter: the client reads the store after it).
impl StoreChanges for PgChangeListener {
    type Error = PgStoreError;

    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool, PgStoreError> {
        PgChangeListener::wait_for_change(self, timeout).map(|change| change.is_some())
    }
}
