//! What both benchmarks do first: a private PostgreSQL for one storage engine and the
//! built device-api serving it as a child process.

#![allow(dead_code)] // each benchmark uses a different part

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use loadlab::PostgresInstance;
use loadlab::postgres::PostgresOptions;

/// The engines, in the order they are measured and printed.
pub const ENGINES: [Engine; 2] = [Engine::Timescaledb, Engine::Native];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Timescaledb,
    Native,
}

impl Engine {
    /// device-api's `--storage`.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::Native => "native",
        }
    }

    /// The name `/ready` reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::Native => "native-partitions",
        }
    }
}

/// A running device-api on its own private PostgreSQL; stopped on drop.
pub struct Served {
    pub postgres: PostgresInstance,
    pub url: String,
    pub address: SocketAddr,
    api: Child,
}

impl Served {
    /// Starts PostgreSQL (preloading TimescaleDB for that engine) and device-api with
    /// `--storage` demanding the engine, plus `args`; waits until `/ready`.
    pub async fn start(engine: Engine, args: &[&str]) -> Self {
        let postgres = PostgresInstance::start_with(PostgresOptions {
            timescaledb: engine == Engine::Timescaledb,
            ..Default::default()
        })
        .unwrap_or_else(|error| panic!("{error}"));
        postgres.create_database("device_api").unwrap();
        let url = postgres.url("device_api");
        let port = loadlab::ports::free_loopback_port().unwrap();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let api = Command::new(env!("CARGO_BIN_EXE_device-api"))
            .args(["--listen", &address.to_string(), "--database-url", &url, "--storage", engine.flag()])
            .args(args)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("device-api starts");
        let served = Self { postgres, url, address, api };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(response) = client.get(format!("http://{address}/ready")).send().await
                && response.status() == 200
            {
                let ready: serde_json::Value = response.json().await.unwrap();
                assert_eq!(ready["engine"], engine.name(), "{ready}");
                return served;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("device-api did not become ready on {}", engine.name());
    }

    /// Stops device-api, keeping the database.
    pub fn stop_api(&mut self) {
        let _ = self.api.kill();
        let _ = self.api.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop_api();
    }
}

/// `chunk interval` of the hypertable, or the partitioning of the native table.
pub async fn partitioning(connection: &mut sqlx::PgConnection, engine: Engine) -> String {
    match engine {
        Engine::Timescaledb => {
            let interval: String = sqlx::query_scalar(
                "SELECT time_interval::text FROM timescaledb_information.dimensions WHERE hypertable_name = 'measurement'",
            )
            .fetch_one(&mut *connection)
            .await
            .unwrap();
            format!("{interval} chunks")
        }
        Engine::Native => "1 day partitions".to_string(),
    }
}
