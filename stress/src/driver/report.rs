//! What a driver run leaves behind: `summary.json` always; with `--gen-charts`, one
//! SVG per stable component (live heap and RSS in MiB over seconds) and
//! `summary.html`, a table of every component linking the charts. Plotting is pure
//! Rust (plotters' SVG backend writes text as SVG text, so no system fonts are needed).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::component::{Component, Sample};
use super::leak::Trend;
use super::matrix::Role;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Serialize)]
struct ComponentReport<'a> {
    name: &'a str,
    role: Role,
    stable: bool,
    restarts: u32,
    unexpected_exits: &'a [String],
    ceiling_bytes: u64,
    peak_heap_bytes: u64,
    peak_rss_bytes: u64,
    heap_trend: Option<Trend>,
    log: String,
    samples: &'a [Sample],
}

#[derive(Serialize)]
struct RunReport<'a> {
    verdict: &'a str,
    leak_threshold_bytes_per_second: u64,
    components: Vec<ComponentReport<'a>>,
}

fn trend_of(trends: &[(String, Option<Trend>)], name: &str) -> Option<Trend> {
    trends.iter().find(|(candidate, _)| candidate == name).and_then(|(_, trend)| *trend)
}

pub fn write_summary(
    dir: &Path,
    components: &[Component],
    trends: &[(String, Option<Trend>)],
    verdict: &str,
    leak_threshold: u64,
) -> std::io::Result<()> {
    let report = RunReport {
        verdict,
        leak_threshold_bytes_per_second: leak_threshold,
        components: components
            .iter()
            .map(|component| ComponentReport {
                name: &component.spec.name,
                role: component.spec.role,
                stable: component.spec.stable,
                restarts: component.restarts,
                unexpected_exits: &component.unexpected_exits,
                ceiling_bytes: component.spec.ceiling,
                peak_heap_bytes: component.peak_heap,
                peak_rss_bytes: component.peak_rss,
                heap_trend: trend_of(trends, &component.spec.name),
                log: component.log_path.display().to_string(),
                samples: &component.samples,
            })
            .collect(),
    };
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?)
}

pub fn write_charts(
    dir: &Path,
    components: &[Component],
    trends: &[(String, Option<Trend>)],
    verdict: &str,
) -> anyhow::Result<()> {
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts)?;
    for component in components.iter().filter(|c| c.spec.stable) {
        draw(&charts.join(format!("{}.svg", component.spec.name)), component)?;
    }
    std::fs::write(dir.join("summary.html"), html(components, trends, verdict))?;
    Ok(())
}

fn draw(path: &Path, component: &Component) -> anyhow::Result<()> {
    let samples = &component.samples;
    let end = samples.last().map_or(1.0, |s| s.at).max(1.0);
    let top = samples.iter().map(|s| s.heap_bytes.max(s.rss_bytes) as f64 / MIB).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&component.spec.name, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, 0f64..top)?;
    chart.configure_mesh().x_desc("seconds").y_desc("MiB").draw()?;
    let heap: Vec<(f64, f64)> = samples.iter().map(|s| (s.at, s.heap_bytes as f64 / MIB)).collect();
    let rss: Vec<(f64, f64)> = samples.iter().map(|s| (s.at, s.rss_bytes as f64 / MIB)).collect();
    chart
        .draw_series(LineSeries::new(heap, BLUE.stroke_width(2)))?
        .label("live heap")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(rss, RED.stroke_width(2)))?
        .label("RSS")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn html(components: &[Component], trends: &[(String, Option<Trend>)], verdict: &str) -> String {
    let mut rows = String::new();
    for component in components {
        let name = escape(&component.spec.name);
        let trend = trend_of(trends, &component.spec.name);
        let slope = trend.map_or("–".to_string(), |t| {
            format!("{:.2} KiB/s (p={:.1e})", t.slope_bytes_per_second / 1024.0, t.p_value)
        });
        let chart =
            if component.spec.stable { format!("<a href=\"charts/{name}.svg\">chart</a>") } else { String::new() };
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.0}</td><td>{slope}</td><td>{}</td><td>{chart}</td></tr>\n",
            if component.spec.role == Role::Server { "server" } else { "client" },
            if component.spec.stable { "stable" } else { "unstable" },
            component.restarts,
            component.peak_heap as f64 / MIB,
            component.peak_rss as f64 / MIB,
            component.spec.ceiling as f64 / MIB,
            escape(&component.unexpected_exits.join(", ")),
        ));
    }
    let images: String = components
        .iter()
        .filter(|c| c.spec.stable)
        .map(|c| format!("<figure><img src=\"charts/{0}.svg\" alt=\"{0}\"></figure>\n", escape(&c.spec.name)))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>grpc-stress driver</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:900px}}</style>
</head><body>
<h1>grpc-stress driver</h1>
<p><strong>{}</strong></p>
<table><tr><th>component</th><th>role</th><th>stability</th><th>restarts</th><th>peak heap MiB</th><th>peak RSS MiB</th><th>ceiling MiB</th><th>heap slope</th><th>unexpected exits</th><th></th></tr>
{rows}</table>
<h2>Stable components</h2>
{images}</body></html>
"#,
        escape(verdict)
    )
}
