//! The two storage engines every storage, statistics, fault and durability test runs
//! on: a TimescaleDB hypertable (private PostgreSQL that preloads TimescaleDB) and
//! native partitions (plain private PostgreSQL). `on_each_engine!(test)` turns
//! `async fn test(engine: Engine)` into `test::timescaledb` and
//! `test::native_partitions`.

use device_api::Config;
use device_api::db::StorageChoice;
use loadlab::PostgresInstance;
use loadlab::postgres::PostgresOptions;

use super::TestApi;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Timescaledb,
    Native,
}

impl Engine {
    /// A private PostgreSQL for this engine with an empty `device_api` database.
    /// TimescaleDB must be installed (the test command installs it): a missing one
    /// fails the test with the remedy, never skips it.
    pub fn database(self) -> PostgresInstance {
        let options = PostgresOptions { timescaledb: self == Self::Timescaledb, ..PostgresOptions::default() };
        let postgres = PostgresInstance::start_with(options).unwrap_or_else(|error| panic!("{error}"));
        postgres.create_database("device_api").expect("database created");
        postgres
    }

    /// device-api's `--storage` for it: demanded, so a fallback cannot pass unseen.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::Native => "native",
        }
    }

    /// What `/ready` and `device_api_storage_engine_info` call it.
    pub fn reported(self) -> &'static str {
        match self {
            Self::Timescaledb => "timescaledb",
            Self::Native => "native-partitions",
        }
    }

    pub fn choice(self) -> StorageChoice {
        match self {
            Self::Timescaledb => StorageChoice::Timescaledb,
            Self::Native => StorageChoice::Native,
        }
    }
}

impl TestApi {
    /// device-api in-process on `engine`, with the defaults changed by `adjust`.
    pub async fn start_on(engine: Engine, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::serve(engine.database(), |config| {
            config.storage.storage = engine.choice();
            adjust(config);
        })
        .await
    }
}

/// Generates one `#[tokio::test]` per engine for `async fn $test(engine: Engine)`;
/// anything after the name goes to `#[tokio::test(...)]`.
#[macro_export]
macro_rules! on_each_engine {
    ($test:ident $(, $($tokio:tt)+)?) => {
        mod $test {
            #[tokio::test $(($($tokio)+))?]
            async fn timescaledb() {
                super::$test($crate::common::Engine::Timescaledb).await
            }

            #[tokio::test $(($($tokio)+))?]
            async fn native_partitions() {
                super::$test($crate::common::Engine::Native).await
            }
        }
    };
}
