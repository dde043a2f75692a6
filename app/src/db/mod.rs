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

/// How often [`track_pool_occupancy`] looks at the pool.
const OCCUPANCY_SAMPLE: Duration = Duration::from_millis(10);

/// Adds up the pool's connections in use over time, looking every 10 ms, into
/// `device_api_db_pool_in_use_seconds` until `stop`. Its rate is the average number in
/// use: the in-use gauge, read once per scrape, cannot give that for a small pool (a
/// one-connection pool is in use or idle at the scrape's instant; four scrapes of a
/// saturated one read 0.25–1.0).
pub fn track_pool_occupancy(pool: PgPool, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(OCCUPANCY_SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let in_use = pool.size().saturating_sub(pool.num_idle() as u32);
            let now = tokio::time::Instant::now();
            // Weighted by the time since the last look, so a late tick still counts right.
            let seconds = now.duration_since(last).as_secs_f64() * f64::from(in_use);
            ::metrics::gauge!(crate::metrics::POOL_IN_USE_SECONDS).increment(seconds);
            last = now;
        }
    })
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
