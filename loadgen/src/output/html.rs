//! `report.html`: one self-contained page a person reads at a glance. The headline
//! (breaking point and why, verdict), then charts drawn as inline SVG (offered vs
//! achieved rate, corrected latency over time, errors and drops, the steps with the
//! breaking point marked), then the step table and per-request tables. No scripts, no
//! external files, no fonts to install.

use plotters::prelude::*;

use crate::collector::SecondRow;
use crate::output::report::Report;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The top of an axis showing `values`, with `headroom` above the largest: only
/// finite values count, and the axis stays within what plotters can divide into
/// ticks (a report read from a damaged file may hold anything).
fn axis_max(values: impl Iterator<Item = f64>, headroom: f64) -> f64 {
    values.filter(|value| value.is_finite()).fold(1.0, f64::max).min(1e15) * headroom
}

/// A line chart as an SVG string.
fn line_chart(title: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let x_max = axis_max(series.iter().flat_map(|(_, _, points)| points.iter().map(|p| p.0)), 1.0);
        let y_max = axis_max(series.iter().flat_map(|(_, _, points)| points.iter().map(|p| p.1)), 1.1);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        else {
            return svg_error(title);
        };
        let _ = chart.configure_mesh().x_desc("seconds").y_desc(y_label).draw();
        for (name, color, points) in series {
            let color = *color;
            let drawable =
                points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite() && *x <= x_max && *y <= y_max);
            if let Ok(drawn) = chart.draw_series(LineSeries::new(drawable, color.stroke_width(2))) {
                drawn
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw();
        let _ = root.present();
    }
    svg
}

fn svg_error(title: &str) -> String {
    format!("<p>chart “{}” could not be drawn</p>", escape(title))
}

/// The steps as bars of offered rate, green when held and red when broken, with the
/// breaking point as a line.
fn steps_chart(report: &Report) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let count = report.steps.len().max(1);
        let y_max = axis_max(report.steps.iter().map(|step| step.offered_rate), 1.15);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption("Steps (green held the SLO, red broke it)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..count as f64, 0f64..y_max)
        else {
            return svg_error("steps");
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("step, in the order run")
            .y_desc("offered requests/s")
            .draw();
        let bars = report.steps.iter().enumerate().map(|(index, step)| {
            let color = match step.held {
                Some(false) => RGBColor(214, 39, 40),
                Some(true) => RGBColor(44, 160, 44),
                None => RGBColor(31, 119, 180),
            };
            let height = if step.offered_rate.is_finite() { step.offered_rate.clamp(0.0, y_max) } else { 0.0 };
            Rectangle::new([(index as f64 + 0.15, 0.0), (index as f64 + 0.85, height)], color.filled())
        });
        let _ = chart.draw_series(bars);
        if let Some(rate) = report.breaking_point.as_ref().and_then(|point| point.rate).filter(|rate| rate.is_finite())
        {
            let line = LineSeries::new(vec![(0.0, rate), (count as f64, rate)], BLACK.stroke_width(2));
            if let Ok(drawn) = chart.draw_series(line) {
                drawn
                    .label(format!("breaking point {rate:.0}/s"))
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
            }
            let _ = chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw();
        }
        let _ = root.present();
    }
    svg
}

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
    let at = |row: &SecondRow| row.second as f64;
    let rates = line_chart(
        "Offered vs achieved (requests/s)",
        "requests/s",
        &[
            ("offered", RGBColor(31, 119, 180), seconds.iter().map(|r| (at(r), r.offered_rate)).collect()),
            ("achieved (ok)", RGBColor(44, 160, 44), seconds.iter().map(|r| (at(r), r.ok as f64)).collect()),
        ],
    );
    let latency = line_chart(
        "Latency from the due time (corrected), ms",
        "ms",
        &[
            ("p50", RGBColor(31, 119, 180), seconds.iter().filter_map(|r| Some((at(r), r.p50_ms?))).collect()),
            ("p99", RGBColor(255, 127, 14), seconds.iter().filter_map(|r| Some((at(r), r.p99_ms?))).collect()),
        ],
    );
    let failures = line_chart(
        "Errors and dropped requests per second",
        "requests",
        &[
            ("errors", RGBColor(214, 39, 40), seconds.iter().map(|r| (at(r), r.errors as f64)).collect()),
            ("dropped", RGBColor(148, 103, 189), seconds.iter().map(|r| (at(r), r.dropped as f64)).collect()),
        ],
    );
    let steps_svg = if report.steps.len() > 1 { steps_chart(report) } else { String::new() };
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
td.held{{color:#2c7a2c}} td.broke{{color:#b22;text-align:left}} svg{{display:block;margin:1em 0}} .meta{{color:#555}}
</style></head><body>
<h1>loadgen report</h1>
<p class=headline>{headline}</p>
{bottlenecks}
<p class=meta>scenario <b>{scenario}</b> · target {target} · segment {segment} · seed {seed} · started {started} · verdict <b>{verdict}</b>{interrupted}</p>
{steps_svg}
{rates}
{latency}
{failures}
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
