//! Results as plain data, and one exporter per format. (Exporters: see `export`.)
//!
//! A leaf: the parts measured elsewhere (`faults`, `draw`) have their result types here, so
//! those modules import the report and not the other way round.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;

use serde::{Deserialize, Serialize};

/// The workload, the same for every transport of a compare.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workload {
    pub feed: String,
    pub clients: usize,
    /// Chat messages published per second (`--feed draw`: strokes, all clients together,
    /// `--send-rate` × `--clients`).
    pub rate: f64,
    pub duration_s: f64,
    pub ramp_s: f64,
    pub poll_interval_ms: u64,
    pub rooms: usize,
    pub message_size: usize,
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub cpu: String,
}

/// Delivery latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// What one transport cost for the workload (LOADTEST.md, "What it measures").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TransportResult {
    pub transport: String,
    pub clients: usize,
    pub duration_s: f64,
    pub rate: f64,
    pub events_expected: u64,
    pub events_received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub requests: u64,
    pub server_requests: u64,
    /// Client requests per second within the measured window.
    #[serde(default)]
    pub requests_per_s: f64,
    pub latency_us: Latency,
    /// What `bytes_in` and `bytes_out` count: the clients' TCP sockets, or (WebTransport)
    /// their QUIC connections' UDP payload. Absent from files written before WebTransport
    /// was measured, whose rows are all TCP.
    #[serde(default)]
    pub bytes_basis: ByteBasis,
    /// Bytes down, in total: read by the subscribers from their sockets (response heads and
    /// bodies, WebSocket handshake answer and frames), over the whole run; for WebTransport,
    /// the UDP payload of the QUIC packets they received ([`ByteBasis::QuicUdpPayload`]).
    pub bytes_in: u64,
    /// Bytes up, in total: written by the subscribers to their sockets (request lines and
    /// headers, POST bodies, WebSocket frames with their headers and 4-byte masks).
    pub bytes_out: u64,
    /// Bytes per event, both directions: `(bytes_in + bytes_out) / events_received`
    /// (docs/API.md, Glossary).
    pub bytes_per_event: f64,
    /// Bytes down per event: `bytes_in / events_received`, headers and framing included.
    #[serde(default)]
    pub bytes_down_per_event: f64,
    /// Bytes up per event: `bytes_out / events_received`, headers and framing included.
    #[serde(default)]
    pub bytes_up_per_event: f64,
    /// Bytes down per second: read within the measured window ÷ its length.
    #[serde(default)]
    pub bytes_down_per_s: f64,
    /// Bytes up per second: written within the measured window ÷ its length.
    #[serde(default)]
    pub bytes_up_per_s: f64,
    /// Bytes per second, both directions: `bytes_down_per_s + bytes_up_per_s`.
    #[serde(default)]
    pub bytes_per_s: f64,
    pub server_cpu_s: f64,
    pub server_cpu_us_per_event: f64,
    pub server_rss_peak_bytes: u64,
    pub open_connections_peak: i64,
    /// The load tester's own CPU seconds in the measured window: a saturated generator
    /// shows here instead of passing for a slow server.
    pub loadtest_cpu_s: f64,
    pub errors: BTreeMap<String, u64>,
    /// With `--churn`/`--storm`: what the breaks did (see `faults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultResult>,
    /// `--datagrams` (WebTransport): what came as datagrams and what was found missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<Datagrams>,
    /// `--feed draw`: what the clients' sends cost upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<DrawCost>,
    /// With several `--url`s (or `--redis-pid`): the same figures per node, in `--url`
    /// order, while this result is their total. Empty (and absent from the JSON) otherwise,
    /// so a one-server run's files are what they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeResult>,
    /// `--redis-pid`: the Redis process's CPU seconds (user + system, /proc/PID/stat) over
    /// the measured window, the same window as `server_cpu_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_cpu_s: Option<f64>,
}

/// Where a result's bytes were counted. TCP's figures are the bytes through the clients'
/// sockets: HTTP and WebSocket bytes with their framing, without TCP's own headers,
/// handshake and acknowledgements. QUIC runs in user space, so its equivalent is the UDP
/// payload of the connection's packets as quinn counts them (`udp_rx`/`udp_tx` bytes of its
/// connection statistics): the QUIC packet headers, encryption tags, acknowledgements, the
/// TLS handshake and the HTTP/3 CONNECT are in it, and only the UDP and IP headers are not.
/// The two are compared knowing that: QUIC's figure carries the transport's own overhead,
/// which TCP's leaves in the kernel.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ByteBasis {
    #[default]
    Tcp,
    QuicUdpPayload,
}

impl ByteBasis {
    /// How the tables name it.
    pub fn label(self) -> &'static str {
        match self {
            ByteBasis::Tcp => "TCP socket bytes",
            ByteBasis::QuicUdpPayload => "QUIC UDP payload",
        }
    }
}

/// Datagram mode's figures (`"datagrams"` in a WebTransport result run with `--datagrams`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Datagrams {
    /// Events that came as datagrams (the rest of `events_received` came on the stream).
    pub received: u64,
    /// Events found missing from the ids of what came, per session: loss the transport
    /// accepts (QUIC does not resend a datagram), kept out of `lost`.
    pub lost: u64,
}

/// One node's share of a transport's run (`nodes` in `summary.json`).
///
/// The client-side figures (subscribers, deliveries, lost, latency, bytes, requests, errors)
/// are this node's subscribers' only. The server-side figures (server requests and CPU, RSS
/// and open connections) are read from this node's `/api/stats`, so a server given twice as
/// `--url` shows its whole figures in both rows; the total counts each address once. Not
/// split per node: `loadtest_cpu_s` (0 here, the process's in the total), and the publisher's
/// traffic (on the first node, uncounted as everywhere).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeResult {
    /// The node's `--url`, as given.
    pub url: String,
    #[serde(flatten)]
    pub figures: TransportResult,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub workload: Workload,
    pub machine: Machine,
    pub command: String,
    /// UTC, RFC 3339, when the run started.
    pub started: String,
    pub results: Vec<TransportResult>,
}

impl Summary {
    /// The `summary.json` a run wrote into `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Summary> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Summary::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// A `summary.json`'s text. A result without `bytes_down_per_event` was measured before
    /// bytes were counted both ways per event: its `bytes_per_event` is bytes down only, so it
    /// is read as that, and bytes up and both ways per event, never recorded, as NaN (drawn
    /// and written as n/a rather than as a figure the run did not make).
    pub fn parse(text: &str) -> serde_json::Result<Summary> {
        Summary::from_value(serde_json::from_str(text)?)
    }

    /// The run summary in `dir`, if it holds one: `None` without a `summary.json`, or when
    /// that file is another report's (a soak's, a side-by-side report's), which has no
    /// `results`.
    pub fn read_if_run(dir: &Path) -> anyhow::Result<Option<Summary>> {
        let Some(value) = summary_json(dir)? else {
            return Ok(None);
        };
        if value.get("results").is_none() {
            return Ok(None);
        }
        let summary = Summary::from_value(value)
            .with_context(|| format!("parsing {}", dir.join("summary.json").display()))?;
        Ok(Some(summary))
    }

    fn from_value(value: serde_json::Value) -> serde_json::Result<Summary> {
        let down_only: Vec<bool> = value
            .get("results")
            .and_then(serde_json::Value::as_array)
            .map(|results| {
                results
                    .iter()
                    .map(|r| r.get("bytes_down_per_event").is_none())
                    .collect()
            })
            .unwrap_or_default();
        let mut summary: Summary = serde_json::from_value(value)?;
        for (result, down_only) in summary.results.iter_mut().zip(down_only) {
            if down_only {
                result.bytes_down_per_event = result.bytes_per_event;
                result.bytes_up_per_event = f64::NAN;
                result.bytes_per_event = f64::NAN;
            }
        }
        Ok(summary)
    }
}

/// `dir/summary.json` as JSON, whichever report wrote it (a run, a soak, a side-by-side
/// report: their keys tell them apart), or `None` when there is none.
pub fn summary_json(dir: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    let path = dir.join("summary.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(value))
}

/// `{p50, p99, max}` in µs, and how many were recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of what `h` recorded (all zero if nothing).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// The storm's request rate around the moment every client was broken.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StormRate {
    /// The most requests in one 100 ms window (aligned to the storm) in the 3 s after it.
    pub peak_per_100ms: u64,
    /// The most requests in one 10 ms bucket in the 3 s after it.
    pub peak_per_10ms: u64,
    /// The mean per 100 ms over the 500 ms before it (the steady rate).
    pub before_per_100ms: f64,
    /// How long sending the storm's kills took (first sent to last answered), in ms: the
    /// breaks themselves are spread over this time.
    #[serde(default)]
    pub kills_ms: f64,
    /// Requests per 10 ms bucket, from 500 ms before the storm to 3 s after it.
    pub timeline_10ms: Vec<u64>,
}

/// What the faults did to one transport's run (`faults` in `summary.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FaultResult {
    pub churn: Option<f64>,
    pub storm_at_s: Option<f64>,
    pub jitter: bool,
    /// Kill requests sent, and those that failed.
    pub kills_sent: u64,
    pub kill_failures: u64,
    /// Connections the server dropped (the kills' `killed`, summed).
    pub breaks: u64,
    /// Breaks the clients saw end their connection.
    pub breaks_seen: u64,
    pub reconnect_us: Percentiles,
    pub recovery_us: Percentiles,
    /// Clients still waiting for their first event after a break when the run ended.
    pub unrecovered: u64,
    pub recovery_requests: u64,
    pub storm: Option<StormRate>,
    /// This run minus the baseline (`--baseline`), when one was given.
    pub extra_requests: Option<i64>,
    pub extra_bytes_in: Option<i64>,
    pub extra_bytes_out: Option<i64>,
}

/// The upstream side of a draw run, in `summary.json` (`"draw"` in each result).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DrawCost {
    /// Strokes per second per client, as asked.
    pub send_rate: f64,
    /// Points per stroke.
    pub points: usize,
    pub strokes_sent: u64,
    pub sends: u64,
    /// Bytes written to send the strokes (see the module's definition per transport).
    pub bytes_up: u64,
    /// Bytes read in answer to the sends (HTTP `201` answers; 0 for WebSocket and
    /// WebTransport, whose servers answer only refusals).
    pub bytes_up_answers: u64,
    pub bytes_up_per_stroke: f64,
    pub bytes_up_answers_per_stroke: f64,
    /// Strokes the server published in the run (its newest id minus the start cursor).
    pub published: u64,
}
