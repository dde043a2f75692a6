//! What both benchmarks do first: a private PostgreSQL for one storage engine and the
//! built device-api serving it as a child process.

#![allow(dead_code)] // each benchmark uses a different part

use std::net::SocketAddr;

use loadlab::PostgresInstance;
use loadlab::postgres::PostgresOptions;
use loadlab_fixtures::{cpu_seconds, cpu_seconds_with_children};

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
    api: Option<loadlab_supervise::Supervised>,
}

impl Served {
    /// Starts PostgreSQL (preloading TimescaleDB for that engine) and device-api with
    /// `--storage` demanding the engine, plus `args`; waits until `/ready`.
    pub async fn start(engine: Engine, args: &[&str]) -> Self {
        let timescaledb = engine == Engine::Timescaledb;
        let postgres = loadlab_fixtures::database_with(PostgresOptions { timescaledb, ..Default::default() });
        let url = postgres.url("device_api");
        let address = loadlab_fixtures::free_address();
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_device-api"));
        let mut all = vec!["--storage", engine.flag()];
        all.extend(args);
        let (spec, ready) = loadlab_fixtures::device_api(binary, address, &url, &all);
        let api =
            spec.start_async(&ready, loadlab_fixtures::READY_LIMIT).await.unwrap_or_else(|error| panic!("{error}"));
        let answer = reqwest::get(format!("http://{address}/ready")).await.unwrap();
        let ready: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(ready["engine"], engine.name(), "{ready}");
        Self { postgres, url, address, api: Some(api) }
    }

    /// Stops device-api, keeping the database.
    pub fn stop_api(&mut self) {
        if let Some(mut api) = self.api.take() {
            api.stop_with(loadlab_supervise::Stop::kill());
        }
    }
}

/// CPU seconds (user + system) spent so far by each side of a benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// This benchmark process: the HTTP client.
    pub client: f64,
    pub api: f64,
    /// The postmaster and every backend it forked.
    pub postgres: f64,
}

impl Cpu {
    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            client: self.client - earlier.client,
            api: self.api - earlier.api,
            postgres: self.postgres - earlier.postgres,
        }
    }
}

impl Served {
    /// CPU used so far by the client, device-api and PostgreSQL (exited backends are
    /// not counted, so measure across a phase whose connections stay open).
    pub fn cpu(&self) -> Cpu {
        let api = self.api.as_ref().map_or(0.0, |api| cpu_seconds(api.pid()));
        let postgres = self.postgres.pid().map_or(0.0, cpu_seconds_with_children);
        Cpu { client: cpu_seconds(std::process::id()), api, postgres }
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
