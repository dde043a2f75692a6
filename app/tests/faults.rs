//! Faults, tested rather than assumed, on both storage engines: the database taken
//! away and brought back under load, SIGTERM while requests are in flight, and kill -9
//! of the service. In every case each measurement that was answered 204 is in the
//! table afterwards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ApiProcess, Engine, TestApi, assert_all_stored, drive_load};
use nix::sys::signal::Signal;

const WORKERS: usize = 8;

async fn devices(base: &str, count: usize) -> Vec<uuid::Uuid> {
    let client = reqwest::Client::new();
    let mut devices = Vec::new();
    for _ in 0..count {
        devices.push(common::login(&client, base).await);
    }
    devices
}

async fn database_outage_answers_503_and_recovers_without_restart(engine: Engine) {
    let api = TestApi::start_on(engine, |config| config.pool_acquire_timeout = Duration::from_millis(500)).await;
    let devices = devices(&api.base, WORKERS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(drive_load(api.base.clone(), devices.clone(), 100_000, stop.clone()));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let postgres = &api.postgres;
    postgres.stop().expect("database stops");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ready = api.client.get(api.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "/ready reports the outage");
    let health = api.client.get(api.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process itself stays up");
    postgres.restart().expect("database restarts");

    // The service must find the database again on its own.
    let mut recovered = false;
    for _ in 0..100 {
        if api.client.get(api.url("/ready")).send().await.unwrap().status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "device-api did not recover after the database came back");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let outcome = load.await.unwrap();
    println!("outage run: {:?} (well-formed 503s: {})", outcome.statuses, outcome.well_formed_503);

    let unavailable = outcome.statuses.get(&503).copied().unwrap_or(0);
    assert!(unavailable > 0, "requests during the outage got 503: {:?}", outcome.statuses);
    assert_eq!(outcome.well_formed_503, unavailable, "every 503 has Retry-After and a JSON error");
    let unexpected: Vec<_> = outcome.statuses.keys().filter(|status| ![204, 503].contains(*status)).collect();
    assert!(unexpected.is_empty(), "only 204 and 503 expected: {:?}", outcome.statuses);
    // Acknowledged after recovery too, not only before the outage.
    let after = api.count("SELECT count(*) FROM measurement").await;
    assert!(after as usize >= outcome.acknowledged.len());
    assert_all_stored(&api.postgres.url("device_api"), &outcome.acknowledged).await;
    let ok = api.post_measurement(devices[0], &common::measurement(30.0, 50, 50)).await;
    assert_eq!(ok, 204, "writes work again after recovery");
    api.stop().await;
}
on_each_engine!(database_outage_answers_503_and_recovers_without_restart, flavor = "multi_thread", worker_threads = 2);

async fn sigterm_drains_in_flight_requests_and_exits_cleanly(engine: Engine) {
    let postgres = engine.database();
    let url = postgres.url("device_api");
    // A long linger makes sure batches are still queued when the signal lands.
    let mut api = ApiProcess::spawn(&url, &["--batch-max-wait", "50ms", "--storage", engine.flag()]).await;
    let devices = devices(&api.base, WORKERS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(drive_load(api.base.clone(), devices, 100_000, stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let signalled = std::time::Instant::now();
    api.signal(Signal::SIGTERM);
    let status = api.wait(Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    let outcome = load.await.unwrap();
    println!("sigterm run: {:?}", outcome.statuses);
    assert!(status.success(), "device-api exits 0 after SIGTERM, got {status}");
    // Requests waiting in a 50 ms batch when the signal landed were still answered.
    let answered_after_signal = outcome.acknowledged_at.iter().filter(|at| **at > signalled).count();
    assert!(answered_after_signal > 0, "no request in flight at SIGTERM was answered: {:?}", outcome.statuses);
    let refused: Vec<_> = outcome.statuses.keys().filter(|status| ![0, 204].contains(*status)).collect();
    assert!(refused.is_empty(), "only 204 or a closed connection expected: {:?}", outcome.statuses);
    assert_all_stored(&url, &outcome.acknowledged).await;
}
on_each_engine!(sigterm_drains_in_flight_requests_and_exits_cleanly, flavor = "multi_thread", worker_threads = 2);

async fn kill_9_loses_no_acknowledged_measurement(engine: Engine) {
    let postgres = engine.database();
    let url = postgres.url("device_api");
    let mut api = ApiProcess::spawn(&url, &["--storage", engine.flag()]).await;
    let devices = devices(&api.base, WORKERS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(drive_load(api.base.clone(), devices, 100_000, stop.clone()));
    tokio::time::sleep(Duration::from_millis(2000)).await;

    api.signal(Signal::SIGKILL);
    let _ = api.wait(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let outcome = load.await.unwrap();
    println!("kill -9 run: {:?}", outcome.statuses);
    assert!(outcome.acknowledged.len() > 100, "the load was real: {:?}", outcome.statuses);
    assert!(outcome.statuses.get(&0).copied().unwrap_or(0) > 0, "some requests were cut off by the kill");
    assert_all_stored(&url, &outcome.acknowledged).await;
}
on_each_engine!(kill_9_loses_no_acknowledged_measurement, flavor = "multi_thread", worker_threads = 2);
