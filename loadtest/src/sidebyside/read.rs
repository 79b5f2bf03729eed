//! Reads `runs/` and `wrk/` of a bench-peers directory into a [`Report`].

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use super::{BASELINE, Report, Run, Wrk, rss_per_connection_kib};
use crate::report::{Summary, TransportResult};

/// `rss.json`, as scripts/bench-peers.sh writes it.
#[derive(Debug, Deserialize)]
pub(super) struct Rss {
    pub rss_before_bytes: u64,
    pub rss_after_bytes: Option<u64>,
    pub after_wait_s: Option<f64>,
}

pub fn read(dir: &Path) -> Result<Report> {
    let mut runs = Vec::new();
    for (label, label_dir) in subdirs(&dir.join("runs"))? {
        for (_, run_dir) in subdirs(&label_dir)? {
            let path = run_dir.join("summary.json");
            if !path.exists() {
                // A run that died before its first write: nothing to report.
                continue;
            }
            let summary = Summary::read(&run_dir)?;
            let Some(result) = summary.results.first() else {
                continue;
            };
            let rss_path = run_dir.join("rss.json");
            let rss: Option<Rss> = if rss_path.exists() {
                Some(
                    serde_json::from_str(&fs::read_to_string(&rss_path)?)
                        .with_context(|| format!("parsing {}", rss_path.display()))?,
                )
            } else {
                None
            };
            runs.push(run_of(&label, &summary.workload.feed, result, rss.as_ref()));
        }
    }
    let mut wrk = Vec::new();
    for (label, label_dir) in subdirs(&dir.join("wrk"))? {
        let mut names: Vec<_> = fs::read_dir(&label_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        names.sort();
        for path in names {
            let endpoint = stem(&path)?;
            let text = fs::read_to_string(&path)?;
            let (requests_per_s, non_2xx_3xx) =
                parse_wrk(&text).with_context(|| format!("parsing {}", path.display()))?;
            let answer = fs::read_to_string(path.with_extension("answer")).unwrap_or_default();
            let (status, header_bytes, body_bytes) = parse_answer(&answer);
            wrk.push(Wrk {
                label: label.clone(),
                endpoint,
                requests_per_s,
                non_2xx_3xx,
                status,
                header_bytes,
                body_bytes,
            });
        }
    }
    let mut labels: Vec<String> = runs
        .iter()
        .map(|r| r.label.clone())
        .chain(wrk.iter().map(|w| w.label.clone()))
        .collect();
    labels.sort_by_key(|l| {
        let rank = match l.as_str() {
            "pushpoll" => 0,
            BASELINE => 2,
            _ => 1,
        };
        (rank, l.clone())
    });
    labels.dedup();
    Ok(Report { labels, runs, wrk })
}

/// What the report shows of one result.
pub(super) fn run_of(label: &str, feed: &str, r: &TransportResult, rss: Option<&Rss>) -> Run {
    let before = rss.map(|x| x.rss_before_bytes);
    let after = rss.and_then(|x| x.rss_after_bytes);
    Run {
        label: label.to_owned(),
        transport: r.transport.clone(),
        subscribers: r.clients,
        feed: feed.to_owned(),
        rate: r.rate,
        deliveries: r.events_received,
        lost: r.lost,
        p50_us: r.latency_us.p50,
        p99_us: r.latency_us.p99,
        bytes_per_event: r.bytes_down_per_event,
        cpu_us_per_delivery: r.server_cpu_us_per_event,
        rss_before_bytes: before,
        rss_peak_bytes: r.server_rss_peak_bytes,
        rss_after_bytes: after,
        after_wait_s: rss.and_then(|x| x.after_wait_s),
        rss_per_connection_kib: rss_per_connection_kib(before, r.server_rss_peak_bytes, r.clients),
        rss_after_minus_before_mib: before
            .zip(after)
            .map(|(b, a)| (a as f64 - b as f64) / (1024.0 * 1024.0)),
        requests_per_s: r.requests_per_s,
        errors: r.errors.values().sum(),
        loadtest_cpu_percent: super::ratio(r.loadtest_cpu_s * 100.0, r.duration_s),
    }
}

/// wrk's `Requests/sec:` and `Non-2xx or 3xx responses:` lines.
pub(super) fn parse_wrk(text: &str) -> Result<(f64, u64)> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
    };
    let Some(rps) = field("Requests/sec:") else {
        bail!("no `Requests/sec:` line");
    };
    let rps: f64 = rps.parse().context("`Requests/sec:` is not a number")?;
    let non = match field("Non-2xx or 3xx responses:") {
        Some(n) => n
            .parse()
            .context("`Non-2xx or 3xx responses:` is not a number")?,
        None => 0,
    };
    Ok((rps, non))
}

/// curl's `STATUS HEADER_BYTES BODY_BYTES`; what does not parse is `None`.
pub(super) fn parse_answer(text: &str) -> (Option<u16>, Option<u64>, Option<u64>) {
    let mut parts = text.split_whitespace();
    (
        parts.next().and_then(|s| s.parse().ok()),
        parts.next().and_then(|s| s.parse().ok()),
        parts.next().and_then(|s| s.parse().ok()),
    )
}

/// The subdirectories of `dir` by name, sorted; none when `dir` does not exist.
fn subdirs(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.push((stem(&path)?, path));
        }
    }
    out.sort();
    Ok(out)
}

fn stem(path: &Path) -> Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no UTF-8 name", path.display()))
}
