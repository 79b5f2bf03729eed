//! The fault charts: a churn run's recovery times (`recovery.svg`) and a storm's request rate
//! with and without jitter (`storm.svg`), each drawn into the directory that holds the runs
//! (`scripts/bench-faults.sh`: `churn/run/`, `storm/jitter/`, `storm/no-jitter/`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use plotters::prelude::*;

use super::{TIMELINE_AFTER, TIMELINE_BEFORE};
use crate::chart::{self, Grouped};
use crate::report::Summary;

/// The fault charts the runs in `dir`'s subdirectories draw, as (file name, SVG):
/// `recovery.svg` from the one churn run (connections broken at a rate above 0), `storm.svg`
/// from the storm run with jitter and the one without. None when the subdirectories hold no
/// such runs; an error when more than one run could be the chart's.
pub fn charts_of(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut churn = Vec::new();
    let mut jitter = Vec::new();
    let mut plain = Vec::new();
    for sub in subdirs(dir)? {
        let Some(summary) = Summary::read_if_run(&sub)? else {
            continue;
        };
        let faults: Vec<_> = summary
            .results
            .iter()
            .filter_map(|r| r.faults.as_ref())
            .collect();
        if faults.iter().any(|f| f.churn.is_some_and(|c| c > 0.0)) {
            churn.push((sub, summary));
        } else if let Some(f) = faults.iter().find(|f| f.storm_at_s.is_some()) {
            let runs = if f.jitter { &mut jitter } else { &mut plain };
            runs.push((sub, summary));
        }
    }
    let mut out = Vec::new();
    if let Some(run) = one(dir, "recovery.svg", "churn run", churn)? {
        out.push(("recovery.svg".to_owned(), recovery_chart(&run)?));
    }
    let jitter = one(dir, "storm.svg", "storm run with jitter", jitter)?;
    let plain = one(dir, "storm.svg", "storm run without jitter", plain)?;
    match (jitter, plain) {
        (Some(jitter), Some(plain)) => {
            out.push(("storm.svg".to_owned(), storm_chart(&jitter, &plain)?));
        }
        (None, None) => {}
        _ => bail!(
            "{}: storm.svg needs a storm run with jitter and one without, side by side",
            dir.display()
        ),
    }
    Ok(out)
}

/// The one run of `runs`, if any; more than one is an error naming them.
fn one(
    dir: &Path,
    file: &str,
    what: &str,
    mut runs: Vec<(PathBuf, Summary)>,
) -> Result<Option<Summary>> {
    if runs.len() > 1 {
        let names: Vec<String> = runs.iter().map(|(p, _)| p.display().to_string()).collect();
        bail!(
            "{}: {file} draws one {what}, and there are {}: {}",
            dir.display(),
            runs.len(),
            names.join(", ")
        );
    }
    Ok(runs.pop().map(|(_, summary)| summary))
}

/// `dir`'s subdirectories, sorted.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Bars: reconnect p50, recovery p50 and p99 per transport that had breaks, in ms. A linear
/// axis: recovery is the backoff's wait plus a reconnect, all of one order of magnitude.
fn recovery_chart(summary: &Summary) -> Result<String> {
    let rows: Vec<(String, Vec<f64>)> = summary
        .results
        .iter()
        .filter_map(|r| {
            let f = r.faults.as_ref()?;
            // A transport with no break (short polling holds nothing between polls) has no
            // recovery time: n/a, not 0.
            let ms = |us: u64| {
                if f.breaks > 0 {
                    us as f64 / 1000.0
                } else {
                    f64::NAN
                }
            };
            Some((
                r.transport.clone(),
                vec![
                    ms(f.reconnect_us.p50),
                    ms(f.recovery_us.p50),
                    ms(f.recovery_us.p99),
                ],
            ))
        })
        .collect();
    let w = &summary.workload;
    let churn = summary
        .results
        .iter()
        .find_map(|r| r.faults.as_ref()?.churn)
        .unwrap_or(0.0);
    let (groups, values) = rows.into_iter().unzip();
    Grouped {
        title: format!(
            "Time to recover from a break, churn {}/s ({} {} clients, {} msg/s)",
            chart::num(churn),
            w.clients,
            w.feed,
            chart::num(w.rate)
        ),
        x_desc: "transport",
        y_desc: "milliseconds from the break",
        groups,
        series: vec![
            ("reconnect p50", chart::AMBER),
            ("recovery p50", chart::BLUE),
            ("recovery p99", chart::RED),
        ],
        values,
        log_y: false,
    }
    .render()
}

/// One panel per transport: requests per 10 ms around the storm, with and without jitter.
fn storm_chart(jitter: &Summary, plain: &Summary) -> Result<String> {
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
    let height = 120 + 260 * transports.len().max(1) as u32;
    chart::svg((900, height), |root| {
        let w = &jitter.workload;
        let panels = chart::titled(
            root,
            &format!(
                "Reconnect storm: requests per 10 ms after breaking all {} clients at once",
                w.clients
            ),
        )?;
        let areas = panels.split_evenly((transports.len().max(1), 1));
        for (t, area) in transports.iter().zip(areas.iter()) {
            let (a, b) = (timeline(jitter, t), timeline(plain, t));
            let top = a.iter().chain(b.iter()).copied().max().unwrap_or(1).max(1) as f64 * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption(t, chart::AXIS_TEXT)
                .margin(8)
                .margin_right(45)
                .x_label_area_size(65)
                .y_label_area_size(95)
                .build_cartesian_2d(-before_ms..after_ms, 0f64..top)?;
            chart
                .configure_mesh()
                .x_desc("ms from the storm")
                .y_desc("requests / 10 ms")
                // Few enough labels for TEXT's size in a panel this high.
                .y_labels(5)
                .x_label_formatter(&|x| chart::num(*x))
                .y_label_formatter(&|y| chart::num(*y))
                .label_style(chart::TEXT)
                .axis_desc_style(chart::TEXT)
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
