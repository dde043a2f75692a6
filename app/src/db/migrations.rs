//! Keeping databases migrated by earlier builds startable.
//!
//! Migration 1 was rewritten to decide the engine from the session setting
//! `loadlab.storage` instead of trying `CREATE EXTENSION timescaledb` (which ends the
//! session where the server does not preload TimescaleDB). Wherever the old text
//! succeeded it made the same schema the new text makes, but sqlx compares checksums
//! and would refuse such a database. So a database that recorded migration 1 with the
//! old text's checksum is told the new one, before the migrator runs.

use sqlx::PgConnection;

/// SHA-384 of the first text of `0001_schema.sql` (commit 00ba515 and before).
const SCHEMA_V1_BEFORE_STORAGE_CHOICE: &str =
    "52748c4999b6902440c9a6bb92e18c38b2dd7e1484bc71df31b7d2b197cab5d6c40a3aee614d8f9aff9a620b85fb87b9";

/// Records the current checksum of migration 1 where the old text's is recorded.
/// Returns whether it changed anything.
pub async fn accept_rewritten_schema(connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let recorded: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *connection).await?;
    let Some(current) = super::MIGRATOR.iter().find(|migration| migration.version == 1) else { return Ok(false) };
    if !recorded {
        return Ok(false);
    }
    let old = decode_hex(SCHEMA_V1_BEFORE_STORAGE_CHOICE);
    let updated = sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1 AND checksum = $2")
        .bind(current.checksum.as_ref())
        .bind(old)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    if updated > 0 {
        tracing::info!("migration 1 was recorded with its earlier text (same schema); recorded the current one");
    }
    Ok(updated > 0)
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).filter_map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_old_checksum_is_not_the_current_one() {
        let old = super::decode_hex(super::SCHEMA_V1_BEFORE_STORAGE_CHOICE);
        assert_eq!(old.len(), 48);
        let current = crate::db::MIGRATOR.iter().find(|migration| migration.version == 1).unwrap();
        assert_ne!(current.checksum.as_ref(), old.as_slice());
    }
}
