//! `report.html`: one self-contained page a person reads at a glance. The headline
//! (breaking point and why, verdict), then charts drawn as inline SVG by
//! [`charts`] (the steps with the breaking point marked, offered vs achieved rate,
//! latency over time, errors and drops by kind, schedule lag), then the step table and
//! per-request tables. No scripts, no external files, no fonts to install.

use crate::collector::SecondRow;
use crate::output::charts::{self, escape};
use crate::output::report::Report;

fn headline(report: &Report) -> String {
    match &report.breaking_point {
        Some(point) => match (point.rate, point.broken_rate) {
            (Some(_), Some(_)) => format!("Breaking point: <strong>{}</strong>.", escape(&point.sentence())),
            _ => format!("{}.", escape(&point.sentence())),
        },
        None => {
            let step = report.steps.first();
            step.map_or("No step ran.".to_string(), |step| {
                format!(
                    "Offered {:.0} requests/s; achieved {:.0}/s; p99 {}.",
                    step.offered_rate,
                    step.achieved_rate,
                    step.corrected_ms.p99.map_or("–".into(), |ms| format!("{ms:.1} ms"))
                )
            })
        }
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |ms| format!("{ms:.1}"))
}

pub fn render(report: &Report, seconds: &[SecondRow]) -> String {
    let charts: String = charts::second_charts(seconds).iter().map(charts::LineChart::svg).collect();
    let steps_svg = if report.steps.len() > 1 {
        charts::steps_chart(&report.steps, report.breaking_point.as_ref().and_then(|point| point.rate))
    } else {
        String::new()
    };
    let bottlenecks = report.bottlenecks.as_ref().map_or(String::new(), |analysis| {
        let figure = |value: Option<f64>| value.map_or("–".to_string(), |value| format!("{value:.4}"));
        let percent = |value: Option<f64>| value.map_or("–".to_string(), |value| format!("{:.0}%", value * 100.0));
        let rows: String = analysis
            .ranking
            .iter()
            .map(|r| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    escape(&r.resource), escape(&r.reading), figure(r.held), figure(r.broke), r.limit,
                    percent(r.saturation), percent(r.growth), escape(&r.query)
                )
            })
            .collect();
        format!(
            "<h2>Bottleneck</h2><p class=headline>{}</p><table><tr><th>resource</th><th>reading</th><th>held</th><th>broke</th><th>limit</th><th>saturation</th><th>growth</th><th>PromQL</th></tr>{rows}</table>",
            escape(&analysis.verdict)
        )
    });

    let mut step_rows = String::new();
    let mut request_tables = String::new();
    for step in &report.steps {
        let verdict = match step.held {
            Some(true) => "<td class=held>held</td>".to_string(),
            Some(false) => format!("<td class=broke>broke: {}</td>", escape(&step.broken.join("; "))),
            None => "<td></td>".to_string(),
        };
        step_rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{verdict}</tr>\n",
            escape(&step.label), step.offered_rate, step.achieved_rate, step.offered, step.completed, step.errors,
            step.dropped, ms(step.corrected_ms.p50), ms(step.corrected_ms.p99), ms(step.uncorrected_ms.p99),
            ms(step.schedule_lag_ms.p99),
        ));
        let rows: String = step
            .requests
            .iter()
            .map(|row| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&row.request),
                    escape(&row.outcome.to_string()),
                    row.count,
                    ms(row.corrected_ms.p50),
                    ms(row.corrected_ms.p90),
                    ms(row.corrected_ms.p99),
                    ms(row.corrected_ms.max)
                )
            })
            .collect();
        request_tables.push_str(&format!(
            "<h3>{}</h3><table><tr><th>request</th><th>outcome</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>{rows}</table>\n",
            escape(&step.label)
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loadgen report: {scenario} against {target}</title>
<style>
body{{font-family:sans-serif;margin:2em;max-width:1000px}} .headline{{font-size:1.3em;padding:.6em;background:#f3f6fa;border-left:6px solid #1f77b4}}
table{{border-collapse:collapse;margin-bottom:1em}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child,th:first-child{{text-align:left}}
td.held{{color:#2c7a2c}} td.broke{{color:#b22;text-align:left}} svg{{display:block;margin:1em 0;max-width:100%;height:auto}} .meta{{color:#555}}
</style></head><body>
<h1>loadgen report</h1>
<p class=headline>{headline}</p>
{bottlenecks}
<p class=meta>scenario <b>{scenario}</b> · target {target} · segment {segment} · seed {seed} · started {started} · verdict <b>{verdict}</b>{interrupted}</p>
{steps_svg}
{charts}
<h2>Steps</h2>
<table><tr><th>step</th><th>offered/s</th><th>achieved/s</th><th>offered</th><th>completed</th><th>errors</th><th>dropped</th><th>p50 ms</th><th>p99 ms</th><th>p99 ms (uncorrected)</th><th>lag p99 ms</th><th>SLO</th></tr>
{step_rows}</table>
<p class=meta>Latency is measured from the time each request was due (corrected for coordinated omission); the uncorrected column measures from the actual send. Schedule lag is how late the generator itself sent: when it grows, the generator, not the server, is saturated.</p>
<h2>Requests</h2>
{request_tables}
</body></html>
"#,
        scenario = escape(&report.scenario),
        target = escape(&report.target),
        segment = escape(&report.segment),
        seed = report.seed,
        started = escape(&report.started_at),
        verdict = escape(&report.verdict),
        interrupted = if report.interrupted { " · <b>interrupted</b>" } else { "" },
        headline = headline(report),
    )
}
