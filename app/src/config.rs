//! device-api's configuration: every option is a command-line flag and also a
//! `DEVICE_API_*` environment variable. Tests build a [`Config`] directly.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use loadlab_telemetry::LogFormat;

/// The model IoT device-collection API.
///
/// Devices log in (`POST /login`), poll for a command (`GET /command`) and push
/// measurements (`POST /measurement`, `POST /measurements`); `GET /statistics` summarises
/// them. The schema is migrated at start. See `GET /openapi.json` for every route.
#[derive(Clone, Debug, Parser)]
#[command(name = "device-api", version)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "DEVICE_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL connection URL, e.g. postgres://user@host:5432/db.
    #[arg(long, env = "DEVICE_API_DATABASE_URL")]
    pub database_url: String,

    /// Most connections in the database pool.
    #[arg(long, env = "DEVICE_API_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,

    /// How long a request waits for a pooled connection before it is answered 503.
    #[arg(long, env = "DEVICE_API_POOL_ACQUIRE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub pool_acquire_timeout: Duration,

    /// Group commit: most rows written in one insert and one commit.
    #[arg(long, env = "DEVICE_API_BATCH_MAX_ROWS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_max_rows: u32,

    /// Group commit: how long a batch waits for more rows after its first one.
    /// 0 commits whatever has queued at once.
    #[arg(long, env = "DEVICE_API_BATCH_MAX_WAIT", default_value = "2ms", value_parser = humantime::parse_duration)]
    pub batch_max_wait: Duration,

    /// Group commit: batches committed concurrently (each one a writer task with its
    /// own connection).
    #[arg(long, env = "DEVICE_API_WRITERS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,

    /// A batch commit slower than this is abandoned and its requests answered 503
    /// (the rows may or may not be stored; none was acknowledged).
    #[arg(long, env = "DEVICE_API_COMMIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub commit_timeout: Duration,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "DEVICE_API_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most measurements in one `POST /measurements` array.
    #[arg(long, env = "DEVICE_API_MAX_BATCH_MEASUREMENTS", default_value_t = 1000)]
    pub max_batch_measurements: usize,

    /// Oldest measurement time accepted, as an age (older is refused with 422).
    #[arg(long, env = "DEVICE_API_MAX_MEASUREMENT_AGE", default_value = "7days", value_parser = humantime::parse_duration)]
    pub max_measurement_age: Duration,

    /// How far in the future a measurement time may be (device clock skew).
    #[arg(long, env = "DEVICE_API_MAX_CLOCK_SKEW", default_value = "5min", value_parser = humantime::parse_duration)]
    pub max_clock_skew: Duration,

    /// How long a client has to send a complete request head (request line and
    /// headers): counted from the moment the connection is accepted for its first
    /// request, and from the first byte of each later one. A connection that misses it
    /// is closed without an answer.
    #[arg(long, env = "DEVICE_API_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_read_timeout: Duration,

    /// How long a client has to send a whole request body, counted from the end of its
    /// head. A body still arriving then is answered 408 (JSON, `Connection: close`) and
    /// its connection closed; a body the route does not read ends the connection.
    #[arg(long, env = "DEVICE_API_BODY_READ_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub body_read_timeout: Duration,

    /// How long a kept-alive connection may sit idle after a response before the next
    /// request begins; then it is closed (silently, as HTTP allows for an idle
    /// connection).
    #[arg(long, env = "DEVICE_API_KEEP_ALIVE_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    pub keep_alive_timeout: Duration,

    /// Most client connections open at once. One more is answered at once with 503
    /// (JSON, `Retry-After`, `Connection: close`) and closed. Keep it below the
    /// process's open-file limit (`ulimit -n`), with room for the database pool.
    #[arg(long, env = "DEVICE_API_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// How measurements are stored: engine, chunk interval, compression, retention.
    #[command(flatten)]
    pub storage: crate::db::StorageOptions,

    /// Log format on stderr.
    #[arg(long, env = "DEVICE_API_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Validate the options, print the resolved configuration and exit without
    /// connecting to anything.
    #[arg(long)]
    pub check_config: bool,
}

/// A duration for a timeout: humantime syntax, and not zero (a zero timeout would
/// close every connection at once).
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

impl Config {
    /// The configuration a test wants: everything default but the database.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut config = Self::parse_from(["device-api", "--database-url", "postgres://unused"]);
        config.database_url = database_url.into();
        config
    }
}
