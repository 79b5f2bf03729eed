//! `loadtest fault-chart`: the churn run's recovery times and the storm's request rate.

use anyhow::bail;
use plotters::prelude::*;

use super::{TIMELINE_AFTER, TIMELINE_BEFORE};
use crate::chart;
use crate::report::Summary;

/// `loadtest fault-chart`: the churn run's recovery times per transport, or the storm's
/// request rate with and without jitter, into one SVG file.
pub fn chart(args: &crate::cli::FaultChartArgs) -> anyhow::Result<()> {
    let svg = match (&args.churn, &args.storm, &args.storm_no_jitter) {
        (Some(churn), None, None) => recovery_chart(&Summary::read(churn)?)?,
        (None, Some(a), Some(b)) => storm_chart(&Summary::read(a)?, &Summary::read(b)?)?,
        _ => bail!("give either --churn DIR, or --storm DIR and --storm-no-jitter DIR"),
    };
    crate::export::write_atomic(&args.out, svg.as_bytes())?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Bars: reconnect p50, recovery p50 and p99 per transport that had breaks, in ms.
fn recovery_chart(summary: &Summary) -> anyhow::Result<String> {
    let rows: Vec<(&str, [f64; 3])> = summary
        .results
        .iter()
        .filter_map(|r| {
            let f = r.faults.as_ref()?;
            Some((
                r.transport.as_str(),
                [
                    f.reconnect_us.p50 as f64 / 1000.0,
                    f.recovery_us.p50 as f64 / 1000.0,
                    f.recovery_us.p99 as f64 / 1000.0,
                ],
            ))
        })
        .collect();
    let top = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.15;
    let w = &summary.workload;
    let churn = summary
        .results
        .iter()
        .find_map(|r| r.faults.as_ref()?.churn)
        .unwrap_or(0.0);
    chart::svg((900, 500), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Time to recover from a break, churn {churn}/s ({} {} clients, {} msg/s)",
                    w.clients, w.feed, w.rate
                ),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..rows.len().max(1) as f64, 0f64..top)?;
        let names: Vec<String> = rows.iter().map(|(n, _)| n.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("milliseconds from the break")
            .draw()?;
        let series = [
            ("reconnect p50", RGBColor(120, 170, 90)),
            ("recovery p50", chart::BLUE),
            ("recovery p99", chart::RED),
        ];
        for (j, (name, color)) in series.into_iter().enumerate() {
            let x0 = |i: usize| i as f64 + 0.15 + j as f64 * 0.23;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
                    Rectangle::new([(x0(i), 0.0), (x0(i) + 0.2, v[j])], color.filled())
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart::legend_box(&mut chart)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    })
}

/// One panel per transport: requests per 10 ms around the storm, with and without jitter.
fn storm_chart(jitter: &Summary, plain: &Summary) -> anyhow::Result<String> {
    // Transports by their names in the summary.json files read, as both runs spell them.
    let timeline = |s: &Summary, t: &str| -> Vec<u64> {
        s.results
            .iter()
            .find(|r| r.transport == t)
            .and_then(|r| r.faults.as_ref()?.storm.as_ref())
            .map(|s| s.timeline_10ms.clone())
            .unwrap_or_default()
    };
    let transports: Vec<String> = jitter
        .results
        .iter()
        .filter(|r| r.faults.as_ref().is_some_and(|f| f.breaks > 0))
        .map(|r| r.transport.clone())
        .collect();
    let before_ms = TIMELINE_BEFORE.as_millis() as f64;
    let after_ms = TIMELINE_AFTER.as_millis() as f64;
    let height = 120 + 220 * transports.len().max(1) as u32;
    chart::svg((900, height), |root| {
        let w = &jitter.workload;
        let (title, panels) = root.split_vertically(60);
        title.titled(
            &format!(
                "Reconnect storm: requests per 10 ms after breaking all {} clients at once",
                w.clients
            ),
            ("sans-serif", 20),
        )?;
        let areas = panels.split_evenly((transports.len().max(1), 1));
        for (t, area) in transports.iter().zip(areas.iter()) {
            let (a, b) = (timeline(jitter, t), timeline(plain, t));
            let top = a.iter().chain(b.iter()).copied().max().unwrap_or(1).max(1) as f64 * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption(t, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(-before_ms..after_ms, 0f64..top)?;
            chart
                .configure_mesh()
                .x_desc("ms from the storm")
                .y_desc("requests / 10 ms")
                .draw()?;
            for (data, name, color) in [
                (&b, "no jitter", chart::RED),
                (&a, "full jitter", chart::BLUE),
            ] {
                chart
                    .draw_series(LineSeries::new(
                        data.iter()
                            .enumerate()
                            .map(|(i, n)| (i as f64 * 10.0 - before_ms, *n as f64)),
                        color.stroke_width(2),
                    ))?
                    .label(name)
                    .legend(chart::line_legend(color, 2));
            }
            chart::legend_box(&mut chart)
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }
        Ok(())
    })
}
