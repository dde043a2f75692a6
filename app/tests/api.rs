//! Every route of device-api against a real private PostgreSQL: the original's
//! contract (paths, JSON shapes, auth header and its errors), the command rule, the
//! batch route, and the service endpoints. The statistics figures are checked on both
//! storage engines in statistics.rs.

mod common;

use common::{TestApi, measurement};
use serde_json::{Value, json};

#[tokio::test]
async fn login_returns_a_new_device_each_time() {
    let api = TestApi::start().await;
    let first = api.login().await;
    let second = api.login().await;
    assert_ne!(first, second);
    assert_eq!(api.count("SELECT count(*) FROM device").await, 2);
    api.stop().await;
}

#[tokio::test]
async fn authentication_matches_the_original() {
    let api = TestApi::start().await;
    let client = &api.client;

    let missing = client.get(api.url("/command")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["message"], "Missing auth header");

    let invalid = client.get(api.url("/command")).header("servant-auth-cookie", "not-a-uuid").send().await.unwrap();
    assert_eq!(invalid.status(), 403);
    let body: Value = invalid.json().await.unwrap();
    assert_eq!(body["message"], "Invalid Cookie");

    let unknown = client
        .post(api.url("/measurement"))
        .header("servant-auth-cookie", uuid::Uuid::new_v4().to_string())
        .json(&measurement(30.0, 50, 50))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 403);
    assert_eq!(unknown.json::<Value>().await.unwrap()["error"], "unknown_device");

    let device = api.login().await;
    let by_cookie =
        client.get(api.url("/command")).header("servant-auth-cookie", device.to_string()).send().await.unwrap();
    assert_eq!(by_cookie.status(), 200);
    let by_bearer = client.get(api.url("/command")).bearer_auth(device).send().await.unwrap();
    assert_eq!(by_bearer.status(), 200);
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 0);
    api.stop().await;
}

#[tokio::test]
async fn command_is_decided_from_the_latest_measurement() {
    let api = TestApi::start().await;
    let device = api.login().await;
    let command = || async {
        let response =
            api.client.get(api.url("/command")).header("servant-auth-cookie", device.to_string()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    assert_eq!(
        command().await,
        json!({"charge":"NoChargeBattery","fill":"NoFillReservoir","flush":{"tag":"NoFlushReservoir"}})
    );

    let post = |body: Value| {
        let request =
            api.client.post(api.url("/measurement")).header("servant-auth-cookie", device.to_string()).json(&body);
        async move { request.send().await.unwrap().status() }
    };
    // Hot water, low reservoir, flat battery; the body's own `id` is ignored.
    let mut hot = measurement(60.0, 10, 5);
    hot["id"] = json!(uuid::Uuid::new_v4());
    assert_eq!(post(hot).await, 204);
    assert_eq!(
        command().await,
        json!({"charge":"ChargeBattery","fill":"FillReservoir","flush":{"tag":"FlushReservoir","contents":5.0}})
    );
    // An older measurement does not replace the latest state.
    let mut older = measurement(30.0, 80, 90);
    older["time"] = json!((chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339());
    assert_eq!(post(older).await, 204);
    assert_eq!(command().await["charge"], "ChargeBattery");
    // A newer, healthy one does.
    assert_eq!(post(measurement(30.0, 80, 90)).await, 204);
    assert_eq!(
        command().await,
        json!({"charge":"NoChargeBattery","fill":"NoFillReservoir","flush":{"tag":"NoFlushReservoir"}})
    );
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 3);
    api.stop().await;
}

#[tokio::test]
async fn integers_written_with_a_fractional_zero_are_accepted() {
    let api = TestApi::start().await;
    let device = api.login().await;
    // What JSON and OpenAPI call an integer, and what the original (aeson) accepted.
    let body = json!({
        "time": chrono::Utc::now().to_rfc3339(),
        "charge_now": 100.0,
        "charge_full": 5396.0,
        "charge_rate": 0,
        "ambient_temp": 20,
        "water_temp": 30,
        "water_level": 4.5e1,
    });
    assert_eq!(api.post_measurement(device, &body).await, 204);
    assert_eq!(api.count("SELECT charge_full::int8 FROM measurement").await, 5396);
    assert_eq!(api.count("SELECT water_level::int8 FROM measurement").await, 45);
    api.stop().await;
}

#[tokio::test]
async fn batch_route_stores_every_row_or_none() {
    let api = TestApi::start().await;
    let device = api.login().await;
    let rows: Vec<Value> = (0..50).map(|i| measurement(30.0 + f64::from(i) / 10.0, 40, 50)).collect();
    let response = api.client.post(api.url("/measurements")).bearer_auth(device).json(&rows).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 50);

    let mut with_one_bad = rows.clone();
    with_one_bad[7]["water_level"] = json!(-1);
    let response =
        api.client.post(api.url("/measurements")).bearer_auth(device).json(&with_one_bad).send().await.unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(response.json::<Value>().await.unwrap()["field"], "[7].water_level");
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 50, "nothing of a refused batch is stored");
    api.stop().await;
}

#[tokio::test]
async fn service_endpoints() {
    let api = TestApi::start().await;
    let health = api.client.get(api.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let ready: Value = api.client.get(api.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let engine = ready["engine"].as_str().unwrap();
    assert!(engine == "native-partitions" || engine == "timescaledb", "{ready}");

    // Some traffic, so per-route series exist.
    let device = api.login().await;
    let _ = api.client.get(api.url("/command")).bearer_auth(device).send().await.unwrap();
    assert_eq!(api.post_measurement(device, &measurement(30.0, 40, 50)).await, 204);
    let metrics = api.client.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for expected in [
        "device_api_requests_total{route=\"/command\",method=\"GET\",status=\"200\"}",
        "device_api_request_duration_seconds_bucket{route=\"/measurement\",method=\"POST\",status=\"204\",le=\"0.005\"}",
        "device_api_requests_in_flight",
        "device_api_measurements_ingested_total",
        "device_api_batch_rows_bucket",
        "device_api_batch_commit_duration_seconds_bucket",
        "device_api_db_pool_connections",
        "device_api_db_pool_in_use_connections",
        "device_api_db_pool_in_use_seconds",
        "device_api_db_pool_idle_connections",
        "device_api_db_pool_acquire_duration_seconds_bucket",
        &format!("device_api_storage_engine_info{{engine=\"{engine}\"}} 1"),
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "device_api_tokio_workers",
        "device_api_tokio_alive_tasks",
        "device_api_tokio_worker_busy_seconds",
    ] {
        assert!(metrics.contains(expected), "/metrics lacks {expected}\n{metrics}");
    }
    api.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_route_with_its_errors() {
    let api = TestApi::start_with(|config| config.max_batch_measurements = 250).await;
    let document: Value = api.client.get(api.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (path, method, statuses) in [
        ("/login", "post", &["200", "400", "415", "503"][..]),
        ("/command", "get", &["200", "401", "403", "503"]),
        ("/measurement", "post", &["204", "400", "401", "403", "413", "415", "422", "503"]),
        ("/measurements", "post", &["204", "422"]),
        ("/statistics", "get", &["200", "503"]),
        ("/stats", "get", &["200"]),
        ("/health", "get", &["200"]),
        ("/ready", "get", &["200", "503"]),
        ("/metrics", "get", &["200"]),
        ("/openapi.json", "get", &["200"]),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} missing from the OpenAPI document");
        for status in statuses {
            assert!(operation["responses"][status].is_object(), "{method} {path} does not document {status}");
        }
        // Every documented route answers something other than 404.
        let response = api.client.request(method.parse().unwrap(), api.url(path)).send().await.unwrap();
        assert_ne!(response.status(), 404, "{method} {path} is documented but not served");
    }
    let description = document["paths"]["/command"]["get"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("55 °C"), "the command rule is documented: {description}");

    // The limits are in the schema, not only in prose (the bounds themselves are held
    // to the validation by a unit test in model.rs).
    let measurement = &document["components"]["schemas"]["MeasurementInput"];
    assert_eq!(measurement["additionalProperties"], false, "{measurement}");
    for field in ["charge_now", "charge_full", "charge_rate", "ambient_temp", "water_temp", "water_level"] {
        let property = &measurement["properties"][field];
        assert!(property["minimum"].is_number() && property["maximum"].is_number(), "{field}: {property}");
    }
    assert_eq!(measurement["properties"]["water_level"]["maximum"], 1_000_000);
    assert_eq!(measurement["properties"]["water_level"]["format"], "int32");
    assert_eq!(measurement["properties"]["time"]["format"], "date-time");
    let batch = &document["paths"]["/measurements"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!((batch["minItems"].as_u64(), batch["maxItems"].as_u64()), (Some(1), Some(250)), "{batch}");
    let login = &document["components"]["schemas"]["LoginRequest"]["properties"]["username"];
    assert_eq!(login["maxLength"], 256, "{login}");
    api.stop().await;
}
