//! Bad input never causes a 5xx or a panic, gets a 4xx with a JSON body that names
//! the field and the reason, and stores nothing.

mod common;

use common::{TestApi, measurement};
use reqwest::Method;
use serde_json::{Value, json};

/// One bad request and what the API must answer.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// The `field` the error must name, when one is to blame.
    field: Option<&'static str>,
}

fn with(field: &str, value: Value) -> Vec<u8> {
    let mut body = measurement(30.0, 50, 50);
    body[field] = value;
    serde_json::to_vec(&body).unwrap()
}

fn without(field: &str) -> Vec<u8> {
    let mut body = measurement(30.0, 50, 50);
    body.as_object_mut().unwrap().remove(field);
    serde_json::to_vec(&body).unwrap()
}

fn json_case(name: &'static str, path: &'static str, body: Vec<u8>, status: u16, field: Option<&'static str>) -> Case {
    Case { name, method: Method::POST, path, content_type: Some("application/json"), body, status, field }
}

fn cases() -> Vec<Case> {
    let now = chrono::Utc::now();
    let valid = serde_json::to_vec(&measurement(30.0, 50, 50)).unwrap();
    let too_many: Vec<Value> = (0..1001).map(|_| measurement(30.0, 50, 50)).collect();
    let mut nested = String::new();
    (0..10_000).for_each(|_| nested.push('['));
    vec![
        json_case("malformed JSON", "/measurement", b"{\"time\": ".to_vec(), 400, None),
        json_case("not JSON at all", "/measurement", b"\xff\xfe garbage".to_vec(), 400, None),
        json_case("empty body", "/measurement", Vec::new(), 400, None),
        json_case("trailing data", "/measurement", [valid.clone(), b" {}".to_vec()].concat(), 400, None),
        json_case("an array where an object belongs", "/measurement", b"[1,2]".to_vec(), 400, None),
        json_case("deeply nested", "/measurement", nested.into_bytes(), 400, None),
        json_case("wrong type: string for int", "/measurement", with("charge_now", json!("fifty")), 400, Some("charge_now")),
        json_case("wrong type: float for int", "/measurement", with("water_level", json!(1.5)), 400, Some("water_level")),
        json_case("a fraction for an int", "/measurement", with("charge_full", json!(5396.5)), 400, Some("charge_full")),
        json_case("wrong type: int overflow", "/measurement", with("charge_full", json!(1u64 << 40)), 400, Some("charge_full")),
        json_case("wrong type: bool for number", "/measurement", with("water_temp", json!(true)), 400, Some("water_temp")),
        json_case("wrong type: null", "/measurement", with("ambient_temp", Value::Null), 400, Some("ambient_temp")),
        json_case("time not a date", "/measurement", with("time", json!("yesterday")), 400, Some("time")),
        json_case("id not a uuid", "/measurement", with("id", json!("abc")), 400, Some("id")),
        json_case("missing field", "/measurement", without("water_level"), 400, Some("water_level")),
        json_case("unknown field", "/measurement", with("pressure", json!(3)), 400, Some("pressure")),
        json_case("NaN literal", "/measurement", br#"{"time":"2026-01-01T00:00:00Z","charge_now":1,"charge_full":2,"charge_rate":NaN,"ambient_temp":1,"water_temp":1,"water_level":1}"#.to_vec(), 400, None),
        json_case("infinity by overflow", "/measurement", br#"{"time":"2026-01-01T00:00:00Z","charge_now":1,"charge_full":2,"charge_rate":1e999,"ambient_temp":1,"water_temp":1,"water_level":1}"#.to_vec(), 400, Some("charge_rate")),
        json_case("negative level", "/measurement", with("water_level", json!(-1)), 422, Some("water_level")),
        json_case("absurd level", "/measurement", with("water_level", json!(2_000_000_000)), 422, Some("water_level")),
        json_case("negative charge", "/measurement", with("charge_now", json!(-5)), 422, Some("charge_now")),
        json_case("charge above full", "/measurement", with("charge_now", json!(101)), 422, Some("charge_now")),
        json_case("negative capacity", "/measurement", with("charge_full", json!(-100)), 422, Some("charge_full")),
        json_case("absurd charge rate", "/measurement", with("charge_rate", json!(1e12)), 422, Some("charge_rate")),
        json_case("boiling ambient", "/measurement", with("ambient_temp", json!(1000.0)), 422, Some("ambient_temp")),
        json_case("below absolute zero", "/measurement", with("water_temp", json!(-300.0)), 422, Some("water_temp")),
        json_case("far future", "/measurement", with("time", json!((now + chrono::Duration::days(365)).to_rfc3339())), 422, Some("time")),
        json_case("far past", "/measurement", with("time", json!("1970-01-01T00:00:00Z")), 422, Some("time")),
        json_case("empty batch", "/measurements", b"[]".to_vec(), 422, Some("[]")),
        json_case("huge batch", "/measurements", serde_json::to_vec(&too_many).unwrap(), 422, Some("[]")),
        json_case("batch of non-objects", "/measurements", b"[1]".to_vec(), 400, Some("[0]")),
        json_case("oversized body", "/measurement", vec![b' '; 2 * 1024 * 1024], 413, None),
        json_case("login without username", "/login", b"{}".to_vec(), 400, Some("username")),
        json_case("login with extra field", "/login", br#"{"username":"a","admin":true}"#.to_vec(), 400, Some("admin")),
        json_case("login name absurdly long", "/login", serde_json::to_vec(&json!({"username": "x".repeat(300)})).unwrap(), 422, Some("username")),
        Case { name: "wrong content type", method: Method::POST, path: "/measurement", content_type: Some("text/plain"), body: valid.clone(), status: 415, field: None },
        Case { name: "no content type", method: Method::POST, path: "/measurement", content_type: None, body: valid.clone(), status: 415, field: None },
        Case { name: "wrong method", method: Method::DELETE, path: "/measurement", content_type: None, body: Vec::new(), status: 405, field: None },
        Case { name: "GET on a POST route", method: Method::GET, path: "/login", content_type: None, body: Vec::new(), status: 405, field: None },
        Case { name: "unknown route", method: Method::GET, path: "/nope", content_type: None, body: Vec::new(), status: 404, field: None },
    ]
}

#[tokio::test]
async fn every_bad_input_gets_a_precise_4xx_and_stores_nothing() {
    let api = TestApi::start().await;
    let device = api.login().await;
    let devices_before = api.count("SELECT count(*) FROM device").await;
    let mut failures = Vec::new();
    for case in cases() {
        let mut request = api
            .client
            .request(case.method.clone(), api.url(case.path))
            .header("servant-auth-cookie", device.to_string())
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let named_field = body["field"].as_str();
        if status != case.status || body["error"].as_str().is_none() || body["message"].as_str().is_none() {
            failures.push(format!("{}: expected {} with a JSON error, got {status}: {text}", case.name, case.status));
        } else if case.field.is_some() && named_field != case.field {
            failures.push(format!("{}: expected field {:?}, got {named_field:?}: {text}", case.name, case.field));
        }
    }
    assert!(failures.is_empty(), "bad input handled wrongly:\n{}", failures.join("\n"));
    assert_eq!(api.count("SELECT count(*) FROM measurement").await, 0, "nothing invalid is stored");
    assert_eq!(api.count("SELECT count(*) FROM device").await, devices_before, "no device from a refused login");
    // And the service is still healthy.
    assert_eq!(api.post_measurement(device, &measurement(30.0, 50, 50)).await, 204);
    api.stop().await;
}
