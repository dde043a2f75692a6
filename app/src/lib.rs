//! device-api: loadlab's model IoT device-collection API.
//!
//! Devices log in, poll for a command and push measurements; `/statistics` summarises
//! them. The layers, from the outside in:
//!
//! - [`serve`]: the HTTP/1.1 transport: connection cap, header, body and keep-alive
//!   timeouts, JSON for the answers hyper makes itself;
//! - [`http`]: routes, extractors, the error type, metrics middleware, OpenAPI;
//! - [`ingest`]: the group-commit write path (acknowledge only after commit);
//! - [`devices`], [`statistics`], [`model`]: the domain and its reads;
//! - [`db`]: pool, storage engine choice and migrations, partition upkeep and retention.
//!
//! [`run`] serves on a listener the caller bound until a shutdown future resolves, so
//! tests start the real server in-process on port 0.

pub mod config;
pub mod db;
pub mod devices;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod serve;
pub mod statistics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::devices::Devices;
use crate::http::{AppState, Limits, Shared};
use crate::ingest::{Ingest, IngestOptions};
use crate::model::TimeWindow;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid database URL: {0}")]
    DatabaseUrl(sqlx::Error),
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database unreachable for {0:?} at start-up: {1}")]
    DatabaseUnreachable(Duration, String),
    #[error(transparent)]
    Metrics(#[from] loadlab_telemetry::RecorderError),
    /// The storage options cannot be honoured by this database server.
    #[error("{0}")]
    Storage(String),
    #[error("database error at start-up: {0}")]
    Database(sqlx::Error),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

impl From<db::SetupError> for StartError {
    fn from(error: db::SetupError) -> Self {
        match error {
            db::SetupError::Unreachable(waited, why) => Self::DatabaseUnreachable(waited, why),
            db::SetupError::Refused(why) => Self::Storage(why),
            db::SetupError::Migrate(error) => Self::Migrate(error),
            db::SetupError::Database(error) => Self::Database(error),
        }
    }
}

/// Migrates the database, serves the API on `listener` until `shutdown` resolves,
/// then drains: in-flight requests finish, queued rows are committed and answered,
/// and only then does it return.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let recorder = loadlab_telemetry::MetricsRecorder::install("device-api", &metrics::histograms())?;
    metrics::describe();
    let pool = db::pool(&config.database_url, config.pool_size, config.pool_acquire_timeout)
        .map_err(StartError::DatabaseUrl)?;
    let storage = db::setup::prepare(&config.database_url, &config.storage, config.max_measurement_age).await?;
    let engine = storage.engine;
    ::metrics::gauge!(metrics::STORAGE_ENGINE, "engine" => engine.as_str()).set(1.0);
    tracing::info!(
        engine = engine.as_str(),
        chunk_interval = storage.chunk_interval.map(|every| humantime::format_duration(every).to_string()),
        compress_after = storage.compress_after.map(|after| humantime::format_duration(after).to_string()),
        retention = config.storage.retention.0.map(|keep| humantime::format_duration(keep).to_string()),
        "database migrated"
    );

    let background = CancellationToken::new();
    let maintenance = db::Maintenance {
        engine,
        max_measurement_age: config.max_measurement_age,
        retention: config.storage.retention.0,
    }
    .spawn(pool.clone(), background.clone())
    .await;
    let occupancy = db::track_pool_occupancy(pool.clone(), background.clone());
    let (ingest, writers) = Ingest::start(
        pool.clone(),
        IngestOptions {
            batch_max_rows: config.batch_max_rows as usize,
            batch_max_wait: config.batch_max_wait,
            writers: config.writers,
            commit_timeout: config.commit_timeout,
        },
    );
    let state = AppState::new(Shared {
        pool: pool.clone(),
        devices: Arc::new(Devices::new(pool.clone())),
        ingest,
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            max_batch_measurements: config.max_batch_measurements,
            time_window: TimeWindow { max_age: config.max_measurement_age, max_skew: config.max_clock_skew },
        },
        recorder,
    });

    let connections = serve::ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        body_read_timeout: config.body_read_timeout,
        keep_alive_timeout: config.keep_alive_timeout,
        max_connections: config.max_connections,
    };
    warn_if_over_file_limit(config.max_connections, config.pool_size);
    tracing::info!(address = %listener.local_addr()?, "device-api listening");
    serve::serve(listener, http::router(state), connections, shutdown).await;
    // The router, and with it every handle to the ingest queue, is gone: the writers
    // commit what is still queued and stop.
    tracing::info!("draining the write queue");
    writers.finish().await;
    background.cancel();
    let _ = maintenance.await;
    let _ = occupancy.await;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Warns when `--max-connections` cannot be reached: past the open-file limit, accepts
/// fail (and are retried) instead of being answered 503.
fn warn_if_over_file_limit(max_connections: u32, pool_size: u32) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok());
    // The listener, the pool, logs and a margin for the rest.
    let needed = u64::from(max_connections) + u64::from(pool_size) + 64;
    if let Some(soft) = soft
        && needed > soft
    {
        tracing::warn!(
            max_connections,
            open_file_limit = soft,
            "--max-connections is above what the open-file limit allows; lower it or raise the limit (ulimit -n)"
        );
    }
}
