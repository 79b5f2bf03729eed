//! The exporters' tests: every file for a fixed summary, byte for byte against snapshots the
//! single-file exporter wrote before the split into one file per format.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::charts::BarChart;
use super::format::{num, workload_short};
use super::*;
use crate::report::{Latency, Machine, TransportResult, Workload};

const TRANSPORTS: [&str; 5] = ["poll", "longpoll", "iframe", "sse", "ws"];
const FILES: [&str; 7] = [
    "summary.json",
    "summary.csv",
    "summary.md",
    "latency.svg",
    "requests_per_event.svg",
    "bytes_per_event.svg",
    "cpu_per_event.svg",
];

fn workload() -> Workload {
    Workload {
        feed: "chat".into(),
        clients: 200,
        rate: 20.0,
        duration_s: 20.0,
        ramp_s: 2.0,
        poll_interval_ms: 1000,
        rooms: 1,
        message_size: 100,
    }
}

fn summary(results: Vec<TransportResult>) -> Summary {
    Summary {
        workload: workload(),
        machine: Machine {
            cores: 2,
            memory_bytes: 24 * 1024 * 1024 * 1024,
            os: "Linux 6.1 (x86_64)".into(),
            cpu: "Test CPU @ 2.00GHz".into(),
        },
        command: "loadtest compare --clients 200 --rate 20 --duration 20s".into(),
        started: "2026-01-02T03:04:05Z".into(),
        results,
    }
}

fn fake_result(i: usize, transport: &str) -> TransportResult {
    let scale = (5 - i) as u64;
    let mut errors = BTreeMap::new();
    if i == 1 {
        errors.insert("status 503, \"busy\"".to_owned(), 3);
        errors.insert("connect".to_owned(), 1);
    }
    TransportResult {
        transport: transport.to_owned(),
        clients: 200,
        duration_s: 20.0,
        rate: 20.0,
        events_expected: 80_000,
        events_received: 80_000 - i as u64,
        lost: i as u64,
        duplicates: 0,
        requests: 4000 * scale,
        server_requests: 4000 * scale + 2,
        requests_per_s: 200.0 * scale as f64,
        latency_us: Latency {
            p50: 1500 * scale * scale,
            p90: 2500 * scale * scale,
            p99: 4200 * scale * scale,
            p999: 5000 * scale * scale,
            max: 9000 * scale * scale,
            mean: 1750.5 * scale as f64,
        },
        bytes_basis: crate::report::ByteBasis::Tcp,
        bytes_in: 30_000_000 * scale,
        bytes_out: 2_000_000 * scale,
        bytes_per_event: 375.25 * scale as f64,
        bytes_down_per_event: 75.0 * scale as f64,
        bytes_up_per_event: 6.25 * scale as f64,
        bytes_down_per_s: 7500.0 * scale as f64,
        bytes_up_per_s: 750.0 * scale as f64,
        bytes_per_s: 8250.0 * scale as f64,
        server_cpu_s: 1.5 * scale as f64,
        server_cpu_us_per_event: 18.75 * scale as f64,
        server_rss_peak_bytes: 40 * 1024 * 1024 + i as u64 * 1_000_000,
        open_connections_peak: 200 + i as i64,
        loadtest_cpu_s: 3.25,
        errors,
        faults: None,
        datagrams: None,
        draw: None,
        nodes: Vec::new(),
        redis_cpu_s: None,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "loadtest-export-{name}-{}-{nanos}",
        std::process::id()
    ))
}

/// Splits one CSV line into fields, honouring quotes (RFC 4180).
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {line:?}");
    fields
}

#[test]
fn writes_every_file_for_five_transports() {
    let s = summary(
        TRANSPORTS
            .iter()
            .enumerate()
            .map(|(i, t)| fake_result(i, t))
            .collect(),
    );
    let dir = temp_dir("five");
    write_all(&dir, &s).unwrap();
    // Rewriting over existing files works too (called after each transport).
    write_all(&dir, &s).unwrap();

    for file in FILES {
        assert!(dir.join(file).is_file(), "{file} missing");
        assert!(!dir.join(format!("{file}.tmp")).exists(), "{file}.tmp left");
    }

    let json = fs::read_to_string(dir.join("summary.json")).unwrap();
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);

    let csv = fs::read_to_string(dir.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    for line in &lines {
        assert_eq!(parse_csv_line(line).len(), csv::COLUMNS.len(), "{line}");
    }
    assert_eq!(parse_csv_line(lines[0])[11], "latency_p50_us");
    let longpoll = parse_csv_line(lines[2]);
    assert_eq!(longpoll[0], "longpoll");
    assert_eq!(longpoll[25], "connect=1;status 503, \"busy\"=3");
    assert_eq!(longpoll[24], "3.25");

    assert_eq!(parse_csv_line(lines[0])[26], "bytes_down_per_event");
    assert_eq!(longpoll[26], "300");
    assert_eq!(longpoll[30], "33000");

    let md = fs::read_to_string(dir.join("summary.md")).unwrap();
    let (md_main, md_bytes) = md.split_once("## Bytes on the wire").unwrap();
    let bytes_table: Vec<&str> = md_bytes.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(bytes_table.len(), 2 + 5, "{md}");
    assert!(
        bytes_table[3].starts_with(
            "| longpoll | TCP socket bytes | 300 | 25 | 1501 | 30000 | 3000 | 33000 |"
        ),
        "{}",
        bytes_table[3]
    );
    let table: Vec<&str> = md_main.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 2 + 5, "{md}");
    assert!(table[1].starts_with("|---|---:|"));
    assert!(md.contains("```sh\nloadtest compare --clients 200"));
    assert!(md.contains("2 cores, 24.0 GiB memory, Linux 6.1 (x86_64), Test CPU"));
    // poll: p50 1500 µs × 25 = 37.5 ms, p99 105.0 ms, max 225.0 ms.
    assert!(
        table[2].contains("| 37.5 / 105.0 / 225.0 |"),
        "{}",
        table[2]
    );
    for row in &table[2..] {
        assert_eq!(
            row.matches(" | ").count(),
            columns::RESULTS.len() - 1,
            "{row}"
        );
    }

    for chart in BarChart::all() {
        let svg = fs::read_to_string(dir.join(chart.file)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", chart.file);
        // A title too wide for one line is broken after its dash.
        let title = chart.title(&s.workload);
        assert!(
            title.split(" — ").all(|part| svg.contains(part)),
            "{} lacks its title {title:?}",
            chart.file
        );
        assert!(svg.contains("200 clients, 20 msg/s, 20 s"));
        assert!(svg.contains(">\ntransport\n<") || svg.contains(">transport<"));
        for t in TRANSPORTS {
            assert!(
                svg.contains(&format!(">\n{t}\n<")),
                "{} lacks {t}",
                chart.file
            );
        }
    }
    let latency = fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(latency.contains("Delivery latency (p50/p90/p99) — 200 clients, 20 msg/s, 20 s"));
    for legend in ["p50", "p90", "p99"] {
        assert!(
            latency.contains(&format!(">\n{legend}\n<")),
            "legend {legend}"
        );
    }

    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zeros_and_non_finite_values_render() {
    let zero = TransportResult {
        transport: "ws".into(),
        ..TransportResult::default()
    };
    let weird = TransportResult {
        transport: "sse".into(),
        bytes_per_event: f64::NAN,
        server_cpu_us_per_event: f64::INFINITY,
        loadtest_cpu_s: f64::NEG_INFINITY,
        ..TransportResult::default()
    };
    for results in [vec![zero.clone()], vec![zero, weird], vec![]] {
        let s = summary(results);
        let dir = temp_dir("zeros");
        write_all(&dir, &s).unwrap();
        for file in FILES {
            assert!(dir.join(file).is_file(), "{file} missing");
        }
        let table = terminal_table(&s);
        assert_eq!(table.lines().count(), 2 + s.results.len());
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn terminal_table_is_aligned() {
    let s = summary(
        TRANSPORTS
            .iter()
            .enumerate()
            .map(|(i, t)| fake_result(i, t))
            .collect(),
    );
    let table = terminal_table(&s);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 7, "{table}");
    assert!(lines[0].starts_with("transport  clients"));
    assert!(lines[1].chars().all(|c| c == '-' || c == ' '));
    // Every right-aligned column ends at the same character position on every line: the
    // header and rule lines and all rows agree up to the errors column.
    let chars: Vec<Vec<char>> = lines.iter().map(|l| l.chars().collect()).collect();
    let errors_at = chars[0].len() - "errors".len();
    for line in &chars {
        let line: String = line.iter().collect();
        let before: String = line.chars().take(errors_at).collect();
        assert_eq!(before.chars().count(), errors_at, "{line}");
        assert!(before.ends_with("  ") && !before.ends_with("   "), "{line}");
    }
    assert!(lines[3].starts_with("longpoll "));
    assert!(lines[3].ends_with("connect=1, status 503, \"busy\"=3"));
}

#[test]
fn numbers_and_quoting() {
    assert_eq!(num(0.0), "0");
    assert_eq!(num(20.0), "20");
    assert_eq!(num(2.5), "2.5");
    assert_eq!(num(0.05), "0.05");
    assert_eq!(num(0.0025), "0.0025");
    assert_eq!(num(375.25), "375");
    assert_eq!(num(12.345), "12.3");
    assert_eq!(num(f64::NAN), "n/a");
    assert_eq!(num(f64::INFINITY), "n/a");
    assert_eq!(csv::field("plain"), "plain");
    assert_eq!(csv::field("a,b"), "\"a,b\"");
    assert_eq!(csv::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(markdown::cell("a|b"), "a\\|b");
    let w = Workload {
        feed: "clock".into(),
        ..workload()
    };
    assert_eq!(
        workload_short(&w),
        "clock feed, 200 clients, 20 msg/s, 20 s"
    );
}

fn five_transports() -> Summary {
    summary(
        TRANSPORTS
            .iter()
            .enumerate()
            .map(|(i, t)| fake_result(i, t))
            .collect(),
    )
}

/// Zeros, NaN and infinities, which every format must still render.
fn odd_values() -> Summary {
    summary(vec![
        TransportResult {
            transport: "ws".into(),
            ..TransportResult::default()
        },
        TransportResult {
            transport: "sse".into(),
            bytes_per_event: f64::NAN,
            server_cpu_us_per_event: f64::INFINITY,
            loadtest_cpu_s: f64::NEG_INFINITY,
            ..TransportResult::default()
        },
    ])
}

/// Every output, for both fixed summaries, is byte for byte what the exporter wrote before
/// it was split into one file per format (the snapshots under `snapshots/`, written by that
/// exporter): results written before and after the split compare as they are. The charts
/// have changed on purpose since (latency on a log axis, n/a for a value that is not a
/// figure, text of at least 14 px as the pages show them), each time with their snapshots rewritten.
#[test]
fn every_output_matches_its_snapshot_byte_for_byte() {
    macro_rules! snapshot {
        ($case:literal, $file:literal) => {
            (
                $case,
                $file,
                include_str!(concat!("snapshots/", $case, "/", $file)),
            )
        };
    }
    let expected = [
        snapshot!("five", "summary.json"),
        snapshot!("five", "summary.csv"),
        snapshot!("five", "summary.md"),
        snapshot!("five", "latency.svg"),
        snapshot!("five", "requests_per_event.svg"),
        snapshot!("five", "bytes_per_event.svg"),
        snapshot!("five", "cpu_per_event.svg"),
        snapshot!("five", "terminal.txt"),
        snapshot!("five", "terminal_bytes.txt"),
        snapshot!("odd", "summary.json"),
        snapshot!("odd", "summary.csv"),
        snapshot!("odd", "summary.md"),
        snapshot!("odd", "latency.svg"),
        snapshot!("odd", "requests_per_event.svg"),
        snapshot!("odd", "bytes_per_event.svg"),
        snapshot!("odd", "cpu_per_event.svg"),
        snapshot!("odd", "terminal.txt"),
        snapshot!("odd", "terminal_bytes.txt"),
    ];
    for (case, file, want) in expected {
        let s = if case == "five" {
            five_transports()
        } else {
            odd_values()
        };
        let got = match file {
            "terminal.txt" => terminal_table(&s),
            "terminal_bytes.txt" => terminal_bytes_table(&s),
            _ => exporters()
                .into_iter()
                .find(|e| e.file_name() == file)
                .unwrap_or_else(|| panic!("no exporter writes {file}"))
                .render(&s)
                .unwrap(),
        };
        // UPDATE_SNAPSHOTS=1 rewrites the snapshots (when a chart changes on purpose);
        // `git diff` then shows exactly which outputs changed.
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/export/snapshots")
                .join(case)
                .join(file);
            fs::write(&path, &got).unwrap();
            continue;
        }
        assert!(
            got == want,
            "{case}/{file} differs from its snapshot:\n{got}"
        );
    }
    // And the exporters write exactly the files the snapshots hold, in this order.
    let names: Vec<String> = exporters()
        .iter()
        .map(|e| e.file_name().to_owned())
        .collect();
    assert_eq!(names, FILES);
}

/// A run over two nodes, with `--redis-pid`: the total as today, and one row per node.
fn two_nodes() -> Summary {
    let mut total = fake_result(0, "sse");
    let node = |i: usize, url: &str| crate::report::NodeResult {
        url: url.to_owned(),
        figures: TransportResult {
            clients: 100,
            events_expected: 40_000,
            events_received: 40_000 - i as u64,
            lost: i as u64,
            bytes_in: 15_000_000,
            bytes_out: 1_000_000,
            server_cpu_s: 1.25,
            errors: BTreeMap::new(),
            ..fake_result(i, "sse")
        },
    };
    total.nodes = vec![
        node(0, "http://127.0.0.1:4001/"),
        node(1, "http://127.0.0.1:4002/"),
    ];
    total.redis_cpu_s = Some(0.75);
    summary(vec![total])
}

#[test]
fn a_run_over_nodes_has_a_row_per_node_and_the_total_in_every_format() {
    let s = two_nodes();
    let json = exporters()[0].render(&s).unwrap();
    assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), s);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["results"][0]["nodes"][1]["url"], "http://127.0.0.1:4002/");
    assert_eq!(v["results"][0]["nodes"][1]["lost"], 1);
    assert_eq!(v["results"][0]["redis_cpu_s"], 0.75);

    let csv = exporters()[1].render(&s).unwrap();
    let lines: Vec<Vec<String>> = csv.lines().map(parse_csv_line).collect();
    assert_eq!(lines.len(), 1 + 3, "{csv}");
    let width = csv::COLUMNS.len() + csv::NODE_COLUMNS.len();
    assert!(lines.iter().all(|l| l.len() == width), "{csv}");
    assert_eq!(lines[0][34..], ["node", "redis_cpu_s"]);
    // The total first, with today's columns unchanged, then each node.
    assert_eq!(lines[1][..34], parse_csv_line(&line_of(&s.results[0]))[..]);
    assert_eq!(lines[1][34..], ["total", "0.75"]);
    assert_eq!(lines[2][34..], ["http://127.0.0.1:4001/", ""]);
    assert_eq!((lines[3][1].as_str(), lines[3][6].as_str()), ("100", "1"));

    let md = exporters()[2].render(&s).unwrap();
    let (_, nodes) = md.split_once("## Per node").unwrap();
    let rows: Vec<&str> = nodes.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 2 + 3, "{md}");
    assert!(rows[0].contains("| Redis process CPU s |"), "{}", rows[0]);
    assert!(
        rows[2].starts_with("| sse | http://127.0.0.1:4001/ | 100 | 40000 | 40000 | 0 |"),
        "{}",
        rows[2]
    );
    assert!(
        rows[4].starts_with("| sse | total | 200 | 80000 |"),
        "{}",
        rows[4]
    );
    assert!(rows[4].ends_with("| 0.75 |"), "{}", rows[4]);

    let terminal = terminal_nodes_table(&s).unwrap();
    assert_eq!(terminal.lines().count(), 1 + 2 + 3, "{terminal}");
    assert!(terminal.lines().nth(4).unwrap().contains("127.0.0.1:4002"));
    // A one-server run has no per-node table (its files are the snapshots above).
    assert!(terminal_nodes_table(&five_transports()).is_none());
    assert!(
        !exporters()[2]
            .render(&five_transports())
            .unwrap()
            .contains("Per node")
    );
}

/// One transport's row of today's CSV columns.
fn line_of(r: &TransportResult) -> String {
    csv::COLUMNS
        .iter()
        .map(|(_, value)| csv::field(&value(r)))
        .collect::<Vec<_>>()
        .join(",")
}
