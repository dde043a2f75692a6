//! Which engine stores `measurement`: a TimescaleDB hypertable or native range
//! partitions. The migration decides once (TimescaleDB when the extension can be
//! created); the service reads the decision back from the catalog.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StorageEngine {
    /// `measurement` is a TimescaleDB hypertable with 1-day chunks.
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
        let (hypertable, partitioned): (bool, bool) = sqlx::query_as(
            r#"
            SELECT
                EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                    AND to_regclass('timescaledb_information.hypertables') IS NOT NULL,
                EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('measurement'))
            "#,
        )
        .fetch_one(pool)
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
