//! The two tables people read, `summary.md`'s and the terminal's: each is ONE list of columns,
//! a header (long for Markdown, short for the terminal), an alignment and the function that
//! makes a row's cell, so a column cannot gain a header without its cells or move in one
//! rendering only. `markdown` and `table` only lay them out.

use super::format::{MIB, fixed, ms, num, ratio};
use crate::report::TransportResult;

/// Which side of its column a cell sits on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Right,
}

/// One column of a table, of rows of type `R` (a transport's result, or a [`NodeRow`]).
pub(super) struct Column<R = TransportResult> {
    /// The header in `summary.md`.
    pub long: &'static str,
    /// The header in the terminal, where width is scarce.
    pub short: &'static str,
    pub align: Align,
    /// The cell for one transport; `sep` goes between paired figures (" / " in Markdown,
    /// "/" in the terminal).
    pub cell: fn(&R, &str) -> String,
}

/// The results table: one row per transport, every measure in a form people read.
pub(super) const RESULTS: [Column; 15] = [
    Column {
        long: "transport",
        short: "transport",
        align: Align::Left,
        cell: |r, _| r.transport.clone(),
    },
    Column {
        long: "clients",
        short: "clients",
        align: Align::Right,
        cell: |r, _| r.clients.to_string(),
    },
    Column {
        long: "events expected",
        short: "expected",
        align: Align::Right,
        cell: |r, _| r.events_expected.to_string(),
    },
    Column {
        long: "received",
        short: "received",
        align: Align::Right,
        cell: |r, _| r.events_received.to_string(),
    },
    Column {
        long: "lost",
        short: "lost",
        align: Align::Right,
        cell: |r, _| r.lost.to_string(),
    },
    Column {
        long: "dup",
        short: "dup",
        align: Align::Right,
        cell: |r, _| r.duplicates.to_string(),
    },
    Column {
        long: "requests (client/server)",
        short: "req cli/srv",
        align: Align::Right,
        cell: |r, sep| format!("{}{sep}{}", r.requests, r.server_requests),
    },
    Column {
        long: "req per event",
        short: "req/event",
        align: Align::Right,
        cell: |r, _| num(ratio(r.requests, r.events_received)),
    },
    Column {
        long: "p50 / p99 / max latency (ms)",
        short: "p50/p99/max ms",
        align: Align::Right,
        cell: |r, sep| {
            let l = &r.latency_us;
            format!("{}{sep}{}{sep}{}", ms(l.p50), ms(l.p99), ms(l.max))
        },
    },
    Column {
        long: "bytes per event (down + up)",
        short: "bytes/event",
        align: Align::Right,
        cell: |r, _| num(r.bytes_per_event),
    },
    Column {
        long: "server CPU µs/event",
        short: "srv cpu µs/ev",
        align: Align::Right,
        cell: |r, _| num(r.server_cpu_us_per_event),
    },
    Column {
        long: "server RSS peak (MiB)",
        short: "rss MiB",
        align: Align::Right,
        cell: |r, _| fixed(r.server_rss_peak_bytes as f64 / MIB, 1),
    },
    Column {
        long: "open conns peak",
        short: "conns",
        align: Align::Right,
        cell: |r, _| r.open_connections_peak.to_string(),
    },
    Column {
        long: "loadtest CPU s",
        short: "lt cpu s",
        align: Align::Right,
        cell: |r, _| fixed(r.loadtest_cpu_s, 2),
    },
    Column {
        long: "errors",
        short: "errors",
        align: Align::Left,
        cell: |r, _| {
            if r.errors.is_empty() {
                "none".to_owned()
            } else {
                r.errors
                    .iter()
                    .map(|(kind, n)| format!("{kind}={n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        },
    },
];

/// Bytes on the wire, both directions: a table of its own, so the definitions sit
/// in its caption and the results table keeps its columns. Names as in the glossary.
pub(super) const BYTES: [Column; 8] = [
    Column {
        long: "transport",
        short: "transport",
        align: Align::Left,
        cell: |r, _| r.transport.clone(),
    },
    Column {
        long: "counted as",
        short: "counted as",
        align: Align::Left,
        cell: |r, _| r.bytes_basis.label().to_owned(),
    },
    Column {
        long: "bytes down per event",
        short: "down/event",
        align: Align::Right,
        cell: |r, _| num(r.bytes_down_per_event),
    },
    Column {
        long: "bytes up per event",
        short: "up/event",
        align: Align::Right,
        cell: |r, _| num(r.bytes_up_per_event),
    },
    Column {
        long: "bytes per event",
        short: "total/event",
        align: Align::Right,
        cell: |r, _| num(r.bytes_per_event),
    },
    Column {
        long: "bytes down per s",
        short: "down/s",
        align: Align::Right,
        cell: |r, _| num(r.bytes_down_per_s),
    },
    Column {
        long: "bytes up per s",
        short: "up/s",
        align: Align::Right,
        cell: |r, _| num(r.bytes_up_per_s),
    },
    Column {
        long: "bytes per s",
        short: "total/s",
        align: Align::Right,
        cell: |r, _| num(r.bytes_per_s),
    },
];

/// The bytes table's caption in `summary.md`: what each figure counts.
pub(super) const BYTES_CAPTION: &str = "TCP socket bytes: bytes on the clients' sockets, headers \
    and framing included (request lines and headers, chunked framing, WebSocket handshake, \
    frame headers and client masks), TCP's own headers, handshake and acknowledgements not. \
    QUIC UDP payload (WebTransport): the UDP payload of the clients' QUIC connections from \
    quinn's connection statistics, so QUIC's packet headers, encryption, acknowledgements and \
    handshake and the HTTP/3 CONNECT are in it (the transport's own overhead, which TCP's \
    figure leaves out), the UDP and IP headers not. Down = read by the subscribers, up = \
    written by them; the publisher's POSTs are not the subscribers' and are not counted. Per \
    event = the whole run's bytes ÷ events received; per s = the measured window's bytes ÷ \
    its length.";

/// The bytes table's caption in the terminal, one line.
pub(super) const BYTES_TERMINAL_CAPTION: &str = "bytes on the clients' sockets, headers included \
    (down = read, up = written); QUIC UDP payload: quinn's UDP bytes, QUIC's own overhead included";

/// One row of cells.
pub(super) fn cells<R>(columns: &[Column<R>], r: &R, sep: &str) -> Vec<String> {
    columns.iter().map(|c| (c.cell)(r, sep)).collect()
}

/// One row of the per-node table: a node of a transport's run, or the run's total. It owns
/// copies (a handful of rows), so the table's columns can be a `const` like the others.
pub(super) struct NodeRow {
    pub transport: String,
    /// The node's `--url`, or `total`.
    pub node: String,
    pub r: TransportResult,
    /// `--redis-pid`'s CPU seconds, on the total row only.
    pub redis_cpu_s: Option<f64>,
}

/// The per-node rows of a summary: for each transport measured on several nodes (or with
/// `--redis-pid`), its nodes in `--url` order, then its total. Empty for a one-server run.
pub(super) fn node_rows(summary: &crate::report::Summary) -> Vec<NodeRow> {
    let mut rows = Vec::new();
    for r in &summary.results {
        if r.nodes.is_empty() && r.redis_cpu_s.is_none() {
            continue;
        }
        for node in &r.nodes {
            rows.push(NodeRow {
                transport: r.transport.clone(),
                node: node.url.clone(),
                r: node.figures.clone(),
                redis_cpu_s: None,
            });
        }
        rows.push(NodeRow {
            transport: r.transport.clone(),
            node: "total".to_owned(),
            // The total's own nodes are on the rows above.
            r: TransportResult {
                nodes: Vec::new(),
                ..r.clone()
            },
            redis_cpu_s: r.redis_cpu_s,
        });
    }
    rows
}

/// The per-node table: where the subscribers were and what each node delivered
/// and cost, with the total as in the results table and the Redis process's CPU.
pub(super) const NODES: [Column<NodeRow>; 13] = [
    Column {
        long: "transport",
        short: "transport",
        align: Align::Left,
        cell: |n, _| n.transport.clone(),
    },
    Column {
        long: "node",
        short: "node",
        align: Align::Left,
        cell: |n, _| n.node.clone(),
    },
    Column {
        long: "subscribers",
        short: "subs",
        align: Align::Right,
        cell: |n, _| n.r.clients.to_string(),
    },
    Column {
        long: "events expected",
        short: "expected",
        align: Align::Right,
        cell: |n, _| n.r.events_expected.to_string(),
    },
    Column {
        long: "received",
        short: "received",
        align: Align::Right,
        cell: |n, _| n.r.events_received.to_string(),
    },
    Column {
        long: "lost",
        short: "lost",
        align: Align::Right,
        cell: |n, _| n.r.lost.to_string(),
    },
    Column {
        long: "dup",
        short: "dup",
        align: Align::Right,
        cell: |n, _| n.r.duplicates.to_string(),
    },
    Column {
        long: "p50 / p99 latency (ms)",
        short: "p50/p99 ms",
        align: Align::Right,
        cell: |n, sep| format!("{}{sep}{}", ms(n.r.latency_us.p50), ms(n.r.latency_us.p99)),
    },
    Column {
        long: "bytes down + up (MiB)",
        short: "MiB d+u",
        align: Align::Right,
        cell: |n, _| fixed((n.r.bytes_in + n.r.bytes_out) as f64 / MIB, 2),
    },
    Column {
        long: "server CPU s",
        short: "srv cpu s",
        align: Align::Right,
        cell: |n, _| fixed(n.r.server_cpu_s, 2),
    },
    Column {
        long: "server CPU µs/event",
        short: "srv cpu µs/ev",
        align: Align::Right,
        cell: |n, _| num(n.r.server_cpu_us_per_event),
    },
    Column {
        long: "server RSS peak (MiB)",
        short: "rss MiB",
        align: Align::Right,
        cell: |n, _| fixed(n.r.server_rss_peak_bytes as f64 / MIB, 1),
    },
    Column {
        long: "Redis process CPU s",
        short: "redis cpu s",
        align: Align::Right,
        cell: |n, _| n.redis_cpu_s.map_or_else(String::new, |s| fixed(s, 2)),
    },
];

/// The per-node table's caption in `summary.md`.
pub(super) const NODES_CAPTION: &str = "Subscriber i was on node i mod N (round-robin over the \
    `--url`s), the publisher on the first. Subscribers, deliveries, loss, latency and bytes \
    are each node's own subscribers'; server CPU, RSS and CPU per event (÷ that node's \
    deliveries) come from each node's `/api/stats`, so a server given twice shows its whole \
    figures on both rows, and the total counts each address once (RSS: the peak of the \
    nodes' sum). Redis process CPU is `--redis-pid`'s user + system time over the measured \
    window, from /proc/PID/stat.";

/// The per-node table's caption in the terminal, one line.
pub(super) const NODES_TERMINAL_CAPTION: &str =
    "per node (subscriber i on node i mod N; server figures from each node's /api/stats)";
