//! The soak's `chart.svg`: RSS, open connections and chat p99 over time, one panel each.

use anyhow::{Context as _, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use pushpoll::names::Transport;

use super::report::{Sample, SoakSummary};
use crate::chart::{self, Area};

/// The chart's file name in the soak's directory.
pub const FILE: &str = "chart.svg";

/// Three panels over time (minutes): RSS, open connections, chat p99 by transport.
pub fn render(summary: &SoakSummary) -> Result<String> {
    chart::svg((900, 1050), |root| draw(summary, root)).context("drawing chart.svg")
}

fn draw(summary: &SoakSummary, root: &Area<'_>) -> Result<()> {
    let root = chart::titled(
        root,
        &format!(
            "Soak: {} s, {} subscribers per transport, {} chat msg/s",
            summary.duration_s,
            summary.subscribers_per_group * 2,
            summary.chat_rate
        ),
    )?;
    let panels = root.split_evenly((3, 1));
    let samples = &summary.samples;
    let x_max = (summary.duration_s / 60.0).max(samples.last().map_or(0.0, |s| s.t_s / 60.0));
    let minutes = |s: &Sample| s.t_s / 60.0;

    // RSS, MB.
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (minutes(s), s.rss_bytes as f64 / 1e6))
        .collect();
    let top = rss.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
    let mut chart = panel(&panels[0], "server RSS (MB)", x_max, 0.0..top)?;
    chart.draw_series(LineSeries::new(rss.clone(), chart::BLUE.stroke_width(2)))?;
    chart.draw_series(rss.iter().map(|p| Circle::new(*p, 3, chart::BLUE.filled())))?;
    if let Some(f) = &summary.flatness {
        // The flatness threshold: the baseline plus the tolerance.
        let limit = f.baseline_rss_bytes as f64 / 1e6 * (1.0 + f.tolerance_pct / 100.0);
        chart
            .draw_series(LineSeries::new(
                [(f.baseline_t_s / 60.0, limit), (x_max, limit)],
                RED.stroke_width(1),
            ))?
            .label(format!("warm-up RSS + {}%", f.tolerance_pct))
            .legend(chart::line_legend(RED, 3));
        chart::legend_box(&mut chart).draw()?;
    }

    // Open connections: all TCP, and per transport.
    let top = samples.iter().map(|s| s.open).max().unwrap_or(1).max(1) as f64 * 1.2;
    let mut chart = panel(&panels[1], "open connections", x_max, 0.0..top)?;
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (minutes(s), s.open as f64)),
            chart::GREY.stroke_width(2),
        ))?
        .label("TCP (all)")
        .legend(chart::line_legend(chart::GREY, 3));
    // The transports the soak measured: one it did not run has no line, rather than one at 0.
    let measured = |t: &Transport| {
        samples
            .iter()
            .any(|s| s.open_by_transport.contains_key(t.as_str()))
    };
    for t in Transport::ALL.iter().filter(|t| measured(t)) {
        let color = chart::transport(*t);
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| {
                    (
                        minutes(s),
                        s.open_by_transport.get(t.as_str()).copied().unwrap_or(0) as f64,
                    )
                }),
                color.stroke_width(2),
            ))?
            .label(t.as_str())
            .legend(chart::line_legend(color, 3));
    }
    chart::legend_box(&mut chart).draw()?;

    // Chat delivery p99 per window, ms, on a log scale: short polling's ~1 s (its interval)
    // and the push transports' few ms both stay readable.
    let top = samples
        .iter()
        .flat_map(|s| s.p99_ms.values().flatten())
        .copied()
        .fold(10.0, f64::max)
        * 2.0;
    let mut chart = panel(
        &panels[2],
        "chat delivery p99 over each window (ms, log scale)",
        x_max,
        (1.0..top).log_scale(),
    )?;
    for t in Transport::ALL.iter().filter(|t| measured(t)) {
        let color = chart::transport(*t);
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((minutes(s), s.p99_ms.get(&format!("chat/{t}"))?.as_ref()?)))
            .map(|(x, y)| (x, y.max(1.0)))
            .collect();
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(t.as_str())
            .legend(chart::line_legend(color, 3));
    }
    chart::legend_box(&mut chart).draw()?;
    Ok(())
}

/// One panel: its caption, minutes `0..x_max` on x, `y` on y, and the mesh drawn.
fn panel<'a, 'b, Y>(
    area: &'a Area<'b>,
    caption: &str,
    x_max: f64,
    y: Y,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y::CoordDescType>>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, chart::AXIS_TEXT)
        .margin(10)
        // Room for the last minute's label, centred on the plot's right edge.
        .margin_right(25)
        .x_label_area_size(65)
        .y_label_area_size(95)
        .build_cartesian_2d(0.0..x_max, y)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        // Few enough labels for TEXT's size in a panel this high.
        .y_labels(6)
        .x_label_formatter(&|x| chart::num(*x))
        .y_label_formatter(&|y| chart::num(*y))
        .label_style(chart::TEXT)
        .axis_desc_style(chart::TEXT)
        .draw()?;
    Ok(chart)
}
