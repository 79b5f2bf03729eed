//! The side-by-side charts: per measure, one group of bars per transport × subscribers, one bar per
//! server (pushpoll, any other pushpoll label, nchan) side by side. Latencies on a log axis.

use anyhow::{Context as _, Result};
use plotters::style::RGBColor;

use super::{Report, Run};
use crate::chart::{AMBER, BLUE, Grouped, RED};

/// pushpoll blue, nchan red, other labels amber then grey.
fn color(label: &str, i: usize) -> RGBColor {
    match label {
        "pushpoll" => BLUE,
        super::BASELINE => RED,
        _ if i == 1 => AMBER,
        _ => RGBColor(140, 140, 140),
    }
}

struct Measure {
    file: &'static str,
    what: &'static str,
    y_desc: &'static str,
    log_y: bool,
    value: fn(&Run) -> Option<f64>,
}

const MEASURES: [Measure; 5] = [
    Measure {
        file: "latency_p50.svg",
        what: "p50 delivery latency",
        y_desc: "milliseconds (log scale)",
        log_y: true,
        value: |r| Some(r.p50_us as f64 / 1000.0),
    },
    Measure {
        file: "latency_p99.svg",
        what: "p99 delivery latency",
        y_desc: "milliseconds (log scale)",
        log_y: true,
        value: |r| Some(r.p99_us as f64 / 1000.0),
    },
    Measure {
        file: "cpu_per_delivery.svg",
        what: "Server CPU per delivery",
        y_desc: "server CPU µs per delivery",
        log_y: false,
        value: |r| Some(r.cpu_us_per_delivery),
    },
    Measure {
        file: "bytes_per_event.svg",
        what: "Bytes read by subscribers per delivery (headers included)",
        y_desc: "bytes per delivery",
        log_y: false,
        value: |r| Some(r.bytes_per_event),
    },
    Measure {
        file: "rss_per_connection.svg",
        what: "RSS per connection (peak − before) ÷ subscribers",
        y_desc: "KiB per connection",
        log_y: false,
        value: |r| r.rss_per_connection_kib,
    },
];

/// Every chart as (file name, SVG); the requests/s chart only when wrk ran.
pub fn all(report: &Report) -> Result<Vec<(String, String)>> {
    let series: Vec<(&str, RGBColor)> = report
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), color(l, i)))
        .collect();
    let mut out = Vec::new();
    let keys = report.keys();
    if !keys.is_empty() {
        for m in &MEASURES {
            let chart = Grouped {
                title: format!("{} — {}", m.what, report.workload()),
                x_desc: "transport, subscribers",
                y_desc: m.y_desc,
                groups: keys.iter().map(|(t, n)| format!("{t} {n}")).collect(),
                series: series.clone(),
                values: keys
                    .iter()
                    .map(|(t, n)| {
                        report
                            .labels
                            .iter()
                            .map(|l| report.run(l, t, *n).and_then(m.value).unwrap_or(f64::NAN))
                            .collect()
                    })
                    .collect(),
                log_y: m.log_y,
            };
            let svg = chart
                .render()
                .with_context(|| format!("drawing {}", m.file))?;
            out.push((m.file.to_owned(), svg));
        }
    }
    if !report.wrk.is_empty() {
        let mut endpoints: Vec<&str> = report.wrk.iter().map(|w| w.endpoint.as_str()).collect();
        endpoints.sort_by_key(|e| (*e != "poll-empty", *e));
        endpoints.dedup();
        let chart = Grouped {
            title: "Requests per second, wrk -t1 -c50".to_owned(),
            x_desc: "endpoint",
            y_desc: "requests per second",
            groups: endpoints.iter().map(|e| (*e).to_owned()).collect(),
            series,
            values: endpoints
                .iter()
                .map(|e| {
                    report
                        .labels
                        .iter()
                        .map(|l| report.wrk(l, e).map_or(f64::NAN, |w| w.requests_per_s))
                        .collect()
                })
                .collect(),
            log_y: false,
        };
        let svg = chart.render().context("drawing requests_per_s.svg")?;
        out.push(("requests_per_s.svg".to_owned(), svg));
    }
    Ok(out)
}
