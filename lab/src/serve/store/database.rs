//! Opening the store: the database file, its settings, and its schema (numbered
//! migrations applied under SQLite's write lock, so two processes opening a new store
//! at once cannot both apply them).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// The migrations, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_store.sql"), include_str!("migrations/0002_signals.sql")];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("no run `{0}`")]
    NotFound(String),
    #[error("a run `{0}` exists already")]
    Exists(String),
    /// The run is not in a state that allows this (e.g. starting a finished test).
    #[error("{0}")]
    Conflict(String),
    #[error("the store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the store holds a value it cannot read: {0}")]
    Corrupt(String),
}

/// The store: a pool of connections to one database file. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) pool: SqlitePool,
    dir: PathBuf,
}

impl Store {
    /// Opens (creating when missing) the store in `dir`.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let failed = |detail: String| StoreError::Open { path: dir.display().to_string(), detail };
        std::fs::create_dir_all(dir).map_err(|error| failed(error.to_string()))?;
        let file = dir.join("loadlab.sqlite");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
            .map_err(|error| failed(error.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit reaches the disk before it is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Another process (loadlab run) may hold the write lock for a moment.
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let store = Self { pool, dir: dir.to_path_buf() };
        store.migrate().await.map_err(|error| failed(error.to_string()))?;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let applied: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *transaction).await?;
        for (number, migration) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
            sqlx::raw_sql(migration).execute(&mut *transaction).await?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", number + 1)).execute(&mut *transaction).await?;
        }
        transaction.commit().await
    }

    /// Closes the connections (waits for them to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
