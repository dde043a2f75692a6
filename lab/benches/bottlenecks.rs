//! How often is the bottleneck verdict right? Runs every planted case of
//! `loadlab_fixtures::planted` N times through the real stack (breakpoint search, real
//! Prometheus) and scores what the analysis named against what was planted: a
//! confusion matrix (planted case × named resource), top-1 and top-3 accuracy per case
//! and overall, and the same for a naive baseline computed from the same readings
//! (the resource whose signal grew most, relative to its own value at the last step
//! that held: the "largest change" rule of the root-cause literature, without
//! loadlab's limits or its cause-before-symptom order). Writes it all as JSON too.
//!
//!     cargo build --release --workspace --bins
//!     cargo bench -p loadlab --bench bottlenecks -- --runs 5 [--cases pool,locks] [--json FILE]
//!
//! Each run takes about a minute; the cases take turns (side by side each would be
//! the other's CPU shortage).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use loadlab_fixtures::planted::{self, Case, Found};
use serde::Serialize;

#[derive(Parser)]
struct Options {
    /// Runs per case.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only these cases (comma-separated names); all by default.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Where the matrix is written as JSON [default: target/bottlenecks-matrix.json in
    /// the workspace].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print loadgen's output of every run (its steps and its verdict).
    #[arg(long)]
    show_log: bool,
    #[arg(long, hide = true)]
    bench: bool,
}

/// One run of one case: what each method ranked, resources in order.
#[derive(Serialize)]
struct Run {
    case: String,
    run: usize,
    /// Set when the run failed (no verdict to score: counts as wrong).
    error: Option<String>,
    broken_rate: Option<f64>,
    verdict: Option<String>,
    analysis: Vec<String>,
    baseline: Vec<String>,
    /// The whole analysis (every signal's figures), to see why.
    readings: serde_json::Value,
}

/// Accuracy of one method on a set of runs.
#[derive(Serialize, Default, Clone, Copy)]
struct Score {
    runs: usize,
    top1: usize,
    top3: usize,
}

impl Score {
    fn add(&mut self, cause: &[&str], ranked: &[String]) {
        self.runs += 1;
        let right = |resource: &String| cause.contains(&resource.as_str());
        self.top1 += usize::from(ranked.first().is_some_and(right));
        self.top3 += usize::from(ranked.iter().take(3).any(right));
    }

    fn share(count: usize, of: usize) -> f64 {
        if of == 0 { 0.0 } else { count as f64 / of as f64 }
    }

    fn cells(&self) -> String {
        format!(
            "{:>5.0} % {:>5.0} %",
            100.0 * Self::share(self.top1, self.runs),
            100.0 * Self::share(self.top3, self.runs)
        )
    }
}

#[derive(Serialize)]
struct Matrix {
    runs_per_case: usize,
    /// planted case → named resource → runs.
    confusion: BTreeMap<String, BTreeMap<String, usize>>,
    analysis: BTreeMap<String, Score>,
    baseline: BTreeMap<String, Score>,
    analysis_overall: Score,
    baseline_overall: Score,
    runs: Vec<Run>,
}

/// The naive baseline's ranking: resources by the largest relative growth of any of
/// their signals from the held step to the broken one. A value near zero when it held
/// is floored at 1 % of the signal's limit, so growth from nothing is finite; with no
/// step held (the first broke), growth is from zero.
fn baseline(found: &Found) -> Vec<String> {
    let mut growth: BTreeMap<String, f64> = BTreeMap::new();
    for reading in found.analysis["ranking"].as_array().into_iter().flatten() {
        let held = reading["held"].as_f64().unwrap_or(0.0);
        let (Some(broke), Some(limit)) = (reading["broke"].as_f64(), reading["limit"].as_f64()) else {
            continue;
        };
        let relative = (broke - held) / held.abs().max(limit * 0.01);
        let resource = reading["resource"].as_str().unwrap_or_default().to_string();
        let best = growth.entry(resource).or_insert(f64::NEG_INFINITY);
        *best = best.max(relative);
    }
    let mut ranked: Vec<(String, f64)> = growth.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.into_iter().map(|(resource, _)| resource).collect()
}

fn main() {
    let options = Options::parse();
    let cases: Vec<Case> = planted::cases()
        .into_iter()
        .filter(|case| options.cases.is_empty() || options.cases.iter().any(|name| name == case.name))
        .collect();
    if cases.is_empty() {
        let known: Vec<&str> = planted::cases().iter().map(|case| case.name).collect();
        eprintln!("no case matches {:?}; the cases are {}", options.cases, known.join(", "));
        std::process::exit(2);
    }
    let mut matrix = Matrix {
        runs_per_case: options.runs,
        confusion: BTreeMap::new(),
        analysis: BTreeMap::new(),
        baseline: BTreeMap::new(),
        analysis_overall: Score::default(),
        baseline_overall: Score::default(),
        runs: Vec::new(),
    };
    // Round-robin, so a spell of noise on the machine spreads over the cases.
    for run in 1..=options.runs {
        for case in &cases {
            let result = planted::run(case);
            if let (true, Ok(found)) = (options.show_log, &result) {
                println!("{}", found.log);
            }
            let record = match &result {
                Ok(found) => Run {
                    case: case.name.into(),
                    run,
                    error: None,
                    broken_rate: found.breaking_point["broken_rate"].as_f64(),
                    verdict: found.analysis["verdict"].as_str().map(str::to_string),
                    analysis: found.resources(),
                    baseline: baseline(found),
                    readings: found.analysis.clone(),
                },
                Err(error) => Run {
                    case: case.name.into(),
                    run,
                    error: Some(error.lines().take(3).collect::<Vec<_>>().join(" / ")),
                    broken_rate: None,
                    verdict: None,
                    analysis: Vec::new(),
                    baseline: Vec::new(),
                    readings: serde_json::Value::Null,
                },
            };
            let named = record.analysis.first().cloned().unwrap_or_else(|| "(run failed)".into());
            println!(
                "{:<15} run {run}: broke at {:>6} /s, named {named:<28} baseline {}",
                case.name,
                record.broken_rate.map_or("–".into(), |rate| format!("{rate:.0}")),
                record.baseline.first().map_or("–", String::as_str),
            );
            if let Some(error) = &record.error {
                println!("    failed: {error}");
            }
            *matrix.confusion.entry(case.name.into()).or_default().entry(named).or_default() += 1;
            for (scores, overall, ranked) in [
                (&mut matrix.analysis, &mut matrix.analysis_overall, &record.analysis),
                (&mut matrix.baseline, &mut matrix.baseline_overall, &record.baseline),
            ] {
                scores.entry(case.name.into()).or_default().add(case.cause, ranked);
                overall.add(case.cause, ranked);
            }
            matrix.runs.push(record);
        }
    }
    print_matrix(&matrix, &cases);
    let json = options.json.unwrap_or_else(|| loadlab_fixtures::repository().join("target/bottlenecks-matrix.json"));
    if let Some(parent) = json.parent() {
        std::fs::create_dir_all(parent).expect("the JSON file's directory");
    }
    std::fs::write(&json, serde_json::to_string_pretty(&matrix).expect("the matrix serializes"))
        .expect("the JSON file is written");
    println!("\nwritten to {}", json.display());
}

fn print_matrix(matrix: &Matrix, cases: &[Case]) {
    println!("\nconfusion (planted case: named resource × runs)");
    for case in cases {
        let named: Vec<String> =
            matrix.confusion[case.name].iter().map(|(resource, n)| format!("{resource} × {n}")).collect();
        println!("  {:<15} ({}) : {}", case.name, case.cause.join(" | "), named.join(", "));
    }
    println!("\n{:<15} {:>17} {:>17}", "", "analysis", "baseline");
    println!("{:<15} {:>7} {:>9} {:>7} {:>9}", "case", "top-1", "top-3", "top-1", "top-3");
    for case in cases {
        println!("{:<15} {} {}", case.name, matrix.analysis[case.name].cells(), matrix.baseline[case.name].cells());
    }
    println!("{:<15} {} {}", "overall", matrix.analysis_overall.cells(), matrix.baseline_overall.cells());
}
