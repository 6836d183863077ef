//! Reading a snapshot out of the store's row, and turning values into `bigint`s.

use tokenflow::UnixTime;
use tokenflow::shared::{InFlightRefresh, SharedSnapshot, StoreVersion};
use tokenflow::token::StoredTokens;
use tokio_postgres::Row;

use crate::error::PgStoreError;

/// The snapshot in the first three columns of `row` (`version, tokens, in_flight_since_ms`).
/// A value the store never writes is an error, not a panic.
pub(crate) fn snapshot(row: &Row, during: &'static str) -> Result<SharedSnapshot, PgStoreError> {
    let version: i64 = row
        .try_get(0)
        .map_err(|error| PgStoreError::database(during, &error))?;
    let tokens: Option<String> = row
        .try_get(1)
        .map_err(|error| PgStoreError::database(during, &error))?;
    let in_flight: Option<i64> = row
        .try_get(2)
        .map_err(|error| PgStoreError::database(during, &error))?;
    let version =
        u64::try_from(version).map_err(|_| PgStoreError::CorruptRow { column: "version" })?;
    let tokens = tokens
        .map(|json| StoredTokens::from_json(json.as_bytes()))
        .transpose()
        .map_err(PgStoreError::CorruptTokens)?;
    let in_flight = in_flight
        .map(|millis| {
            u64::try_from(millis).map(|millis| InFlightRefresh {
                since: UnixTime::from_millis(millis),
            })
        })
        .transpose()
        .map_err(|_| PgStoreError::CorruptRow {
            column: "in_flight_since_ms",
        })?;
    Ok(SharedSnapshot {
        version: StoreVersion::new(version),
        tokens,
        in_flight,
    })
}

/// A version as a `bigint`; `None` for one no row can hold.
pub(crate) fn version_param(version: StoreVersion) -> Option<i64> {
    i64::try_from(version.get()).ok()
}

/// A replica's wall-clock time as `bigint` milliseconds.
pub(crate) fn millis_param(time: UnixTime, what: &'static str) -> Result<i64, PgStoreError> {
    i64::try_from(time.as_millis()).map_err(|_| PgStoreError::OutOfRange { what })
}

/// The longest lease: longer durations are cut to it (a century, far beyond any use, and far
/// from the end of PostgreSQL's timestamps).
const LONGEST_LEASE_MILLIS: f64 = 100.0 * 365.25 * 24.0 * 3600.0 * 1000.0;

/// A lease duration in milliseconds, as the `float8` the lease statement multiplies.
pub(crate) fn lease_millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).min(LONGEST_LEASE_MILLIS)
}

/// The tokens as stored: the JSON of [`StoredTokens::to_json`], byte for byte.
pub(crate) fn tokens_param(tokens: Option<&StoredTokens>) -> Option<String> {
    // `to_json` writes JSON, which is UTF-8.
    tokens.map(|tokens| String::from_utf8_lossy(&tokens.to_json()).into_owned())
}
