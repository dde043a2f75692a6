//! The write path: group commit.
//!
//! Handlers hand their validated rows to a queue and wait. A few writer tasks take
//! turns at the queue: one gathers what is waiting (up to `batch_max_rows`, lingering
//! up to `batch_max_wait` for more), releases the queue to the next writer, and
//! writes the whole batch in one statement — the rows into `measurement`, the
//! devices' latest state into `device_state`, the hourly rollup into
//! `measurement_hourly` — which is one transaction and one commit. Only then is every
//! request in the batch answered. A request's rows always travel together, so a
//! `POST /measurements` is stored whole or not at all.
//!
//! Nothing is acknowledged before its commit returns, so a crash loses only requests
//! that were never answered 204.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::db;
use crate::metrics as names;
use crate::model::Measurement;

/// Why rows were not stored. Clone: one outcome answers every request in a batch.
#[derive(Clone, Debug, thiserror::Error)]
pub enum IngestError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database refused the rows: {0}")]
    Failed(String),
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Group-commit limits.
#[derive(Clone, Copy, Debug)]
pub struct IngestOptions {
    pub batch_max_rows: usize,
    pub batch_max_wait: Duration,
    pub writers: u16,
    pub commit_timeout: Duration,
}

/// One request's rows and the way to answer it.
struct Pending {
    rows: Vec<Measurement>,
    done: oneshot::Sender<Result<(), IngestError>>,
}

/// The handlers' side of the write path; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Pending>,
}

/// The writer tasks; [`finish`](Self::finish) waits until they have written every
/// queued row, which happens once every [`Ingest`] handle is dropped.
pub struct IngestWorkers {
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Ingest {
    pub fn start(pool: PgPool, options: IngestOptions) -> (Self, IngestWorkers) {
        let capacity = (options.batch_max_rows * usize::from(options.writers) * 2).max(64);
        let (queue, receiver) = mpsc::channel(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let writers = (0..options.writers)
            .map(|id| {
                let writer = Writer { id: id as i16, pool: pool.clone(), options };
                tokio::spawn(writer.run(receiver.clone()))
            })
            .collect();
        (Self { queue }, IngestWorkers { writers })
    }

    /// Stores `rows` together; returns once they are committed.
    pub async fn write(&self, rows: Vec<Measurement>) -> Result<(), IngestError> {
        let (done, outcome) = oneshot::channel();
        self.queue.send(Pending { rows, done }).await.map_err(|_| IngestError::ShuttingDown)?;
        outcome.await.map_err(|_| IngestError::ShuttingDown)?
    }
}

impl IngestWorkers {
    pub async fn finish(self) {
        for writer in self.writers {
            let _ = writer.await;
        }
    }
}

struct Writer {
    /// Also this writer's row in `measurement_hourly`, so writers never contend there.
    id: i16,
    pool: PgPool,
    options: IngestOptions,
}

impl Writer {
    async fn run(self, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        loop {
            let batch = {
                let mut queue = receiver.lock().await;
                self.gather(&mut queue).await
            };
            let Some(batch) = batch else { return };
            self.commit_and_answer(batch).await;
        }
    }

    /// Waits for a first request, then takes what else is queued until the batch is
    /// full or `batch_max_wait` has passed. `None` once the queue is closed and empty.
    async fn gather(&self, queue: &mut mpsc::Receiver<Pending>) -> Option<Vec<Pending>> {
        let first = queue.recv().await?;
        let deadline = tokio::time::Instant::now() + self.options.batch_max_wait;
        let mut rows = first.rows.len();
        let mut batch = vec![first];
        while rows < self.options.batch_max_rows {
            let next = match queue.try_recv() {
                Ok(pending) => pending,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) if self.options.batch_max_wait.is_zero() => break,
                Err(mpsc::error::TryRecvError::Empty) => match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(pending)) => pending,
                    Ok(None) | Err(_) => break,
                },
            };
            rows += next.rows.len();
            batch.push(next);
        }
        // Sampled per batch, not per request: one registry lookup fewer on the hot path.
        metrics::gauge!(names::INGEST_QUEUE_DEPTH).set(queue.len() as f64);
        Some(batch)
    }

    async fn commit_and_answer(&self, batch: Vec<Pending>) {
        let rows: Vec<&Measurement> = batch.iter().flat_map(|pending| &pending.rows).collect();
        let started = Instant::now();
        let outcome = self.commit(&rows).await;
        metrics::histogram!(names::BATCH_COMMIT_DURATION).record(started.elapsed().as_secs_f64());
        metrics::histogram!(names::BATCH_ROWS).record(rows.len() as f64);
        match outcome {
            Ok(()) => {
                metrics::counter!(names::MEASUREMENTS_INGESTED).increment(rows.len() as u64);
                for pending in batch {
                    let _ = pending.done.send(Ok(()));
                }
            }
            // One bad request must not fail its neighbours: write each on its own.
            Err(IngestError::Failed(_)) if batch.len() > 1 => {
                metrics::counter!(names::BATCH_FAILURES, "reason" => "split").increment(1);
                for pending in batch {
                    let own: Vec<&Measurement> = pending.rows.iter().collect();
                    let outcome = self.commit(&own).await;
                    if outcome.is_ok() {
                        metrics::counter!(names::MEASUREMENTS_INGESTED).increment(own.len() as u64);
                    }
                    let _ = pending.done.send(outcome);
                }
            }
            Err(error) => {
                let reason = match error {
                    IngestError::Unavailable(_) => "unavailable",
                    _ => "failed",
                };
                metrics::counter!(names::BATCH_FAILURES, "reason" => reason).increment(1);
                tracing::warn!(%error, rows = rows.len(), "batch not stored");
                for pending in batch {
                    let _ = pending.done.send(Err(error.clone()));
                }
            }
        }
    }

    async fn commit(&self, rows: &[&Measurement]) -> Result<(), IngestError> {
        let statement = BatchStatement::new(rows);
        match tokio::time::timeout(self.options.commit_timeout, statement.execute(&self.pool, self.id)).await {
            Err(_) => {
                Err(IngestError::Unavailable(format!("commit took longer than {:?}", self.options.commit_timeout)))
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if db::is_unavailable(&error) => Err(IngestError::Unavailable(error.to_string())),
            Ok(Err(error)) => Err(IngestError::Failed(error.to_string())),
        }
    }
}

/// The batch as column arrays, ready for `UNNEST`.
#[derive(Default)]
struct Columns {
    device_id: Vec<Uuid>,
    time: Vec<DateTime<Utc>>,
    charge_now: Vec<i32>,
    charge_full: Vec<i32>,
    charge_rate: Vec<f64>,
    ambient_temp: Vec<f64>,
    water_temp: Vec<f64>,
    water_level: Vec<i32>,
}

impl Columns {
    fn push(&mut self, row: &Measurement) {
        self.device_id.push(row.device_id);
        self.time.push(row.time);
        self.charge_now.push(row.charge_now);
        self.charge_full.push(row.charge_full);
        self.charge_rate.push(row.charge_rate);
        self.ambient_temp.push(row.ambient_temp);
        self.water_temp.push(row.water_temp);
        self.water_level.push(row.water_level);
    }
}

/// One hour of the rollup as this batch contributes to it.
#[derive(Default, Clone, Copy)]
struct HourTotals {
    count: i64,
    water_temp_sum: f64,
    water_temp_sum_squares: f64,
}

struct BatchStatement {
    all: Columns,
    /// One row per device: its newest measurement in this batch. `ON CONFLICT DO
    /// UPDATE` may touch a row only once per statement, hence the de-duplication.
    latest: Columns,
    hours: Vec<DateTime<Utc>>,
    hour_totals: Vec<HourTotals>,
}

impl BatchStatement {
    fn new(rows: &[&Measurement]) -> Self {
        let mut all = Columns::default();
        let mut newest: HashMap<Uuid, &Measurement> = HashMap::new();
        let mut by_hour: HashMap<DateTime<Utc>, HourTotals> = HashMap::new();
        for row in rows {
            all.push(row);
            newest
                .entry(row.device_id)
                .and_modify(|kept| {
                    if row.time >= kept.time {
                        *kept = row;
                    }
                })
                .or_insert(row);
            let hour = row.time.duration_trunc(TimeDelta::hours(1)).unwrap_or(row.time);
            let totals = by_hour.entry(hour).or_default();
            totals.count += 1;
            totals.water_temp_sum += row.water_temp;
            totals.water_temp_sum_squares += row.water_temp * row.water_temp;
        }
        // Sorted, so concurrent writers lock device_state rows in one order and
        // cannot deadlock each other.
        let mut newest: Vec<&Measurement> = newest.into_values().collect();
        newest.sort_unstable_by_key(|row| row.device_id);
        let mut latest = Columns::default();
        newest.into_iter().for_each(|row| latest.push(row));
        let (hours, hour_totals) = by_hour.into_iter().unzip();
        Self { all, latest, hours, hour_totals }
    }

    async fn execute(self, pool: &PgPool, writer: i16) -> Result<(), sqlx::Error> {
        // Data-modifying CTEs run exactly once whether or not the outer statement reads
        // them, and the whole statement is one transaction with one commit.
        const SQL: &str = r#"
            WITH inserted AS (
                INSERT INTO measurement
                    (device_id, time, charge_now, charge_full, charge_rate, ambient_temp, water_temp, water_level)
                SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int4[], $4::int4[],
                                     $5::float8[], $6::float8[], $7::float8[], $8::int4[])
            ), latest AS (
                INSERT INTO device_state
                    (device_id, time, charge_now, charge_full, charge_rate, ambient_temp, water_temp, water_level)
                SELECT * FROM UNNEST($9::uuid[], $10::timestamptz[], $11::int4[], $12::int4[],
                                     $13::float8[], $14::float8[], $15::float8[], $16::int4[])
                ON CONFLICT (device_id) DO UPDATE SET
                    time = EXCLUDED.time, charge_now = EXCLUDED.charge_now,
                    charge_full = EXCLUDED.charge_full, charge_rate = EXCLUDED.charge_rate,
                    ambient_temp = EXCLUDED.ambient_temp, water_temp = EXCLUDED.water_temp,
                    water_level = EXCLUDED.water_level
                WHERE device_state.time <= EXCLUDED.time
            )
            INSERT INTO measurement_hourly
                (hour, writer, measurement_count, water_temp_sum, water_temp_sum_squares)
            SELECT hour, $21, count, sum, sum_squares
            FROM UNNEST($17::timestamptz[], $18::int8[], $19::float8[], $20::float8[])
                AS batch(hour, count, sum, sum_squares)
            ON CONFLICT (hour, writer) DO UPDATE SET
                measurement_count = measurement_hourly.measurement_count + EXCLUDED.measurement_count,
                water_temp_sum = measurement_hourly.water_temp_sum + EXCLUDED.water_temp_sum,
                water_temp_sum_squares = measurement_hourly.water_temp_sum_squares + EXCLUDED.water_temp_sum_squares
        "#;
        let Self { all, latest, hours, hour_totals } = self;
        let counts: Vec<i64> = hour_totals.iter().map(|t| t.count).collect();
        let sums: Vec<f64> = hour_totals.iter().map(|t| t.water_temp_sum).collect();
        let squares: Vec<f64> = hour_totals.iter().map(|t| t.water_temp_sum_squares).collect();
        sqlx::query(SQL)
            .bind(all.device_id)
            .bind(all.time)
            .bind(all.charge_now)
            .bind(all.charge_full)
            .bind(all.charge_rate)
            .bind(all.ambient_temp)
            .bind(all.water_temp)
            .bind(all.water_level)
            .bind(latest.device_id)
            .bind(latest.time)
            .bind(latest.charge_now)
            .bind(latest.charge_full)
            .bind(latest.charge_rate)
            .bind(latest.ambient_temp)
            .bind(latest.water_temp)
            .bind(latest.water_level)
            .bind(hours)
            .bind(counts)
            .bind(sums)
            .bind(squares)
            .bind(writer)
            .execute(&mut *db::acquire(pool).await?)
            .await?;
        Ok(())
    }
}
