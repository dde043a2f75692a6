//! `loadgen report DIR...`: several instances' outputs (one per segment of the same
//! schedule) merged into one report, exactly: counts add up, and percentiles are read
//! from the sum of the instances' HdrHistograms, never averaged. Per-second rows add
//! their counts; their percentiles cannot be merged from the CSV and are left out.
//!
//! The files may come from anywhere: every field is checked as it is read, and a
//! malformed or hostile value is an error that names the file, never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::collector::SecondRow;
use crate::outcome::Outcome;
use crate::output::report::{Percentiles, Report, RequestRow, StepHistograms, percentiles};
use crate::stats::{decode, encode, new_histogram};

/// Largest `summary.json` or `seconds.csv` read (a run of a month at one row a second
/// is far below it).
const MAX_FILE_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("reading {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{0} and {1} do not come from the same plan: {2}")]
    Mismatch(String, String, String),
    #[error("nothing to merge")]
    Empty,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path).map_err(|error| error.to_string())?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!("{size} bytes, more than the {MAX_FILE_BYTES} a report may have"));
    }
    std::fs::read(path).map_err(|error| error.to_string())
}

/// Reads `summary.json` and `seconds.csv` from `dir`.
pub fn read(dir: &Path) -> Result<(Report, Vec<SecondRow>), MergeError> {
    let failed = |detail: String| MergeError::Read { path: dir.display().to_string(), detail };
    let summary = read_bounded(&dir.join("summary.json")).map_err(|error| failed(format!("summary.json: {error}")))?;
    let report: Report = serde_json::from_slice(&summary).map_err(|error| failed(format!("summary.json: {error}")))?;
    check_report(&report).map_err(|error| failed(format!("summary.json: {error}")))?;
    let csv = read_bounded(&dir.join("seconds.csv")).map_err(|error| failed(format!("seconds.csv: {error}")))?;
    let csv = String::from_utf8(csv).map_err(|_| failed("seconds.csv: not UTF-8".into()))?;
    let seconds = parse_seconds(&csv).map_err(|error| failed(format!("seconds.csv: {error}")))?;
    Ok((report, seconds))
}

/// Numbers a report must have for anything to be computed from it.
fn check_report(report: &Report) -> Result<(), String> {
    for step in &report.steps {
        let finite = [step.offered_rate, step.duration_seconds, step.achieved_rate].iter().all(|v| v.is_finite());
        if !finite || step.offered_rate < 0.0 || step.duration_seconds < 0.0 {
            return Err(format!("step `{}` has a negative or non-finite rate or duration", step.label));
        }
    }
    Ok(())
}

/// Parses `seconds.csv` as [`crate::output::report::seconds_csv`] writes it. The
/// counts are the first eight columns; latencies are found by their header's names
/// (files written before p90, the uncorrected p99 and the lag had columns read too).
pub fn parse_seconds(csv: &str) -> Result<Vec<SecondRow>, String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = match lines.next() {
        Some(header) if header.starts_with("second,step,offered_rate,sent,completed,ok,errors,dropped") => {
            header.split(',').collect()
        }
        _ => return Err("no header line `second,step,offered_rate,…`".into()),
    };
    let column = |name: &str| header.iter().position(|field| *field == name);
    let (p50, p90, p99) = (column("p50_ms"), column("p90_ms"), column("p99_ms"));
    let (p99_uncorrected, lag_p99) = (column("p99_uncorrected_ms"), column("lag_p99_ms"));
    lines
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(index, line)| {
            let line_number = index + 2;
            let fields: Vec<&str> = line.split(',').collect();
            let count = |at: usize| -> Result<u64, String> {
                let field = fields.get(at).ok_or_else(|| format!("line {line_number}: missing field {}", at + 1))?;
                field.parse().map_err(|_| format!("line {line_number}: `{field}` is not a count"))
            };
            // An empty field is a second without that figure; anything else but a
            // finite number ≥ 0 is damage.
            let latency = |at: Option<usize>| -> Result<Option<f64>, String> {
                match at.and_then(|at| fields.get(at)).filter(|field| !field.is_empty()) {
                    None => Ok(None),
                    Some(field) => field
                        .parse::<f64>()
                        .ok()
                        .filter(|ms| ms.is_finite() && *ms >= 0.0)
                        .map(Some)
                        .ok_or_else(|| format!("line {line_number}: `{field}` is not a latency in ms")),
                }
            };
            let rate = fields
                .get(2)
                .and_then(|field| field.parse::<f64>().ok())
                .filter(|rate| rate.is_finite() && *rate >= 0.0)
                .ok_or_else(|| format!("line {line_number}: the offered rate is not a number ≥ 0"))?;
            Ok(SecondRow {
                second: count(0)?,
                step: fields.get(1).copied().unwrap_or_default().to_string(),
                offered_rate: rate,
                sent: count(3)?,
                completed: count(4)?,
                ok: count(5)?,
                errors: count(6)?,
                dropped: count(7)?,
                p50_ms: latency(p50)?,
                p90_ms: latency(p90)?,
                p99_ms: latency(p99)?,
                p99_uncorrected_ms: latency(p99_uncorrected)?,
                lag_p99_ms: latency(lag_p99)?,
                errors_by_kind: Default::default(),
                agents: Vec::new(),
            })
        })
        .collect()
}

fn add(into: &mut Histogram<u64>, encoded: &str) -> Result<(), String> {
    into.add(decode(encoded)?).map_err(|error| format!("{error:?}"))
}

/// One step's histograms summed over the segments read so far.
struct StepSums {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    /// (request, outcome) → (count, corrected latency).
    requests: BTreeMap<(String, Outcome), (u64, Histogram<u64>)>,
}

impl StepSums {
    fn new() -> Self {
        Self { corrected: new_histogram(), uncorrected: new_histogram(), requests: BTreeMap::new() }
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
            let entry = sum.requests.entry((row.request.clone(), row.outcome)).or_insert_with(|| (0, new_histogram()));
            entry.0 = entry.0.saturating_add(row.count);
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
            mine.offered = mine.offered.saturating_add(theirs.offered);
            mine.completed = mine.completed.saturating_add(theirs.completed);
            mine.errors = mine.errors.saturating_add(theirs.errors);
            mine.dropped = mine.dropped.saturating_add(theirs.dropped);
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
                errors_by_kind: Default::default(),
                ..row.clone()
            });
            for (kind, count) in &row.errors_by_kind {
                let sum = entry.errors_by_kind.entry(kind.clone()).or_insert(0);
                *sum = sum.saturating_add(*count);
            }
            entry.sent = entry.sent.saturating_add(row.sent);
            entry.completed = entry.completed.saturating_add(row.completed);
            entry.ok = entry.ok.saturating_add(row.ok);
            entry.errors = entry.errors.saturating_add(row.errors);
            entry.dropped = entry.dropped.saturating_add(row.dropped);
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
                outcome: *outcome,
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
        row.p90_ms = None;
        row.p99_ms = None;
        row.p99_uncorrected_ms = None;
        row.lag_p99_ms = None;
        row
    });
    Ok((merged, seconds.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::report::seconds_csv;

    #[test]
    fn seconds_read_back_as_written_latencies_by_their_column_names() {
        let row = SecondRow {
            second: 3,
            step: "step 1".into(),
            offered_rate: 100.0,
            sent: 100,
            completed: 99,
            ok: 98,
            errors: 1,
            dropped: 0,
            p50_ms: Some(1.5),
            p90_ms: Some(2.5),
            p99_ms: Some(9.25),
            p99_uncorrected_ms: Some(8.0),
            lag_p99_ms: None,
            errors_by_kind: Default::default(),
            agents: Vec::new(),
        };
        assert_eq!(parse_seconds(&seconds_csv(std::slice::from_ref(&row))).unwrap(), vec![row]);
        // The older file, without p90, the uncorrected p99 and the lag.
        let old = "second,step,offered_rate,sent,completed,ok,errors,dropped,p50_ms,p99_ms\n0,s,10.0,10,10,10,0,0,1.000,4.000\n";
        let parsed = parse_seconds(old).unwrap();
        assert_eq!((parsed[0].p50_ms, parsed[0].p90_ms, parsed[0].p99_ms), (Some(1.0), None, Some(4.0)));
        assert!(parse_seconds(&old.replace("4.000", "-4")).unwrap_err().contains("not a latency"));
    }
}
