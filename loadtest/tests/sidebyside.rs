//! `loadtest peers DIR` (the old name of `side-by-side`, which must keep working) on a small real pair: one SSE run against pushpoll (spawned by
//! loadtest) and one against nginx + Nchan (scripts/nchan.sh), laid out as
//! scripts/bench-peers.sh lays them out. The `rss.json` before-figures and the wrk outputs are
//! written by the test with round numbers, so the derived figures can be checked exactly; the
//! runs' own figures are read back from their summary.json. Without nginx + nchan the test
//! skips, except under CI=true, where it fails.

mod common;

use std::fs;
use std::path::Path;

use common::nchan::nchan_or_skip;
use common::{loadtest, summary_of};
use serde_json::Value;

/// Enough deliveries (200 × 20 msg/s × 2 s = 8,000) that each server's CPU, read from /proc in
/// 10 ms ticks, is normally more than zero ticks.
const CLIENTS: u64 = 200;
/// The before-figure written into each run's rss.json: 1 MiB.
const BEFORE: u64 = 1 << 20;

fn sse_run(out: &Path, peer: Option<&str>) -> Value {
    let mut cmd = loadtest();
    cmd.args([
        "run",
        "--transport",
        "sse",
        "--clients",
        &CLIENTS.to_string(),
    ])
    .args(["--rate", "20", "--duration", "2s", "--ramp", "500ms"]);
    if let Some(url) = peer {
        cmd.args(["--peer", "nchan", "--url", url]);
    }
    cmd.arg("--out").arg(out);
    let summary = summary_of(&mut cmd, out);
    fs::write(
        out.join("rss.json"),
        format!(r#"{{"rss_before_bytes": {BEFORE}, "rss_after_bytes": null, "after_wait_s": 10}}"#),
    )
    .unwrap();
    summary["results"][0].clone()
}

fn wrk(dir: &Path, label: &str, rps: &str, answer: &str) {
    let d = dir.join("wrk").join(label);
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("healthz.txt"),
        format!("Running 1s test @ http://127.0.0.1:1/healthz\nRequests/sec: {rps}\n"),
    )
    .unwrap();
    fs::write(d.join("healthz.answer"), answer).unwrap();
}

#[test]
fn report_puts_pushpoll_and_nchan_side_by_side_with_ratios_from_the_runs() {
    let Some(nchan) = nchan_or_skip() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("loadtest-peers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let pp = sse_run(&dir.join("runs/pushpoll/sse-200"), None);
    let nc = sse_run(&dir.join("runs/nchan/sse-200"), Some(&nchan.url));
    drop(nchan);
    wrk(&dir, "pushpoll", "30000.00", "200 116 2");
    wrk(&dir, "nchan", "40000.00", "200 147 2");

    let out = loadtest().arg("peers").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let summary: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["labels"], serde_json::json!(["pushpoll", "nchan"]));
    let cpu = |r: &Value| r["server_cpu_us_per_event"].as_f64().unwrap();
    let got = &summary["cpu_ratios"][0]["cpu_per_delivery_ratio"];
    if cpu(&nc) > 0.0 {
        let expected = cpu(&pp) / cpu(&nc);
        let got = got.as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-9 * expected.max(1.0),
            "{got} vs {expected}"
        );
    } else {
        // Less than one 10 ms tick of nginx CPU: no ratio rather than an infinite one.
        assert!(got.is_null(), "{got}");
    }
    assert_eq!(
        summary["wrk_ratios"][0]["requests_per_s_ratio"].as_f64(),
        Some(0.75)
    );
    // RSS per connection: (peak − 1 MiB) ÷ 20, in KiB, for each server's own peak.
    for (label, input) in [("pushpoll", &pp), ("nchan", &nc)] {
        let run = summary["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["label"] == label)
            .unwrap();
        let peak = input["server_rss_peak_bytes"].as_u64().unwrap();
        let want = (peak as f64 - BEFORE as f64) / CLIENTS as f64 / 1024.0;
        let have = run["rss_per_connection_kib"].as_f64().unwrap();
        assert!((have - want).abs() < 1e-9, "{label}: {have} vs {want}");
        assert_eq!(run["deliveries"], input["events_received"], "{label}");
    }

    let table = fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(table.contains("Each cell: pushpoll / nchan."), "{table}");
    assert!(table.contains("CPU pushpoll ÷ nchan"), "{table}");
    let row = format!(
        "| sse | 200 | {} / {} | {} / {} |",
        pp["events_received"], nc["events_received"], pp["lost"], nc["lost"]
    );
    assert!(table.contains(&row), "no `{row}` in\n{table}");
    assert!(table.contains("| 30000 / 40000 | 0.75 |"), "{table}");
    for chart in [
        "latency_p50.svg",
        "latency_p99.svg",
        "cpu_per_delivery.svg",
        "bytes_per_event.svg",
        "rss_per_connection.svg",
        "requests_per_s.svg",
    ] {
        let svg = fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.contains(">\nnchan\n<"), "{chart} has no nchan legend");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_directory_is_refused() {
    let dir = std::env::temp_dir().join(format!("loadtest-peers-empty-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = loadtest().arg("peers").arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bench-peers.sh"));
    let _ = fs::remove_dir_all(&dir);
}
