//! Storage, on both engines: measurements land in time partitions (TimescaleDB chunks
//! of the interval derived from the expected ingest rate, or native day partitions
//! made ahead of need), `/statistics` reads rollups instead of the measurement history,
//! `/ready` and the engine metric say which engine, retention drops old history with
//! its statistics. And the engine choice itself: a server with TimescaleDB installed
//! but not preloaded falls back to native partitions with a warning, or is refused
//! when TimescaleDB is demanded; compression is refused where it cannot be done.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Engine, TestApi, measurement, query_i64};
use device_api::Config;
use device_api::db::{Compression, Retention, SetupError, StorageChoice, setup};
use loadlab_fixtures::{device_api, free_address};
use loadlab_supervise::Supervised;
use serde_json::Value;
use sqlx::Connection;

async fn measurements_land_in_time_partitions(engine: Engine) {
    let api = TestApi::start_on(engine, |config| config.storage.expected_ingest_rate = 10_000).await;
    let device = api.login().await;
    for _ in 0..5 {
        assert_eq!(api.post_measurement(device, &measurement(30.0, 50, 50)).await, 204);
    }
    match engine {
        Engine::Timescaledb => {
            assert_eq!(
                api.count(
                    "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'measurement'"
                )
                .await,
                1
            );
            // 10,000 rows/s fill 512 MiB in about 7 minutes: 5-minute chunks.
            let interval = api
                .count(
                    "SELECT extract(epoch FROM time_interval)::int8 FROM timescaledb_information.dimensions
                     WHERE hypertable_name = 'measurement'",
                )
                .await;
            assert_eq!(interval, 300);
            let in_chunks = api
                .count("SELECT count(*) FROM measurement WHERE tableoid::regclass::text LIKE '%_hyper_%_chunk'")
                .await;
            assert_eq!(in_chunks, 5);
        }
        Engine::Native => {
            // Today and the week ahead exist as partitions before any row needs them.
            let ahead = api
                .count(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'measurement'::regclass
                       AND c.relname >= 'measurement_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')
                       AND c.relname <> 'measurement_default'",
                )
                .await;
            assert!(ahead >= 8, "partitions for today and 7 days ahead, found {ahead}");
            assert_eq!(
                api.count("SELECT count(*) FROM ONLY measurement_default").await,
                0,
                "nothing in the default partition"
            );
            let today = api
                .count("SELECT count(*) FROM measurement WHERE tableoid::regclass::text <> 'measurement_default'")
                .await;
            assert_eq!(today, 5);
        }
    }
    api.stop().await;
}
on_each_engine!(measurements_land_in_time_partitions);

/// The plan of `sql`, as text (`$1`, where present, bound to a float).
async fn plan(connection: &mut sqlx::PgConnection, sql: &str) -> String {
    let explain = format!("EXPLAIN {sql}");
    let mut query = sqlx::query_scalar::<_, String>(&explain);
    if sql.contains("$1") {
        query = query.bind(4186.0f64);
    }
    query.fetch_all(&mut *connection).await.unwrap().join("\n")
}

/// Tables a plan reads, by the `on <table>` of its scan nodes.
fn scanned_tables(plan: &str) -> Vec<String> {
    plan.split(" on ").skip(1).filter_map(|rest| rest.split_whitespace().next()).map(str::to_string).collect()
}

/// Whether a scanned table holds measurement history: the table, a native partition
/// or a TimescaleDB chunk.
fn is_history(table: &str) -> bool {
    let table = table.trim_start_matches("_timescaledb_internal.");
    (table.starts_with("measurement") && table != "measurement_hourly") || table.starts_with("_hyper_")
}

async fn statistics_never_scan_the_measurement_history(engine: Engine) {
    let api = TestApi::start_on(engine, |_| {}).await;
    let device = api.login().await;
    let rows: Vec<Value> = (0..200).map(|_| measurement(30.0, 50, 50)).collect();
    for batch in rows.chunks(100) {
        let response = api.client.post(api.url("/measurements")).bearer_auth(device).json(&batch).send().await.unwrap();
        assert_eq!(response.status(), 204);
    }
    let stats: Value = api.client.get(api.url("/statistics")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["statsMeasurementCount"], 200);

    let mut connection = sqlx::PgConnection::connect(&api.postgres.url("device_api")).await.unwrap();
    for sql in [device_api::statistics::SUMMARY_SQL, device_api::statistics::HOURLY_SQL] {
        let plan = plan(&mut connection, sql).await;
        let tables = scanned_tables(&plan);
        assert!(!tables.is_empty(), "the plan names its tables:\n{plan}");
        let history: Vec<_> = tables.iter().filter(|table| is_history(table)).collect();
        assert!(history.is_empty(), "/statistics reads the measurement history ({history:?}):\n{plan}");
    }
    // The check can fail: a query that reads the history is caught, on this engine too.
    let counting = plan(&mut connection, "SELECT count(*) FROM measurement").await;
    assert!(scanned_tables(&counting).iter().any(|table| is_history(table)), "{counting}");
    api.stop().await;
}
on_each_engine!(statistics_never_scan_the_measurement_history);

async fn ready_and_metrics_report_the_engine(engine: Engine) {
    let api = TestApi::start_on(engine, |_| {}).await;
    let ready: Value = api.client.get(api.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["engine"], engine.reported(), "{ready}");
    let metrics = api.client.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let info = format!("device_api_storage_engine_info{{engine=\"{}\"}} 1", engine.reported());
    assert!(metrics.contains(&info), "/metrics lacks {info}");
    api.stop().await;
}
on_each_engine!(ready_and_metrics_report_the_engine);

/// The engine is read from what holds `measurement`, not from whether the extension
/// exists: a database where an administrator created TimescaleDB (as the NixOS
/// database module does) but device-api was told `--storage native`.
#[tokio::test]
async fn native_partitions_beside_an_existing_extension_are_reported_as_such() {
    let postgres = Engine::Timescaledb.database();
    let mut connection = sqlx::PgConnection::connect(&postgres.url("device_api")).await.unwrap();
    sqlx::raw_sql("CREATE EXTENSION timescaledb").execute(&mut connection).await.unwrap();
    let api = TestApi::serve(postgres, |config| config.storage.storage = StorageChoice::Native).await;
    let ready: Value = api.client.get(api.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["engine"], "native-partitions", "{ready}");
    assert_eq!(
        api.count("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'measurement'::regclass").await,
        1
    );
    api.stop().await;
}

/// As deployed by the NixOS modules: device-api connects as an ordinary role that
/// owns its database and may not read `shared_preload_libraries`.
#[tokio::test]
async fn an_ordinary_role_still_finds_timescaledb_preloaded() {
    let postgres = Engine::Timescaledb.database();
    let mut connection = sqlx::PgConnection::connect(&postgres.url("device_api")).await.unwrap();
    sqlx::raw_sql("CREATE ROLE app LOGIN; ALTER DATABASE device_api OWNER TO app; ALTER SCHEMA public OWNER TO app")
        .execute(&mut connection)
        .await
        .unwrap();
    let app_url = postgres.url("device_api").replace("postgres@", "app@");
    let mut as_app = sqlx::PgConnection::connect(&app_url).await.unwrap();
    let hidden = sqlx::query("SHOW shared_preload_libraries").execute(&mut as_app).await;
    assert!(hidden.is_err(), "the role can read the preload list; the test proves nothing");
    let api = TestApi::serve(postgres, |config| config.database_url = app_url).await;
    let ready: Value = api.client.get(api.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["engine"], "timescaledb", "{ready}");
    api.stop().await;
}

/// A database migrated by a build whose migration 1 had its first text (same schema,
/// other checksum) still starts.
#[tokio::test]
async fn a_database_migrated_with_the_first_text_of_migration_1_still_starts() {
    let postgres = Engine::Native.database();
    let url = postgres.url("device_api");
    let mut config = Config::for_database(&url);
    config.storage.storage = StorageChoice::Native;
    setup::prepare(&url, &config.storage, config.max_measurement_age).await.expect("migrated");
    // What sqlx recorded for the text of 0001_schema.sql up to commit 00ba515.
    let first_text = "52748c4999b6902440c9a6bb92e18c38b2dd7e1484bc71df31b7d2b197cab5d6c40a3aee614d8f9aff9a620b85fb87b9";
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = decode($1, 'hex') WHERE version = 1")
        .bind(first_text)
        .execute(&mut connection)
        .await
        .unwrap();
    let api = TestApi::serve(postgres, |config| config.storage.storage = StorageChoice::Auto).await;
    let ready: Value = api.client.get(api.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["engine"], "native-partitions", "{ready}");
    api.stop().await;
}

/// History 15 and 10 days old and from the last hour, with its hourly rollup, put
/// straight into a migrated database (the API accepts only the last 7 days).
const HISTORY: &str = "
    INSERT INTO device VALUES ('00000000-0000-0000-0000-000000000001');
    SELECT loadlab_ensure_measurement_partitions(current_date - 20, current_date);
    INSERT INTO measurement
    SELECT '00000000-0000-0000-0000-000000000001', now() - make_interval(days => d, mins => i),
           50, 100, 1.0, 20.0, 30.0 + i, 50
    FROM (VALUES (15), (10), (0)) AS ago (d), generate_series(1, 10) AS i;
    INSERT INTO measurement_hourly
    SELECT date_trunc('hour', time, 'UTC'), 0, count(*), sum(water_temp), sum(water_temp * water_temp)
    FROM measurement GROUP BY 1;
";

async fn retention_drops_old_history_with_its_statistics(engine: Engine) {
    let postgres = engine.database();
    let url = postgres.url("device_api");
    let mut config = Config::for_database(&url);
    config.storage.storage = engine.choice();
    config.storage.retention = Retention(Some(Duration::from_secs(86_400)));
    let refused = setup::prepare(&url, &config.storage, config.max_measurement_age).await;
    assert!(
        matches!(&refused, Err(SetupError::Refused(why)) if why.contains("--max-measurement-age")),
        "a retention shorter than the accepted age is refused: {refused:?}"
    );
    config.storage.retention = Retention(None);
    setup::prepare(&url, &config.storage, config.max_measurement_age).await.expect("migrated");
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(HISTORY).execute(&mut connection).await.unwrap();
    assert_eq!(query_i64(&url, "SELECT count(*) FROM measurement").await, 30);

    let keep = Duration::from_secs(12 * 86_400);
    let api = TestApi::serve(postgres, |config| {
        config.storage.storage = engine.choice();
        config.storage.retention = Retention(Some(keep));
    })
    .await;
    // The upkeep ran once before the API answered.
    assert_eq!(api.count("SELECT count(*) FROM measurement WHERE time < now() - interval '12 days'").await, 0);
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 20, "10 days old and recent rows are kept");
    let stats: Value = api.client.get(api.url("/statistics")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["statsMeasurementCount"], 20, "the rollup of dropped hours went with them: {stats}");
    api.stop().await;
}
on_each_engine!(retention_drops_old_history_with_its_statistics);

#[tokio::test]
async fn compression_needs_a_timescaledb_that_can_compress() {
    let postgres = Engine::Timescaledb.database();
    let url = postgres.url("device_api");
    let mut config = Config::for_database(&url);
    config.storage.storage = StorageChoice::Timescaledb;
    config.storage.compress_after = Compression::After(Duration::from_secs(2 * 86_400));
    let demanded = setup::prepare(&url, &config.storage, config.max_measurement_age).await;
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let license: String = sqlx::query_scalar("SHOW timescaledb.license").fetch_one(&mut connection).await.unwrap();
    if license == "timescale" {
        let storage = demanded.expect("the community build compresses");
        assert_eq!(storage.compress_after, Some(Duration::from_secs(2 * 86_400)));
    } else {
        // The Apache-2.0 build, which scripts/install-timescaledb makes.
        let Err(SetupError::Refused(why)) = demanded else { panic!("not refused: {demanded:?}") };
        assert!(why.contains("cannot compress") && why.contains(&license), "{why}");
        config.storage.compress_after = Compression::Auto;
        let storage = setup::prepare(&url, &config.storage, config.max_measurement_age).await.expect("auto starts");
        assert_eq!(storage.compress_after, None);
    }
}

/// device-api, supervised (stopped when dropped), with `args`; and its base URL.
fn spawn_api(database_url: &str, args: &[&str]) -> (Supervised, String) {
    let listen = free_address();
    let (spec, _) = device_api(Path::new(env!("CARGO_BIN_EXE_device-api")), listen, database_url, args);
    (spec.spawn().expect("device-api starts"), format!("http://{listen}"))
}

#[tokio::test]
async fn installed_but_not_preloaded_falls_back_or_refuses() {
    assert!(
        loadlab::postgres::has_timescaledb(),
        "TimescaleDB is not installed beside PostgreSQL; scripts/install-deps (run by scripts/test) builds it"
    );
    let postgres = common::start_database(); // TimescaleDB installed, not preloaded
    let url = postgres.url("device_api");

    // Demanded: refused, saying how to preload it.
    let (mut child, _) = spawn_api(&url, &["--storage", "timescaledb"]);
    let status = child.wait_timeout(Duration::from_secs(15));
    let text = child.output();
    assert!(status.is_some_and(|status| !status.success()), "device-api did not refuse: {status:?}\n{text}");
    assert!(text.contains("not preloaded") && text.contains("shared_preload_libraries = 'timescaledb'"), "{text}");

    // Default: native partitions, with a warning that says how to preload it.
    let (mut child, base) = spawn_api(&url, &[]);
    let client = reqwest::Client::new();
    let mut ready = Value::Null;
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/ready")).send().await
            && response.status() == 200
        {
            ready = response.json().await.unwrap();
            break;
        }
        if child.try_wait().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.stop();
    let text = child.output();
    assert_eq!(ready["engine"], "native-partitions", "device-api did not start on native partitions:\n{text}");
    assert!(text.contains("WARN") && text.contains("shared_preload_libraries = 'timescaledb'"), "{text}");
}
