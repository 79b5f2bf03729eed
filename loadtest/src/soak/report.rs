//! What a soak records, as plain data, and its four files in the output directory:
//! `samples.csv` (one row per sample), `summary.json` (everything), `chart.svg` (RSS, open
//! connections and chat p99 over time) and `README.md` (the command, the machine and the
//! reading, with the "RSS flat after warm-up" check in numbers). They are rewritten after
//! every sample, so an interrupted soak keeps what it measured.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use pushpoll::names::{FeedName, Transport};
use serde::{Deserialize, Serialize};

use super::SoakPlan;
use crate::clients::Client;
use crate::export::write_atomic;
use crate::report::Machine;

/// One sample: the server's own figures, and the clients' delivery p99 over the window
/// since the previous sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t_s: f64,
    pub rss_bytes: u64,
    /// TCP connections open (`/api/stats` `connections.open`).
    pub open: i64,
    /// Streams, sockets, parked long polls and WebTransport sessions open, by transport.
    pub open_by_transport: BTreeMap<String, i64>,
    /// Connections refused because their peer was at its cap, so far.
    pub rejected_per_peer: u64,
    /// Connections closed because their writes stalled, so far.
    pub send_timeouts: u64,
    /// p99 delivery latency in ms over the window, by `feed/transport`; `None` when nothing
    /// was delivered in it.
    pub p99_ms: BTreeMap<String, Option<f64>>,
    /// Errors the subscribers met so far (all groups).
    pub client_errors: u64,
}

impl Sample {
    pub fn from_stats(
        t_s: f64,
        stats: &pushpoll::stats::Snapshot,
        p99_ms: BTreeMap<String, Option<f64>>,
        client_errors: u64,
    ) -> Sample {
        Sample {
            t_s,
            rss_bytes: stats.process.rss_bytes,
            open: stats.connections.open,
            open_by_transport: stats
                .transports
                .iter()
                .map(|(name, figures)| {
                    // WebTransport's sessions are counted in the statistics' own section,
                    // which its `transports` row may not repeat.
                    let open = if name == pushpoll::names::Transport::WebTransport.as_str() {
                        figures.open.max(stats.webtransport.open)
                    } else {
                        figures.open
                    };
                    (name.clone(), open)
                })
                .collect(),
            rejected_per_peer: stats.connections.rejected_per_peer,
            send_timeouts: stats.connections.send_timeouts,
            p99_ms,
            client_errors,
        }
    }
}

/// The p99 of a window, in ms.
pub fn p99_ms(h: &Histogram<u64>) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
}

/// `poll 12 · longpoll 3 …` for the groups whose key starts with `prefix`.
pub fn p99_line(p99: &BTreeMap<String, Option<f64>>, prefix: &str) -> String {
    Transport::NAMES
        .iter()
        .map(|t| {
            let v = p99.get(&format!("{prefix}{t}")).copied().flatten();
            format!("{t} {}", v.map_or("-".into(), |v| format!("{v:.0}")))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Warm-up is the first 40 % of the run (minutes 0-4 of 10): the time the server's bounded
/// caches take to fill. The largest is the chat's window of the 4,096 newest events kept in
/// memory (each with its JSON and its SSE, iframe and WebSocket framings), which the soak's
/// 40 messages a second (plus presence events) fill in under 2 minutes; SQLite's page cache
/// (2 MB by default, full once the database has grown past it, about 3 minutes at that rate)
/// and the sessions made by the login flood are the others.
pub const WARM_UP: f64 = 0.4;
/// The later window whose largest RSS is compared with the end of warm-up: from 50 % on.
pub const CHECK_FROM: f64 = 0.5;

/// "RSS flat after warm-up", in numbers: the largest RSS from [`CHECK_FROM`] of the run on
/// (minute 5 of 10) against the RSS at the end of warm-up (the last sample at or before
/// [`WARM_UP`]: minute 4 of 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flatness {
    pub baseline_t_s: f64,
    pub baseline_rss_bytes: u64,
    pub later_max_t_s: f64,
    pub later_max_rss_bytes: u64,
    /// Growth of the later maximum over the baseline, in percent (negative: it shrank).
    pub growth_pct: f64,
    pub tolerance_pct: f64,
    pub flat: bool,
}

/// The flatness check over `samples` of a run of `duration`; `None` when the samples do not
/// reach both windows (a run cut short, or sampled too rarely).
pub fn flatness(samples: &[Sample], duration: Duration, tolerance_pct: f64) -> Option<Flatness> {
    let secs = duration.as_secs_f64();
    let warm_end = WARM_UP * secs;
    let later_from = CHECK_FROM * secs;
    // Half a second of slack: samples are taken on a timer and land a little late.
    let baseline = samples
        .iter()
        .rev()
        .find(|s| s.t_s > 0.0 && s.t_s <= warm_end + 0.5)?;
    let later = samples
        .iter()
        .filter(|s| s.t_s >= later_from - 0.5)
        .max_by_key(|s| s.rss_bytes)?;
    let growth_pct = if baseline.rss_bytes == 0 {
        0.0
    } else {
        (later.rss_bytes as f64 / baseline.rss_bytes as f64 - 1.0) * 100.0
    };
    Some(Flatness {
        baseline_t_s: baseline.t_s,
        baseline_rss_bytes: baseline.rss_bytes,
        later_max_t_s: later.t_s,
        later_max_rss_bytes: later.rss_bytes,
        growth_pct,
        tolerance_pct,
        flat: growth_pct <= tolerance_pct,
    })
}

/// What the chat subscribers received of what the server acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatDelivery {
    /// Messages the server acknowledged (`201`).
    pub acked: u64,
    /// Acknowledged messages of their room that chat subscribers were owed, all together.
    pub expected: u64,
    pub received: u64,
    /// Owed and never received, by transport.
    pub lost: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub publish_errors: BTreeMap<String, u64>,
}

impl ChatDelivery {
    /// Adds the chat subscribers of one transport: each is owed every acknowledged message
    /// of its room.
    pub fn add(
        &mut self,
        transport: Transport,
        clients: &[Client],
        acked_rooms: &HashMap<u64, usize>,
        rooms: usize,
    ) {
        let mut per_room = vec![0u64; rooms];
        for room in acked_rooms.values() {
            if let Some(n) = per_room.get_mut(*room) {
                *n += 1;
            }
        }
        let lost = self.lost.entry(transport.to_string()).or_default();
        for client in clients {
            let room = client.index % rooms;
            let got = client
                .seen
                .iter()
                .filter(|id| acked_rooms.get(id) == Some(&room))
                .count() as u64;
            self.expected += per_room[room];
            self.received += got;
            *lost += per_room[room].saturating_sub(got);
        }
    }
}

/// Everything a soak produced; `summary.json` is this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakSummary {
    pub command: String,
    pub machine: Machine,
    pub started: String,
    pub duration_s: f64,
    pub sample_every_s: f64,
    pub subscribers_per_group: usize,
    pub chat_rate: f64,
    pub rooms: usize,
    pub samples: Vec<Sample>,
    pub flatness: Option<Flatness>,
    pub chat: ChatDelivery,
    /// Subscriber reconnects made on purpose (drop and resume from the cursor).
    pub restarts: u64,
    /// Subscriber errors by `feed/transport`, then by kind.
    pub client_errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// Whether the hostile clients ran (`--no-hostile` leaves them out).
    pub hostile_clients: bool,
    /// What the hostile clients got, by outcome.
    pub hostile: BTreeMap<String, u64>,
    pub stats_failures: u64,
    /// Why the soak ended early, if it did.
    pub aborted: Option<String>,
}

impl SoakSummary {
    pub fn new(plan: &SoakPlan, command: String) -> SoakSummary {
        SoakSummary {
            command,
            machine: crate::machine::describe(),
            started: pushpoll::feed::clock::rfc3339_utc(pushpoll::feed::clock::now_micros() / 1000),
            duration_s: plan.duration.as_secs_f64(),
            sample_every_s: plan.sample_every.as_secs_f64(),
            subscribers_per_group: plan.clients,
            chat_rate: plan.rate,
            rooms: plan.rooms,
            samples: Vec::new(),
            flatness: None,
            chat: ChatDelivery::default(),
            restarts: 0,
            client_errors: BTreeMap::new(),
            hostile_clients: true,
            hostile: BTreeMap::new(),
            stats_failures: 0,
            aborted: None,
        }
    }
}

/// (Re)writes the four files.
pub fn write(dir: &Path, summary: &SoakSummary) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(summary)?;
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    write_atomic(&dir.join("samples.csv"), csv(&summary.samples).as_bytes())?;
    write_atomic(
        &dir.join(super::chart::FILE),
        super::chart::render(summary)?.as_bytes(),
    )?;
    write_atomic(&dir.join("README.md"), readme(summary).as_bytes())?;
    Ok(())
}

fn group_keys() -> Vec<String> {
    [FeedName::Chat.as_str(), FeedName::Clock.as_str()]
        .iter()
        .flat_map(|f| Transport::NAMES.iter().map(move |t| format!("{f}/{t}")))
        .collect()
}

/// One row per sample; a window without deliveries has an empty p99 cell.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("t_s,rss_bytes,open");
    for t in Transport::NAMES {
        let _ = write!(out, ",open_{t}");
    }
    out.push_str(",rejected_per_peer,send_timeouts,client_errors");
    for key in group_keys() {
        let _ = write!(out, ",p99_ms_{}", key.replace('/', "_"));
    }
    out.push('\n');
    for s in samples {
        let _ = write!(out, "{:.1},{},{}", s.t_s, s.rss_bytes, s.open);
        for t in Transport::NAMES {
            let _ = write!(out, ",{}", s.open_by_transport.get(t).copied().unwrap_or(0));
        }
        let _ = write!(
            out,
            ",{},{},{}",
            s.rejected_per_peer, s.send_timeouts, s.client_errors
        );
        for key in group_keys() {
            match s.p99_ms.get(&key).copied().flatten() {
                Some(v) => {
                    let _ = write!(out, ",{v:.1}");
                }
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The reading, as a few lines of Markdown: flatness, connections, latency, delivery.
pub fn reading(s: &SoakSummary) -> String {
    let mut out = String::new();
    match &s.flatness {
        Some(f) => {
            let _ = writeln!(
                out,
                "- **RSS flat after warm-up: {}.** Largest RSS from {:.0} s on: {} (at {:.0} s), against {} at the end of warm-up ({:.0} s): {:+.1} % (flat means at most {:+.0} %).",
                if f.flat { "yes" } else { "NO" },
                CHECK_FROM * s.duration_s,
                mb(f.later_max_rss_bytes),
                f.later_max_t_s,
                mb(f.baseline_rss_bytes),
                f.baseline_t_s,
                f.growth_pct,
                f.tolerance_pct
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- **RSS flat after warm-up: not measured** (the samples do not cover both the end of warm-up, 40 % of the run, and the rest, from 50 %)."
            );
        }
    }
    let busy: Vec<&Sample> = s.samples.iter().filter(|x| x.t_s > 0.0).collect();
    if let (Some(lo), Some(hi)) = (
        busy.iter().map(|x| x.open).min(),
        busy.iter().map(|x| x.open).max(),
    ) {
        let _ = writeln!(
            out,
            "- Open connections after the start: {lo} to {hi}; per-peer refusals at the end: {}, write-stall closes: {}.",
            busy.last().map_or(0, |x| x.rejected_per_peer),
            busy.last().map_or(0, |x| x.send_timeouts)
        );
    }
    for feed in [FeedName::Chat.as_str(), FeedName::Clock.as_str()] {
        let worst: Vec<String> = Transport::NAMES
            .iter()
            .map(|t| {
                let key = format!("{feed}/{t}");
                let max = busy
                    .iter()
                    .filter_map(|x| x.p99_ms.get(&key).copied().flatten())
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                format!("{t} {}", max.map_or("-".into(), |v| format!("{v:.0}")))
            })
            .collect();
        let _ = writeln!(
            out,
            "- Worst per-window {feed} p99 (ms): {}.",
            worst.join(" · ")
        );
    }
    let lost: u64 = s.chat.lost.values().sum();
    let _ = writeln!(
        out,
        "- Chat: {} messages acknowledged; subscribers were owed {} deliveries, received {}, lost {} ({}), duplicates {}; {} planned reconnects.",
        s.chat.acked,
        s.chat.expected,
        s.chat.received,
        lost,
        s.chat
            .lost
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(" · "),
        s.chat.duplicates,
        s.restarts
    );
    if let Some(why) = &s.aborted {
        let _ = writeln!(out, "- **Ended early:** {why}.");
    }
    out
}

fn readme(s: &SoakSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Soak: {:.0} s of mixed traffic\n", s.duration_s);
    let _ = writeln!(out, "Command: `{}`  ", s.command);
    let _ = writeln!(out, "Started: {}  ", s.started);
    let _ = writeln!(
        out,
        "Machine: {} cores, {:.1} GB, {}, {}\n",
        s.machine.cores,
        s.machine.memory_bytes as f64 / 1e9,
        s.machine.os,
        s.machine.cpu
    );
    // The transport × feed groups the samples name (a soak from before a transport existed
    // has fewer).
    let groups: std::collections::BTreeSet<&str> = s
        .samples
        .iter()
        .flat_map(|sample| sample.p99_ms.keys())
        .map(String::as_str)
        .collect();
    let transports: std::collections::BTreeSet<&str> = groups
        .iter()
        .filter_map(|g| g.split_once('/').map(|(_, t)| t))
        .collect();
    let _ = writeln!(
        out,
        "Traffic: {} transports on the clock and the chat, {} subscribers each (so {} in all, a quarter of them dropping their connection every 10-30 s and resuming from their cursor), chat senders at {} messages/s over {} rooms, and hostile clients (below), each kind from its own 127.0.0.x address. Sampled at start and every {:.0} s. Warm-up is the first 40 % of the run: the time the server's bounded caches take to fill (the chat's 4,096 newest events kept in memory with their framings, SQLite's 2 MB page cache as the database grows past it, the sessions the login flood makes); flat means the largest RSS from 50 % on is within the tolerance of the RSS at the end of warm-up.\n",
        transports.len(),
        s.subscribers_per_group,
        s.subscribers_per_group * groups.len(),
        s.chat_rate,
        s.rooms,
        s.sample_every_s
    );
    let _ = writeln!(out, "## Reading\n\n{}", reading(s));
    let _ = writeln!(
        out,
        "![RSS, open connections and chat p99 over time](chart.svg)\n"
    );
    let _ = writeln!(out, "## Samples\n");
    // The transports' columns from names.rs, in the server's order.
    let names = Transport::NAMES;
    let (columns, dots) = (names.join(" | "), names.join(" · "));
    let _ = writeln!(
        out,
        "| t (s) | RSS | open | {columns} | chat p99 ms ({dots}) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|{}---|", "---:|".repeat(names.len()));
    for x in &s.samples {
        let open = names.map(|t| x.open_by_transport.get(t).map_or(0, |n| *n).to_string());
        let _ = writeln!(
            out,
            "| {:.0} | {} | {} | {} | {} |",
            x.t_s,
            mb(x.rss_bytes),
            x.open,
            open.join(" | "),
            p99_line(&x.p99_ms, "chat/")
        );
    }
    let _ = writeln!(out, "\n## Hostile clients: what they got\n");
    if s.hostile_clients {
        let _ = writeln!(out, "{}", super::hostile::DESCRIPTION);
    } else {
        let _ = writeln!(out, "None: this run left them out (`--no-hostile`).\n");
    }
    let _ = writeln!(out, "| outcome | count |\n|---|---:|");
    for (k, v) in &s.hostile {
        let _ = writeln!(out, "| `{k}` | {v} |");
    }
    let _ = writeln!(out, "\n## Subscriber errors\n");
    let _ = writeln!(out, "| group | errors |\n|---|---|");
    for (group, errors) in &s.client_errors {
        let text = errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {group} | {} |",
            if text.is_empty() { "none" } else { &text }
        );
    }
    out.push_str(
        "\nFiles: `samples.csv` (one row per sample), `summary.json` (everything here), `chart.svg`.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, rss_mb: u64) -> Sample {
        Sample {
            t_s,
            rss_bytes: rss_mb * 1_000_000,
            open: 300,
            open_by_transport: BTreeMap::from([("sse".to_string(), 60)]),
            rejected_per_peer: 0,
            send_timeouts: 0,
            p99_ms: BTreeMap::from([
                ("chat/sse".to_string(), Some(2.5)),
                ("chat/poll".to_string(), None),
            ]),
            client_errors: 0,
        }
    }

    fn ten_minutes(rss: [u64; 11]) -> Vec<Sample> {
        rss.iter()
            .enumerate()
            .map(|(m, r)| sample(m as f64 * 60.0 + 0.2, *r))
            .collect()
    }

    #[test]
    fn flat_compares_minutes_five_to_ten_with_minute_four() {
        let samples = ten_minutes([12, 30, 36, 39, 40, 41, 43, 42, 41, 42, 43]);
        let f = flatness(&samples, Duration::from_secs(600), 10.0).unwrap();
        assert_eq!(f.baseline_rss_bytes, 40_000_000);
        assert!((f.baseline_t_s - 240.2).abs() < 1e-9);
        assert_eq!(f.later_max_rss_bytes, 43_000_000);
        assert!((f.growth_pct - 7.5).abs() < 1e-9, "{f:?}");
        assert!(f.flat);
    }

    #[test]
    fn growth_past_the_tolerance_is_not_flat() {
        let samples = ten_minutes([12, 30, 40, 44, 48, 52, 56, 60, 64, 68, 72]);
        let f = flatness(&samples, Duration::from_secs(600), 10.0).unwrap();
        assert_eq!(f.later_max_rss_bytes, 72_000_000);
        assert!((f.growth_pct - 50.0).abs() < 1e-9);
        assert!(!f.flat);
    }

    #[test]
    fn too_few_samples_are_no_verdict() {
        // Only the start sample and the end: no end-of-warm-up sample.
        let samples = vec![sample(0.0, 12), sample(90.0, 30)];
        assert_eq!(flatness(&samples, Duration::from_secs(90), 10.0), None);
        // Cut short before 50 %.
        let samples = vec![sample(0.0, 12), sample(60.0, 30), sample(120.0, 31)];
        assert_eq!(flatness(&samples, Duration::from_secs(600), 10.0), None);
    }

    #[test]
    fn csv_has_one_row_per_sample_and_blank_cells_for_empty_windows() {
        let text = csv(&[sample(0.0, 12), sample(60.0, 40)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(header.len(), row.len());
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        assert_eq!(row[col("rss_bytes")], "40000000");
        assert_eq!(row[col("open_sse")], "60");
        assert_eq!(row[col("open_ws")], "0");
        assert_eq!(row[col("p99_ms_chat_sse")], "2.5");
        assert_eq!(row[col("p99_ms_chat_poll")], "");
    }

    #[test]
    fn delivery_counts_what_each_room_was_owed() {
        // Messages 1, 2 in room 0; 3 in room 1.
        let acked = HashMap::from([(1, 0), (2, 0), (3, 1)]);
        let mut a = Client::new(0, "lobby".into(), None);
        a.seen.extend([1, 2, 3]);
        let mut b = Client::new(1, "room1".into(), None);
        b.seen.extend([99]);
        let mut d = ChatDelivery::default();
        d.add(Transport::Sse, &[a, b], &acked, 2);
        assert_eq!(d.expected, 3);
        assert_eq!(d.received, 2);
        assert_eq!(d.lost["sse"], 1);
    }

    #[test]
    fn the_files_render_from_a_summary() {
        let args = crate::cli::SoakArgs {
            url: "http://127.0.0.1:3000".into(),
            duration: "600s".into(),
            sample_every: "60s".into(),
            clients: 30,
            rate: 5.0,
            rooms: 4,
            rss_tolerance: 10.0,
            out: "results/soak".into(),
            no_hostile: false,
            invoked_as: None,
        };
        let plan = SoakPlan::new(&args).unwrap();
        let mut summary = SoakSummary::new(&plan, "scripts/soak.sh".into());
        summary.samples = ten_minutes([12, 30, 40, 41, 42, 41, 43, 42, 41, 42, 43]);
        summary.flatness = flatness(&summary.samples, plan.duration, 10.0);
        let svg = super::super::chart::render(&summary).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("server RSS"));
        // What the soak writes is what `loadtest charts` draws again from its summary.json.
        let dir = std::env::temp_dir().join(format!("loadtest-soak-{}", std::process::id()));
        write(&dir, &summary).unwrap();
        assert_eq!(
            super::super::charts_of(&dir).unwrap(),
            [(super::super::chart::FILE.to_owned(), svg)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let md = readme(&summary);
        assert!(md.contains("RSS flat after warm-up: yes."), "{md}");
        assert!(md.contains("43.0 MB (at 600 s)"), "{md}");
    }
}
