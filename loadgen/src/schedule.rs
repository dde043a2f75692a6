//! The arrival schedule of the open model: when each request is due.
//!
//! A rate profile is a list of pieces, each holding the rate for a duration or
//! ramping linearly between two rates. Request k (from 0) is due at the time t_k where
//! the expected count ∫rate reaches k; for a linear piece that is the root of a
//! quadratic. The schedule depends on nothing else, so it is the same on every run and
//! every machine, and it can be split: segment i/n takes the requests with
//! k mod n = i, so n instances together replay exactly one instance's schedule (the
//! idea of k6's execution segments, as a simple interleave).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One piece of a rate profile: `from` requests/s ramping linearly to `to` over
/// `duration` (equal for a constant rate).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatePiece {
    pub from: f64,
    pub to: f64,
    #[serde(with = "humantime_serde_shim")]
    pub duration: Duration,
}

mod humantime_serde_shim {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    /// A hostile file (negative, NaN, too large) is an error, never a panic.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| serde::de::Error::custom(format!("{seconds} is not a duration in seconds")))
    }
}

/// This instance's share of a schedule: requests with k mod `count` = `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

impl Segment {
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// Segment `index` of `count`, 0 ≤ index < count.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || index >= count {
            return Err(format!("segment {index}/{count}: need 0 ≤ i < n in i/n"));
        }
        Ok(Self { index, count })
    }

    pub fn contains(self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Segment {
    type Err = String;

    /// `i/n` with 0 ≤ i < n.
    fn from_str(text: &str) -> Result<Self, String> {
        let (index, count) = text.split_once('/').ok_or_else(|| format!("`{text}` is not a segment such as 0/2"))?;
        let index: u32 = index.trim().parse().map_err(|_| format!("`{text}`: segment index is not a number"))?;
        let count: u32 = count.trim().parse().map_err(|_| format!("`{text}`: segment count is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("`{text}`: need 0 ≤ i < n in i/n"));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The whole profile's arrival times.
#[derive(Clone, Debug)]
pub struct Schedule {
    pieces: Vec<RatePiece>,
}

impl Schedule {
    pub fn new(pieces: Vec<RatePiece>) -> Self {
        Self { pieces }
    }

    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self::new(vec![RatePiece { from: rate, to: rate, duration }])
    }

    pub fn duration(&self) -> Duration {
        self.pieces.iter().map(|piece| piece.duration).sum()
    }

    pub fn pieces(&self) -> &[RatePiece] {
        &self.pieces
    }

    /// The offered rate at `at` (requests/s).
    pub fn rate_at(&self, at: Duration) -> f64 {
        let mut start = Duration::ZERO;
        for piece in &self.pieces {
            if at < start + piece.duration {
                let fraction = (at - start).as_secs_f64() / piece.duration.as_secs_f64().max(f64::MIN_POSITIVE);
                return piece.from + (piece.to - piece.from) * fraction;
            }
            start += piece.duration;
        }
        0.0
    }

    /// Mean rate over the whole schedule.
    pub fn mean_rate(&self) -> f64 {
        let seconds = self.duration().as_secs_f64();
        if seconds <= 0.0 { 0.0 } else { self.expected_count() / seconds }
    }

    /// ∫ rate over the schedule: how many requests it holds, before rounding up.
    fn expected_count(&self) -> f64 {
        self.pieces.iter().map(|piece| (piece.from + piece.to) / 2.0 * piece.duration.as_secs_f64()).sum()
    }

    /// Requests of the whole schedule: arrival k exists for every integer k < ∫rate.
    pub fn total(&self) -> u64 {
        let count = self.expected_count();
        if count.is_finite() && count > 0.0 { count.ceil() as u64 } else { 0 }
    }

    /// Every arrival of `segment`, in order: (k, due time since start).
    pub fn arrivals(&self, segment: Segment) -> Arrivals {
        let mut bounds = Vec::with_capacity(self.pieces.len());
        let (mut start, mut before) = (0.0f64, 0.0f64);
        for piece in &self.pieces {
            let length = piece.duration.as_secs_f64();
            bounds.push(Bound { start, before, piece: *piece });
            start += length;
            before += (piece.from + piece.to) / 2.0 * length;
        }
        Arrivals {
            bounds,
            piece: 0,
            next: u64::from(segment.index),
            step: u64::from(segment.count),
            total: self.total(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bound {
    /// Seconds from the schedule's start to this piece's start.
    start: f64,
    /// Expected arrivals before this piece.
    before: f64,
    piece: RatePiece,
}

/// The arrivals of one segment, computed one at a time: arrival k is due where the
/// expected count reaches k. Each segment computes only its own arrivals, with the
/// same formula as the whole schedule, so segments partition it exactly.
#[derive(Clone, Debug)]
pub struct Arrivals {
    bounds: Vec<Bound>,
    piece: usize,
    next: u64,
    step: u64,
    total: u64,
}

impl Arrivals {
    /// Arrivals of this segment not yet taken.
    pub fn remaining(&self) -> u64 {
        if self.next >= self.total { 0 } else { (self.total - self.next).div_ceil(self.step) }
    }
}

impl Iterator for Arrivals {
    type Item = (u64, Duration);

    fn next(&mut self) -> Option<(u64, Duration)> {
        if self.next >= self.total {
            return None;
        }
        let k = self.next;
        let wanted = k as f64;
        // Pieces are in order and k only grows, so the search resumes where it was.
        while self.piece + 1 < self.bounds.len() && self.bounds[self.piece + 1].before <= wanted {
            self.piece += 1;
        }
        let bound = self.bounds.get(self.piece)?;
        let length = bound.piece.duration.as_secs_f64();
        let offset = solve_offset(bound.piece.from, bound.piece.to, length, wanted - bound.before);
        self.next += self.step;
        Some((k, Duration::from_secs_f64((bound.start + offset).max(0.0))))
    }
}

/// The τ in [0, length] at which r0·τ + (r1−r0)·τ²/(2·length) = count.
fn solve_offset(r0: f64, r1: f64, length: f64, count: f64) -> f64 {
    let slope = (r1 - r0) / length;
    if slope.abs() < 1e-12 {
        return if r0 > 0.0 { (count / r0).min(length) } else { length };
    }
    // slope/2·τ² + r0·τ − count = 0
    let discriminant = (r0 * r0 + 2.0 * slope * count).max(0.0);
    ((-r0 + discriminant.sqrt()) / slope).clamp(0.0, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let schedule = Schedule::constant(100.0, Duration::from_secs(2));
        let arrivals: Vec<_> = schedule.arrivals(Segment::WHOLE).collect();
        assert_eq!(arrivals.len(), 200);
        assert_eq!(arrivals[0].1, Duration::ZERO);
        assert!((arrivals[50].1.as_secs_f64() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_delivers_its_area() {
        // 0 → 100 req/s over 10 s: 500 requests, denser at the end.
        let schedule = Schedule::new(vec![RatePiece { from: 0.0, to: 100.0, duration: Duration::from_secs(10) }]);
        let arrivals: Vec<_> = schedule.arrivals(Segment::WHOLE).collect();
        assert_eq!(arrivals.len(), 500);
        let first_half = arrivals.iter().filter(|(_, due)| *due < Duration::from_secs(5)).count();
        assert_eq!(first_half, 125, "a quarter of the area lies in the first half");
        assert!(arrivals.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    }

    #[test]
    fn stages_chain_without_losing_requests() {
        let schedule = Schedule::new(vec![
            RatePiece { from: 10.0, to: 10.0, duration: Duration::from_secs(1) },
            RatePiece { from: 10.0, to: 30.0, duration: Duration::from_secs(1) },
            RatePiece { from: 30.0, to: 30.0, duration: Duration::from_secs(1) },
        ]);
        assert_eq!(schedule.arrivals(Segment::WHOLE).count(), 10 + 20 + 30);
        assert!((schedule.rate_at(Duration::from_millis(1500)) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn segments_partition_the_schedule_exactly() {
        let schedule = Schedule::constant(333.0, Duration::from_secs(3));
        let whole: Vec<_> = schedule.arrivals(Segment::WHOLE).collect();
        let mut merged: Vec<_> =
            (0..3).flat_map(|index| schedule.arrivals(Segment { index, count: 3 }).collect::<Vec<_>>()).collect();
        merged.sort_by_key(|(k, _)| *k);
        assert_eq!(merged, whole, "three thirds replay the whole: same requests, same due times");
    }

    #[test]
    fn remaining_counts_what_is_left_without_walking_it() {
        let schedule = Schedule::constant(1_000_000.0, Duration::from_secs(3600));
        let mut arrivals = schedule.arrivals(Segment { index: 1, count: 3 });
        assert_eq!(arrivals.remaining(), 1_200_000_000);
        arrivals.next();
        arrivals.next();
        assert_eq!(arrivals.remaining(), 1_199_999_998);
        let small = Schedule::constant(10.0, Duration::from_secs(1));
        let mut whole = small.arrivals(Segment::WHOLE);
        assert_eq!(whole.remaining(), 10);
        assert_eq!(whole.by_ref().count(), 10);
        assert_eq!(whole.remaining(), 0);
    }

    #[test]
    fn segment_parsing() {
        assert_eq!("1/4".parse::<Segment>().unwrap(), Segment { index: 1, count: 4 });
        assert!("4/4".parse::<Segment>().is_err());
        assert!("x".parse::<Segment>().is_err());
        assert!("1/0".parse::<Segment>().is_err());
    }
}
