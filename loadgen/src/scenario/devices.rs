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
use crate::http::{HttpClient, Outgoing, Sender, Target, Template};
use crate::outcome::Outcome;
use crate::schedule::Segment;

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
    client: std::sync::Arc<HttpClient>,
    login: Template,
    command: Template,
    measurement: Template,
    target: String,
    /// Device d's credential (its id, from `POST /login`), ready to send; `None` for
    /// devices not logged in here (another segment's, or not yet joined). Grows
    /// between steps only, so requests take a read lock that is never contended.
    credentials: std::sync::RwLock<Vec<Option<HeaderValue>>>,
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

    /// The scenario against `target`, with no device logged in yet.
    pub fn new(client: HttpClient, target: &Target) -> Result<Self, DevicesError> {
        let json = HeaderValue::from_static("application/json");
        let route = |method: Method, path: &str| {
            target.origin(path).map(|uri| Template::new(method, uri, &target.host_header)).map_err(DevicesError::Target)
        };
        Ok(Self {
            client: std::sync::Arc::new(client),
            login: route(Method::POST, "/login")?.with_header(CONTENT_TYPE, json.clone()),
            command: route(Method::GET, "/command")?,
            measurement: route(Method::POST, "/measurement")?.with_header(CONTENT_TYPE, json),
            target: format!("{}/login", target.text.trim_end_matches('/')),
            credentials: std::sync::RwLock::default(),
        })
    }

    /// Logs `count` devices in at `target` (at most 32 logins at a time); gives up
    /// when `stop` fires.
    pub async fn prepare(
        client: HttpClient,
        target: &Target,
        count: usize,
        stop: &CancellationToken,
    ) -> Result<Self, DevicesError> {
        let scenario = Self::new(client, target)?;
        scenario.join(count, Segment::WHOLE, None, stop).await?;
        Ok(scenario)
    }

    /// Logs in the devices below `count` of `segment` that are not logged in yet, at
    /// most `per_second` logins a second when given (so a step that adds devices
    /// measures them at work, not a login storm), 32 at a time.
    pub async fn join(
        &self,
        count: usize,
        segment: Segment,
        per_second: Option<f64>,
        stop: &CancellationToken,
    ) -> Result<(), DevicesError> {
        let missing: Vec<usize> = {
            let mut credentials = write(&self.credentials);
            if credentials.len() < count {
                credentials.resize(count, None);
            }
            (0..count).filter(|device| segment.contains(*device as u64) && credentials[*device].is_none()).collect()
        };
        let total = missing.len();
        let mut pace = per_second.map(|rate| tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate)));
        let mut logins = tokio::task::JoinSet::new();
        let mut waiting = missing.into_iter();
        let mut done = 0;
        let failed =
            |index: usize, outcome: String| DevicesError::Login { index, count, target: self.target.clone(), outcome };
        while done < total {
            let can_start = logins.len() < LOGIN_CONCURRENCY && waiting.len() > 0;
            tokio::select! {
                _ = async { if let Some(pace) = pace.as_mut() { pace.tick().await; } }, if can_start => {
                    let device = waiting.next().expect("counted");
                    let (client, login) = (self.client.clone(), self.login.clone());
                    logins.spawn(async move {
                        let body = Bytes::from_static(br#"{"username":"device"}"#);
                        let request = Outgoing { template: &login, body: &body, extra: None };
                        (device, client.send(request, None, true).await)
                    });
                }
                joined = logins.join_next(), if !logins.is_empty() => {
                    let Some(joined) = joined else { continue };
                    let (device, (outcome, body)) = joined.map_err(|error| failed(0, format!("login task: {error}")))?;
                    let id = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|value| value["username"].as_str().and_then(|id| HeaderValue::from_str(id).ok()));
                    match (outcome, id) {
                        (Outcome::Ok, Some(id)) => write(&self.credentials)[device] = Some(id),
                        (Outcome::Ok, None) => return Err(failed(device, "answer without a device id".into())),
                        (outcome, _) => return Err(failed(device, outcome.to_string())),
                    }
                    done += 1;
                }
                _ = stop.cancelled() => return Err(DevicesError::Interrupted { done, count: total }),
            }
        }
        Ok(())
    }

    /// Devices logged in here.
    pub fn count(&self) -> usize {
        read(&self.credentials).iter().filter(|credential| credential.is_some()).count()
    }

    pub fn pick(&self, work: &Work, seed: u64) -> u8 {
        match work.action {
            Some(action) => action.min(1),
            None => u8::from(!work.rng(seed).random_bool(0.5)),
        }
    }

    /// `work` as request `request` (0 command, 1 measurement). A routine names its
    /// device (its lane); otherwise arrival k is the k-th device logged in here, in turn.
    pub async fn execute(&self, work: Work, request: u8, seed: u64, own: Option<&mut Option<Sender>>) -> Outcome {
        let credential = {
            let credentials = read(&self.credentials);
            match (work.action, work.lane) {
                (Some(_), Some(lane)) => credentials.get(lane as usize).cloned().flatten(),
                _ => {
                    let known: Vec<&HeaderValue> = Vec::new();
                    let _ = known;
                    let logged_in = credentials.iter().flatten().count().max(1);
                    credentials.iter().flatten().nth(work.k as usize % logged_in).cloned()
                }
            }
        };
        let Some(credential) = credential else { return Outcome::Error(crate::outcome::ErrorKind::Transport) };
        let extra = Some((&COOKIE, &credential));
        let (template, body) = if request == DeviceAction::Command as u8 {
            (&self.command, Bytes::new())
        } else {
            let mut rng = work.rng(seed);
            // Skip the draw `pick` used, so values differ from the choice.
            let _: bool = rng.random_bool(0.5);
            (&self.measurement, Bytes::from(measurement(&mut rng)))
        };
        self.client.send(Outgoing { template, body: &body, extra }, own, false).await.0
    }
}

fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
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
