//! prometheus.yml as the lab writes it: the scrape jobs (named as the rules and
//! dashboards in `monitoring/` select on, see [`Service::scrape_job`]), the rule
//! files of `monitoring/prometheus/rules`, one interval. A test's private Prometheus
//! gets its configuration from the same function, so tests scrape and evaluate the
//! way the lab does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

#[cfg(doc)]
use crate::topology::Service;

/// The rule files in `<monitoring_dir>/prometheus/rules`, sorted, as absolute paths.
pub fn rule_files(monitoring_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let rules_dir = monitoring_dir.join("prometheus/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules_dir)
        .with_context(|| format!("reading the rule files in {}", rules_dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .map(|path| path.canonicalize().unwrap_or(path))
        .collect();
    files.sort();
    Ok(files)
}

/// prometheus.yml: scrape and evaluate every `interval`, load `rule_files`, scrape
/// each job's targets (`job → host:port`).
pub fn prometheus_yml(interval: Duration, rule_files: &[PathBuf], jobs: &BTreeMap<String, Vec<String>>) -> String {
    let interval = humantime::format_duration(interval);
    let mut config =
        format!("global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nrule_files:\n");
    for file in rule_files {
        config.push_str(&format!("  - {}\n", file.display()));
    }
    config.push_str("scrape_configs:\n");
    for (job, targets) in jobs {
        // The Pushgateway's metrics carry the pushing job's labels; keep them.
        let honor = if job == "pushgateway" { "    honor_labels: true\n" } else { "" };
        let targets: Vec<String> = targets.iter().map(|target| format!("'{target}'")).collect();
        config.push_str(&format!(
            "  - job_name: {job}\n{honor}    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_rules_and_the_interval_are_written_as_prometheus_reads_them() {
        let jobs = BTreeMap::from([
            ("node".to_string(), vec!["127.0.0.1:9100".to_string(), "127.0.0.2:9100".to_string()]),
            ("pushgateway".to_string(), vec!["127.0.0.1:9091".to_string()]),
        ]);
        let config = prometheus_yml(Duration::from_secs(1), &[PathBuf::from("/rules/red.yaml")], &jobs);
        assert_eq!(
            config,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - /rules/red.yaml\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:9100', \
             '127.0.0.2:9100']\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - \
             targets: ['127.0.0.1:9091']\n"
        );
    }
}
