//! Ingest benchmark, on both storage engines in one run: sustained rows/s through
//! `POST /measurement` (and the batch route), against the rate at which the same
//! PostgreSQL ingests the same number of rows into the same table with `COPY`,
//! measured right after. Prints both engines side by side with their ratios to COPY,
//! and the CPU the client, device-api and PostgreSQL each spent per single-row request
//! (the three share the machine's cores); asserts nothing (wall-clock numbers on a
//! shared machine are noisy).
//!
//! `cargo bench -p device-api --bench ingest -- [--seconds 10] [--connections 512]
//! [--expected-ingest-rate 1000]`

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rand::Rng;
use sqlx::Connection;
use support::{Cpu, ENGINES, Engine, Served};

#[derive(Parser, Debug)]
struct Options {
    /// Seconds each HTTP phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent keep-alive connections (one simulated device each). A closed loop
    /// is bounded by connections ÷ latency, and each request waits for a group
    /// commit, so too few connections measure latency, not throughput.
    #[arg(long, default_value_t = 512)]
    connections: usize,
    /// Rows per request in the batch-route phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// device-api's --expected-ingest-rate (sets TimescaleDB's chunk interval).
    #[arg(long, default_value_t = 1000)]
    expected_ingest_rate: u32,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn random_measurement(rng: &mut impl Rng) -> String {
    let charge_full: i32 = rng.random_range(1..=100);
    format!(
        r#"{{"time":"{}","charge_now":{},"charge_full":{charge_full},"charge_rate":{:.3},"ambient_temp":{:.3},"water_temp":{:.3},"water_level":{}}}"#,
        chrono::Utc::now().to_rfc3339(),
        rng.random_range(0..=charge_full),
        rng.random_range(-100.0..100.0),
        rng.random_range(20.0..60.0),
        rng.random_range(20.0..60.0),
        rng.random_range(0..=100),
    )
}

/// Bodies each connection cycles through. Made before the clock starts, as COPY's
/// CSV is: the bench measures the server, and the client shares its two cores.
const BODIES_PER_CONNECTION: usize = 16;

/// `BODIES_PER_CONNECTION` request bodies of `rows_per_request` random measurements.
fn prepared_bodies(rows_per_request: usize) -> Vec<Bytes> {
    let mut rng = rand::rng();
    (0..BODIES_PER_CONNECTION)
        .map(|_| {
            let body = if rows_per_request == 1 {
                random_measurement(&mut rng)
            } else {
                let rows: Vec<String> = (0..rows_per_request).map(|_| random_measurement(&mut rng)).collect();
                format!("[{}]", rows.join(","))
            };
            Bytes::from(body)
        })
        .collect()
}

/// Closed loop: each connection sends the next request as soon as the last is
/// answered, for `seconds`. Returns rows acknowledged (204) and non-204 answers.
async fn drive(
    address: SocketAddr,
    devices: &[String],
    path: &'static str,
    rows_per_request: usize,
    seconds: u64,
) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let prepared: Vec<(String, Vec<Bytes>)> =
        devices.iter().map(|device| (device.clone(), prepared_bodies(rows_per_request))).collect();
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(device, bodies)| {
            let (stop, acknowledged, failed) = (stop.clone(), acknowledged.clone(), failed.clone());
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(address).await.expect("connect");
                stream.set_nodelay(true).unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
                tokio::spawn(connection);
                for body in bodies.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let request = hyper::Request::post(path)
                        .header("host", "bench")
                        .header("content-type", "application/json")
                        .header("servant-auth-cookie", &device)
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let Ok(response) = sender.send_request(request).await else { break };
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    if status == 204 {
                        acknowledged.fetch_add(rows_per_request as u64, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    (acknowledged.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

async fn login(address: SocketAddr) -> String {
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .post(format!("http://{address}/login"))
        .json(&serde_json::json!({"username": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["username"].as_str().unwrap().to_string()
}

/// COPYs `rows` rows for `devices` into `measurement`; returns rows/s.
async fn copy_rate(url: &str, devices: &[String], rows: u64) -> f64 {
    let mut rng = rand::rng();
    let now = chrono::Utc::now().to_rfc3339();
    let mut csv = String::with_capacity(rows as usize * 120);
    for i in 0..rows as usize {
        let charge_full: i32 = rng.random_range(1..=100);
        csv.push_str(&format!(
            "{},{now},{},{charge_full},{:.3},{:.3},{:.3},{}\n",
            devices[i % devices.len()],
            rng.random_range(0..=charge_full),
            rng.random_range(-100.0..100.0),
            rng.random_range(20.0..60.0),
            rng.random_range(20.0..60.0),
            rng.random_range(0..=100),
        ));
    }
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let started = Instant::now();
    let mut copy = connection
        .copy_in_raw(
            "COPY measurement (device_id, time, charge_now, charge_full, charge_rate, ambient_temp, water_temp, water_level) \
             FROM STDIN (FORMAT csv)",
        )
        .await
        .unwrap();
    for chunk in csv.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    copy.finish().await.unwrap();
    rows as f64 / started.elapsed().as_secs_f64()
}

/// One engine's figures.
struct Figures {
    engine: Engine,
    partitioning: String,
    single: (f64, u64),
    /// CPU each side spent in the single-row phase.
    single_cpu: Cpu,
    batch: (f64, u64),
    copy: f64,
    statistics: (serde_json::Value, Duration),
}

async fn measure(engine: Engine, options: &Options) -> Figures {
    let rate = options.expected_ingest_rate.to_string();
    let mut served = Served::start(engine, &["--expected-ingest-rate", &rate]).await;
    let address = served.address;
    let mut devices = Vec::new();
    for _ in 0..options.connections {
        devices.push(login(address).await);
    }
    eprintln!("{}: POST /measurement for {} s", engine.name(), options.seconds);
    let before = served.cpu();
    let (single_rows, single_failed) = drive(address, &devices, "/measurement", 1, options.seconds).await;
    let single_cpu = served.cpu().since(before);
    eprintln!("{}: POST /measurements for {} s", engine.name(), options.seconds);
    let (batch_rows, batch_failed) = drive(address, &devices, "/measurements", options.batch, options.seconds).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let statistics = client.get(format!("http://{address}/statistics")).send().await.unwrap();
    let statistics_time = started.elapsed();
    let counted: serde_json::Value = statistics.json().await.unwrap();
    served.stop_api();

    let copy = copy_rate(&served.url, &devices, single_rows.max(batch_rows).max(100_000)).await;
    let mut connection = sqlx::PgConnection::connect(&served.url).await.unwrap();
    let partitioning = support::partitioning(&mut connection, engine).await;
    let seconds = options.seconds as f64;
    Figures {
        engine,
        partitioning,
        single: (single_rows as f64 / seconds, single_failed),
        single_cpu,
        batch: (batch_rows as f64 / seconds, batch_failed),
        copy,
        statistics: (counted["statsMeasurementCount"].clone(), statistics_time),
    }
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let mut figures = Vec::new();
    for engine in ENGINES {
        figures.push(measure(engine, &options).await);
    }
    println!(
        "device-api ingest benchmark: {} connections, {} s per phase, fsync on, --expected-ingest-rate {}",
        options.connections, options.seconds, options.expected_ingest_rate
    );
    let row = |label: &str, value: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = figures.iter().map(|each| format!("{:>26}", value(each))).collect();
        println!("{label:<30}{}", cells.join(""));
    };
    row("", &|each| each.engine.name().to_string());
    row("storage", &|each| each.partitioning.clone());
    row("POST /measurement rows/s", &|each| format!("{:.0} ({} non-204)", each.single.0, each.single.1));
    row(&format!("POST /measurements ×{} rows/s", options.batch), &|each| {
        format!("{:.0} ({} non-204)", each.batch.0, each.batch.1)
    });
    row("COPY rows/s (same table)", &|each| format!("{:.0}", each.copy));
    row("ratio single / COPY", &|each| format!("{:.3}", each.single.0 / each.copy));
    row("ratio batch / COPY", &|each| format!("{:.3}", each.batch.0 / each.copy));
    // Where a single-row request's time goes: the three share the machine's cores.
    let seconds = options.seconds as f64;
    let per_row = |cpu: f64, each: &Figures| format!("{:.1} µs", cpu * 1e6 / (each.single.0 * seconds));
    row("CPU per single row: client", &|each| per_row(each.single_cpu.client, each));
    row("                    device-api", &|each| per_row(each.single_cpu.api, each));
    row("                    PostgreSQL", &|each| per_row(each.single_cpu.postgres, each));
    row("GET /statistics", &|each| {
        format!("{:.1} ms at {} rows", each.statistics.1.as_secs_f64() * 1000.0, each.statistics.0)
    });
    if let [timescaledb, native] = &figures[..] {
        println!(
            "timescaledb / native: single {:.2}, batch {:.2}, COPY {:.2}",
            timescaledb.single.0 / native.single.0,
            timescaledb.batch.0 / native.batch.0,
            timescaledb.copy / native.copy
        );
    }
}
