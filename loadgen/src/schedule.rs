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

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(deserializer)?))
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

    /// Every arrival of `segment`: (k, due time since start), in order.
    pub fn arrivals(&self, segment: Segment) -> impl Iterator<Item = (u64, Duration)> + '_ {
        self.all_arrivals().filter(move |(k, _)| segment.contains(*k))
    }

    fn all_arrivals(&self) -> impl Iterator<Item = (u64, Duration)> + '_ {
        // Walk the pieces, carrying the fractional count over each boundary.
        let mut piece_index = 0usize;
        let mut piece_start = 0.0f64; // seconds
        let mut count_before = 0.0f64; // expected arrivals before this piece
        let mut k = 0u64;
        std::iter::from_fn(move || {
            loop {
                let piece = self.pieces.get(piece_index)?;
                let length = piece.duration.as_secs_f64();
                let in_piece = (piece.from + piece.to) / 2.0 * length;
                let wanted = k as f64 - count_before;
                if wanted < in_piece {
                    let offset = solve_offset(piece.from, piece.to, length, wanted);
                    let due = Duration::from_secs_f64(piece_start + offset);
                    k += 1;
                    return Some((k - 1, due));
                }
                count_before += in_piece;
                piece_start += length;
                piece_index += 1;
            }
        })
    }
}

/// The τ in [0, length] at which r0·τ + (r1−r0)·τ²/(2·length) = count.
fn solve_offset(r0: f64, r1: f64, length: f64, count: f64) -> f64 {
    let slope = (r1 - r0) / length;
    if slope.abs() < 1e-12 {
        return if r0 > 0.0 { count / r0 } else { length };
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
    fn segment_parsing() {
        assert_eq!("1/4".parse::<Segment>().unwrap(), Segment { index: 1, count: 4 });
        assert!("4/4".parse::<Segment>().is_err());
        assert!("x".parse::<Segment>().is_err());
        assert!("1/0".parse::<Segment>().is_err());
    }
}
