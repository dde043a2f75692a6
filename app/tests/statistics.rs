//! `/statistics` figures against hand-computed values, on both storage engines: the
//! rollups the write path keeps agree with the stored rows whichever engine holds them.

mod common;

use common::{Engine, TestApi, measurement};
use serde_json::{Value, json};

async fn statistics_are_computed_from_the_stored_rows(engine: Engine) {
    let api = TestApi::start_on(engine, |_| {}).await;
    let first = api.login().await;
    let second = api.login().await;
    let _silent = api.login().await;
    let hour = chrono::Utc::now();
    let server = &api;
    let send = |device: uuid::Uuid, water_temp: f64, water_level: i64, charge_now: i64| {
        let mut body = measurement(water_temp, water_level, charge_now);
        body["time"] = json!(hour.to_rfc3339());
        body["ambient_temp"] = json!(20.0);
        async move { assert_eq!(server.post_measurement(device, &body).await, 204) }
    };
    send(first, 20.0, 10, 1).await;
    send(first, 40.0, 30, 70).await; // first's latest (same time, later write wins)
    send(second, 60.0, 50, 20).await; // second's latest

    for path in ["/statistics", "/stats"] {
        let response = api.client.get(api.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let stats: Value = response.json().await.unwrap();
        assert_eq!(stats["statsMeasurementCount"], 3, "{path}: {stats}");
        assert_eq!(stats["statsNumDevices"], 3);
        assert_eq!(stats["statsTotalBatteryCharge"], 70 + 20);
        assert_eq!(stats["statsTotalWaterVolume"], 30 + 50);
        // 30 L × 4186 × (40 − 20) + 50 L × 4186 × (60 − 20)
        let energy = 30.0 * 4186.0 * 20.0 + 50.0 * 4186.0 * 40.0;
        assert!((stats["statsTotalWaterEnergy"].as_f64().unwrap() - energy).abs() < 1e-6, "{stats}");
        let by_hour = stats["statsMeanTemperature"].as_array().unwrap();
        assert_eq!(by_hour.len(), 1);
        assert_eq!(by_hour[0][0], json!(chrono::Timelike::hour(&hour)));
        let (mean, stddev) = (by_hour[0][1][0].as_f64().unwrap(), by_hour[0][1][1].as_f64().unwrap());
        assert!((mean - 40.0).abs() < 1e-9);
        assert!((stddev - (800.0f64 / 3.0).sqrt()).abs() < 1e-9, "stddev_pop of 20, 40, 60");
    }
    // The rollup agrees with the raw rows.
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 3);
    // The rollup the figures come from agrees with the raw rows, hour by hour.
    let (rollup, raw) = (hourly(&api, ROLLUP_BY_HOUR).await, hourly(&api, RAW_BY_HOUR).await);
    assert_eq!(rollup, raw, "measurement_hourly (left) against measurement (right)");
    assert_eq!(raw.len(), 1);
    api.stop().await;
}
on_each_engine!(statistics_are_computed_from_the_stored_rows);

/// (hour as unix seconds, count, sum and sum of squares of water_temp) from the rollup…
const ROLLUP_BY_HOUR: &str = "
    SELECT extract(epoch FROM hour)::int8, sum(measurement_count)::int8,
           sum(water_temp_sum)::float8, sum(water_temp_sum_squares)::float8
    FROM measurement_hourly GROUP BY hour ORDER BY hour";

/// …and the same from the rows themselves.
const RAW_BY_HOUR: &str = "
    SELECT (floor(extract(epoch FROM time) / 3600) * 3600)::int8 AS hour, count(*)::int8,
           sum(water_temp)::float8, sum(water_temp * water_temp)::float8
    FROM measurement GROUP BY 1 ORDER BY 1";

async fn hourly(api: &TestApi, sql: &str) -> Vec<(i64, i64, f64, f64)> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&api.postgres.url("device_api")).await.unwrap();
    sqlx::query_as(sql).fetch_all(&mut connection).await.unwrap()
}
