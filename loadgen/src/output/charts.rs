//! Charts as SVG text, drawn with plotters' SVG backend: the one way the workspace
//! draws a chart, used by `report.html` and by `loadlab serve`'s web UI (which
//! renders the same functions server-side for a finished run and, every second, for
//! a live one). No scripts and no fonts to install: the SVG holds text elements in
//! the browser's sans-serif.
//!
//! Every chart names its axes with their units; a chart that cannot be drawn (values
//! plotters cannot divide into ticks) becomes a sentence saying so.

use plotters::prelude::*;

use crate::collector::SecondRow;
use crate::output::report::StepReport;

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 300;

/// Colours that stay apart for the colour-blind (Okabe–Ito), in the order series get them.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
];
const RED: RGBColor = RGBColor(200, 30, 30);
const GREEN: RGBColor = RGBColor(0, 150, 90);

/// One line: its name in the legend and its points.
#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Line {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points }
    }
}

/// A vertical marker (a change point, a step boundary): where, and its label.
#[derive(Clone, Debug)]
pub struct Mark {
    pub x: f64,
    pub label: String,
}

/// A line chart: a title, both axes with their units, lines, and optional marks.
#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    /// A horizontal line (a limit, the SLO) and its legend name.
    pub level: Option<(f64, String)>,
    /// Vertical marks, drawn dashed red.
    pub marks: Vec<Mark>,
    /// The y axis starts at 0 unless this is set (then it starts at the smallest value).
    pub y_from_min: bool,
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The top of an axis showing `values`, with `headroom` above the largest: only
/// finite values count, and the axis stays within what plotters can divide into
/// ticks (a report read from a damaged file may hold anything).
fn axis_max(values: impl Iterator<Item = f64>, headroom: f64) -> f64 {
    values.filter(|value| value.is_finite()).fold(1.0, f64::max).min(1e15) * headroom
}

/// Whether `value` lies on the axis from `low` to `high`. plotters turns a value far
/// off its axis into a pixel offset that overflows, so a damaged report's values are
/// checked before they are drawn.
fn within(value: f64, low: f64, high: f64) -> bool {
    value.is_finite() && value >= low && value <= high
}

fn unreadable(title: &str) -> String {
    format!("<p>chart “{}” could not be drawn</p>", escape(title))
}

/// Names the SVG for assistive technology (role img, its title), and lets CSS size it.
fn labelled(svg: String, title: &str) -> String {
    let label = escape(title);
    match svg.find("<svg") {
        Some(start) => {
            let head_end = svg[start..].find('>').map_or(svg.len(), |end| start + end);
            format!(
                "{} role=\"img\" aria-label=\"{label}\"><title>{label}</title>{}",
                &svg[..head_end],
                &svg[head_end + 1..]
            )
        }
        None => svg,
    }
}

impl LineChart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), ..Self::default() }
    }

    pub fn line(mut self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.lines.push(Line::new(name, points));
        self
    }

    /// Whether there is anything to draw.
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|line| line.points.is_empty())
    }

    /// The chart as SVG text.
    pub fn svg(&self) -> String {
        let mut svg = String::new();
        let drawn = self.draw(&mut svg);
        if drawn.is_none() {
            return unreadable(&self.title);
        }
        labelled(svg, &self.title)
    }

    fn draw(&self, svg: &mut String) -> Option<()> {
        let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let xs = || self.lines.iter().flat_map(|line| line.points.iter().map(|point| point.0));
        let ys = || self.lines.iter().flat_map(|line| line.points.iter().map(|point| point.1));
        let x_min = xs().filter(|x| x.is_finite()).fold(f64::INFINITY, f64::min);
        let x_min = if x_min.is_finite() { x_min.clamp(-1e15, 0.0) } else { 0.0 };
        let x_max = axis_max(xs().chain(self.marks.iter().map(|mark| mark.x)), 1.0);
        let levels = self.level.iter().map(|(level, _)| *level);
        let y_max = axis_max(ys().chain(levels), 1.1);
        let y_min = if self.y_from_min {
            let low = ys().filter(|y| y.is_finite()).fold(f64::INFINITY, f64::min);
            if low.is_finite() { (low * 0.9).max(-1e15).min(y_max * 0.5) } else { 0.0 }
        } else {
            0.0
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .ok()?;
        for (index, line) in self.lines.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            let points =
                line.points.iter().copied().filter(|(x, y)| within(*x, x_min, x_max) && within(*y, y_min, y_max));
            let drawn = chart.draw_series(LineSeries::new(points, color.stroke_width(2))).ok()?;
            drawn
                .label(&line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        if let Some((level, name)) = self.level.as_ref().filter(|(level, _)| within(*level, y_min, y_max)) {
            let dashes = DashedLineSeries::new(vec![(x_min, *level), (x_max, *level)], 6, 4, RED.stroke_width(1));
            chart
                .draw_series(dashes)
                .ok()?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(1)));
        }
        for mark in &self.marks {
            if !within(mark.x, x_min, x_max) {
                continue;
            }
            chart
                .draw_series(DashedLineSeries::new(vec![(mark.x, y_min), (mark.x, y_max)], 5, 4, RED.stroke_width(2)))
                .ok()?;
            let label =
                Text::new(mark.label.clone(), (mark.x, y_max * 0.97), ("sans-serif", 13).into_font().color(&RED));
            chart.draw_series(std::iter::once(label)).ok()?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .ok()?;
        root.present().ok()
    }
}

/// The steps as bars of offered rate, green when held and red when broken, with the
/// breaking point as a line.
pub fn steps_chart(steps: &[StepReport], breaking_point: Option<f64>) -> String {
    let title = "Steps (green held the SLO, red broke it)";
    let mut svg = String::new();
    let drawn = (|| {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let count = steps.len().max(1);
        let breaking_point = breaking_point.filter(|rate| within(*rate, 0.0, 1e15));
        let y_max = axis_max(steps.iter().map(|step| step.offered_rate).chain(breaking_point), 1.15);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..count as f64, 0f64..y_max)
            .ok()?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("step, in the order run")
            .y_desc("offered requests/s")
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .draw()
            .ok()?;
        let bars = steps.iter().enumerate().map(|(index, step)| {
            let color = match step.held {
                Some(false) => RED,
                Some(true) => GREEN,
                None => PALETTE[0],
            };
            let height = if step.offered_rate.is_finite() { step.offered_rate.clamp(0.0, y_max) } else { 0.0 };
            Rectangle::new([(index as f64 + 0.15, 0.0), (index as f64 + 0.85, height)], color.filled())
        });
        chart.draw_series(bars).ok()?;
        if let Some(rate) = breaking_point.filter(|rate| *rate <= y_max) {
            let line = LineSeries::new(vec![(0.0, rate), (count as f64, rate)], BLACK.stroke_width(2));
            chart
                .draw_series(line)
                .ok()?
                .label(format!("breaking point {rate:.0} requests/s"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .ok()?;
        }
        root.present().ok()
    })();
    if drawn.is_none() {
        return unreadable(title);
    }
    labelled(svg, title)
}

/// The charts of a run's seconds, each named for what it shows: offered vs achieved,
/// latency (corrected p50/p90/p99 and uncorrected p99), errors and drops by kind,
/// schedule lag, and each agent's achieved rate when agents made the load.
pub fn second_charts(seconds: &[SecondRow]) -> Vec<LineChart> {
    let x = |row: &SecondRow| row.second as f64;
    let series = |value: &dyn Fn(&SecondRow) -> Option<f64>| -> Vec<(f64, f64)> {
        seconds.iter().filter_map(|row| Some((x(row), value(row)?))).collect()
    };
    const X: &str = "seconds since the run started";
    let mut charts = vec![
        LineChart::new("Offered vs achieved", X, "requests/s")
            .line("offered", series(&|row| Some(row.offered_rate)))
            .line("achieved (ok)", series(&|row| Some(row.ok as f64))),
        LineChart::new("Latency from the due time (corrected) and from the send (uncorrected)", X, "ms")
            .line("p50", series(&|row| row.p50_ms))
            .line("p90", series(&|row| row.p90_ms))
            .line("p99", series(&|row| row.p99_ms))
            .line("p99 uncorrected", series(&|row| row.p99_uncorrected_ms)),
    ];
    let mut failures = LineChart::new("Errors by kind and dropped requests", X, "requests/s")
        .line("dropped (in-flight cap reached)", series(&|row| Some(row.dropped as f64)));
    let mut kinds: Vec<&String> = seconds.iter().flat_map(|row| row.errors_by_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        failures = failures.line("errors", series(&|row| Some(row.errors as f64)));
    }
    for kind in kinds {
        failures =
            failures.line(kind.clone(), series(&|row| Some(row.errors_by_kind.get(kind).copied().unwrap_or(0) as f64)));
    }
    charts.push(failures);
    charts.push(
        LineChart::new("Schedule lag: how late the generator sent (p99)", X, "ms")
            .line("lag p99", series(&|row| row.lag_p99_ms)),
    );
    let mut agents: Vec<&String> = seconds.iter().flat_map(|row| row.agents.iter().map(|share| &share.agent)).collect();
    agents.sort();
    agents.dedup();
    if !agents.is_empty() {
        let mut chart = LineChart::new("Each agent's achieved rate", X, "requests/s");
        for agent in agents {
            let points =
                series(&|row| row.agents.iter().find(|share| &share.agent == agent).map(|share| share.ok as f64));
            chart = chart.line(agent.clone(), points);
        }
        charts.push(chart);
    }
    charts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chart_names_its_axes_and_is_labelled() {
        let chart = LineChart::new("Latency", "seconds", "ms").line("p99", vec![(0.0, 1.0), (1.0, 2.0)]);
        let svg = chart.svg();
        assert!(svg.contains("role=\"img\" aria-label=\"Latency\""), "{svg}");
        let text = svg.replace('\n', "");
        assert!(text.contains(">seconds<") && text.contains(">ms<"), "both axes are named: {svg}");
    }

    #[test]
    fn marks_and_levels_are_drawn_and_bad_values_do_not_break_a_chart() {
        let mut chart = LineChart::new("Trend", "run", "requests/s").line("x", vec![(1.0, f64::NAN), (2.0, 1e300)]);
        chart.marks.push(Mark { x: 2.0, label: "change".into() });
        chart.level = Some((5.0, "limit".into()));
        let svg = chart.svg();
        assert!(svg.contains("change") && svg.contains("limit"), "{svg}");
        let empty = steps_chart(&[], Some(f64::INFINITY));
        assert!(empty.contains("<svg"), "{empty}");
    }

    /// Finite values far off an axis (a damaged report's, as the proptest in
    /// tests/no_panics.rs found) are left out, not drawn: plotters' pixel arithmetic
    /// overflowed on them.
    #[test]
    fn values_far_off_the_axes_are_left_out() {
        let mut chart = LineChart::new("Latency", "seconds", "ms").line("p99", vec![(0.0, 1.0), (-1e300, 2.0)]);
        chart.marks.push(Mark { x: -4e18, label: "far left".into() });
        chart.level = Some((-461_608_581.0, "far below".into()));
        let svg = chart.svg();
        assert!(!svg.contains("far left") && !svg.contains("far below"), "{svg}");
        let steps = steps_chart(&[], Some(-461_608_581.0));
        assert!(!steps.contains("breaking point"), "{steps}");
    }
}
