//! The storage options of device-api's command line: which engine a new database gets,
//! TimescaleDB's chunk interval (from the expected ingest rate), compression of old
//! chunks, and retention. Flattened into [`crate::Config`]; [`super::setup`] applies
//! them at start.

use std::time::Duration;

use clap::ValueEnum;

/// What `--storage` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StorageChoice {
    /// TimescaleDB when the server preloads it, otherwise native partitions.
    Auto,
    /// A TimescaleDB hypertable, or refuse to start.
    Timescaledb,
    /// Native partitions, even where TimescaleDB is available.
    Native,
}

impl StorageChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Timescaledb => "timescaledb",
            Self::Native => "native",
        }
    }
}

/// What `--compress-after` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Compress chunks that can no longer receive rows (older than
    /// `--max-measurement-age`) where the server's TimescaleDB can compress.
    Auto,
    /// Compress chunks older than this, or refuse to start where it cannot be done.
    After(Duration),
    /// Never compress.
    Off,
}

/// `--retention`: `None` keeps everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

#[derive(Clone, Debug, clap::Args)]
pub struct StorageOptions {
    /// Which engine stores measurements in a new database. auto: a TimescaleDB
    /// hypertable when the server preloads TimescaleDB, else native day partitions
    /// (with a warning that says how to preload it when it is installed but not
    /// preloaded). timescaledb: the hypertable, or refuse to start. native: native
    /// partitions even where TimescaleDB is available. A migrated database keeps the
    /// engine it has; a choice that contradicts it is refused.
    #[arg(long, env = "DEVICE_API_STORAGE", value_enum, default_value_t = StorageChoice::Auto)]
    pub storage: StorageChoice,

    /// TimescaleDB: the sustained ingest expected, in rows/s. Sets the chunk interval
    /// so that one chunk with its index holds about 512 MiB (a quarter of the lab
    /// database host's memory, where TimescaleDB wants the newest chunk to fit),
    /// rounded down to 1, 2, 5, 10, 15, 20 or 30 minutes, 1–12 hours, or 1, 2 or 7
    /// days.
    #[arg(long, env = "DEVICE_API_EXPECTED_INGEST_RATE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub expected_ingest_rate: u32,

    /// TimescaleDB: the chunk interval, instead of the one derived from
    /// --expected-ingest-rate. A whole divisor of an hour (1min … 30min) or a whole
    /// number of hours, so every hour's rows sit in whole chunks.
    #[arg(long, env = "DEVICE_API_CHUNK_INTERVAL", value_parser = parse_chunk_interval)]
    pub chunk_interval: Option<Duration>,

    /// TimescaleDB: compress chunks older than this (a TimescaleDB compression
    /// policy). auto: those older than --max-measurement-age, which receive no more
    /// rows, where the server's TimescaleDB can compress (its community build,
    /// timescaledb.license = timescale; the Apache-2.0 build cannot, and then nothing
    /// is compressed). A duration demands it: start-up refuses where it cannot be
    /// done. off: never.
    #[arg(long, env = "DEVICE_API_COMPRESS_AFTER", default_value = "auto", value_parser = parse_compression)]
    pub compress_after: Compression,

    /// Drop measurements older than this, whole chunks or day partitions at a time,
    /// checked every hour, with their hourly statistics. Longer than
    /// --max-measurement-age. off keeps everything.
    #[arg(long, env = "DEVICE_API_RETENTION", default_value = "off", value_parser = parse_retention)]
    pub retention: Retention,
}

/// Bytes one `measurement` row takes in a hypertable, heap and its share of the time
/// index, as `benches/statistics.rs` measured it (133 at 10^7 rows; native
/// partitions, with a BRIN index only, take 93).
pub const MEASUREMENT_ROW_BYTES: u64 = 133;
/// What one chunk should hold: a quarter of the 2 GiB of the topology's database host.
pub const CHUNK_TARGET_BYTES: u64 = 512 * 1024 * 1024;

/// The intervals a chunk may have, in seconds: each divides an hour or is a whole
/// number of hours, so chunk boundaries fall on hour boundaries and retention can
/// drop the hourly rollup exactly with the rows.
const CHUNK_STEPS: &[u64] =
    &[60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 14_400, 21_600, 28_800, 43_200, 86_400, 172_800, 604_800];

/// The chunk interval for an expected ingest rate: the longest step whose chunk
/// stays within [`CHUNK_TARGET_BYTES`], at least a minute.
pub fn chunk_interval_for(rows_per_second: u32) -> Duration {
    let bytes_per_second = u64::from(rows_per_second.max(1)) * MEASUREMENT_ROW_BYTES;
    let ideal = CHUNK_TARGET_BYTES / bytes_per_second;
    let step = CHUNK_STEPS.iter().rev().find(|step| **step <= ideal).unwrap_or(&CHUNK_STEPS[0]);
    Duration::from_secs(*step)
}

impl StorageOptions {
    /// The chunk interval to set on a hypertable.
    pub fn chunk_interval(&self) -> Duration {
        self.chunk_interval.unwrap_or_else(|| chunk_interval_for(self.expected_ingest_rate))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (expected e.g. 30min, 6h, 7days)"))
}

fn parse_chunk_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    let seconds = interval.as_secs();
    let aligned = interval.subsec_nanos() == 0
        && seconds >= 60
        && (3600u64.is_multiple_of(seconds) || seconds.is_multiple_of(3600));
    if !aligned {
        return Err("a chunk interval must be a whole divisor of an hour (at least 1min) or a whole number of hours"
            .to_string());
    }
    Ok(interval)
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    match text {
        "auto" => Ok(Compression::Auto),
        "off" => Ok(Compression::Off),
        _ => match parse_duration(text)? {
            zero if zero.is_zero() => Err("use off to disable compression".to_string()),
            after => Ok(Compression::After(after)),
        },
    }
}

fn parse_retention(text: &str) -> Result<Retention, String> {
    match text {
        "off" => Ok(Retention(None)),
        _ => match parse_duration(text)? {
            zero if zero.is_zero() => Err("use off to keep everything".to_string()),
            keep => Ok(Retention(Some(keep))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_interval_follows_the_ingest_rate() {
        // 512 MiB at 133 B/row: 1000 rows/s fill it in 67 min, so 1 h chunks.
        assert_eq!(chunk_interval_for(1000), Duration::from_secs(3600));
        assert_eq!(chunk_interval_for(10_000), Duration::from_secs(300));
        assert_eq!(chunk_interval_for(1_000_000), Duration::from_secs(60), "never below a minute");
        assert_eq!(chunk_interval_for(10), Duration::from_secs(2 * 86_400));
        assert_eq!(chunk_interval_for(1), Duration::from_secs(604_800), "never above a week");
        for rate in [1, 7, 100, 999, 5000, 33_333, u32::MAX] {
            let seconds = chunk_interval_for(rate).as_secs();
            assert!(3600u64.is_multiple_of(seconds) || seconds.is_multiple_of(3600), "{rate} rows/s: {seconds} s");
        }
    }

    #[test]
    fn durations_and_off() {
        assert_eq!(parse_retention("off"), Ok(Retention(None)));
        assert_eq!(parse_retention("30days"), Ok(Retention(Some(Duration::from_secs(30 * 86_400)))));
        assert!(parse_retention("0s").is_err());
        assert!(parse_retention("forever").is_err());
        assert_eq!(parse_compression("auto"), Ok(Compression::Auto));
        assert_eq!(parse_compression("off"), Ok(Compression::Off));
        assert_eq!(parse_compression("2days"), Ok(Compression::After(Duration::from_secs(2 * 86_400))));
        assert!(parse_compression("").is_err());
        assert_eq!(parse_chunk_interval("15min"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_chunk_interval("1day"), Ok(Duration::from_secs(86_400)));
        assert!(parse_chunk_interval("7min").is_err(), "does not divide an hour");
        assert!(parse_chunk_interval("90min").is_err(), "not whole hours");
        assert!(parse_chunk_interval("30s").is_err(), "below a minute");
        assert!(parse_chunk_interval("1.5s").is_err());
    }
}
