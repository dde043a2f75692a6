//! Ingest benchmark: sustained rows/s through `POST /measurement` (and the batch
//! route), against the rate at which the same PostgreSQL ingests the same number of
//! rows into the same table with `COPY`, measured in the same run. Prints both and
//! their ratio; asserts nothing (wall-clock numbers on a shared machine are noisy).
//!
//! `cargo bench -p device-api --bench ingest -- [--seconds 10] [--connections 512]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use sqlx::Connection;

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
    let tasks: Vec<_> = devices
        .iter()
        .cloned()
        .map(|device| {
            let (stop, acknowledged, failed) = (stop.clone(), acknowledged.clone(), failed.clone());
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(address).await.expect("connect");
                stream.set_nodelay(true).unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
                tokio::spawn(connection);
                // A Send generator: the task moves between worker threads.
                let mut rng = rand::rngs::StdRng::from_os_rng();
                while !stop.load(Ordering::Relaxed) {
                    let body = if rows_per_request == 1 {
                        random_measurement(&mut rng)
                    } else {
                        let rows: Vec<String> = (0..rows_per_request).map(|_| random_measurement(&mut rng)).collect();
                        format!("[{}]", rows.join(","))
                    };
                    let request = hyper::Request::post(path)
                        .header("host", "bench")
                        .header("content-type", "application/json")
                        .header("servant-auth-cookie", &device)
                        .body(Full::new(Bytes::from(body)))
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

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let postgres = loadlab_fixtures::database();
    let url = postgres.url("device_api");
    let address = loadlab_fixtures::free_address();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_device-api"));
    let (spec, ready) = loadlab_fixtures::device_api(binary, address, &url, &[]);
    let mut api =
        spec.start_async(&ready, loadlab_fixtures::READY_LIMIT).await.unwrap_or_else(|error| panic!("{error}"));
    let client = reqwest::Client::new();
    let mut devices = Vec::new();
    for _ in 0..options.connections {
        devices.push(login(address).await);
    }

    println!(
        "device-api ingest benchmark: {} connections, {} s per phase, fsync on",
        options.connections, options.seconds
    );
    let (single_rows, single_failed) = drive(address, &devices, "/measurement", 1, options.seconds).await;
    let single_rate = single_rows as f64 / options.seconds as f64;
    let (batch_rows, batch_failed) = drive(address, &devices, "/measurements", options.batch, options.seconds).await;
    let batch_rate = batch_rows as f64 / options.seconds as f64;
    let started = Instant::now();
    let statistics = client.get(format!("http://{address}/statistics")).send().await.unwrap();
    let statistics_time = started.elapsed();
    let counted: serde_json::Value = statistics.json().await.unwrap();
    api.stop_with(loadlab_supervise::Stop::kill());

    let copy = copy_rate(&url, &devices, single_rows.max(batch_rows).max(100_000)).await;
    println!("POST /measurement            {single_rate:>12.0} rows/s  ({single_failed} non-204)");
    println!("POST /measurements ×{:<4}     {batch_rate:>12.0} rows/s  ({batch_failed} non-204)", options.batch);
    println!("COPY (same table, same DB)   {copy:>12.0} rows/s");
    println!("ratio single / COPY          {:>12.3}   (target ≥ 0.5)", single_rate / copy);
    println!("ratio batch  / COPY          {:>12.3}", batch_rate / copy);
    println!(
        "GET /statistics at {} rows: {:.1} ms",
        counted["statsMeasurementCount"],
        statistics_time.as_secs_f64() * 1000.0
    );
}
