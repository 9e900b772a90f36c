//! The report as one self-contained SVG document drawn with plotters: throughput per second,
//! latency per second (and per window), the POST-to-terminal latency histogram and, when
//! processes were watched, their resident memory over time.
//!
//! plotters is built without its font features: text is written as SVG `<text>` elements (the
//! viewer renders them with its own fonts) and laid out with plotters' own size estimate, so no
//! font file is needed or read, at build time or at run time.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{LatencyOrigin, Report, describe_load, mib, seconds};

/// Why the SVG report could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the SVG report: {0}")]
pub struct SvgError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for SvgError {
    fn from(error: DrawingAreaErrorKind<E>) -> SvgError {
        SvgError(error.to_string())
    }
}

const WIDTH: u32 = 1_000;
const HEADER: u32 = 120;
const PANEL: u32 = 320;
const FONT: &str = "sans-serif";

const SENT: RGBColor = RGBColor(0x8d, 0x99, 0xae);
const COMPLETED: RGBColor = RGBColor(0x2a, 0x9d, 0x8f);
const CANCELLED: RGBColor = RGBColor(0xe7, 0x6f, 0x51);
const P50: RGBColor = RGBColor(0x26, 0x46, 0x53);
const P99: RGBColor = RGBColor(0xd6, 0x28, 0x28);
const POST_P99: RGBColor = RGBColor(0x6c, 0x75, 0x7d);
const BAR: RGBColor = RGBColor(0x45, 0x7b, 0x9d);
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x88, 0x88, 0x88);
/// One color per watched process, in turn.
const PROCESSES: [RGBColor; 8] = [
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0xa6, 0x1e),
    RGBColor(0xe6, 0xab, 0x02),
    RGBColor(0xa6, 0x76, 0x1d),
    RGBColor(0x66, 0x66, 0x66),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Where a chart's legend goes, unless its lines are known to lie elsewhere.
const LEGEND: SeriesLabelPosition = SeriesLabelPosition::UpperRight;

/// A line on a chart: `(x, y)` points, `None` where there is no value (the line breaks).
struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, Option<f64>)>,
}

/// The panels a report has.
enum Panel {
    Throughput,
    LatencyPerSecond,
    LatencyPerWindow,
    Histogram,
    Memory,
}

/// The report as a self-contained SVG document (no scripts, no external resources).
pub fn svg(report: &Report) -> Result<String, SvgError> {
    let mut panels = vec![Panel::Throughput, Panel::LatencyPerSecond];
    if report.windows.len() >= 2 {
        panels.push(Panel::LatencyPerWindow);
    }
    panels.push(Panel::Histogram);
    if !report.memory.is_empty() {
        panels.push(Panel::Memory);
    }
    let height = HEADER + PANEL * panels.len() as u32;
    let mut out = String::new();
    draw(&mut out, report, &panels, (WIDTH, height))?;
    Ok(out)
}

fn draw(
    out: &mut String,
    report: &Report,
    panels: &[Panel],
    size: (u32, u32),
) -> Result<(), SvgError> {
    let root = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (header_area, body) = root.split_vertically(HEADER);
    header(&header_area, report)?;
    for (area, panel) in body.split_evenly((panels.len(), 1)).iter().zip(panels) {
        match panel {
            Panel::Throughput => throughput(area, report)?,
            Panel::LatencyPerSecond => latency_per_second(area, report)?,
            Panel::LatencyPerWindow => latency_per_window(area, report)?,
            Panel::Histogram => histogram(area, report)?,
            Panel::Memory => memory(area, report)?,
        }
    }
    root.present()?;
    Ok(())
}

fn header(area: &Area<'_>, report: &Report) -> Result<(), SvgError> {
    let verdict = if report.passed { "PASS" } else { "FAIL" };
    let c = &report.counts;
    let mut lines = vec![
        (
            format!("loadgen run {} — {verdict}", report.run_id),
            FontDesc::new(FontFamily::Name(FONT), 22.0, FontStyle::Bold).color(&INK),
        ),
        (
            describe_load(&report.load),
            (FONT, 16).into_font().color(&INK),
        ),
        (
            format!(
                "{} created, {} completed, {} cancelled, {} unobserved, {} HTTP errors; \
                 {:.1} completed/s, {:.1} terminal/s",
                c.created,
                c.completed,
                c.cancelled,
                c.unobserved,
                c.http_errors,
                report.throughput.completed_per_sec,
                report.throughput.terminal_per_sec
            ),
            (FONT, 16).into_font().color(&INK),
        ),
        (
            format!("Latency measured {}", report.latency_origin.describe()),
            (FONT, 16).into_font().color(&INK),
        ),
    ];
    if let (LatencyOrigin::IntendedSend, Some(lag)) = (report.latency_origin, &report.send_lag_ms) {
        lines.push((
            format!(
                "loadgen sent its orders late by p99 {:.1} ms, max {:.1} ms (actual − intended send)",
                lag.p99, lag.max
            ),
            (FONT, 16).into_font().color(&INK),
        ));
    }
    for (line, (text, style)) in lines.iter().enumerate() {
        area.draw_text(text, style, (20, 12 + 21 * line as i32))?;
    }
    Ok(())
}

fn throughput(area: &Area<'_>, report: &Report) -> Result<(), SvgError> {
    let at = |second: usize| second as f64 + 0.5;
    let line = |name: &str, color, value: &dyn Fn(&super::Second) -> u64| Series {
        name: name.to_owned(),
        color,
        points: report
            .per_second
            .iter()
            .map(|second| (at(second.second), Some(value(second) as f64)))
            .collect(),
    };
    let series = [
        line("sent", SENT, &|second| second.sent),
        line("completed", COMPLETED, &|second| second.completed),
        line("cancelled", CANCELLED, &|second| second.cancelled),
    ];
    line_chart(
        area,
        "Throughput per second",
        "seconds since start (sent: actual send; completed, cancelled: event arrival)",
        "orders / s",
        (report.per_second.len() as f64, LEGEND),
        &series,
    )
}

/// The three latency lines of a chart, from `(x, [POST p99, POST → terminal p50, p99])` points.
fn latency_series(points: &[(f64, [Option<f64>; 3])]) -> [Series; 3] {
    let line = |name: &str, color, index: usize| Series {
        name: name.to_owned(),
        color,
        points: points
            .iter()
            .map(|(x, values)| (*x, values[index]))
            .collect(),
    };
    [
        line("POST p99", POST_P99, 0),
        line("POST → terminal p50", P50, 1),
        line("POST → terminal p99", P99, 2),
    ]
}

fn latency_per_second(area: &Area<'_>, report: &Report) -> Result<(), SvgError> {
    let points: Vec<_> = report
        .per_second
        .iter()
        .map(|second| {
            let values = [
                second.post_p99_ms,
                second.terminal_p50_ms,
                second.terminal_p99_ms,
            ];
            (second.second as f64 + 0.5, values)
        })
        .collect();
    line_chart(
        area,
        "Latency per second",
        &format!(
            "seconds since start (orders by latency origin: {})",
            origin_word(report.latency_origin)
        ),
        "ms",
        (report.per_second.len() as f64, LEGEND),
        &latency_series(&points),
    )
}

fn latency_per_window(area: &Area<'_>, report: &Report) -> Result<(), SvgError> {
    let points: Vec<_> = report
        .windows
        .iter()
        .map(|window| {
            let values = [
                window.post_p99_ms,
                window.terminal_p50_ms,
                window.terminal_p99_ms,
            ];
            ((window.start_secs + window.end_secs) / 2.0, values)
        })
        .collect();
    line_chart(
        area,
        &format!("Latency per {} s window", seconds(report.window_width())),
        &format!(
            "seconds since start (window midpoints; orders by latency origin: {})",
            origin_word(report.latency_origin)
        ),
        "ms",
        (report.phases.total_secs, LEGEND),
        &latency_series(&points),
    )
}

fn memory(area: &Area<'_>, report: &Report) -> Result<(), SvgError> {
    let series: Vec<Series> = report
        .memory
        .iter()
        .zip(PROCESSES.iter().cycle())
        .map(|(process, &color)| Series {
            name: process.name.clone(),
            color,
            points: process
                .samples
                .iter()
                .map(|sample| (sample.at_ms as f64 / 1_000.0, Some(mib(sample.rss_bytes))))
                .collect(),
        })
        .collect();
    line_chart(
        area,
        "Resident memory (VmRSS)",
        "seconds since start",
        "MiB",
        // Resident memory lies well above 0 on an axis from 0.
        (report.phases.total_secs, SeriesLabelPosition::LowerRight),
        &series,
    )
}

fn origin_word(origin: LatencyOrigin) -> &'static str {
    match origin {
        LatencyOrigin::IntendedSend => "intended send",
        LatencyOrigin::ActualSend => "actual send",
    }
}

/// Axis labels: whole numbers without decimals, others with up to two.
fn tick(value: &f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// A chart of `series` over `[0, x_max]` (and from 0 up), each as lines through its
/// consecutive points (a lone point as a dot), with a legend; "no data" when there is none.
fn line_chart(
    area: &Area<'_>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (x_max, legend): (f64, SeriesLabelPosition),
    series: &[Series],
) -> Result<(), SvgError> {
    let values = series
        .iter()
        .flat_map(|series| series.points.iter().filter_map(|&(_, y)| y));
    let y_max = values.fold(0.0, f64::max);
    let (x_max, y_max) = (positive(x_max), positive(y_max * 1.1));
    let mut chart = chart_on(area, title, x_max, y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .max_light_lines(2)
        .draw()?;
    let mut drawn = false;
    for line in series {
        let style = line.color.stroke_width(2);
        let mut labelled = false;
        for segment in segments(&line.points) {
            let annotation = if let [point] = segment.as_slice() {
                chart.draw_series(std::iter::once(Circle::new(*point, 3, style.filled())))?
            } else {
                chart.draw_series(LineSeries::new(segment, style))?
            };
            if !labelled {
                let color = line.color;
                annotation.label(line.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
                labelled = true;
            }
            drawn = true;
        }
    }
    if drawn {
        chart
            .configure_series_labels()
            .position(legend)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(MUTED)
            .draw()?;
    } else {
        no_data(chart.plotting_area(), (x_max / 2.0, y_max / 2.0))?;
    }
    Ok(())
}

/// The runs of consecutive points that have a value.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut segments = vec![Vec::new()];
    for &(x, y) in points {
        match (y, segments.last_mut()) {
            (Some(y), Some(segment)) => segment.push((x, y)),
            (None, Some(segment)) if !segment.is_empty() => segments.push(Vec::new()),
            _ => {}
        }
    }
    segments.retain(|segment| !segment.is_empty());
    segments
}

fn positive(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        1.0
    }
}

fn no_data<CT: CoordTranslate<From = (f64, f64)>>(
    area: &DrawingArea<SVGBackend<'_>, CT>,
    at: (f64, f64),
) -> Result<(), SvgError> {
    let style = (FONT, 18)
        .into_font()
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("no data", at, style))?;
    Ok(())
}

/// A titled chart on `area` with both axes from 0: the frame every panel shares.
fn chart_on<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    x_max: f64,
    y_max: f64,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, SvgError>
{
    Ok(ChartBuilder::on(area)
        .caption(
            title,
            FontDesc::new(FontFamily::Name(FONT), 18.0, FontStyle::Bold),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?)
}

fn histogram(area: &Area<'_>, report: &Report) -> Result<(), SvgError> {
    let bins = &report.terminal_latency_histogram_ms;
    let x_max = positive(bins.last().map_or(0.0, |bin| bin.hi));
    let count_max = bins.iter().map(|bin| bin.count).max().unwrap_or(0) as f64;
    let y_max = positive(count_max * 1.1);
    let mut chart = chart_on(area, "POST → terminal latency distribution", x_max, y_max)?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "ms (from the {})",
            origin_word(report.latency_origin)
        ))
        .y_desc("orders")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .max_light_lines(2)
        .draw()?;
    if bins.is_empty() {
        return no_data(chart.plotting_area(), (x_max / 2.0, y_max / 2.0));
    }
    chart.draw_series(bins.iter().filter(|bin| bin.count > 0).map(|bin| {
        let mut bar = Rectangle::new([(bin.lo, 0.0), (bin.hi, bin.count as f64)], BAR.filled());
        // A pixel between neighbouring bars.
        bar.set_margin(0, 0, 0, 1);
        bar
    }))?;
    if let Some(summary) = &report.terminal_latency_ms {
        for (name, value, color) in [("p50", summary.p50, P50), ("p99", summary.p99, P99)] {
            chart
                .draw_series(LineSeries::new(
                    [(value, 0.0), (value, y_max)],
                    color.stroke_width(2),
                ))?
                .label(format!("{name} {value:.1} ms"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(LEGEND)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(MUTED)
            .draw()?;
    }
    Ok(())
}
