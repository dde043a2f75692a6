//! The database: pool, migrations, which storage engine holds `measurement` (chosen
//! at start, [`setup`]), its upkeep, and how database errors are classified
//! (unavailable, which clients may retry, or a bug).

mod engine;
mod maintenance;
mod migrations;
mod options;
pub mod setup;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use engine::StorageEngine;
pub use maintenance::Maintenance;
pub use options::{
    CHUNK_TARGET_BYTES, Compression, MEASUREMENT_ROW_BYTES, Retention, StorageChoice, StorageOptions,
    chunk_interval_for,
};
pub use setup::{SetupError, Storage};

/// Migrations embedded in the binary, applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens a lazily-connecting pool: the service starts, answers `/health` and reports
/// `/ready` false while the database is down, and connects when it comes back.
pub fn pool(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A connection that died with the server is found out here, not by a request.
        .test_before_acquire(true)
        .connect_lazy_with(options.application_name("device-api")))
}

/// Whether an error means "the database is not reachable right now" (answer 503 and
/// let the client retry) rather than a fault in a query.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown,
            // cannot connect now; 53300: too many connections; 40001/40P01: retryable.
            code.starts_with("08") || code.starts_with("57P0") || code == "53300" || code == "40001" || code == "40P01"
        }),
        _ => false,
    }
}

/// Checks a connection out of the pool, recording how long the wait took: the signal
/// that says the pool, not the database, is the bottleneck.
pub async fn acquire(pool: &PgPool) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
    let started = std::time::Instant::now();
    let connection = pool.acquire().await;
    metrics::histogram!(crate::metrics::POOL_ACQUIRE_DURATION).record(started.elapsed().as_secs_f64());
    connection
}
