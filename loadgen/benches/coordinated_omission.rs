//! Coordinated omission: loadgen offers a constant rate to a target that is paused
//! (SIGSTOP) for `--pause` seconds in the middle of the run. The true latency of each
//! request follows from the schedule: a request due during the pause waits until the
//! pause ends. Prints the true p99, loadgen's corrected p99 (from the due time) and
//! the uncorrected p99 (from the send) beside it; then, for contrast, the p99 a
//! closed-loop run (wrk's model: 10 users, no think time) reports over the same kind
//! of pause, where the requests that were never sent during the pause go unmeasured.
//!
//! `cargo bench -p loadgen --bench coordinated_omission -- [--rate 1000] [--seconds 10] [--pause 1]`

mod common;

use std::time::{Duration, SystemTime};

use clap::Parser;
use common::{LOADGEN, start_target, summary};
use loadlab_supervise::{Signal, Stop};

#[derive(Parser)]
struct Options {
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1.0)]
    pause: f64,
    #[arg(long, hide = true)]
    bench: bool,
}

/// Runs loadgen with `args` against a fresh target paused mid-run; returns the
/// summary and the pause window in seconds since loadgen's start.
fn paused_run(options: &Options, args: &[&str]) -> (serde_json::Value, f64, f64) {
    let (mut target, url) = start_target(None);
    let out = tempfile::tempdir().unwrap();
    let mut loadgen = loadlab_fixtures::program(LOADGEN)
        .args(["run", "--scenario", "http", "--target", &url])
        .args(args)
        .args(["--duration", &format!("{}s", options.seconds), "--max-in-flight", "100000", "--timeout", "30s"])
        .args(["--listen", "none", "--out", out.path().to_str().unwrap()])
        .spawn()
        .expect("loadgen runs");
    std::thread::sleep(Duration::from_secs_f64(options.seconds as f64 / 2.0 - options.pause / 2.0 + 0.3));
    let paused_at = SystemTime::now();
    assert!(target.signal(Signal::SIGSTOP), "the target runs");
    std::thread::sleep(Duration::from_secs_f64(options.pause));
    target.signal(Signal::SIGCONT);
    let resumed_at = SystemTime::now();
    let status = loadgen.wait();
    target.stop_with(Stop::kill());
    assert!(status.success(), "loadgen: {status}\n{}", loadgen.output());
    let report = summary(out.path());
    let started: SystemTime =
        chrono::DateTime::parse_from_rfc3339(report["started_at"].as_str().unwrap()).unwrap().into();
    let offset = |at: SystemTime| at.duration_since(started).unwrap_or_default().as_secs_f64();
    let (pause_start, pause_end) = (offset(paused_at), offset(resumed_at));
    (report, pause_start, pause_end)
}

fn main() {
    let options = Options::parse();
    let (report, pause_start, pause_end) = paused_run(&options, &["--rate", &options.rate.to_string()]);
    let (closed, _, _) = paused_run(&options, &["--users", "10"]);

    // True latency: a request due during the pause is answered when it ends.
    let total = (options.rate * options.seconds as f64) as usize;
    let mut truth: Vec<f64> = (0..total)
        .map(|k| k as f64 / options.rate)
        .map(|due| if (pause_start..pause_end).contains(&due) { pause_end - due } else { 0.0 })
        .collect();
    truth.sort_by(f64::total_cmp);
    let true_p99 = truth[(truth.len() as f64 * 0.99) as usize] * 1000.0;
    let step = &report["steps"][0];
    let corrected = step["corrected_ms"]["p99"].as_f64().unwrap();
    let uncorrected = step["uncorrected_ms"]["p99"].as_f64().unwrap();
    println!(
        "constant {} req/s for {} s, target stopped for {:.2} s at {:.2} s",
        options.rate,
        options.seconds,
        pause_end - pause_start,
        pause_start
    );
    println!("true p99 (from the schedule)   {true_p99:>9.1} ms   (+ the target's own service time)");
    println!("loadgen corrected p99          {corrected:>9.1} ms   ratio to true {:.3}", corrected / true_p99);
    println!("loadgen uncorrected p99        {uncorrected:>9.1} ms   ratio to true {:.3}", uncorrected / true_p99);
    println!("completed {} of {} offered, errors {}", step["completed"], step["offered"], step["errors"]);
    let closed_step = &closed["steps"][0];
    println!(
        "closed loop (10 users, wrk's model): p99 {:.1} ms over {} requests, the stall hidden",
        closed_step["corrected_ms"]["p99"].as_f64().unwrap(),
        closed_step["completed"]
    );
}
