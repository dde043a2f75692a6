//! `/statistics` with a large measurement history, on both storage engines in one run.
//! For each engine: a private PostgreSQL, device-api on it, `--rows` measurements
//! (default 10^7) of `--devices` devices spread evenly over the last seven days with
//! their rollups (as the write path would have left them), then
//!
//! - `GET /statistics` latency (sequential requests, after a warm-up), against the
//!   reference: the same per-hour figures computed from the history itself, as the
//!   original service did, measured in the same run;
//! - the bytes a stored measurement takes (heap and index, all chunks or partitions);
//! - retention: what is older than five days dropped a chunk or partition at a time
//!   (`loadlab_drop_measurements_before`, what `--retention` runs), against `DELETE`
//!   of the rest of the next day's rows, measured in the same run.
//!
//! Asserts nothing. `cargo bench -p device-api --bench statistics -- [--rows 10000000]`

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use sqlx::{Connection, PgConnection};
use support::{ENGINES, Engine, Served};

#[derive(Parser, Debug)]
struct Options {
    /// Measurement rows loaded before measuring.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Devices the rows belong to.
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Sequential `GET /statistics` requests timed.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Seven days, the default --max-measurement-age: the rows fit the native partitions
/// device-api makes at start.
const SPAN_SECONDS: f64 = 7.0 * 86_400.0;

struct Figures {
    engine: Engine,
    partitioning: String,
    load: Duration,
    statistics: Latency,
    reference: Duration,
    bytes_per_row: f64,
    dropped: (u64, Duration),
    deleted: (u64, Duration),
}

struct Latency {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn device_uuid(expression: &str) -> String {
    format!("('00000000-0000-0000-0000-' || lpad(to_hex({expression}), 12, '0'))::uuid")
}

/// Loads the history in slices of a million rows, then the rollups from it.
async fn load(connection: &mut PgConnection, options: &Options) -> Duration {
    let started = Instant::now();
    // Loading, not measuring: skip the per-row foreign-key check and the WAL flush.
    sqlx::raw_sql("SET session_replication_role = replica; SET synchronous_commit = off")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query(&format!("INSERT INTO device SELECT {} FROM generate_series(1, $1) AS i", device_uuid("i")))
        .bind(options.devices as i32)
        .execute(&mut *connection)
        .await
        .unwrap();
    let step = SPAN_SECONDS / options.rows as f64;
    let slice = 1_000_000u64;
    let mut first = 0u64;
    while first < options.rows {
        let last = (first + slice).min(options.rows) - 1;
        sqlx::query(&format!(
            "INSERT INTO measurement
             SELECT {}, now() - make_interval(secs => ($3 - i) * $4),
                    (random() * 100)::int, 100, random() * 200 - 100, 15 + random() * 15,
                    20 + random() * 40, (random() * 100)::int
             FROM generate_series($1::int8, $2::int8) AS i",
            device_uuid("1 + i % $5")
        ))
        .bind(first as i64)
        .bind(last as i64)
        .bind(options.rows as i64)
        .bind(step)
        .bind(i64::from(options.devices))
        .execute(&mut *connection)
        .await
        .unwrap();
        first = last + 1;
        eprint!("\r  loaded {first} rows");
    }
    eprintln!();
    sqlx::raw_sql(
        "INSERT INTO measurement_hourly
         SELECT date_trunc('hour', time, 'UTC'), 0, count(*), sum(water_temp), sum(water_temp * water_temp)
         FROM measurement GROUP BY 1;
         INSERT INTO device_state
         SELECT DISTINCT ON (device_id) * FROM measurement ORDER BY device_id, time DESC;
         ANALYZE;",
    )
    .execute(&mut *connection)
    .await
    .unwrap();
    started.elapsed()
}

async fn time_statistics(address: std::net::SocketAddr, requests: usize, rows: u64) -> Latency {
    let client = reqwest::Client::new();
    let url = format!("http://{address}/statistics");
    for _ in 0..10 {
        let stats: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats["statsMeasurementCount"], rows, "{stats}");
    }
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let at = |quantile: f64| times[((times.len() - 1) as f64 * quantile).round() as usize];
    Latency { median: at(0.5), p99: at(0.99), mean: times.iter().sum::<Duration>() / times.len() as u32 }
}

/// The per-hour figures from the history itself; the best of three.
async fn time_reference(connection: &mut PgConnection) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let hours: Vec<(i32, i64, f64, f64)> = sqlx::query_as(
            "SELECT extract(hour FROM time AT TIME ZONE 'UTC')::int4 AS hour_of_day, count(*),
                    avg(water_temp), stddev_pop(water_temp)
             FROM measurement GROUP BY hour_of_day ORDER BY hour_of_day",
        )
        .fetch_all(&mut *connection)
        .await
        .unwrap();
        assert_eq!(hours.len(), 24);
        best = best.min(started.elapsed());
    }
    best
}

async fn stored_rows(connection: &mut PgConnection) -> u64 {
    let rows: i64 = sqlx::query_scalar("SELECT coalesce(sum(measurement_count), 0)::int8 FROM measurement_hourly")
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    rows as u64
}

async fn bytes_per_row(connection: &mut PgConnection, engine: Engine, rows: u64) -> f64 {
    let sql = match engine {
        Engine::Timescaledb => "SELECT hypertable_size('measurement')",
        Engine::Native => {
            "SELECT sum(pg_total_relation_size(inhrelid))::int8 FROM pg_inherits
             WHERE inhparent = 'measurement'::regclass"
        }
    };
    let bytes: i64 = sqlx::query_scalar(sql).fetch_one(&mut *connection).await.unwrap();
    bytes as f64 / rows as f64
}

async fn measure(engine: Engine, options: &Options) -> Figures {
    // The rows' real rate, so TimescaleDB's chunks are sized for them.
    let rate = ((options.rows as f64 / SPAN_SECONDS).ceil() as u64).max(1).to_string();
    let served = Served::start(engine, &["--expected-ingest-rate", &rate]).await;
    let mut connection = PgConnection::connect(&served.url).await.unwrap();
    eprintln!("{}: loading {} rows", engine.name(), options.rows);
    let load = load(&mut connection, options).await;
    eprintln!("{}: loaded in {:.0} s; timing /statistics", engine.name(), load.as_secs_f64());
    let statistics = time_statistics(served.address, options.requests, options.rows).await;
    eprintln!("{}: timing the reference query", engine.name());
    let reference = time_reference(&mut connection).await;
    let bytes_per_row = bytes_per_row(&mut connection, engine, options.rows).await;
    let partitioning = support::partitioning(&mut connection, engine).await;

    eprintln!("{}: retention", engine.name());
    let before = stored_rows(&mut connection).await;
    let started = Instant::now();
    let _: i32 = sqlx::query_scalar(
        "SELECT loadlab_drop_measurements_before(date_trunc('day', now() - interval '5 days', 'UTC'))",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    let dropped = (before - stored_rows(&mut connection).await, started.elapsed());
    let started = Instant::now();
    let deleted =
        sqlx::query("DELETE FROM measurement WHERE time < date_trunc('day', now() - interval '4 days', 'UTC')")
            .execute(&mut connection)
            .await
            .unwrap()
            .rows_affected();
    let deleted = (deleted, started.elapsed());
    Figures { engine, partitioning, load, statistics, reference, bytes_per_row, dropped, deleted }
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let mut figures = Vec::new();
    for engine in ENGINES {
        figures.push(measure(engine, &options).await);
    }
    println!(
        "device-api /statistics benchmark: {} measurements of {} devices over 7 days, {} requests",
        options.rows, options.devices, options.requests
    );
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let row = |label: &str, value: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = figures.iter().map(|each| format!("{:>24}", value(each))).collect();
        println!("{label:<34}{}", cells.join(""));
    };
    row("", &|each| each.engine.name().to_string());
    row("storage", &|each| each.partitioning.clone());
    row("load (SQL, rollups, ANALYZE)", &|each| format!("{:.0} s", each.load.as_secs_f64()));
    row("bytes per stored row", &|each| format!("{:.0}", each.bytes_per_row));
    row("GET /statistics median", &|each| format!("{:.2} ms", ms(each.statistics.median)));
    row("GET /statistics p99", &|each| format!("{:.2} ms", ms(each.statistics.p99)));
    row("GET /statistics mean", &|each| format!("{:.2} ms", ms(each.statistics.mean)));
    row("reference: same from history", &|each| format!("{:.0} ms", ms(each.reference)));
    row("ratio reference / median", &|each| format!("{:.0}", ms(each.reference) / ms(each.statistics.median)));
    row("retention: drop > 5 days old", &|each| format!("{} rows {:.0} ms", each.dropped.0, ms(each.dropped.1)));
    row("reference: DELETE up to 4 days", &|each| format!("{} rows {:.0} ms", each.deleted.0, ms(each.deleted.1)));
    row("ratio DELETE / drop (per row)", &|each| {
        let per_row = |(rows, time): (u64, Duration)| time.as_secs_f64() / rows.max(1) as f64;
        format!("{:.0}", per_row(each.deleted) / per_row(each.dropped))
    });
}
