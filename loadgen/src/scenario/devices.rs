//! The `devices` scenario, the original Locust user against device-api: each
//! simulated device logs in once (`POST /login`, keeping the returned id as its
//! `servant-auth-cookie`), then every arrival picks a device and, with equal weight,
//! polls `GET /command` or pushes `POST /measurement` with random values in the
//! original's ranges (except that charge_now never exceeds charge_full, which
//! device-api refuses). In the closed model each device is a user with its own
//! connection.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use rand::Rng;
use rand::rngs::StdRng;

use super::{HttpClient, UserConnection};
use crate::stats::Outcome;

/// What a device does in one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceAction {
    /// `GET /command`
    Command,
    /// `POST /measurement`
    Measurement,
}

pub struct DevicesScenario {
    client: HttpClient,
    base: String,
    /// Each device's id (its credential), from `POST /login`.
    devices: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    #[error("login {index} of {count} failed at {base}/login: {outcome}")]
    Login { index: usize, count: usize, base: String, outcome: String },
    #[error("invalid target URL `{0}`")]
    Target(String),
}

impl DevicesScenario {
    /// Logs `count` devices in (at most 32 logins at a time).
    pub async fn prepare(client: HttpClient, base: &str, count: usize) -> Result<Self, DevicesError> {
        let base = base.trim_end_matches('/').to_string();
        base.parse::<Uri>().map_err(|_| DevicesError::Target(base.clone()))?;
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
        let logins: Vec<_> = (0..count)
            .map(|index| {
                let (client, base, permits) = (client.clone(), base.clone(), permits.clone());
                tokio::spawn(async move {
                    let _permit = permits.acquire().await;
                    let request = Request::post(format!("{base}/login"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(br#"{"username":"test_user"}"#)))
                        .expect("valid login request");
                    let (outcome, body) = client.send(request).await;
                    let id = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|value| value["username"].as_str().map(str::to_string));
                    match (outcome, id) {
                        (Outcome::Ok, Some(id)) => Ok(id),
                        (outcome, _) => Err(DevicesError::Login { index, count, base, outcome: outcome.label() }),
                    }
                })
            })
            .collect();
        let mut devices = Vec::with_capacity(count);
        for login in logins {
            devices.push(login.await.expect("login task")?);
        }
        Ok(Self { client, base, devices })
    }

    /// Devices logged in.
    pub fn count(&self) -> usize {
        self.devices.len()
    }

    /// Arrival `k`: device k mod count, and an action chosen with equal weight.
    pub async fn execute(
        &self,
        k: u64,
        rng: &mut StdRng,
        connection: Option<&mut UserConnection>,
    ) -> (&'static str, Outcome) {
        let action = if rng.random_bool(0.5) { DeviceAction::Command } else { DeviceAction::Measurement };
        self.act(k as usize % self.devices.len(), action, rng, connection).await
    }

    /// `device` does `action`.
    pub async fn act(
        &self,
        device: usize,
        action: DeviceAction,
        rng: &mut StdRng,
        connection: Option<&mut UserConnection>,
    ) -> (&'static str, Outcome) {
        let device = &self.devices[device];
        if action == DeviceAction::Command {
            let request = Request::builder()
                .method(Method::GET)
                .uri(format!("{}/command", self.base))
                .header("servant-auth-cookie", device.as_str())
                .body(Full::new(Bytes::new()))
                .expect("valid request");
            ("command", self.client.send_on(connection, request).await.0)
        } else {
            let charge_full = rng.random_range(0..=100);
            let body = serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339(),
                "charge_now": rng.random_range(0..=charge_full),
                "charge_full": charge_full,
                "charge_rate": rng.random_range(-100.0..100.0),
                "ambient_temp": rng.random_range(20.0..60.0),
                "water_temp": rng.random_range(20.0..60.0),
                "water_level": rng.random_range(0..=100),
            });
            let request = Request::builder()
                .method(Method::POST)
                .uri(format!("{}/measurement", self.base))
                .header("servant-auth-cookie", device.as_str())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("valid request");
            ("measurement", self.client.send_on(connection, request).await.0)
        }
    }
}
