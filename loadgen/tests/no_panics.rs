//! Random input never panics loadgen: option values of every kind go through the
//! command-line parsers and the plan checks; damaged `summary.json` and `seconds.csv`
//! files go through `loadgen report`'s reader, merge and writers. Either the input is
//! accepted or it is an error; nothing else.

mod common;

use std::sync::OnceLock;

use clap::Parser;
use loadgen::cli::Cli;
use proptest::prelude::*;

/// Options that take a value, for `run` and `breakpoint`.
const OPTIONS: &[&str] = &[
    "rate",
    "duration",
    "stages",
    "stages-from",
    "users",
    "think-time",
    "command-every",
    "measurement-every",
    "jitter-percent",
    "devices",
    "method",
    "header",
    "body",
    "grpc-messages",
    "connections",
    "grpc-calls-per-connection",
    "max-in-flight",
    "timeout",
    "grace",
    "seed",
    "segment",
    "threshold",
    "push-interval",
    "run-id",
    "target",
];
const BREAKPOINT_OPTIONS: &[&str] = &[
    "start-rate",
    "step-factor",
    "step-increment",
    "step-duration",
    "max-rate",
    "refine",
    "resolution",
    "slo-quantile",
    "slo-latency",
    "slo-errors-percent",
    "slo-achieved-percent",
    "slo-dropped-percent",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec!["inf", "-inf", "NaN", "1e309", "-0", "", " ", "0/0", "1/0", "99999999999h"])
            .prop_map(str::to_string),
        "[0-9]{1,22}(ns|us|ms|s|m|h|d|w|y)?",
        "[0-9.]{1,6}(s|ms)?\\.\\.[0-9.]{1,6}(s|ms)?",
        "[0-9]{1,4}[a-z]{1,3}:[-0-9.e]{1,12}(,[0-9]{1,3}s:[-0-9.e]{1,8}){0,3}",
        "(p[0-9.]{0,6}|errors|dropped)(<|<=|>)[-0-9.a-z%]{0,8}",
        "[ -~]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn option_values_never_panic(
        mode in 0..5usize,
        picks in prop::collection::vec((0..OPTIONS.len() + BREAKPOINT_OPTIONS.len(), value()), 1..4),
    ) {
        // Each load model's own options, so random values reach past the first check.
        let base: &[&str] = [
            &["breakpoint"][..],
            &["run", "--rate=10"],
            &["run", "--users=2", "--think-time=0s..1s"],
            &["run", "--command-every=1s", "--measurement-every=2s"],
            &["run", "--stages=1s:10,1s:20"],
        ][mode];
        let mut args = vec!["loadgen".to_string()];
        args.extend(base.iter().map(|word| word.to_string()));
        args.extend(["--target".into(), "http://127.0.0.1:1/".into()]);
        for (index, value) in picks {
            let option = OPTIONS.iter().chain(BREAKPOINT_OPTIONS).nth(index).unwrap();
            args.push(format!("--{option}={value}"));
        }
        if let Ok(cli) = Cli::try_parse_from(&args)
            && let Ok(Some(plan)) = cli.command.into_plan()
        {
            exercise(&plan.profile);
        }
    }
}

/// What a run computes from its profile before and while it paces: schedules, the
/// first arrivals, rates, the number of steps.
fn exercise(profile: &loadgen::profile::Profile) {
    use loadgen::pacer::Pace;
    use loadgen::profile::Profile;
    use loadgen::schedule::{Schedule, Segment};
    let start = tokio::time::Instant::now();
    let pace = match profile {
        Profile::Constant { rate, duration } => Pace::Open(Schedule::constant(*rate, *duration)),
        Profile::Stages { stages } => Pace::Open(Schedule::new(stages.clone())),
        Profile::Closed { users, think_min, think_max, duration } => {
            Pace::Users { users: (*users).min(1000), think: (*think_min, *think_max), length: *duration }
        }
        Profile::Routines { command_every, measurement_every, jitter, duration } => Pace::Routines {
            devices: 10,
            periods: vec![*command_every, *measurement_every],
            jitter: *jitter,
            length: *duration,
        },
        Profile::Breakpoint(plan) => {
            let _ = plan.growth_steps();
            Pace::Open(Schedule::constant(plan.start_rate, plan.step_duration))
        }
    };
    if let Pace::Open(schedule) = &pace {
        let _ = (schedule.total(), schedule.mean_rate(), schedule.rate_at(schedule.duration() / 2));
        let mut arrivals = schedule.arrivals(Segment { index: 1, count: 3 });
        let _ = arrivals.by_ref().take(3).count();
        let _ = arrivals.remaining();
    }
    let mut pacer = pace.start(start, Segment::WHOLE, 1);
    for _ in 0..3 {
        if let loadgen::pacer::Next::Due(arrival) = pacer.next(start + std::time::Duration::from_secs(1))
            && let Some(lane) = arrival.lane
        {
            pacer.finished(lane, start);
        }
    }
    let _ = pacer.abandon();
}

/// A real report (summary.json, seconds.csv) of a short run, made once.
fn real_report() -> &'static (serde_json::Value, String) {
    static REPORT: OnceLock<(serde_json::Value, String)> = OnceLock::new();
    REPORT.get_or_init(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let server = common::LimitedServer::start(4, std::time::Duration::from_millis(1)).await;
            let out = tempfile::tempdir().unwrap();
            common::run_loadgen(&[
                "breakpoint",
                "--scenario",
                "http",
                "--target",
                &server.url,
                "--start-rate",
                "20",
                "--step-duration",
                "1s",
                "--max-rate",
                "40",
                "--out",
                out.path().to_str().unwrap(),
            ])
            .await;
            let summary = serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
            (summary, std::fs::read_to_string(out.path().join("seconds.csv")).unwrap())
        })
    })
}

/// Every path to a leaf of `value`.
fn leaves(value: &serde_json::Value, path: String, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(key, v)| leaves(v, format!("{path}/{key}"), into)),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{path}/{i}"), into))
        }
        _ => into.push(path),
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |v| v.is_finite()).prop_map(serde_json::Value::from),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(-1.0)),
        "[ -~]{0,40}".prop_map(serde_json::Value::from),
        "[A-Za-z0-9+/]{0,64}={0,2}".prop_map(serde_json::Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_reports_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), json_value()), 1..4),
        csv_edit in prop::option::of((any::<prop::sample::Index>(), "[ -~]{0,30}")),
    ) {
        let (summary, csv) = real_report();
        let mut summary = summary.clone();
        let mut paths = Vec::new();
        leaves(&summary, String::new(), &mut paths);
        for (index, value) in edits {
            let path = index.get(&paths);
            if let Some(leaf) = summary.pointer_mut(path) {
                *leaf = value;
            }
        }
        let mut csv = csv.clone();
        if let Some((index, text)) = csv_edit {
            let lines: Vec<&str> = csv.lines().collect();
            let at = index.index(lines.len());
            let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            lines[at] = text;
            csv = lines.join("\n");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("summary.json"), serde_json::to_vec(&summary).unwrap()).unwrap();
        std::fs::write(dir.path().join("seconds.csv"), csv).unwrap();
        if let Ok((report, seconds)) = loadgen::output::merge::read(dir.path()) {
            let name = dir.path().display().to_string();
            let parts = vec![(name.clone(), report, seconds.clone())];
            if let Ok((merged, merged_seconds)) = loadgen::output::merge::merge(parts) {
                let out = tempfile::tempdir().unwrap();
                let _ = loadgen::output::report::write(out.path(), &merged, &merged_seconds);
                let _ = loadgen::output::terminal::summary(&merged);
            }
        }
    }
}
