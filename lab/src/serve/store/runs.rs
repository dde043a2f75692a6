//! The store's reads and writes. Each write is one transaction; those that read
//! before they write begin `IMMEDIATE`, so a concurrent writer waits for the lock
//! instead of failing on a stale snapshot.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use loadgen::collector::SecondRow;
use loadgen::output::report::{Report, StepReport};

use super::database::{Store, StoreError};
use super::model::{DataPoint, Filter, Finish, NewDataPoint, NewRun, Outcome, Run, RunState, now, parse_instant};
use crate::serve::detect::{Metric, SeriesPoint};
use crate::serve::signals::SignalSample;

/// The columns a [`Run`] is read from.
const RUN_COLUMNS: &str = "id, kind, state, outcome, source, plan, experiment, description, created_at, \
    started_at, finished_at, verdict, exit_code, breaking_point, broken_rate, reference_rate, \
    p99_at_reference_ms, duration_seconds, target, scenario, error";

/// Most runs one list returns.
pub const MAX_LIST: u32 = 10_000;

/// A value as the JSON text a column keeps.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// Rows of JSON text read back; `what` names them in the error.
fn from_json<T: serde::de::DeserializeOwned>(rows: &[String], what: &str) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|row| serde_json::from_str(row).map_err(|error| StoreError::Corrupt(format!("{what}: {error}"))))
        .collect()
}

fn run_from_row(row: &SqliteRow) -> Result<Run, StoreError> {
    let state: String = row.try_get("state")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    Ok(Run {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        state: RunState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state `{state}`")))?,
        outcome: outcome.as_deref().and_then(Outcome::parse),
        source: row.try_get("source")?,
        plan: row.try_get("plan")?,
        experiment: row.try_get("experiment")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        verdict: row.try_get("verdict")?,
        exit_code: row.try_get("exit_code")?,
        breaking_point: row.try_get("breaking_point")?,
        broken_rate: row.try_get("broken_rate")?,
        reference_rate: row.try_get("reference_rate")?,
        p99_at_reference_ms: row.try_get("p99_at_reference_ms")?,
        duration_seconds: row.try_get("duration_seconds")?,
        target: row.try_get("target")?,
        scenario: row.try_get("scenario")?,
        error: row.try_get("error")?,
    })
}

/// Corrected p99 (ms) over the steps offered `rate` (within 0.5 %), their histograms
/// merged; `None` when no step ran at that rate.
pub fn p99_at(steps: &[StepReport], rate: f64) -> Option<f64> {
    let mut merged = loadgen::stats::new_histogram();
    for step in steps.iter().filter(|step| (step.offered_rate - rate).abs() <= rate * 0.005) {
        let histogram = loadgen::stats::decode(&step.histograms.corrected_ok).ok()?;
        merged.add(&histogram).ok()?;
    }
    (!merged.is_empty()).then(|| merged.value_at_quantile(0.99) as f64 / 1000.0)
}

impl Store {
    /// Records a new run; its id must be new.
    pub async fn create(&self, run: NewRun) -> Result<Run, StoreError> {
        let state = run.state.unwrap_or(RunState::Created);
        let created = now();
        let started = (state == RunState::Running).then(|| created.clone());
        let owner = crate::state::ProcessId::current();
        let request = run.request.as_ref().map(|request| request.to_string());
        let inserted = sqlx::query(
            "insert into runs (id, kind, state, source, plan, experiment, description, created_at, started_at, \
             target, scenario, reference_rate, owner_pid, owner_start_time, request, topology) \
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run.id)
        .bind(run.kind)
        .bind(state.name())
        .bind(run.source)
        .bind(&run.plan)
        .bind(&run.experiment)
        .bind(&run.description)
        .bind(&created)
        .bind(&started)
        .bind(&run.target)
        .bind(&run.scenario)
        .bind(run.reference_rate)
        .bind(owner.pid as i64)
        .bind(owner.start_time as i64)
        .bind(&request)
        .bind(&run.topology)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                return Err(StoreError::Exists(run.id));
            }
            Err(error) => return Err(error.into()),
        }
        self.get(&run.id).await
    }

    /// One run.
    pub async fn get(&self, id: &str) -> Result<Run, StoreError> {
        let row = sqlx::query(&format!("select {RUN_COLUMNS} from runs where id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        run_from_row(&row)
    }

    /// Moves a run from one of `from` to `to` (stamping started_at or finished_at);
    /// the run as it is after. A run in another state is a [`StoreError::Conflict`].
    pub async fn transition(&self, id: &str, from: &[RunState], to: RunState) -> Result<Run, StoreError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let state: Option<String> = sqlx::query_scalar("select state from runs where id = ?")
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await?;
        let Some(state) = state else { return Err(StoreError::NotFound(id.to_string())) };
        let current = RunState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state `{state}`")))?;
        if current == to {
            transaction.commit().await?;
            return self.get(id).await;
        }
        if !from.contains(&current) {
            return Err(StoreError::Conflict(format!(
                "run `{id}` is {}; it cannot become {}",
                current.name(),
                to.name()
            )));
        }
        let stamp = now();
        if to == RunState::Running {
            sqlx::query("update runs set state = ?, started_at = coalesce(started_at, ?) where id = ?")
                .bind(to.name())
                .bind(&stamp)
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        } else {
            sqlx::query(
                "update runs set state = ?, finished_at = ?, \
                 duration_seconds = (julianday(?) - julianday(coalesce(started_at, created_at))) * 86400.0 \
                 where id = ?",
            )
            .bind(to.name())
            .bind(&stamp)
            .bind(&stamp)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        self.get(id).await
    }

    /// Records the row at `position` (0, 1, …) of a running run's seconds.
    pub async fn add_second(&self, id: &str, position: u64, row: &SecondRow) -> Result<(), StoreError> {
        let json = to_json(row)?;
        sqlx::query("insert or replace into seconds (run_id, position, row) values (?, ?, ?)")
            .bind(id)
            .bind(position as i64)
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends a finished step of a running run.
    pub async fn add_step(&self, id: &str, step: &StepReport) -> Result<(), StoreError> {
        let json = to_json(step)?;
        sqlx::query(
            "insert into steps (run_id, position, step) \
             values (?, (select count(*) from steps where run_id = ?), ?)",
        )
        .bind(id)
        .bind(id)
        .bind(json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a run ended: its state, verdict, report and the figures the list
    /// and the experiments need, in one transaction.
    pub async fn finish(&self, id: &str, finish: Finish) -> Result<Run, StoreError> {
        let run = self.get(id).await?;
        let report = finish.report.as_ref();
        let point = report.and_then(|report| report.breaking_point.as_ref());
        let p99 = match (run.reference_rate, report) {
            (Some(rate), Some(report)) => p99_at(&report.steps, rate),
            _ => None,
        };
        let state = finish.state.unwrap_or(RunState::Finished);
        let stamp = now();
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(report) = report {
            let json = to_json(report)?;
            sqlx::query("insert or replace into summaries (run_id, summary) values (?, ?)")
                .bind(id)
                .bind(json)
                .execute(&mut *transaction)
                .await?;
            // The steps as the report has them (the live ones may lack the last).
            sqlx::query("delete from steps where run_id = ?").bind(id).execute(&mut *transaction).await?;
            for (position, step) in report.steps.iter().enumerate() {
                let json = to_json(step)?;
                sqlx::query("insert into steps (run_id, position, step) values (?, ?, ?)")
                    .bind(id)
                    .bind(position as i64)
                    .bind(json)
                    .execute(&mut *transaction)
                    .await?;
            }
        }
        sqlx::query(
            "update runs set state = ?, outcome = ?, verdict = ?, exit_code = ?, breaking_point = ?, \
             broken_rate = ?, p99_at_reference_ms = ?, error = ?, lab = coalesce(?, lab), \
             scenario = coalesce(?, scenario), target = coalesce(?, target), \
             started_at = coalesce(started_at, ?), finished_at = ?, \
             duration_seconds = (julianday(?) - julianday(coalesce(started_at, ?))) * 86400.0 \
             where id = ?",
        )
        .bind(state.name())
        .bind(finish.outcome.map(Outcome::name))
        .bind(&finish.verdict)
        .bind(finish.exit_code.map(i64::from))
        .bind(point.and_then(|point| point.rate))
        .bind(point.and_then(|point| point.broken_rate))
        .bind(p99)
        .bind(&finish.error)
        .bind(finish.lab.as_ref().map(|lab| lab.to_string()))
        .bind(report.map(|report| report.scenario.clone()))
        .bind(report.map(|report| report.target.clone()))
        .bind(report.map(|report| report.started_at.clone()))
        .bind(&stamp)
        .bind(&stamp)
        .bind(&stamp)
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        self.get(id).await
    }

    /// Sets an imported run's times to its own.
    pub async fn restamp(&self, id: &str, started: &str, finished: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "update runs set created_at = ?1, started_at = ?1, finished_at = coalesce(?2, finished_at), \
             duration_seconds = (julianday(coalesce(?2, finished_at)) - julianday(?1)) * 86400.0 where id = ?3",
        )
        .bind(started)
        .bind(finished)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs left `created` or `running` by a process that is gone: marked incomplete
    /// (what they recorded is kept). Tests are left alone: their clients may still come.
    pub async fn mark_orphans(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "select id, owner_pid, owner_start_time from runs where kind = 'plan' and state in ('created', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut marked = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let pid: Option<i64> = row.try_get("owner_pid")?;
            let start_time: Option<i64> = row.try_get("owner_start_time")?;
            let owner =
                crate::state::ProcessId { pid: pid.unwrap_or(0) as u32, start_time: start_time.unwrap_or(0) as u64 };
            if owner.alive() {
                continue;
            }
            let stamp = now();
            let error = format!("its process (pid {}) ended before the run did; what it recorded is kept", owner.pid);
            sqlx::query(
                "update runs set state = 'incomplete', outcome = 'incomplete', error = ?, finished_at = ?, \
                 verdict = coalesce(verdict, 'incomplete: the run was cut off') \
                 where id = ? and state in ('created', 'running')",
            )
            .bind(error)
            .bind(stamp)
            .bind(&id)
            .execute(&self.pool)
            .await?;
            marked.push(id);
        }
        Ok(marked)
    }

    /// Runs matching `filter`, newest first; an invalid filter is an error naming it.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Run>, FilterError> {
        let mut conditions = Vec::new();
        let mut values: Vec<String> = Vec::new();
        for (column, value) in [
            ("plan", &filter.plan),
            ("experiment", &filter.experiment),
            ("state", &filter.state),
            ("outcome", &filter.outcome),
            ("kind", &filter.kind),
        ] {
            if let Some(value) = value {
                let valid = match column {
                    "state" => RunState::parse(value).is_some(),
                    "outcome" => Outcome::parse(value).is_some(),
                    "kind" => matches!(value.as_str(), "plan" | "test"),
                    _ => true,
                };
                if !valid {
                    return Err(FilterError { field: column, message: format!("`{value}` is not a {column}") });
                }
                conditions.push(format!("{column} = ?"));
                values.push(value.clone());
            }
        }
        for (column, value, operator) in [("since", &filter.since, ">="), ("until", &filter.until, "<")] {
            if let Some(value) = value {
                let instant = parse_instant(value).ok_or_else(|| FilterError {
                    field: column,
                    message: format!("`{value}` is not an RFC 3339 instant or a date (YYYY-MM-DD)"),
                })?;
                conditions.push(format!("created_at {operator} ?"));
                values.push(instant);
            }
        }
        let limit = filter.limit.unwrap_or(100);
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(FilterError { field: "limit", message: format!("{limit} is not within [1, {MAX_LIST}]") });
        }
        let clause = if conditions.is_empty() { String::new() } else { format!("where {}", conditions.join(" and ")) };
        let sql = format!(
            "select {RUN_COLUMNS} from runs {clause} order by created_at desc, id desc limit {limit} offset {}",
            filter.offset.unwrap_or(0)
        );
        let mut query = sqlx::query(&sql);
        for value in &values {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(|error| FilterError::database(error.into()))?;
        rows.iter().map(run_from_row).collect::<Result<_, _>>().map_err(FilterError::database)
    }

    /// loadgen's report of a finished run.
    pub async fn report(&self, id: &str) -> Result<Option<Report>, StoreError> {
        let text: Option<String> = sqlx::query_scalar("select summary from summaries where run_id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|text| serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("summary: {error}"))))
            .transpose()
    }

    /// The seconds recorded, in order (those after position `after`, when given).
    pub async fn seconds(&self, id: &str, after: Option<u64>) -> Result<Vec<SecondRow>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("select row from seconds where run_id = ? and position >= ? order by position")
                .bind(id)
                .bind(after.map_or(0, |after| after as i64 + 1))
                .fetch_all(&self.pool)
                .await?;
        from_json(&rows, "second")
    }

    /// The steps recorded, in order.
    pub async fn steps(&self, id: &str) -> Result<Vec<StepReport>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("select step from steps where run_id = ? order by position")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        from_json(&rows, "step")
    }

    /// Records the live bottleneck signals sampled at `position` (0, 1, …) of a run.
    pub async fn add_signal_sample(&self, id: &str, position: u64, sample: &SignalSample) -> Result<(), StoreError> {
        let json = to_json(sample)?;
        sqlx::query("insert or replace into signal_samples (run_id, position, sample) values (?, ?, ?)")
            .bind(id)
            .bind(position as i64)
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live bottleneck signals sampled during a run, in order.
    pub async fn signal_samples(&self, id: &str) -> Result<Vec<SignalSample>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("select sample from signal_samples where run_id = ? order by position")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        from_json(&rows, "signals")
    }

    /// The run's lab.json, the request that started it and its topology text.
    pub async fn context(
        &self,
        id: &str,
    ) -> Result<(Option<serde_json::Value>, Option<serde_json::Value>, Option<String>), StoreError> {
        let row = sqlx::query("select lab, request, topology from runs where id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let json = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
        Ok((json(row.try_get("lab")?), json(row.try_get("request")?), row.try_get("topology")?))
    }

    /// Adds a client's data points, all or none; only while the run is created or
    /// running.
    pub async fn add_datapoints(
        &self,
        id: &str,
        client: Option<&str>,
        points: &[NewDataPoint],
    ) -> Result<usize, StoreError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let state: Option<String> = sqlx::query_scalar("select state from runs where id = ?")
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await?;
        let Some(state) = state else { return Err(StoreError::NotFound(id.to_string())) };
        if RunState::parse(&state).is_some_and(RunState::is_final) {
            return Err(StoreError::Conflict(format!("run `{id}` is {state}: it takes no more data points")));
        }
        let arrived = now();
        for point in points {
            let labels = to_json(&point.labels)?;
            let at = point.time.as_deref().and_then(parse_instant).unwrap_or_else(|| arrived.clone());
            sqlx::query("insert into datapoints (run_id, at, client, name, value, labels) values (?, ?, ?, ?, ?, ?)")
                .bind(id)
                .bind(at)
                .bind(client)
                .bind(&point.name)
                .bind(point.value)
                .bind(labels)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(points.len())
    }

    /// A run's data points in the order they arrived.
    pub async fn datapoints(&self, id: &str) -> Result<Vec<DataPoint>, StoreError> {
        let rows = sqlx::query("select at, client, name, value, labels from datapoints where run_id = ? order by id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let labels: String = row.try_get("labels")?;
                Ok(DataPoint {
                    time: row.try_get("at")?,
                    client: row.try_get("client")?,
                    name: row.try_get("name")?,
                    value: row.try_get("value")?,
                    labels: serde_json::from_str(&labels).map_err(|error| StoreError::Corrupt(error.to_string()))?,
                })
            })
            .collect()
    }

    pub async fn datapoint_count(&self, id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("select count(*) from datapoints where run_id = ?")
            .bind(id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Keeps a file with a run.
    pub async fn put_file(&self, id: &str, name: &str, content: &[u8]) -> Result<(), StoreError> {
        sqlx::query("insert or replace into files (run_id, name, content) values (?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(content)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn file(&self, id: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("select content from files where run_id = ? and name = ?")
            .bind(id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn file_names(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("select name from files where run_id = ? order by name")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// An experiment's figure over its finished runs, oldest first.
    pub async fn series(&self, experiment: &str, metric: Metric) -> Result<Vec<SeriesPoint>, StoreError> {
        let column = match metric {
            Metric::BreakingPoint => "breaking_point",
            Metric::P99AtReference => "p99_at_reference_ms",
        };
        let rows = sqlx::query(&format!(
            "select id, coalesce(started_at, created_at) as started, {column} as value from runs \
             where experiment = ? and state = 'finished' and {column} is not null order by created_at, id"
        ))
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SeriesPoint {
                    run_id: row.try_get("id")?,
                    started_at: row.try_get("started")?,
                    value: row.try_get("value")?,
                })
            })
            .collect()
    }

    /// Runs of an experiment by outcome (for `/metrics`).
    pub async fn outcome_counts(&self, experiment: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "select coalesce(outcome, state) as outcome, count(*) as runs from runs where experiment = ? group by 1",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("outcome")?, row.try_get("runs")?))).collect()
    }

    /// The newest run of an experiment that has ended, if any.
    pub async fn last_ended(&self, experiment: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(&format!(
            "select {RUN_COLUMNS} from runs where experiment = ? and state not in ('created', 'running') \
             order by created_at desc, id desc limit 1"
        ))
        .bind(experiment)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }
}

/// A filter that cannot be applied: which field, and why.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

impl FilterError {
    fn database(error: StoreError) -> Self {
        Self { field: "", message: error.to_string() }
    }
}
