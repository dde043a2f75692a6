//! Devices: creating them at login and recognising them on every authenticated
//! request.
//!
//! Every `/command` and `/measurement` must name a known device, and asking the
//! database each time would double the read load. Known ids are cached in memory; a
//! device is only ever added, so the cache never needs invalidating. An id not in the
//! cache is looked up (another instance may have created it) and cached when found.

use std::collections::HashSet;
use std::sync::RwLock;

use sqlx::PgPool;
use uuid::Uuid;

pub struct Devices {
    pool: PgPool,
    /// A std `RwLock`: lookups take it for a hash probe and never across an await.
    known: RwLock<HashSet<Uuid>>,
}

impl Devices {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, known: RwLock::default() }
    }

    /// Creates a device with a fresh random id.
    pub async fn create(&self) -> Result<Uuid, sqlx::Error> {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO device (id) VALUES ($1)")
            .bind(id)
            .execute(&mut *crate::db::acquire(&self.pool).await?)
            .await?;
        self.known.write().expect("device cache lock poisoned").insert(id);
        Ok(id)
    }

    /// Whether `id` is a device.
    pub async fn exists(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        if self.known.read().expect("device cache lock poisoned").contains(&id) {
            return Ok(true);
        }
        let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM device WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *crate::db::acquire(&self.pool).await?)
            .await?;
        if found {
            self.known.write().expect("device cache lock poisoned").insert(id);
        }
        Ok(found)
    }
}
