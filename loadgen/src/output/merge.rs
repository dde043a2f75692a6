//! `loadgen report DIR...`: several instances' outputs (one per segment of the same
//! schedule) merged into one report, exactly: counts add up, and percentiles are read
//! from the sum of the instances' HdrHistograms, never averaged. Per-second rows add
//! their counts; their percentiles cannot be merged from the CSV and are left out.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::engine::SecondRow;
use crate::output::report::{Percentiles, Report, RequestRow, StepHistograms, percentiles};
use crate::stats::{decode, encode};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("reading {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{0} and {1} do not come from the same plan: {2}")]
    Mismatch(String, String, String),
    #[error("nothing to merge")]
    Empty,
}

/// Reads `summary.json` and `seconds.csv` from `dir`.
pub fn read(dir: &Path) -> Result<(Report, Vec<SecondRow>), MergeError> {
    let failed = |detail: String| MergeError::Read { path: dir.display().to_string(), detail };
    let summary = std::fs::read(dir.join("summary.json")).map_err(|error| failed(format!("summary.json: {error}")))?;
    let report: Report = serde_json::from_slice(&summary).map_err(|error| failed(format!("summary.json: {error}")))?;
    let csv =
        std::fs::read_to_string(dir.join("seconds.csv")).map_err(|error| failed(format!("seconds.csv: {error}")))?;
    let mut seconds = Vec::new();
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let number = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
        seconds.push(SecondRow {
            second: number(0),
            step: fields.get(1).unwrap_or(&"").to_string(),
            offered_rate: fields.get(2).and_then(|field| field.parse().ok()).unwrap_or(0.0),
            sent: number(3),
            completed: number(4),
            ok: number(5),
            errors: number(6),
            dropped: number(7),
            p50_ms: None,
            p99_ms: None,
        });
    }
    Ok((report, seconds))
}

fn add(into: &mut Histogram<u64>, encoded: &str) -> Result<(), String> {
    into.add(decode(encoded)?).map_err(|error| format!("{error:?}"))
}

fn empty() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// One step's histograms summed over the segments read so far.
struct StepSums {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    /// (request, outcome) → (count, corrected latency).
    requests: BTreeMap<(String, String), (u64, Histogram<u64>)>,
}

impl StepSums {
    fn new() -> Self {
        Self { corrected: empty(), uncorrected: empty(), requests: BTreeMap::new() }
    }
}

/// Adds every step of `report` into `sums`.
fn accumulate(report: &Report, sums: &mut Vec<StepSums>) -> Result<(), String> {
    for (index, step) in report.steps.iter().enumerate() {
        if sums.len() <= index {
            sums.push(StepSums::new());
        }
        let sum = &mut sums[index];
        add(&mut sum.corrected, &step.histograms.corrected_ok)?;
        add(&mut sum.uncorrected, &step.histograms.uncorrected_ok)?;
        for row in &step.requests {
            let entry = sum.requests.entry((row.request.clone(), row.outcome.clone())).or_insert_with(|| (0, empty()));
            entry.0 += row.count;
            add(&mut entry.1, &row.histogram)?;
        }
    }
    Ok(())
}

/// Merges `parts` (one per segment) into one report.
pub fn merge(parts: Vec<(String, Report, Vec<SecondRow>)>) -> Result<(Report, Vec<SecondRow>), MergeError> {
    let mut parts = parts.into_iter();
    let (first_name, mut merged, first_seconds) = parts.next().ok_or(MergeError::Empty)?;
    let mut seconds: BTreeMap<(u64, String), SecondRow> =
        first_seconds.into_iter().map(|row| ((row.second, row.step.clone()), row)).collect();
    let mut sums: Vec<StepSums> = Vec::new();
    let bad = |name: &str, detail: String| MergeError::Mismatch(first_name.clone(), name.to_string(), detail);
    accumulate(&merged, &mut sums).map_err(|detail| bad(&first_name, detail))?;
    let mut segments = vec![merged.segment.clone()];
    for (name, report, part_seconds) in parts {
        let labels = |report: &Report| report.steps.iter().map(|step| step.label.clone()).collect::<Vec<_>>();
        if labels(&report) != labels(&merged) {
            return Err(bad(&name, format!("steps {:?} vs {:?}", labels(&merged), labels(&report))));
        }
        if report.seed != merged.seed || report.scenario != merged.scenario {
            return Err(bad(&name, "different seed or scenario".into()));
        }
        accumulate(&report, &mut sums).map_err(|detail| bad(&name, detail))?;
        for (mine, theirs) in merged.steps.iter_mut().zip(&report.steps) {
            mine.offered += theirs.offered;
            mine.completed += theirs.completed;
            mine.errors += theirs.errors;
            mine.dropped += theirs.dropped;
            mine.achieved_rate += theirs.achieved_rate;
            mine.held = match (mine.held, theirs.held) {
                (Some(a), Some(b)) => Some(a && b),
                (a, b) => a.or(b),
            };
            mine.broken.extend(theirs.broken.iter().cloned());
        }
        for row in part_seconds {
            let entry = seconds.entry((row.second, row.step.clone())).or_insert_with(|| SecondRow {
                sent: 0,
                completed: 0,
                ok: 0,
                errors: 0,
                dropped: 0,
                ..row.clone()
            });
            entry.sent += row.sent;
            entry.completed += row.completed;
            entry.ok += row.ok;
            entry.errors += row.errors;
            entry.dropped += row.dropped;
        }
        merged.interrupted |= report.interrupted;
        segments.push(report.segment);
    }
    for (step, sum) in merged.steps.iter_mut().zip(&sums) {
        step.corrected_ms = percentiles(&sum.corrected);
        step.uncorrected_ms = percentiles(&sum.uncorrected);
        step.schedule_lag_ms = Percentiles::default(); // not kept as a histogram per step
        step.histograms =
            StepHistograms { corrected_ok: encode(&sum.corrected), uncorrected_ok: encode(&sum.uncorrected) };
        step.requests = sum
            .requests
            .iter()
            .map(|((request, outcome), (count, histogram))| RequestRow {
                request: request.clone(),
                outcome: outcome.clone(),
                count: *count,
                corrected_ms: percentiles(histogram),
                histogram: encode(histogram),
            })
            .collect();
    }
    merged.segment = segments.join("+");
    merged.verdict = format!("merged from {} segments", segments.len());
    let seconds = seconds.into_values().map(|mut row| {
        row.p50_ms = None;
        row.p99_ms = None;
        row
    });
    Ok((merged, seconds.collect()))
}
