//! `summary.csv`: one row per transport, every field of [`TransportResult`] flattened, raw
//! (no rounding), for spreadsheets and scripts. One list of (header, value) columns.

use anyhow::Result;

use super::Exporter;
use crate::report::{Summary, TransportResult};

pub struct CsvExporter;

/// A CSV column: its header and how a row's value is written.
pub(super) type CsvColumn = (&'static str, fn(&TransportResult) -> String);

/// The columns, in file order. The byte columns added with issue 10 come after the first 26
/// so older readers of the CSV keep their column numbers. Names as in the glossary
/// (docs/API.md): per event is ÷ events received over the whole run; per second is within
/// the measured window; `bytes_in` (down) and `bytes_out` (up) are the run's totals.
pub(super) const COLUMNS: [CsvColumn; 31] = [
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
];

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
        let mut text = line(COLUMNS.iter().map(|(header, _)| (*header).to_owned()));
        for r in &summary.results {
            text.push_str(&line(COLUMNS.iter().map(|(_, value)| value(r))));
        }
        Ok(text)
    }
}
