//! `summary.csv`: one row per transport, every field of [`TransportResult`] flattened, raw
//! (no rounding), for spreadsheets and scripts. One list of (header, value) columns.

use anyhow::Result;

use super::Exporter;
use crate::report::{Summary, TransportResult};

pub struct CsvExporter;

/// A CSV column: its header and how a row's value is written.
pub(super) type CsvColumn = (&'static str, fn(&TransportResult) -> String);

/// The columns, in file order. The byte columns come after the first 26 so a reader that
/// knows only those keeps their column numbers. Names as in the glossary
/// (docs/API.md): per event is ÷ events received over the whole run; per second is within
/// the measured window; `bytes_in` (down) and `bytes_out` (up) are the run's totals, counted
/// as `bytes_basis` says (`tcp`: socket bytes; `quic_udp_payload`: WebTransport's UDP
/// payload); `datagrams_received`/`datagrams_lost` are empty unless run with `--datagrams`.
pub(super) const COLUMNS: [CsvColumn; 34] = [
    ("transport", |r| r.transport.clone()),
    ("clients", |r| r.clients.to_string()),
    ("duration_s", |r| r.duration_s.to_string()),
    ("rate", |r| r.rate.to_string()),
    ("events_expected", |r| r.events_expected.to_string()),
    ("events_received", |r| r.events_received.to_string()),
    ("lost", |r| r.lost.to_string()),
    ("duplicates", |r| r.duplicates.to_string()),
    ("requests", |r| r.requests.to_string()),
    ("server_requests", |r| r.server_requests.to_string()),
    ("requests_per_s", |r| r.requests_per_s.to_string()),
    ("latency_p50_us", |r| r.latency_us.p50.to_string()),
    ("latency_p90_us", |r| r.latency_us.p90.to_string()),
    ("latency_p99_us", |r| r.latency_us.p99.to_string()),
    ("latency_p999_us", |r| r.latency_us.p999.to_string()),
    ("latency_max_us", |r| r.latency_us.max.to_string()),
    ("latency_mean_us", |r| r.latency_us.mean.to_string()),
    ("bytes_in", |r| r.bytes_in.to_string()),
    ("bytes_out", |r| r.bytes_out.to_string()),
    ("bytes_per_event", |r| r.bytes_per_event.to_string()),
    ("server_cpu_s", |r| r.server_cpu_s.to_string()),
    ("server_cpu_us_per_event", |r| {
        r.server_cpu_us_per_event.to_string()
    }),
    ("server_rss_peak_bytes", |r| {
        r.server_rss_peak_bytes.to_string()
    }),
    ("open_connections_peak", |r| {
        r.open_connections_peak.to_string()
    }),
    ("loadtest_cpu_s", |r| r.loadtest_cpu_s.to_string()),
    ("errors", |r| {
        r.errors
            .iter()
            .map(|(kind, n)| format!("{kind}={n}"))
            .collect::<Vec<_>>()
            .join(";")
    }),
    ("bytes_down_per_event", |r| {
        r.bytes_down_per_event.to_string()
    }),
    ("bytes_up_per_event", |r| r.bytes_up_per_event.to_string()),
    ("bytes_down_per_s", |r| r.bytes_down_per_s.to_string()),
    ("bytes_up_per_s", |r| r.bytes_up_per_s.to_string()),
    ("bytes_per_s", |r| r.bytes_per_s.to_string()),
    ("bytes_basis", |r| {
        match r.bytes_basis {
            crate::report::ByteBasis::Tcp => "tcp",
            crate::report::ByteBasis::QuicUdpPayload => "quic_udp_payload",
        }
        .to_owned()
    }),
    ("datagrams_received", |r| {
        r.datagrams
            .as_ref()
            .map_or(String::new(), |d| d.received.to_string())
    }),
    ("datagrams_lost", |r| {
        r.datagrams
            .as_ref()
            .map_or(String::new(), |d| d.lost.to_string())
    }),
];

/// The columns a run over several nodes adds after [`COLUMNS`].
pub(super) const NODE_COLUMNS: [&str; 2] = ["node", "redis_cpu_s"];

/// Quotes a CSV field when it holds a comma, a quote or a line break (RFC 4180).
pub(super) fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn line(fields: impl Iterator<Item = String>) -> String {
    let mut line = fields.map(|f| field(&f)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

impl Exporter for CsvExporter {
    fn file_name(&self) -> &str {
        "summary.csv"
    }

    fn render(&self, summary: &Summary) -> Result<String> {
        // Runs over several nodes (or with --redis-pid) gain two trailing columns, `node`
        // (`total` on the row of today's columns, the node's --url on each node row after
        // it) and `redis_cpu_s` (on the total row); a one-server run's file is what it was.
        let per_node = summary
            .results
            .iter()
            .any(|r| !r.nodes.is_empty() || r.redis_cpu_s.is_some());
        let header = COLUMNS.iter().map(|(header, _)| (*header).to_owned());
        let row = |r: &TransportResult| -> Vec<String> {
            COLUMNS.iter().map(|(_, value)| value(r)).collect()
        };
        if !per_node {
            let mut text = line(header);
            for r in &summary.results {
                text.push_str(&line(row(r).into_iter()));
            }
            return Ok(text);
        }
        let mut text = line(header.chain(NODE_COLUMNS.iter().map(|h| (*h).to_owned())));
        for r in &summary.results {
            let redis = r.redis_cpu_s.map_or_else(String::new, |s| s.to_string());
            let mut total: Vec<String> = row(r);
            total.extend(["total".to_owned(), redis]);
            text.push_str(&line(total.into_iter()));
            for node in &r.nodes {
                let mut cells: Vec<String> = row(&node.figures);
                cells.extend([node.url.clone(), String::new()]);
                text.push_str(&line(cells.into_iter()));
            }
        }
        Ok(text)
    }
}
