//! The files in `monitoring/`, as both deployments use them. Prometheus rules: every
//! file passes `promtool check rules`, and every alert's unit tests pass
//! `promtool test rules` (each alert fires when it should and stays quiet when it
//! should not); promtool comes with Debian's `prometheus` package, which
//! scripts/install-deps installs. Grafana dashboards: the committed JSON is what the
//! generator writes (with Grafana's foundation SDK, in the project's Python environment),
//! and every panel has a title, a unit and the datasource variable.
//! (`live_monitoring.rs` runs every query against real data.)

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

fn grafana() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring/grafana")
}

/// The Python that has `requirements` installed: scripts/python-venv decides the
/// interpreter and the environment (and installs the file if it changed), not the test.
fn python(requirements: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/python-venv");
    let output = Command::new(&script)
        .arg(requirements)
        .output()
        .unwrap_or_else(|error| panic!("{} not runnable: {error}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scripts/python-venv {}:\n{stderr}", requirements.display());
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[test]
fn dashboards_are_what_the_generator_writes() {
    let fresh = tempfile::tempdir().unwrap();
    let output = Command::new(python(&grafana().join("requirements.txt")))
        .arg(grafana().join("generate.py"))
        .arg(fresh.path())
        .output()
        .expect("the project's Python runs the dashboard generator");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let committed = grafana().join("dashboards");
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(fresh.path()), names(&committed));
    for name in names(&committed) {
        let generated = std::fs::read_to_string(fresh.path().join(&name)).unwrap();
        let kept = std::fs::read_to_string(committed.join(&name)).unwrap();
        assert!(
            generated == kept,
            "{name} differs from generate.py's output: run \
             \"$(scripts/python-venv monitoring/grafana/requirements.txt)\" monitoring/grafana/generate.py"
        );
    }
}

#[test]
fn every_panel_has_a_title_a_unit_and_the_datasource_variable() {
    let dir = grafana().join("dashboards");
    let mut dashboards = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        dashboards += 1;
        let variables = board["templating"]["list"].as_array().unwrap();
        assert!(variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"), "{}", path.display());
        for panel in board["panels"].as_array().unwrap().iter().filter(|panel| panel["type"] != "row") {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{}: a panel without a title", path.display());
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|unit| !unit.is_empty()),
                "{title}: no unit"
            );
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: a hard-coded datasource");
            assert!(!panel["targets"].as_array().unwrap().is_empty(), "{title}: no query");
        }
    }
    assert_eq!(dashboards, 6, "overview, device-api, database, hosts, grpc-stress, loadgen");
}
