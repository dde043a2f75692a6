//! Between the controller and its agents: statistics as protobuf messages (exact
//! HdrHistograms, so the controller merges what the agents measured without losing
//! a digit), schedules as rate pieces, and the shared token.

use std::borrow::Cow;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use loadlab_proto::agent;

use crate::outcome::Outcome;
use crate::pacer::Pace;
use crate::schedule::{RatePiece, Schedule};
use crate::stats::{Latencies, Stats, decode_bytes};

/// The metadata key that carries the token: `authorization: Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

fn encode(histogram: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Serialising into memory cannot fail.
    let _ = V2Serializer::new().serialize(histogram, &mut bytes);
    bytes
}

pub fn stats_to_wire(stats: &Stats) -> agent::Stats {
    agent::Stats {
        offered: stats.offered,
        dropped: stats.dropped,
        requests: stats
            .by_request
            .iter()
            .filter(|(_, latencies)| !latencies.corrected.is_empty())
            .map(|((request, outcome), latencies)| agent::Latencies {
                request: request.to_string(),
                outcome: outcome.to_string(),
                corrected: encode(&latencies.corrected),
                uncorrected: encode(&latencies.uncorrected),
            })
            .collect(),
        schedule_lag: stats.schedule_lag.as_ref().map(encode).unwrap_or_default(),
    }
}

/// The statistics an agent sent; anything malformed is an error naming it.
pub fn stats_from_wire(wire: &agent::Stats, names: &[&'static str]) -> Result<Stats, String> {
    let mut stats = Stats { offered: wire.offered, dropped: wire.dropped, ..Stats::default() };
    for row in &wire.requests {
        let outcome = Outcome::from_label(&row.outcome)?;
        // The agent runs the same scenario: its request names are ours.
        let request: Cow<'static, str> = match names.iter().find(|name| **name == row.request) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(row.request.clone()),
        };
        let latencies =
            Latencies { corrected: decode_bytes(&row.corrected)?, uncorrected: decode_bytes(&row.uncorrected)? };
        let mut one = Stats::default();
        one.by_request.insert((request, outcome), latencies);
        stats.merge(&one)?;
    }
    if !wire.schedule_lag.is_empty() {
        let lag = decode_bytes(&wire.schedule_lag)?;
        stats.schedule_lag = Some(lag);
    }
    Ok(stats)
}

pub fn schedule_to_wire(schedule: &Schedule) -> Vec<agent::Piece> {
    schedule
        .pieces()
        .iter()
        .map(|piece| agent::Piece { from: piece.from, to: piece.to, duration_us: piece.duration.as_micros() as u64 })
        .collect()
}

/// A schedule from a controller; rates must be finite and not negative.
pub fn schedule_from_wire(pieces: &[agent::Piece]) -> Result<Schedule, String> {
    let pieces = pieces
        .iter()
        .map(|piece| {
            let fine = |rate: f64| rate.is_finite() && (0.0..=crate::cli::values::MAX_RATE).contains(&rate);
            if !fine(piece.from) || !fine(piece.to) {
                return Err(format!("a piece from {} to {} requests/s is out of range", piece.from, piece.to));
            }
            Ok(RatePiece { from: piece.from, to: piece.to, duration: Duration::from_micros(piece.duration_us) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schedule = Schedule::new(pieces);
    if schedule.duration() > crate::cli::values::MAX_DURATION {
        return Err("the step lasts more than 30 days".into());
    }
    Ok(schedule)
}

/// A step's pace: routines when it carries them, else its schedule's pieces.
pub fn pace_from_wire(step: &agent::Step) -> Result<Pace, String> {
    match &step.routines {
        None => schedule_from_wire(&step.pieces).map(Pace::Open),
        Some(routines) => {
            let periods: Vec<Duration> = routines.periods_us.iter().map(|us| Duration::from_micros(*us)).collect();
            let length = Duration::from_micros(routines.length_us);
            let fine = !periods.is_empty()
                && periods.iter().all(|period| !period.is_zero() && *period <= crate::cli::values::MAX_DURATION)
                && (0.0..1.0).contains(&routines.jitter)
                && length <= crate::cli::values::MAX_DURATION
                && u64::from(routines.devices) <= crate::cli::values::MAX_LANES;
            if !fine {
                return Err("the routines' devices, periods, jitter or length are out of range".into());
            }
            Ok(Pace::Routines { devices: routines.devices, periods, jitter: routines.jitter, length })
        }
    }
}

/// A pace as a step carries it (the schedule's pieces, or the routines).
pub fn pace_to_wire(pace: &Pace) -> (Vec<agent::Piece>, Option<agent::Routines>) {
    match pace {
        Pace::Open(schedule) => (schedule_to_wire(schedule), None),
        Pace::Routines { devices, periods, jitter, length } => (
            Vec::new(),
            Some(agent::Routines {
                devices: *devices,
                periods_us: periods.iter().map(|period| period.as_micros() as u64).collect(),
                jitter: *jitter,
                length_us: length.as_micros() as u64,
            }),
        ),
        // The plan refuses closed-model users with agents.
        Pace::Users { .. } => (Vec::new(), None),
    }
}

/// `Bearer <token>`, the value of [`AUTHORIZATION`].
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Reads a token file: its first line, trimmed; at least 16 characters.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.len() < 16 {
        return Err(format!("{}: the token must be at least 16 characters on its first line", path.display()));
    }
    if tonic::metadata::MetadataValue::try_from(bearer(&token)).is_err() {
        return Err(format!("{}: the token must be printable ASCII", path.display()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ErrorKind;

    #[test]
    fn statistics_cross_the_wire_exactly() {
        let mut stats = Stats { offered: 12, dropped: 2, ..Stats::default() };
        for millis in 1..=9 {
            stats.record("command", Outcome::Ok, Duration::from_millis(millis), Duration::from_millis(1));
            stats.record_lag(Duration::from_micros(millis * 10));
        }
        stats.record("measurement", Outcome::Error(ErrorKind::Timeout), Duration::from_secs(2), Duration::from_secs(2));
        let back = stats_from_wire(&stats_to_wire(&stats), &["command", "measurement"]).unwrap();
        assert_eq!((back.offered, back.dropped, back.completed(), back.errors()), (12, 2, 10, 1));
        assert_eq!(back.ok_latency(true), stats.ok_latency(true));
        assert_eq!(back.schedule_lag, stats.schedule_lag);
        let mut bad = stats_to_wire(&stats);
        bad.requests[0].outcome = "sideways".into();
        assert!(stats_from_wire(&bad, &[]).is_err());
        bad.requests[0].outcome = "ok".into();
        bad.requests[0].corrected = vec![1, 2, 3];
        assert!(stats_from_wire(&bad, &[]).is_err());
    }

    #[test]
    fn schedules_cross_the_wire() {
        let schedule = Schedule::new(vec![RatePiece { from: 0.0, to: 100.0, duration: Duration::from_secs(2) }]);
        let back = schedule_from_wire(&schedule_to_wire(&schedule)).unwrap();
        assert_eq!(back.total(), schedule.total());
        assert!(schedule_from_wire(&[agent::Piece { from: f64::NAN, to: 1.0, duration_us: 1 }]).is_err());
    }
}
