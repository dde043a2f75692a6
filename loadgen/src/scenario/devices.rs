//! The `devices` scenario, the original Locust user against device-api: each
//! simulated device logs in once (`POST /login`, keeping the returned id as its
//! `servant-auth-cookie`), then polls `GET /command` or pushes `POST /measurement`
//! with random values in the original's ranges (except that charge_now never exceeds
//! charge_full, which device-api refuses). On a schedule or with users, arrival k is
//! device k mod count and an action chosen with equal weight; on routines the pacer
//! names both.

use std::fmt::Write as _;

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::Work;
use crate::http::{HttpClient, Sender, Target, Template};
use crate::outcome::Outcome;

/// What a device does in one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceAction {
    /// `GET /command`
    Command = 0,
    /// `POST /measurement`
    Measurement = 1,
}

const COOKIE: HeaderName = HeaderName::from_static("servant-auth-cookie");
/// Logins in flight at once while devices sign in.
const LOGIN_CONCURRENCY: usize = 32;

pub struct DevicesScenario {
    client: HttpClient,
    command: Template,
    measurement: Template,
    /// Each device's credential (its id, from `POST /login`), ready to send.
    credentials: Vec<HeaderValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    #[error("login {index} of {count} failed at {target}: {outcome}")]
    Login { index: usize, count: usize, target: String, outcome: String },
    #[error("stopped while logging devices in ({done} of {count} done)")]
    Interrupted { done: usize, count: usize },
    #[error("{0}")]
    Target(String),
}

impl DevicesScenario {
    pub const REQUESTS: &'static [&'static str] = &["command", "measurement"];

    /// Logs `count` devices in at `target` (at most 32 logins at a time); gives up
    /// when `stop` fires.
    pub async fn prepare(
        client: HttpClient,
        target: &Target,
        count: usize,
        stop: &CancellationToken,
    ) -> Result<Self, DevicesError> {
        let json = HeaderValue::from_static("application/json");
        let route = |method: Method, path: &str| {
            target.origin(path).map(|uri| Template::new(method, uri, &target.host_header)).map_err(DevicesError::Target)
        };
        let login = route(Method::POST, "/login")?.with_header(CONTENT_TYPE, json.clone());
        let command = route(Method::GET, "/command")?;
        let measurement = route(Method::POST, "/measurement")?.with_header(CONTENT_TYPE, json);
        let client = std::sync::Arc::new(client);
        let mut credentials = Vec::with_capacity(count);
        let mut logins = tokio::task::JoinSet::new();
        let mut next = 0usize;
        let failed = |index: usize, outcome: String| DevicesError::Login {
            index,
            count,
            target: format!("{}/login", target.text.trim_end_matches('/')),
            outcome,
        };
        while credentials.len() < count {
            while logins.len() < LOGIN_CONCURRENCY && next < count {
                let (client, request) = (client.clone(), login.build(Bytes::from_static(br#"{"username":"device"}"#)));
                let index = next;
                logins.spawn(async move { (index, client.send(request, None, true).await) });
                next += 1;
            }
            let joined = tokio::select! {
                joined = logins.join_next() => joined,
                _ = stop.cancelled() => return Err(DevicesError::Interrupted { done: credentials.len(), count }),
            };
            let Some(joined) = joined else { break };
            let (index, (outcome, body)) = joined.map_err(|error| failed(next, format!("login task: {error}")))?;
            let id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| value["username"].as_str().and_then(|id| HeaderValue::from_str(id).ok()));
            match (outcome, id) {
                (Outcome::Ok, Some(id)) => credentials.push(id),
                (Outcome::Ok, None) => return Err(failed(index, "answer without a device id".into())),
                (outcome, _) => return Err(failed(index, outcome.to_string())),
            }
        }
        let client = std::sync::Arc::into_inner(client).expect("every login task has ended");
        Ok(Self { client, command, measurement, credentials })
    }

    /// Devices logged in.
    pub fn count(&self) -> usize {
        self.credentials.len()
    }

    pub fn pick(&self, work: &Work, seed: u64) -> u8 {
        match work.action {
            Some(action) => action.min(1),
            None => u8::from(!work.rng(seed).random_bool(0.5)),
        }
    }

    /// `work` as request `request` (0 command, 1 measurement).
    pub async fn execute(&self, work: Work, request: u8, seed: u64, own: Option<&mut Option<Sender>>) -> Outcome {
        let device = match (work.action, work.lane) {
            (Some(_), Some(lane)) => lane as usize,
            _ => work.k as usize,
        } % self.credentials.len().max(1);
        let Some(credential) = self.credentials.get(device) else { return Outcome::Ok };
        let credential = Some((&COOKIE, credential));
        let request = if request == DeviceAction::Command as u8 {
            self.command.build_with(Bytes::new(), credential)
        } else {
            let mut rng = work.rng(seed);
            // Skip the draw `pick` used, so values differ from the choice.
            let _: bool = rng.random_bool(0.5);
            self.measurement.build_with(Bytes::from(measurement(&mut rng)), credential)
        };
        self.client.send(request, own, false).await.0
    }
}

/// A measurement body with random values in the original's ranges.
fn measurement(rng: &mut impl Rng) -> String {
    let charge_full: u32 = rng.random_range(0..=100);
    let mut body = String::with_capacity(200);
    let _ = write!(
        body,
        r#"{{"time":"{}","charge_now":{},"charge_full":{charge_full},"charge_rate":{:.3},"ambient_temp":{:.3},"water_temp":{:.3},"water_level":{}}}"#,
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        rng.random_range(0..=charge_full),
        rng.random_range(-100.0..100.0),
        rng.random_range(20.0..60.0),
        rng.random_range(20.0..60.0),
        rng.random_range(0..=100u32),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_are_valid_json_in_range() {
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
        for _ in 0..200 {
            let value: serde_json::Value = serde_json::from_str(&measurement(&mut rng)).unwrap();
            assert!(value["charge_now"].as_u64().unwrap() <= value["charge_full"].as_u64().unwrap());
            assert!(value["time"].as_str().unwrap().ends_with('Z'));
            assert!((20.0..60.0).contains(&value["water_temp"].as_f64().unwrap()));
        }
    }
}
