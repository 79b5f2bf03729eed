//! The SVG bar charts, one per measure: one bar (or one group of bars) per transport, drawn
//! by [`Grouped`].

use anyhow::{Context, Result};
use plotters::style::RGBColor;

use super::Exporter;
use super::format::{ratio, workload_short};
use crate::chart::{AMBER, BLUE, Grouped, RED};
use crate::report::{Summary, TransportResult, Workload};

/// One series of bars: a name for the legend, a colour, and the value per transport.
struct Series {
    name: &'static str,
    color: RGBColor,
    value: fn(&TransportResult) -> f64,
}

/// A bar chart with one bar (or one group of bars) per transport.
pub struct BarChart {
    pub(super) file: &'static str,
    /// What is drawn; the title is this plus the workload.
    pub(super) what: &'static str,
    y_desc: &'static str,
    series: Vec<Series>,
    /// Draw the y axis on a log scale (see [`Grouped::log_y`]).
    log_y: bool,
}

impl BarChart {
    /// Every chart, in the order they are written and linked from `summary.md`.
    pub(super) fn all() -> [BarChart; 4] {
        [
            Self::latency(),
            Self::requests_per_event(),
            Self::bytes_per_event(),
            Self::cpu_per_event(),
        ]
    }

    /// `latency.svg`: p50, p90 and p99 delivery latency per transport, in ms.
    pub fn latency() -> Self {
        BarChart {
            file: "latency.svg",
            what: "Delivery latency (p50/p90/p99)",
            y_desc: "milliseconds (log scale)",
            log_y: true,
            series: vec![
                Series {
                    name: "p50",
                    color: BLUE,
                    value: |r| r.latency_us.p50 as f64 / 1000.0,
                },
                Series {
                    name: "p90",
                    color: AMBER,
                    value: |r| r.latency_us.p90 as f64 / 1000.0,
                },
                Series {
                    name: "p99",
                    color: RED,
                    value: |r| r.latency_us.p99 as f64 / 1000.0,
                },
            ],
        }
    }

    /// `requests_per_event.svg`: client HTTP requests per delivered event.
    pub fn requests_per_event() -> Self {
        BarChart {
            file: "requests_per_event.svg",
            what: "HTTP requests per delivered event",
            y_desc: "requests per delivered event",
            log_y: false,
            series: vec![Series {
                name: "requests per event",
                color: BLUE,
                value: |r| ratio(r.requests, r.events_received),
            }],
        }
    }

    /// `bytes_per_event.svg`: bytes the clients read per delivered event.
    pub fn bytes_per_event() -> Self {
        BarChart {
            file: "bytes_per_event.svg",
            what: "Bytes per delivered event, down and up (headers included)",
            y_desc: "bytes per delivered event",
            log_y: false,
            series: vec![
                Series {
                    name: "bytes down per event",
                    color: BLUE,
                    value: |r| r.bytes_down_per_event,
                },
                Series {
                    name: "bytes up per event",
                    color: AMBER,
                    value: |r| r.bytes_up_per_event,
                },
                Series {
                    name: "bytes per event",
                    color: RED,
                    value: |r| r.bytes_per_event,
                },
            ],
        }
    }

    /// `cpu_per_event.svg`: server CPU time per delivered event, in µs.
    pub fn cpu_per_event() -> Self {
        BarChart {
            file: "cpu_per_event.svg",
            what: "Server CPU per delivered event",
            y_desc: "server CPU µs per delivered event",
            log_y: false,
            series: vec![Series {
                name: "server CPU per event",
                color: BLUE,
                value: |r| r.server_cpu_us_per_event,
            }],
        }
    }

    pub fn title(&self, workload: &Workload) -> String {
        format!("{} — {}", self.what, workload_short(workload))
    }

    fn chart(&self, summary: &Summary) -> Grouped<'_> {
        let groups = summary
            .results
            .iter()
            .map(|r| r.transport.clone())
            .collect();
        let values = summary
            .results
            .iter()
            .map(|r| self.series.iter().map(|s| (s.value)(r)).collect())
            .collect();
        Grouped {
            title: self.title(&summary.workload),
            x_desc: "transport",
            y_desc: self.y_desc,
            groups,
            series: self.series.iter().map(|s| (s.name, s.color)).collect(),
            values,
            log_y: self.log_y,
        }
    }
}

impl Exporter for BarChart {
    fn file_name(&self) -> &str {
        self.file
    }

    fn render(&self, summary: &Summary) -> Result<String> {
        self.chart(summary)
            .render()
            .with_context(|| format!("drawing {}", self.file))
    }
}
