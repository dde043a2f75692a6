//! Storage: the engine the migration chose (whichever is available on this machine),
//! partitions made ahead of need, and `/statistics` reading rollups instead of the
//! measurement history.

mod common;

use common::{TestApi, measurement};
use serde_json::Value;
use sqlx::Connection;

#[tokio::test]
async fn measurements_land_in_time_partitions_of_the_available_engine() {
    let api = TestApi::start().await;
    let ready: Value = api.client.get(api.url("/ready")).send().await.unwrap().json().await.unwrap();
    let timescale_available =
        api.count("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").await > 0;
    let device = api.login().await;
    for _ in 0..5 {
        assert_eq!(api.post_measurement(device, &measurement(30.0, 50, 50)).await, 204);
    }
    if ready["engine"] == "timescaledb" {
        assert!(timescale_available);
        assert_eq!(
            api.count("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'measurement'")
                .await,
            1
        );
    } else {
        assert_eq!(ready["engine"], "native-partitions", "{ready}");
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
        let today =
            api.count("SELECT count(*) FROM measurement WHERE tableoid::regclass::text <> 'measurement_default'").await;
        assert_eq!(today, 5);
    }
    api.stop().await;
}

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

/// Whether `table` holds measurement history: the table itself, a native partition
/// (`measurement_20261126`), or a TimescaleDB chunk (`_hyper_1_1_chunk`).
fn is_history(table: &str) -> bool {
    (table.starts_with("measurement") && table != "measurement_hourly")
        || (table.starts_with("_hyper_") && table.ends_with("_chunk"))
}

#[tokio::test]
async fn statistics_never_scan_the_measurement_history() {
    let api = TestApi::start().await;
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
    // The check can fail: a query that reads the history is caught.
    let counting = plan(&mut connection, "SELECT count(*) FROM measurement").await;
    assert!(scanned_tables(&counting).iter().any(|table| is_history(table)), "{counting}");
    api.stop().await;
}
