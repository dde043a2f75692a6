//! Start-up of the storage: look at the server (is TimescaleDB installed, preloaded,
//! already holding `measurement`?), decide the engine from that and `--storage`,
//! migrate with the decision passed to the migrations, then apply the TimescaleDB
//! settings (chunk interval, compression policy).
//!
//! The decision is made here, before migrating, because `CREATE EXTENSION timescaledb`
//! on a server that does not preload it ends the session with a FATAL error that no
//! SQL exception handler can catch. The migrations still hold the one schema: they
//! read the decision from the session setting `loadlab.storage`.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::engine::StorageEngine;
use super::options::{Compression, StorageChoice, StorageOptions};

/// How to make a server preload TimescaleDB; part of every message about it.
pub const PRELOAD_HINT: &str = "add shared_preload_libraries = 'timescaledb' to the database server's \
     postgresql.conf and restart it";

/// How long start-up keeps trying while the database is unreachable.
const STARTUP_DATABASE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("database unreachable for {0:?} at start-up: {1}")]
    Unreachable(Duration, String),
    /// The options cannot be honoured on this server; the text says why and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error while setting up storage: {0}")]
    Database(#[from] sqlx::Error),
}

/// What the server offers, read before migrating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerFacts {
    /// TimescaleDB is installed beside the server (`pg_available_extensions`).
    pub available: bool,
    /// The server preloads it (`shared_preload_libraries`).
    pub preloaded: bool,
    /// The engine of an existing `measurement` (a database migrated before).
    pub existing: Option<StorageEngine>,
}

/// The engine to migrate with, and a warning to log when the choice was a fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub engine: StorageEngine,
    pub warning: Option<String>,
}

/// Decides the engine. Pure, so every combination is unit-tested.
pub fn decide(choice: StorageChoice, facts: ServerFacts) -> Result<Decision, String> {
    let unpreloaded = |what: &str| {
        format!("{what}: TimescaleDB is installed on the database server but not preloaded; {PRELOAD_HINT}")
    };
    if let Some(existing) = facts.existing {
        let contradicts = match choice {
            StorageChoice::Auto => false,
            StorageChoice::Timescaledb => existing != StorageEngine::Timescaledb,
            StorageChoice::Native => existing == StorageEngine::Timescaledb,
        };
        if contradicts {
            return Err(format!(
                "--storage {}: this database already stores measurement as {}; the engine is chosen when a new \
                 database is first migrated (start on an empty database, or use --storage auto)",
                choice.as_str(),
                existing.as_str()
            ));
        }
        if existing == StorageEngine::Timescaledb && !facts.preloaded {
            return Err(unpreloaded("measurement is a TimescaleDB hypertable in this database"));
        }
        return Ok(Decision { engine: existing, warning: None });
    }
    match choice {
        StorageChoice::Native => Ok(Decision { engine: StorageEngine::NativePartitions, warning: None }),
        StorageChoice::Timescaledb if !facts.available => Err(
            "--storage timescaledb: the database server has no TimescaleDB (it is not in pg_available_extensions); \
             install it (scripts/install-timescaledb builds it) or use --storage auto or native"
                .to_string(),
        ),
        StorageChoice::Timescaledb if !facts.preloaded => Err(unpreloaded("--storage timescaledb")),
        StorageChoice::Timescaledb => Ok(Decision { engine: StorageEngine::Timescaledb, warning: None }),
        StorageChoice::Auto if facts.available && facts.preloaded => {
            Ok(Decision { engine: StorageEngine::Timescaledb, warning: None })
        }
        StorageChoice::Auto if facts.available => Ok(Decision {
            engine: StorageEngine::NativePartitions,
            warning: Some(format!(
                "TimescaleDB is installed on the database server but not preloaded, so measurement goes into \
                 native partitions; for a hypertable, {PRELOAD_HINT}, then start on a new database \
                 (--storage native silences this)"
            )),
        }),
        StorageChoice::Auto => Ok(Decision { engine: StorageEngine::NativePartitions, warning: None }),
    }
}

/// Whether a `shared_preload_libraries` value names TimescaleDB's loader
/// (`timescaledb`, `'$libdir/timescaledb.so'`, `"timescaledb"`, in any position).
pub fn lists_timescaledb(libraries: &str) -> bool {
    libraries.split(',').any(|entry| {
        let entry = entry.trim().trim_matches('"').trim();
        let name = entry.rsplit('/').next().unwrap_or(entry);
        name.strip_suffix(".so").unwrap_or(name) == "timescaledb"
    })
}

/// How the storage ended up, for the log and the metrics.
#[derive(Clone, Debug)]
pub struct Storage {
    pub engine: StorageEngine,
    /// The hypertable's chunk interval (TimescaleDB only).
    pub chunk_interval: Option<Duration>,
    /// Chunks older than this are compressed by a TimescaleDB policy.
    pub compress_after: Option<Duration>,
}

/// Decides the engine, migrates, applies the TimescaleDB settings. Waits up to a
/// minute for an unreachable database.
pub async fn prepare(
    url: &str,
    options: &StorageOptions,
    max_measurement_age: Duration,
) -> Result<Storage, SetupError> {
    if let Some(retention) = options.retention.0
        && retention <= max_measurement_age
    {
        return Err(SetupError::Refused(format!(
            "--retention {} must be longer than --max-measurement-age {}: rows the API still accepts would be dropped",
            humantime::format_duration(retention),
            humantime::format_duration(max_measurement_age)
        )));
    }
    let connect_options: PgConnectOptions = url.parse()?;
    let connect_options = connect_options.application_name("device-api");
    let mut connection = connect_waiting(&connect_options).await?;
    let facts = server_facts(&mut connection).await?;
    let decision = decide(options.storage, facts).map_err(SetupError::Refused)?;
    if let Some(warning) = &decision.warning {
        tracing::warn!("{warning}");
    }
    connection.close().await?;

    // The migrations read the decision from this session setting.
    let value = match decision.engine {
        StorageEngine::Timescaledb => "timescaledb",
        _ => "native",
    };
    let mut connection = connect_waiting(&connect_options.clone().options([("loadlab.storage", value)])).await?;
    super::migrations::accept_rewritten_schema(&mut connection).await?;
    super::MIGRATOR.run_direct(&mut connection).await?;
    let engine = StorageEngine::detect_on(&mut connection).await?;

    let mut storage = Storage { engine, chunk_interval: None, compress_after: None };
    if engine == StorageEngine::Timescaledb {
        let interval = options.chunk_interval();
        sqlx::query("SELECT set_chunk_time_interval('measurement', $1::interval)")
            .bind(interval)
            .execute(&mut connection)
            .await?;
        storage.chunk_interval = Some(interval);
        storage.compress_after = compression(&mut connection, options.compress_after, max_measurement_age).await?;
    } else if let Compression::After(_) = options.compress_after {
        return Err(SetupError::Refused(format!(
            "--compress-after: compression is TimescaleDB's, and measurement is stored as {} here \
             (use --compress-after auto or off)",
            engine.as_str()
        )));
    }
    connection.close().await?;
    Ok(storage)
}

/// Sets or removes the compression policy; `None` when nothing is compressed.
async fn compression(
    connection: &mut PgConnection,
    wanted: Compression,
    max_measurement_age: Duration,
) -> Result<Option<Duration>, SetupError> {
    let license: Option<String> =
        sqlx::query_scalar("SELECT current_setting('timescaledb.license', true)").fetch_one(&mut *connection).await?;
    let can_compress = license.as_deref() == Some("timescale");
    let after = match wanted {
        Compression::Off => None,
        Compression::After(after) => Some(after),
        // Whole days past the last time a row may still arrive.
        Compression::Auto => Some(Duration::from_secs(max_measurement_age.as_secs().div_ceil(86_400).max(1) * 86_400)),
    };
    if !can_compress {
        let license = license.unwrap_or_else(|| "unknown".into());
        return match wanted {
            Compression::After(_) => Err(SetupError::Refused(format!(
                "--compress-after: the server's TimescaleDB cannot compress (timescaledb.license = {license}: \
                 the Apache-2.0 build); compression needs its community build (license timescale); use \
                 --compress-after auto or off"
            ))),
            Compression::Auto => {
                tracing::info!(license, "TimescaleDB's Apache-2.0 build cannot compress; chunks stay uncompressed");
                Ok(None)
            }
            Compression::Off => Ok(None),
        };
    }
    sqlx::query("SELECT remove_compression_policy('measurement', if_exists => true)").execute(&mut *connection).await?;
    let Some(after) = after else { return Ok(None) };
    // Set once: the settings cannot change while compressed chunks exist.
    let enabled: bool = sqlx::query_scalar(
        "SELECT coalesce(bool_or(compression_enabled), false) FROM timescaledb_information.hypertables \
         WHERE hypertable_name = 'measurement'",
    )
    .fetch_one(&mut *connection)
    .await?;
    if !enabled {
        sqlx::query(
            "ALTER TABLE measurement SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', \
             timescaledb.compress_orderby = 'time DESC')",
        )
        .execute(&mut *connection)
        .await?;
    }
    sqlx::query("SELECT add_compression_policy('measurement', compress_after => $1::interval)")
        .bind(after)
        .execute(&mut *connection)
        .await?;
    Ok(Some(after))
}

/// Reads [`ServerFacts`].
async fn server_facts(connection: &mut PgConnection) -> Result<ServerFacts, sqlx::Error> {
    let (available, migrated): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), \
                to_regclass('measurement') IS NOT NULL",
    )
    .fetch_one(&mut *connection)
    .await?;
    let preloaded =
        match sqlx::query_scalar::<_, String>("SHOW shared_preload_libraries").fetch_one(&mut *connection).await {
            Ok(libraries) => lists_timescaledb(&libraries),
            // Only superusers and pg_read_all_settings may read it; the loader's own
            // settings exist exactly where it was preloaded.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42501") => {
                sqlx::query_scalar("SELECT current_setting('timescaledb.bgw_launcher_poll_time', true) IS NOT NULL")
                    .fetch_one(&mut *connection)
                    .await?
            }
            Err(error) => return Err(error),
        };
    let existing = if migrated { Some(StorageEngine::detect_on(connection).await?) } else { None };
    Ok(ServerFacts { available, preloaded, existing })
}

/// Connects, retrying for up to [`STARTUP_DATABASE_WAIT`] while the server is
/// unreachable.
async fn connect_waiting(options: &PgConnectOptions) -> Result<PgConnection, SetupError> {
    let deadline = tokio::time::Instant::now() + STARTUP_DATABASE_WAIT;
    loop {
        match PgConnection::connect_with(options).await {
            Ok(connection) => return Ok(connection),
            Err(error) if super::is_unavailable(&error) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(SetupError::Unreachable(STARTUP_DATABASE_WAIT, error.to_string()));
                }
                tracing::warn!(%error, "database unreachable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: ServerFacts = ServerFacts { available: false, preloaded: false, existing: None };
    const INSTALLED: ServerFacts = ServerFacts { available: true, preloaded: false, existing: None };
    const PRELOADED: ServerFacts = ServerFacts { available: true, preloaded: true, existing: None };

    fn engine(choice: StorageChoice, facts: ServerFacts) -> StorageEngine {
        decide(choice, facts).expect("decided").engine
    }

    #[test]
    fn a_new_database_gets_timescaledb_only_where_it_is_preloaded() {
        assert_eq!(engine(StorageChoice::Auto, PRELOADED), StorageEngine::Timescaledb);
        assert_eq!(engine(StorageChoice::Auto, NOTHING), StorageEngine::NativePartitions);
        assert_eq!(decide(StorageChoice::Auto, NOTHING).unwrap().warning, None);
        let fallback = decide(StorageChoice::Auto, INSTALLED).unwrap();
        assert_eq!(fallback.engine, StorageEngine::NativePartitions);
        assert!(fallback.warning.unwrap().contains("shared_preload_libraries = 'timescaledb'"));
        assert_eq!(engine(StorageChoice::Native, PRELOADED), StorageEngine::NativePartitions);
        assert_eq!(engine(StorageChoice::Timescaledb, PRELOADED), StorageEngine::Timescaledb);
    }

    #[test]
    fn demanding_timescaledb_where_it_cannot_run_is_refused_with_the_remedy() {
        let refused = decide(StorageChoice::Timescaledb, INSTALLED).unwrap_err();
        assert!(refused.contains("not preloaded") && refused.contains("shared_preload_libraries"), "{refused}");
        let refused = decide(StorageChoice::Timescaledb, NOTHING).unwrap_err();
        assert!(refused.contains("no TimescaleDB"), "{refused}");
    }

    #[test]
    fn a_migrated_database_keeps_its_engine() {
        let hypertable = ServerFacts { existing: Some(StorageEngine::Timescaledb), ..PRELOADED };
        let native = ServerFacts { existing: Some(StorageEngine::NativePartitions), ..PRELOADED };
        assert_eq!(engine(StorageChoice::Auto, hypertable), StorageEngine::Timescaledb);
        assert_eq!(engine(StorageChoice::Auto, native), StorageEngine::NativePartitions);
        assert!(decide(StorageChoice::Native, hypertable).unwrap_err().contains("already stores"));
        assert!(decide(StorageChoice::Timescaledb, native).unwrap_err().contains("already stores"));
        let unloaded = ServerFacts { preloaded: false, ..hypertable };
        assert!(decide(StorageChoice::Auto, unloaded).unwrap_err().contains("shared_preload_libraries"));
    }

    #[test]
    fn preload_lists() {
        assert!(lists_timescaledb("timescaledb"));
        assert!(lists_timescaledb("pg_stat_statements, timescaledb"));
        assert!(lists_timescaledb("'$libdir/timescaledb.so'".trim_matches('\'')));
        assert!(lists_timescaledb("\"timescaledb\",auto_explain"));
        assert!(!lists_timescaledb(""));
        assert!(!lists_timescaledb("timescaledb_toolkit"));
        assert!(!lists_timescaledb("pg_stat_statements"));
    }
}
