//! Terminal output: one live line per second on stderr, and the final table.

use crate::collector::SecondRow;
use crate::output::report::Report;

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |ms| format!("{ms:.1}ms"))
}

pub fn live_line(row: &SecondRow) {
    eprintln!(
        "[{:>4}s] {:<10} offered {:>8.0}/s  sent {:>6}  ok {:>6}  err {:>5}  drop {:>5}  p50 {:>8}  p99 {:>8}",
        row.second,
        row.step,
        row.offered_rate,
        row.sent,
        row.ok,
        row.errors,
        row.dropped,
        ms(row.p50_ms),
        ms(row.p99_ms)
    );
}

/// The verdict on one step of a breakpoint search, as it ends.
pub fn step_line(step: &crate::profile::Step) {
    let verdict =
        if step.broken.is_empty() { "held".to_string() } else { format!("broke: {}", step.broken.join("; ")) };
    let level = step.devices.map_or(format!("{:.0}/s", step.offered_rate), |devices| format!("{devices} devices"));
    eprintln!(
        "loadgen: {} at {level}: achieved {:.0}/s, {} → {verdict}",
        step.label,
        step.achieved_rate(),
        ms(crate::output::report::percentiles(&step.outcome.stats.ok_latency(true)).p99).replace("ms", " ms p99"),
    );
}

pub fn summary(report: &Report) -> String {
    let mut text = format!(
        "\n{:<10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10} {:>6}\n",
        "step", "offered/s", "achieved/s", "completed", "errors", "dropped", "p50 ms", "p99 ms", "p99 raw", "SLO"
    );
    for step in &report.steps {
        text.push_str(&format!(
            "{:<10} {:>10.0} {:>10.0} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10} {:>6}\n",
            step.label,
            step.offered_rate,
            step.achieved_rate,
            step.completed,
            step.errors,
            step.dropped,
            ms(step.corrected_ms.p50),
            ms(step.corrected_ms.p99),
            ms(step.uncorrected_ms.p99),
            match step.held {
                Some(true) => "held",
                Some(false) => "broke",
                None => "",
            }
        ));
    }
    if let Some(point) = &report.breaking_point {
        let sentence = point.sentence();
        let prefix = if point.rate.is_some() && point.broken_rate.is_some() { "breaking point: " } else { "" };
        text.push_str(&format!("\n{prefix}{sentence}\n"));
    }
    for threshold in &report.thresholds {
        text.push_str(&format!(
            "threshold {}: {}\n",
            threshold.threshold,
            threshold.broken.as_deref().map_or("held".to_string(), |detail| format!("BROKEN ({detail})"))
        ));
    }
    if let Some(analysis) = &report.bottlenecks {
        text.push_str(&format!("bottleneck: {}\n", analysis.verdict));
        for reading in analysis.ranking.iter().take(3) {
            text.push_str(&format!(
                "  {:<28} saturation {:>6}  growth {:>6}\n",
                reading.resource,
                reading.saturation.map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
                reading.growth.map_or("–".into(), |g| format!("{:+.0}%", g * 100.0)),
            ));
        }
    }
    text.push_str(&format!("verdict: {}\n", report.verdict));
    text
}
