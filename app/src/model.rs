//! The domain: a measurement as devices send it, the rules that make one valid, and
//! the command a device is given from its latest measurement.
//!
//! Validation lives here, not in the handlers, so `POST /measurement` and
//! `POST /measurements` refuse exactly the same things, and the OpenAPI description
//! quotes these constants.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Highest accepted water level (litres); the original's devices send 0–100.
pub const MAX_WATER_LEVEL: i32 = 1_000_000;
/// Accepted temperature range (°C) for `ambient_temp` and `water_temp`.
pub const TEMPERATURE_RANGE: (f64, f64) = (-100.0, 200.0);
/// Accepted range of `charge_rate`; the original's devices send −100..100.
pub const CHARGE_RATE_LIMIT: f64 = 1_000_000.0;

/// A battery below this fraction of full charge is told to charge.
pub const CHARGE_BELOW_FRACTION: f64 = 0.2;
/// A reservoir below this many litres is told to fill.
pub const FILL_BELOW_LEVEL: i32 = 20;
/// Water hotter than this (°C) is flushed…
pub const FLUSH_ABOVE_TEMP: f64 = 55.0;
/// …by this fraction of the reservoir (litres flushed = level × fraction).
pub const FLUSH_FRACTION: f64 = 0.5;
/// Specific heat of water, J/(kg·K), taking 1 litre as 1 kg.
pub const WATER_SPECIFIC_HEAT: f64 = 4186.0;

/// A measurement as a device sends it (the original body).
///
/// The `#[schema]` bounds are the ones [`MeasurementInput::validate`] enforces, so a
/// schema-valid value is never refused for its range (a unit test holds the two
/// together); only the time window and `charge_now ≤ charge_full` cannot be said in
/// JSON Schema and are in the descriptions. Integer fields also take integral numbers
/// written with a fraction (`5396.0`), as JSON Schema counts them as integers.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasurementInput {
    /// Ignored, as in the original: the authenticated device is used.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// When it was measured: ISO-8601; without an offset it is taken as UTC. Refused
    /// (422) when older than `--max-measurement-age` or further ahead than
    /// `--max-clock-skew`.
    #[serde(deserialize_with = "deserialize_time")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T10:00:00Z")]
    pub time: DateTime<Utc>,
    /// Battery charge now, 0 ≤ charge_now ≤ charge_full.
    #[serde(deserialize_with = "deserialize_integral")]
    #[schema(minimum = 0, maximum = 2147483647, format = Int32)]
    pub charge_now: i32,
    /// Battery charge when full, ≥ 0.
    #[serde(deserialize_with = "deserialize_integral")]
    #[schema(minimum = 0, maximum = 2147483647, format = Int32)]
    pub charge_full: i32,
    /// Charge rate, |charge_rate| ≤ 1e6.
    #[schema(minimum = -1000000.0, maximum = 1000000.0, format = Double)]
    pub charge_rate: f64,
    /// Ambient temperature °C, −100..200.
    #[schema(minimum = -100.0, maximum = 200.0, format = Double)]
    pub ambient_temp: f64,
    /// Water temperature °C, −100..200.
    #[schema(minimum = -100.0, maximum = 200.0, format = Double)]
    pub water_temp: f64,
    /// Water in the reservoir, litres, 0..1e6.
    #[serde(deserialize_with = "deserialize_integral")]
    #[schema(minimum = 0, maximum = 1000000, format = Int32)]
    pub water_level: i32,
}

/// A measurement that passed validation, bound to its device.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub device_id: Uuid,
    pub time: DateTime<Utc>,
    pub charge_now: i32,
    pub charge_full: i32,
    pub charge_rate: f64,
    pub ambient_temp: f64,
    pub water_temp: f64,
    pub water_level: i32,
}

/// Why a measurement was refused: the field and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

/// The window of acceptable measurement times, relative to now.
#[derive(Clone, Copy, Debug)]
pub struct TimeWindow {
    pub max_age: std::time::Duration,
    pub max_skew: std::time::Duration,
}

impl MeasurementInput {
    /// Checks every field; the first violation wins. `prefix` names the position in
    /// a batch (`"[3]."`) so the error points at the right element.
    pub fn validate(
        self,
        device_id: Uuid,
        window: TimeWindow,
        now: DateTime<Utc>,
        prefix: &str,
    ) -> Result<Measurement, Invalid> {
        let invalid = |field: &str, reason: String| Invalid { field: format!("{prefix}{field}"), reason };
        let oldest = now - chrono::Duration::from_std(window.max_age).unwrap_or(chrono::Duration::MAX);
        let newest = now + chrono::Duration::from_std(window.max_skew).unwrap_or(chrono::Duration::MAX);
        if self.time < oldest {
            return Err(invalid(
                "time",
                format!("is before {oldest}, the oldest accepted (now − max measurement age)"),
            ));
        }
        if self.time > newest {
            return Err(invalid("time", format!("is after {newest}, the newest accepted (now + max clock skew)")));
        }
        if self.charge_full < 0 {
            return Err(invalid("charge_full", "must not be negative".into()));
        }
        if self.charge_now < 0 {
            return Err(invalid("charge_now", "must not be negative".into()));
        }
        if self.charge_now > self.charge_full {
            return Err(invalid("charge_now", format!("must not exceed charge_full ({})", self.charge_full)));
        }
        if !self.charge_rate.is_finite() || self.charge_rate.abs() > CHARGE_RATE_LIMIT {
            return Err(invalid("charge_rate", format!("must be finite and within ±{CHARGE_RATE_LIMIT}")));
        }
        for (field, value) in [("ambient_temp", self.ambient_temp), ("water_temp", self.water_temp)] {
            let (low, high) = TEMPERATURE_RANGE;
            if !value.is_finite() || !(low..=high).contains(&value) {
                return Err(invalid(field, format!("must be finite and within {low}..{high} °C")));
            }
        }
        if !(0..=MAX_WATER_LEVEL).contains(&self.water_level) {
            return Err(invalid("water_level", format!("must be within 0..{MAX_WATER_LEVEL}")));
        }
        Ok(Measurement {
            device_id,
            time: self.time,
            charge_now: self.charge_now,
            charge_full: self.charge_full,
            charge_rate: self.charge_rate,
            ambient_temp: self.ambient_temp,
            water_temp: self.water_temp,
            water_level: self.water_level,
        })
    }
}

/// Accepts ISO-8601 with an offset (`…Z`, `…+02:00`) or without one (taken as UTC,
/// as the original's parser did).
fn deserialize_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(&text) {
        return Ok(with_offset.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an ISO-8601 date-time")))
}

/// An `i32` written as a JSON integer or as an integral number with a fraction
/// (`5396.0`, `1e3`): JSON does not tell them apart and neither does JSON Schema's
/// `integer`. A real fraction or a value outside `i32` is refused, naming the value.
fn deserialize_integral<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    struct Integral;
    impl serde::de::Visitor<'_> for Integral {
        type Value = i32;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(formatter, "an integer within {}..{}", i32::MIN, i32::MAX)
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<i32, E> {
            i32::try_from(value).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<i32, E> {
            i32::try_from(value).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<i32, E> {
            let integral = value.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&value);
            if integral {
                // Exact: an integral f64 within i32's range converts without loss.
                Ok(value as i32)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
            }
        }
    }
    deserializer.deserialize_any(Integral)
}

/// The command for a device, in the original's JSON encoding.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Command {
    pub charge: Charge,
    pub fill: Fill,
    pub flush: Flush,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum Charge {
    ChargeBattery,
    NoChargeBattery,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum Fill {
    FillReservoir,
    NoFillReservoir,
}

/// `{"tag":"NoFlushReservoir"}` or `{"tag":"FlushReservoir","contents":<litres>}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "tag", content = "contents")]
pub enum Flush {
    FlushReservoir(f64),
    NoFlushReservoir,
}

/// The latest state of a device, as kept in `device_state`.
#[derive(Clone, Copy, Debug, PartialEq, sqlx::FromRow)]
pub struct DeviceState {
    pub charge_now: i32,
    pub charge_full: i32,
    pub water_temp: f64,
    pub water_level: i32,
}

impl Command {
    /// Every action off: the answer for a device that has not measured anything yet.
    pub const IDLE: Command =
        Command { charge: Charge::NoChargeBattery, fill: Fill::NoFillReservoir, flush: Flush::NoFlushReservoir };

    /// Charge when the battery is below 20 % (or has no capacity), fill when the
    /// reservoir holds under 20 litres, flush half the reservoir when the water is above
    /// 55 °C.
    pub fn for_state(state: Option<DeviceState>) -> Self {
        let Some(state) = state else { return Self::IDLE };
        let low_battery = state.charge_full == 0
            || f64::from(state.charge_now) < CHARGE_BELOW_FRACTION * f64::from(state.charge_full);
        Command {
            charge: if low_battery { Charge::ChargeBattery } else { Charge::NoChargeBattery },
            fill: if state.water_level < FILL_BELOW_LEVEL { Fill::FillReservoir } else { Fill::NoFillReservoir },
            flush: if state.water_temp > FLUSH_ABOVE_TEMP {
                Flush::FlushReservoir(f64::from(state.water_level) * FLUSH_FRACTION)
            } else {
                Flush::NoFlushReservoir
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MeasurementInput {
        MeasurementInput {
            id: None,
            time: Utc::now(),
            charge_now: 50,
            charge_full: 100,
            charge_rate: 1.5,
            ambient_temp: 20.0,
            water_temp: 40.0,
            water_level: 50,
        }
    }

    fn window() -> TimeWindow {
        TimeWindow { max_age: std::time::Duration::from_secs(3600), max_skew: std::time::Duration::from_secs(60) }
    }

    #[test]
    fn idle_command_matches_the_original_encoding() {
        let json = serde_json::to_value(Command::IDLE).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"charge":"NoChargeBattery","fill":"NoFillReservoir","flush":{"tag":"NoFlushReservoir"}})
        );
    }

    #[test]
    fn command_follows_the_latest_state() {
        let hot_empty_flat = DeviceState { charge_now: 10, charge_full: 100, water_temp: 60.0, water_level: 10 };
        let json = serde_json::to_value(Command::for_state(Some(hot_empty_flat))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"charge":"ChargeBattery","fill":"FillReservoir","flush":{"tag":"FlushReservoir","contents":5.0}})
        );
        let fine = DeviceState { charge_now: 90, charge_full: 100, water_temp: 30.0, water_level: 80 };
        assert_eq!(Command::for_state(Some(fine)), Command::IDLE);
    }

    #[test]
    fn validation_names_the_field() {
        let now = Utc::now();
        let cases: Vec<(MeasurementInput, &str)> = vec![
            (MeasurementInput { charge_now: 101, ..input() }, "charge_now"),
            (MeasurementInput { charge_now: -1, ..input() }, "charge_now"),
            (MeasurementInput { charge_full: -1, ..input() }, "charge_full"),
            (MeasurementInput { water_level: -5, ..input() }, "water_level"),
            (MeasurementInput { water_temp: f64::NAN, ..input() }, "water_temp"),
            (MeasurementInput { ambient_temp: f64::INFINITY, ..input() }, "ambient_temp"),
            (MeasurementInput { charge_rate: 1e300, ..input() }, "charge_rate"),
            (MeasurementInput { time: now + chrono::Duration::hours(1), ..input() }, "time"),
            (MeasurementInput { time: now - chrono::Duration::days(2), ..input() }, "time"),
        ];
        for (case, field) in cases {
            let error = case.validate(Uuid::nil(), window(), now, "[2].").unwrap_err();
            assert_eq!(error.field, format!("[2].{field}"));
        }
        assert!(input().validate(Uuid::nil(), window(), now, "").is_ok());
    }

    /// Every bound the OpenAPI schema states is the one `validate` enforces: the bound
    /// itself is accepted, the next value past it refused, naming the field.
    #[test]
    fn schema_bounds_are_the_validation_bounds() {
        let schema = serde_json::to_value(<MeasurementInput as utoipa::PartialSchema>::schema()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let now = Utc::now();
        let mut checked = Vec::new();
        for (field, property) in properties {
            let integral = property["type"] == "integer";
            for (bound, outward) in [("minimum", -1.0), ("maximum", 1.0)] {
                let Some(limit) = property[bound].as_f64() else { continue };
                // charge_now may not exceed charge_full: give each room to reach its own bounds.
                let at = |value: f64| {
                    let mut body = serde_json::to_value(input()).unwrap();
                    body["time"] = serde_json::json!(now.to_rfc3339());
                    body["charge_now"] = serde_json::json!(0);
                    body["charge_full"] = serde_json::json!(i32::MAX);
                    body[field] = serde_json::json!(value);
                    serde_json::from_value::<MeasurementInput>(body)
                        .map_err(|error| error.to_string())
                        .and_then(|parsed| parsed.validate(Uuid::nil(), window(), now, "").map_err(|e| e.to_string()))
                };
                assert!(at(limit).is_ok(), "{field} = {limit} (its {bound}) is refused: {:?}", at(limit));
                let beyond = if integral { limit + outward } else { limit + outward * limit.abs().max(1.0) * 1e-9 };
                let refused = at(beyond).expect_err(&format!("{field} = {beyond} (past its {bound}) is accepted"));
                assert!(refused.contains(field.as_str()) || integral, "{field}: {refused}");
                checked.push(format!("{field}.{bound}"));
            }
        }
        checked.sort();
        assert_eq!(
            checked,
            [
                "ambient_temp.maximum",
                "ambient_temp.minimum",
                "charge_full.maximum",
                "charge_full.minimum",
                "charge_now.maximum",
                "charge_now.minimum",
                "charge_rate.maximum",
                "charge_rate.minimum",
                "water_level.maximum",
                "water_level.minimum",
                "water_temp.maximum",
                "water_temp.minimum",
            ],
            "every numeric field states both bounds"
        );
        // And the constants the descriptions quote are the schema's.
        assert_eq!(properties["water_level"]["maximum"].as_f64(), Some(f64::from(MAX_WATER_LEVEL)));
        assert_eq!(properties["charge_rate"]["maximum"].as_f64(), Some(CHARGE_RATE_LIMIT));
        assert_eq!(properties["water_temp"]["minimum"].as_f64(), Some(TEMPERATURE_RANGE.0));
        assert_eq!(properties["water_temp"]["maximum"].as_f64(), Some(TEMPERATURE_RANGE.1));
    }

    #[test]
    fn integral_numbers_with_a_fraction_are_integers() {
        let parse = |charge_full: &str| {
            let body = format!(
                r#"{{"time":"2026-01-02T03:04:05Z","charge_now":1,"charge_full":{charge_full},"charge_rate":0,
                "ambient_temp":20,"water_temp":30,"water_level":4.0}}"#
            );
            serde_json::from_str::<MeasurementInput>(&body).map_err(|error| error.to_string())
        };
        assert_eq!(parse("5396.0").unwrap().charge_full, 5396);
        assert_eq!(parse("5396").unwrap().charge_full, 5396);
        assert_eq!(parse("5.396e3").unwrap().charge_full, 5396);
        assert_eq!(parse("-0.0").unwrap().charge_full, 0);
        assert_eq!(parse("2147483647.0").unwrap().charge_full, i32::MAX);
        for refused in ["5396.5", "2147483648.0", "2147483648", "1e300", "\"5396\"", "true", "null"] {
            assert!(parse(refused).is_err(), "charge_full = {refused} is accepted");
        }
    }

    #[test]
    fn time_without_offset_is_utc() {
        let body = r#"{"time":"2026-01-02T03:04:05.5","charge_now":1,"charge_full":2,"charge_rate":0,
            "ambient_temp":20,"water_temp":30,"water_level":4}"#;
        let parsed: MeasurementInput = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.time.to_rfc3339(), "2026-01-02T03:04:05.500+00:00");
    }
}
