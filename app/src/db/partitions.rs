//! Keeps native partitions of `measurement` made ahead of need: at start and every
//! hour, one partition per day from the oldest accepted measurement time to a week
//! ahead. A no-op on TimescaleDB, which makes its own chunks.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Days of partitions made ahead of today.
const DAYS_AHEAD: i64 = 7;
const EVERY: Duration = Duration::from_secs(3600);
/// After a failure (the database down at start, say), try again sooner.
const RETRY: Duration = Duration::from_secs(15);

/// Makes the partitions once (so the first writes land in a real partition), then
/// keeps doing it every hour until `shutdown`. Failures are logged and retried after
/// 15 s; the default partition catches rows meanwhile.
pub async fn spawn_partition_maintenance(
    pool: PgPool,
    max_measurement_age: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let ensure = move |pool: PgPool| async move {
        let today = Utc::now().date_naive();
        let age_days = i64::try_from(max_measurement_age.as_secs() / 86_400).unwrap_or(i64::MAX).min(3650);
        let first = today - chrono::Days::new(age_days as u64 + 1);
        let last = today + chrono::Days::new(DAYS_AHEAD as u64);
        let created: Result<i32, _> = sqlx::query_scalar("SELECT loadlab_ensure_measurement_partitions($1, $2)")
            .bind(first)
            .bind(last)
            .fetch_one(&pool)
            .await;
        match created {
            Ok(0) => EVERY,
            Ok(count) => {
                tracing::info!(count, %first, %last, "created measurement partitions");
                EVERY
            }
            Err(error) => {
                tracing::warn!(%error, "could not create measurement partitions; will retry");
                RETRY
            }
        }
    };
    let mut next = ensure(pool.clone()).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(next) => next = ensure(pool.clone()).await,
            }
        }
    })
}
