//! Which engine stores `measurement`: a TimescaleDB hypertable or native range
//! partitions. The first migration decides once (see [`super::setup`]); the service
//! reads the decision back from the catalog.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StorageEngine {
    /// `measurement` is a TimescaleDB hypertable.
    Timescaledb,
    /// `measurement` is natively range-partitioned by day.
    NativePartitions,
    /// `measurement` is a plain table (not made by our migrations).
    Plain,
}

impl StorageEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::NativePartitions => "native-partitions",
            Self::Plain => "plain",
        }
    }

    /// Reads the engine from the catalog of a migrated database.
    pub async fn detect(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Self::detect_on(&mut *pool.acquire().await?).await
    }

    /// [`detect`](Self::detect) on one connection. Reads only catalog tables, never a
    /// TimescaleDB function, so it also answers where the extension exists but the
    /// server no longer preloads it (calling into it would end the session).
    pub async fn detect_on(connection: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let catalog: bool = sqlx::query_scalar("SELECT to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL")
            .fetch_one(&mut *connection)
            .await?;
        let hypertable = catalog
            && sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable h
                                WHERE to_regclass(format('%I.%I', h.schema_name, h.table_name)) = to_regclass('measurement'))",
            )
            .fetch_one(&mut *connection)
            .await?;
        let partitioned: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('measurement'))",
        )
        .fetch_one(&mut *connection)
        .await?;
        Ok(if hypertable {
            Self::Timescaledb
        } else if partitioned {
            Self::NativePartitions
        } else {
            Self::Plain
        })
    }
}
