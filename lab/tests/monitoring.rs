//! The Prometheus rule files in `monitoring/`, as both deployments use them: every
//! file passes `promtool check rules`, and every alert's unit tests pass
//! `promtool test rules` (each alert fires when it should and stays quiet when it
//! should not). promtool comes with Debian's `prometheus` package, which
//! scripts/install-deps installs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/prometheus")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    files.sort();
    files
}

fn promtool(args: &[&Path], subcommand: &[&str], dir: &Path) -> std::process::Output {
    Command::new("promtool")
        .args(subcommand)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("promtool not runnable ({error}): install Debian/Ubuntu package `prometheus`"))
}

#[test]
fn every_rule_file_is_valid() {
    let rules = yaml_files(&monitoring().join("rules"));
    assert!(rules.len() >= 3, "rule files: {rules:?}");
    for file in &rules {
        let output = promtool(&[file], &["check", "rules"], &monitoring());
        assert!(
            output.status.success(),
            "{}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_alert_has_passing_unit_tests() {
    let tests_dir = monitoring().join("tests");
    let tests = yaml_files(&tests_dir);
    assert!(!tests.is_empty());
    let names: Vec<&Path> = tests.iter().map(|path| Path::new(path.file_name().unwrap())).collect();
    let output = promtool(&names, &["test", "rules"], &tests_dir);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");

    // Each alert is exercised by at least one test.
    let alerts = std::fs::read_to_string(monitoring().join("rules/alerts.yaml")).unwrap();
    let tested: String = tests.iter().map(|path| std::fs::read_to_string(path).unwrap()).collect();
    for alert in alerts.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")) {
        assert!(tested.contains(&format!("alertname: {alert}")), "alert {alert} has no unit test");
    }
}

#[test]
fn every_alert_has_for_severity_summary_and_description() {
    let alerts = std::fs::read_to_string(monitoring().join("rules/alerts.yaml")).unwrap();
    let blocks: Vec<&str> = alerts.split("- alert: ").skip(1).collect();
    assert!(blocks.len() >= 10, "{} alerts", blocks.len());
    for block in blocks {
        let name = block.lines().next().unwrap_or_default();
        for field in ["for:", "severity:", "summary:", "description:"] {
            assert!(block.contains(field), "alert {name} lacks {field}");
        }
    }
}
