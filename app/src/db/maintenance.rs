//! Hourly upkeep of `measurement`: native partitions made ahead of need (one per day
//! from the oldest accepted measurement time to a week ahead; TimescaleDB makes its
//! own chunks), and, with `--retention`, the history older than that dropped a whole
//! chunk or day partition at a time together with its hourly rollup
//! (`loadlab_drop_measurements_before`, migration 2). TimescaleDB's own retention
//! policy is not used: its Apache-2.0 build has no policies, and one mechanism serves
//! both engines.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::StorageEngine;

/// Days of partitions made ahead of today.
const DAYS_AHEAD: i64 = 7;
const EVERY: Duration = Duration::from_secs(3600);
/// After a failure (the database down at start, say), try again sooner.
const RETRY: Duration = Duration::from_secs(15);

/// What the upkeep needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Maintenance {
    pub engine: StorageEngine,
    pub max_measurement_age: Duration,
    /// Keep this much history; `None` keeps everything.
    pub retention: Option<Duration>,
}

impl Maintenance {
    /// Does the upkeep once (so the first writes land in a real partition), then
    /// every hour until `shutdown`. Failures are logged and retried after 15 s; the
    /// default partition catches rows meanwhile.
    pub async fn spawn(self, pool: PgPool, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let mut next = self.once(&pool).await;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(next) => next = self.once(&pool).await,
                }
            }
        })
    }

    /// One round; returns when the next is due.
    async fn once(&self, pool: &PgPool) -> Duration {
        let partitions = match self.engine {
            StorageEngine::NativePartitions => self.ensure_partitions(pool).await,
            _ => Ok(()),
        };
        let retention = match self.retention {
            Some(keep) => self.drop_older_than(pool, keep).await,
            None => Ok(()),
        };
        match partitions.and(retention) {
            Ok(()) => EVERY,
            Err(error) => {
                tracing::warn!(%error, "storage upkeep failed; will retry");
                RETRY
            }
        }
    }

    async fn ensure_partitions(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let today = Utc::now().date_naive();
        let age_days = (self.max_measurement_age.as_secs() / 86_400).min(3650);
        let first = today - chrono::Days::new(age_days + 1);
        let last = today + chrono::Days::new(DAYS_AHEAD as u64);
        let created: i32 = sqlx::query_scalar("SELECT loadlab_ensure_measurement_partitions($1, $2)")
            .bind(first)
            .bind(last)
            .fetch_one(pool)
            .await?;
        if created > 0 {
            tracing::info!(count = created, %first, %last, "created measurement partitions");
        }
        Ok(())
    }

    /// Drops what is older than `keep` (from the hour boundary before it).
    async fn drop_older_than(&self, pool: &PgPool, keep: Duration) -> Result<(), sqlx::Error> {
        let keep = TimeDelta::from_std(keep).unwrap_or(TimeDelta::MAX);
        let Some(cutoff) = Utc::now().checked_sub_signed(keep) else { return Ok(()) };
        let cutoff = cutoff.duration_trunc(TimeDelta::hours(1)).unwrap_or(cutoff);
        let dropped: i32 =
            sqlx::query_scalar("SELECT loadlab_drop_measurements_before($1)").bind(cutoff).fetch_one(pool).await?;
        if dropped > 0 {
            tracing::info!(dropped, %cutoff, "retention dropped measurement chunks or partitions");
        }
        Ok(())
    }
}
