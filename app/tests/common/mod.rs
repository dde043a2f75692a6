//! Shared test harness: a private PostgreSQL per test and device-api either
//! in-process (`TestApi`) or as a real child process (`ApiProcess`, for signals).

#![allow(dead_code)] // each test binary uses a different part of the harness

mod engine;
pub mod raw;
#[allow(unused_imports)] // not every test binary runs on both engines
pub use engine::Engine;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use device_api::Config;
use loadlab::PostgresInstance;
use loadlab_fixtures::READY_LIMIT;
use loadlab_supervise::{Ready, Signal, Supervised};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// A private PostgreSQL with an empty `device_api` database (TimescaleDB, where
/// installed, not preloaded: device-api falls back to native partitions then; the
/// storage tests choose the engine themselves).
pub fn start_database() -> PostgresInstance {
    loadlab_fixtures::database_with(loadlab::postgres::PostgresOptions::default())
}

/// device-api served in-process on a free port, against its own private PostgreSQL.
pub struct TestApi {
    pub postgres: PostgresInstance,
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), device_api::StartError>>>,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the defaults changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::serve(start_database(), adjust).await
    }

    /// Serves the `device_api` database of `postgres`, with the defaults changed by
    /// `adjust`.
    pub async fn serve(postgres: PostgresInstance, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_database(postgres.url("device_api"));
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(device_api::run(config, listener, async move {
            let _ = signal.await;
        }));
        let api =
            Self { postgres, base, client: reqwest::Client::new(), shutdown: Some(shutdown), server: Some(server) };
        api.wait_ready().await;
        api
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_ready(&self) {
        let address: SocketAddr = self.base.trim_start_matches("http://").parse().expect("an address");
        let ready = Ready::http(address, "/ready");
        ready.wait_async("the in-process device-api", READY_LIMIT).await.unwrap_or_else(|error| panic!("{error}"));
    }

    pub async fn login(&self) -> Uuid {
        login(&self.client, &self.base).await
    }

    /// `POST /measurement` of `body` as `device`; the answer's status.
    pub async fn post_measurement(&self, device: Uuid, body: &Value) -> reqwest::StatusCode {
        let request = self.client.post(self.url("/measurement")).bearer_auth(device).json(body);
        request.send().await.unwrap().status()
    }

    /// Gracefully stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran cleanly");
        }
    }

    /// Runs SQL against the API's database and returns one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        query_i64(&self.postgres.url("device_api"), sql).await
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub async fn query_i64(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await.expect("test connection");
    sqlx::query_scalar(sql).fetch_one(&mut connection).await.expect("test query")
}

pub async fn login(client: &reqwest::Client, base: &str) -> Uuid {
    let response = client
        .post(format!("{base}/login"))
        .json(&json!({"username": "test_user"}))
        .send()
        .await
        .expect("login request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["username"].as_str().unwrap().parse().expect("login returns a uuid")
}

/// A valid measurement body, as the original Locust user sends it.
pub fn measurement(water_temp: f64, water_level: i64, charge_now: i64) -> Value {
    json!({
        "time": chrono::Utc::now().to_rfc3339(),
        "charge_now": charge_now,
        "charge_full": 100,
        "charge_rate": 12.5,
        "ambient_temp": 20.0,
        "water_temp": water_temp,
        "water_level": water_level,
    })
}

/// device-api as a child process of the built binary, for tests that send signals;
/// killed when dropped.
pub struct ApiProcess {
    pub process: Supervised,
    pub base: String,
    pub address: SocketAddr,
}

impl ApiProcess {
    /// Starts it and waits until `/ready` answers 200; a start that fails fails the
    /// test with the tail of device-api's log.
    pub async fn spawn(database_url: &str, extra_args: &[&str]) -> Self {
        let address = loadlab_fixtures::free_address();
        let binary = Path::new(env!("CARGO_BIN_EXE_device-api"));
        let (spec, ready) = loadlab_fixtures::device_api(binary, address, database_url, extra_args);
        let process = spec
            .stop(loadlab_supervise::Stop::kill())
            .start_async(&ready, READY_LIMIT)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Self { process, base: format!("http://{address}"), address }
    }

    pub fn signal(&mut self, signal: Signal) {
        assert!(self.process.signal(signal), "device-api had exited before {signal}");
    }

    /// Waits for the process to exit (polling, so the runtime is not blocked).
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.process
            .wait_timeout_async(limit)
            .await
            .unwrap_or_else(|| panic!("device-api did not exit within {limit:?}; its log:\n{}", self.process.output()))
    }
}

/// What a bounded load run saw.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// (device, time) of every measurement answered 204.
    pub acknowledged: Vec<(Uuid, chrono::DateTime<chrono::Utc>)>,
    /// When each 204 arrived.
    pub acknowledged_at: Vec<std::time::Instant>,
    /// Answers by status code; 0 for a transport error (refused, reset, timeout).
    pub statuses: std::collections::BTreeMap<u16, usize>,
    /// 503 answers that carried `Retry-After` and a JSON error.
    pub well_formed_503: usize,
}

/// Posts measurements from `workers` concurrent loops, one device each, until `stop`
/// is set or each worker has sent `max_per_worker` requests. Every measurement has a
/// distinct time (microsecond steps), so each acknowledged one can be found later.
pub async fn drive_load(
    base: String,
    devices: Vec<Uuid>,
    max_per_worker: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> LoadOutcome {
    use std::sync::atomic::Ordering;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    // Whole microseconds: what timestamptz stores, so the times compare exactly.
    let start = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() - chrono::Duration::seconds(10), 6);
    let workers = devices.into_iter().enumerate().map(|(worker, device)| {
        let client = client.clone();
        let base = base.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut outcome = LoadOutcome::default();
            for i in 0..max_per_worker {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let time = start + chrono::Duration::microseconds((worker * max_per_worker + i) as i64);
                let mut body = measurement(30.0, 50, 50);
                body["time"] = json!(time.to_rfc3339());
                let sent = client.post(format!("{base}/measurement")).bearer_auth(device).json(&body).send().await;
                let status = match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if status == 503 {
                            let retry_after = response.headers().contains_key("retry-after");
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            if retry_after && body["error"] == "unavailable" {
                                outcome.well_formed_503 += 1;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        status
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        0
                    }
                };
                if status == 204 {
                    outcome.acknowledged.push((device, time));
                    outcome.acknowledged_at.push(std::time::Instant::now());
                }
                *outcome.statuses.entry(status).or_default() += 1;
            }
            outcome
        })
    });
    let mut total = LoadOutcome::default();
    for worker in workers.collect::<Vec<_>>() {
        let outcome = worker.await.unwrap();
        total.acknowledged.extend(outcome.acknowledged);
        total.acknowledged_at.extend(outcome.acknowledged_at);
        for (status, count) in outcome.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
        total.well_formed_503 += outcome.well_formed_503;
    }
    total
}

/// Asserts that every acknowledged measurement is in the table.
pub async fn assert_all_stored(database_url: &str, acknowledged: &[(Uuid, chrono::DateTime<chrono::Utc>)]) {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(database_url).await.expect("test connection");
    let stored: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT device_id, time FROM measurement").fetch_all(&mut connection).await.unwrap();
    let stored: std::collections::HashSet<_> = stored.into_iter().collect();
    let missing: Vec<_> = acknowledged.iter().filter(|row| !stored.contains(row)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged measurements are missing, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
}
