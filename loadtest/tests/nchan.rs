//! `loadtest compare --peer nchan` against a real nginx + Nchan started by scripts/nchan.sh:
//! every subscribed transport must deliver every event exactly once with a sane latency, and
//! iframe must be reported as not available. Without nginx + nchan (and no way to install
//! them) the test skips, except under CI=true, where it fails.

mod common;

use std::process::Command;

use common::nchan::nchan_or_skip;
use common::{loadtest, summary_of};

#[test]
fn compare_against_nchan_delivers_everything_and_reports_iframe_as_not_available() {
    let Some(nchan) = nchan_or_skip() else {
        return;
    };
    let out = std::env::temp_dir().join(format!("loadtest-peer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = loadtest();
    cmd.args(["compare", "--peer", "nchan", "--url", &nchan.url])
        .args(["--clients", "20", "--rate", "10", "--duration", "2s"])
        .args(["--ramp", "500ms", "--poll-interval", "500ms", "--out"])
        .arg(&out);
    let output = cmd.output().expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadtest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("iframe: n/a (nchan has no forever-frame subscriber)"),
        "{stdout}"
    );
    let summary = summary_of(&mut Command::new("true"), &out);
    let results = summary["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["transport"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["poll", "longpoll", "sse", "ws"], "{stdout}");
    for r in results {
        let t = r["transport"].as_str().unwrap();
        let expected = r["events_expected"].as_u64().unwrap();
        assert!(expected >= 20 * 15, "{t}: only {expected} expected: {r}");
        assert_eq!(r["lost"], 0, "{t}: {r}");
        assert_eq!(r["duplicates"], 0, "{t}: {r}");
        assert_eq!(r["events_received"], expected, "{t}: {r}");
        assert_eq!(r["errors"], serde_json::json!({}), "{t}: {r}");
        // Sane: every event within the poll interval plus slack; push well under it.
        let p99 = r["latency_us"]["p99"].as_u64().unwrap();
        let bound = if t == "poll" { 1_500_000 } else { 250_000 };
        assert!(p99 > 0 && p99 < bound, "{t}: p99 {p99} µs: {r}");
        // The worker's /proc was read.
        assert!(
            r["server_rss_peak_bytes"].as_u64().unwrap() > 1_000_000,
            "{t}: {r}"
        );
        assert!(r["bytes_per_event"].as_f64().unwrap() > 0.0, "{t}: {r}");
    }
    // A run of iframe alone is refused, naming why.
    let iframe = loadtest()
        .args([
            "run",
            "--transport",
            "iframe",
            "--peer",
            "nchan",
            "--url",
            &nchan.url,
        ])
        .output()
        .unwrap();
    assert!(!iframe.status.success());
    assert!(
        String::from_utf8_lossy(&iframe.stderr).contains("no forever-frame subscriber"),
        "{}",
        String::from_utf8_lossy(&iframe.stderr)
    );
    // --peer without --url is refused.
    let no_url = loadtest()
        .args(["compare", "--peer", "nchan"])
        .output()
        .unwrap();
    assert!(!no_url.status.success());
    assert!(String::from_utf8_lossy(&no_url.stderr).contains("--url"));
    let _ = std::fs::remove_dir_all(&out);
}
