//! `loadtest side-by-side DIR` (also `loadtest peers DIR`): the side-by-side report of
//! `scripts/bench-peers.sh`. Reads the runs the script left in DIR and writes `table.md`, `summary.json`,
//! `summary.csv` and one chart per measure, each server's bars side by side.
//!
//! DIR's layout (written by the script):
//! - `runs/LABEL/TRANSPORT-SUBSCRIBERS/summary.json`: one `loadtest run`, and beside it
//!   `rss.json`, the server's VmRSS before the subscribers connected and (for some runs) a
//!   while after the load tester exited;
//! - `wrk/LABEL/ENDPOINT.txt`: wrk's output, and `ENDPOINT.answer`: one answer as curl saw
//!   it (`STATUS HEADER_BYTES BODY_BYTES`).
//!
//! LABEL is `nchan` for nginx + Nchan, and anything else for a pushpoll binary (`pushpoll`,
//! or e.g. `before` for an older build). Ratios are every pushpoll label's figure ÷ nchan's.
//!
//! - [`read`]: the directory into [`Runs`] and [`Wrk`] rows, with the derived figures;
//! - [`render`]: table.md, summary.json, summary.csv;
//! - [`charts`]: the SVG charts.

mod charts;
mod read;
mod render;

#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::export::write_atomic;

/// The label of the server every other label is divided by.
pub const BASELINE: &str = "nchan";

/// One `loadtest run` of one server, with what the report derives from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub label: String,
    /// As its summary.json spells it, as are `feed` and the names this module's functions
    /// take: the report reads runs of any label (an older build's too) and sorts a name it
    /// does not know last rather than refusing it.
    pub transport: String,
    pub subscribers: usize,
    /// The run's feed and publish rate (msg/s), from its summary.json.
    pub feed: String,
    pub rate: f64,
    /// Events the subscribers received (each counted once per subscriber).
    pub deliveries: u64,
    pub lost: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Bytes read on the subscribers' sockets, headers and framing included, per delivered
    /// event (loadtest's `bytes_down_per_event`).
    pub bytes_per_event: f64,
    /// Server CPU (user + system) in the measured window ÷ deliveries, in µs.
    pub cpu_us_per_delivery: f64,
    pub rss_before_bytes: Option<u64>,
    pub rss_peak_bytes: u64,
    pub rss_after_bytes: Option<u64>,
    pub after_wait_s: Option<f64>,
    /// See [`rss_per_connection_kib`].
    pub rss_per_connection_kib: Option<f64>,
    /// RSS after the clients had gone minus RSS before they came, in MiB.
    pub rss_after_minus_before_mib: Option<f64>,
    /// Client requests per second in the window.
    pub requests_per_s: f64,
    pub errors: u64,
    /// The load tester's own CPU in the measured window ÷ the window, in percent of one
    /// core: near 100 with the generator pinned to one core, the generator (not the server)
    /// may be what limits the run.
    pub loadtest_cpu_percent: Option<f64>,
}

/// The share of its core, in percent, above which the load tester may be what limits a run
/// (its generator is pinned to one core): a row with a run over it gives no CPU ratio.
pub const GENERATOR_LIMIT_PERCENT: f64 = 70.0;

impl Run {
    /// Whether the load tester used more than [`GENERATOR_LIMIT_PERCENT`] of its core.
    pub fn generator_bound(&self) -> bool {
        self.loadtest_cpu_percent
            .is_some_and(|p| p > GENERATOR_LIMIT_PERCENT)
    }
}

/// One wrk measurement of one endpoint on one server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Wrk {
    pub label: String,
    /// `poll-empty` or `healthz`.
    pub endpoint: String,
    pub requests_per_s: f64,
    /// wrk's "Non-2xx or 3xx responses" count (0 when it printed none).
    pub non_2xx_3xx: u64,
    /// One answer as curl saw it.
    pub status: Option<u16>,
    pub header_bytes: Option<u64>,
    pub body_bytes: Option<u64>,
}

/// Everything read from one directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The labels in table order: `pushpoll` first, other pushpoll labels, `nchan` last.
    pub labels: Vec<String>,
    pub runs: Vec<Run>,
    pub wrk: Vec<Wrk>,
}

/// RSS per connection, KiB: `(peak RSS in the measured window − RSS before the subscribers
/// connected) ÷ subscribers`. `None` without a before figure or without subscribers.
pub fn rss_per_connection_kib(before: Option<u64>, peak: u64, subscribers: usize) -> Option<f64> {
    let before = before?;
    if subscribers == 0 {
        return None;
    }
    Some((peak as f64 - before as f64) / subscribers as f64 / 1024.0)
}

/// `a ÷ b`, `None` unless both are finite and `b` is positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

impl Report {
    /// The run of `label` for one transport and size.
    pub fn run(&self, label: &str, transport: &str, subscribers: usize) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.label == label && r.transport == transport && r.subscribers == subscribers)
    }

    pub fn wrk(&self, label: &str, endpoint: &str) -> Option<&Wrk> {
        self.wrk
            .iter()
            .find(|w| w.label == label && w.endpoint == endpoint)
    }

    /// The (transport, subscribers) rows, by subscribers then in transport order.
    pub fn keys(&self) -> Vec<(String, usize)> {
        // Transports in pushpoll's order (names::Transport::ALL), unknown names last.
        let order = |t: &str| {
            pushpoll::names::Transport::ALL
                .iter()
                .position(|x| x.as_str() == t)
                .unwrap_or(usize::MAX)
        };
        let mut keys: Vec<(String, usize)> = self
            .runs
            .iter()
            .map(|r| (r.transport.clone(), r.subscribers))
            .collect();
        keys.sort_by(|a, b| (a.1, order(&a.0), &a.0).cmp(&(b.1, order(&b.0), &b.0)));
        keys.dedup();
        keys
    }

    /// The runs' common workload in words ("chat feed, 10 msg/s"), or a warning that the
    /// runs differ, for the headings and chart titles.
    pub fn workload(&self) -> String {
        let Some(first) = self.runs.first() else {
            return "no runs".to_owned();
        };
        if self
            .runs
            .iter()
            .all(|r| r.feed == first.feed && r.rate == first.rate)
        {
            format!(
                "{} feed, {} msg/s",
                first.feed,
                crate::export::num(first.rate)
            )
        } else {
            "runs of different workloads (see summary.csv)".to_owned()
        }
    }

    /// The labels divided by nchan: every label but nchan, when nchan is there.
    pub fn compared(&self) -> Vec<&str> {
        if !self.labels.iter().any(|l| l == BASELINE) {
            return Vec::new();
        }
        self.labels
            .iter()
            .map(String::as_str)
            .filter(|l| *l != BASELINE)
            .collect()
    }

    /// `label`'s server CPU per delivery ÷ nchan's, for one row; none where either run's
    /// load tester was over [`GENERATOR_LIMIT_PERCENT`] of its core.
    pub fn cpu_ratio(&self, label: &str, transport: &str, subscribers: usize) -> Option<f64> {
        let a = self.run(label, transport, subscribers)?;
        let b = self.run(BASELINE, transport, subscribers)?;
        if a.generator_bound() || b.generator_bound() {
            return None;
        }
        ratio(a.cpu_us_per_delivery, b.cpu_us_per_delivery)
    }

    /// Whether `label`'s or nchan's run of this row had its load tester over
    /// [`GENERATOR_LIMIT_PERCENT`] of its core.
    pub fn generator_bound(&self, label: &str, transport: &str, subscribers: usize) -> bool {
        [label, BASELINE].iter().any(|l| {
            self.run(l, transport, subscribers)
                .is_some_and(Run::generator_bound)
        })
    }

    /// `label`'s wrk requests/s ÷ nchan's, for one endpoint.
    pub fn rps_ratio(&self, label: &str, endpoint: &str) -> Option<f64> {
        ratio(
            self.wrk(label, endpoint)?.requests_per_s,
            self.wrk(BASELINE, endpoint)?.requests_per_s,
        )
    }
}

/// The charts of the side-by-side report in `dir`, as (file name, SVG), drawn again from its
/// `summary.json` by the code `run` draws them with; none when `dir` holds no such report.
pub fn charts_of(dir: &Path) -> Result<Vec<(String, String)>> {
    let Some(value) = crate::report::summary_json(dir)? else {
        return Ok(Vec::new());
    };
    if value.get("labels").is_none() || value.get("runs").is_none() {
        return Ok(Vec::new());
    }
    let report: Report = serde_json::from_value(value)
        .with_context(|| format!("parsing {}", dir.join("summary.json").display()))?;
    charts::all(&report)
}

/// `loadtest side-by-side DIR`: reads DIR and writes the report into it.
pub fn run(dir: &Path) -> Result<()> {
    let report = read::read(dir).with_context(|| format!("reading {}", dir.display()))?;
    if report.runs.is_empty() && report.wrk.is_empty() {
        bail!(
            "{} has no runs/LABEL/TRANSPORT-N/summary.json and no wrk/LABEL/*.txt (scripts/bench-peers.sh writes them)",
            dir.display()
        );
    }
    let mut files = vec![
        ("table.md".to_owned(), render::markdown(&report)),
        ("summary.json".to_owned(), render::json(&report)?),
        ("summary.csv".to_owned(), render::csv(&report)),
    ];
    for chart in charts::all(&report)? {
        files.push(chart);
    }
    for (name, text) in files {
        let path = dir.join(&name);
        write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
