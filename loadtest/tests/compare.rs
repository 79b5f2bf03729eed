//! A small `loadtest compare` against a server it starts itself: the real binaries, real
//! sockets. Every transport must deliver everything exactly once, the client's and the
//! server's request counts must agree, and the files must exist and parse.

mod common;

use std::process::Command;

use common::{loadtest, summary_of};

#[test]
fn a_small_compare_measures_every_transport_and_writes_its_files() {
    let out = std::env::temp_dir().join(format!("loadtest-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = loadtest()
        .args([
            "compare",
            "--clients",
            "20",
            "--rate",
            "10",
            "--duration",
            "3s",
            "--ramp",
            "500ms",
        ])
        .args(["--poll-interval", "500ms", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadtest failed:\n{stdout}\n{stderr}"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let results = summary["results"].as_array().unwrap();
    assert_eq!(results.len(), pushpoll::names::Transport::ALL.len());
    let by = |t: &str| {
        results
            .iter()
            .find(|r| r["transport"] == t)
            .unwrap()
            .clone()
    };
    for r in results {
        let t = r["transport"].as_str().unwrap();
        assert_eq!(r["lost"], 0, "{t}: {r}");
        assert_eq!(r["duplicates"], 0, "{t}: {r}");
        let expected = r["events_expected"].as_u64().unwrap();
        assert!(expected >= 20 * 25, "{t}: only {expected} expected: {r}");
        assert_eq!(r["events_received"], expected, "{t}");
        assert_eq!(
            r["requests"], r["server_requests"],
            "{t}: client and server disagree: {r}"
        );
        assert!(
            r["bytes_in"].as_u64().unwrap() > 0 && r["bytes_per_event"].as_f64().unwrap() > 0.0,
            "{t}"
        );
        assert!(r["server_cpu_s"].as_f64().unwrap() > 0.0, "{t}");
        assert!(
            r["server_rss_peak_bytes"].as_u64().unwrap() > 1_000_000,
            "{t}"
        );
        assert!(r["latency_us"]["p50"].as_u64().unwrap() > 0, "{t}");
        assert_eq!(r["errors"], serde_json::json!({}), "{t}: {r}");
    }
    let (poll, sse) = (by("poll"), by("sse"));
    assert!(
        poll["requests"].as_u64() > sse["requests"].as_u64(),
        "polling should make more requests"
    );
    assert!(
        poll["latency_us"]["p50"].as_u64() > sse["latency_us"]["p50"].as_u64(),
        "polling should be slower: poll {} vs sse {}",
        poll["latency_us"],
        sse["latency_us"]
    );
    assert!(summary["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(summary["command"].as_str().unwrap().contains("compare"));

    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + pushpoll::names::Transport::ALL.len()
    );
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for t in pushpoll::names::Transport::NAMES {
        assert!(md.contains(t));
    }
    for chart in [
        "latency.svg",
        "requests_per_event.svg",
        "bytes_per_event.svg",
        "cpu_per_event.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{chart}"
        );
    }
    assert!(stdout.contains("longpoll"), "the terminal table: {stdout}");
    // The charts the run drew are what `loadtest charts` draws from its summary.json.
    let check = loadtest()
        .args(["charts", "--check"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the run's charts differ from a redraw:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn fails_with(args: &[&str], needle: &str) {
    let output = loadtest().args(args).output().unwrap();
    assert!(!output.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_one_line_and_a_non_zero_exit() {
    fails_with(&["run", "--transport", "pigeon"], "unknown transport");
    fails_with(&["compare", "--clients", "0"], "--clients");
    fails_with(&["compare", "--clients", "99999999"], "--clients");
    fails_with(&["compare", "--clients", "abc"], "--clients");
    fails_with(&["compare", "--duration", "a while"], "--duration");
    fails_with(&["compare", "--url", "http://127.0.0.1:1"], "cannot reach");
    fails_with(&["compare", "--url", "http://10.1.2.3:80"], "loopback");
    fails_with(
        &["charts", "--check", "/nonexistent/results"],
        "is not a directory of results",
    );
}

#[test]
fn more_clients_than_the_open_files_limit_is_refused_with_the_limit_named() {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && ulimit -Hn 256 && exec {} compare --clients 5000",
            env!("CARGO_BIN_EXE_loadtest")
        ))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("open-files limit is 256"), "{stderr}");
}

#[test]
fn a_server_that_dies_mid_run_stops_the_run_which_reports_what_it_measured() {
    let (mut server, addr) = common::start_pushpoll();
    let url = format!("http://{addr}/");
    let out = std::env::temp_dir().join(format!("loadtest-died-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = loadtest()
        .args([
            "run",
            "--transport",
            "sse",
            "--clients",
            "10",
            "--rate",
            "10",
            "--duration",
            "30s",
            "--ramp",
            "200ms",
            "--url",
            &url,
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    server.kill().unwrap();
    server.wait().unwrap();
    let started = std::time::Instant::now();
    let output = run.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the run did not stop"
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("died"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let result = &summary["results"][0];
    assert_eq!(result["errors"]["server_died"], 1, "{result}");
    assert!(
        result["events_received"].as_u64().unwrap() > 0,
        "what was measured is kept: {result}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_small_draw_compare_sends_and_delivers_every_stroke_and_names_its_upstream_cost() {
    let out = std::env::temp_dir().join(format!("loadtest-draw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary_of(
        loadtest()
            .args([
                "compare",
                "--feed",
                "draw",
                "--clients",
                "8",
                "--send-rate",
                "4",
            ])
            .args([
                "--duration",
                "2s",
                "--ramp",
                "300ms",
                "--poll-interval",
                "300ms",
                "--out",
            ])
            .arg(&out),
        &out,
    );
    assert_eq!(summary["workload"]["rate"], 32.0, "8 clients × 4 strokes/s");
    let results = summary["results"].as_array().unwrap();
    assert_eq!(results.len(), pushpoll::names::Transport::ALL.len());
    for r in results {
        let t = r["transport"].as_str().unwrap();
        let d = &r["draw"];
        let sent = d["strokes_sent"].as_u64().unwrap();
        // 8 clients × 4/s × 2 s, give or take the edges of the window.
        assert!((48..=72).contains(&sent), "{t}: {sent} strokes sent");
        assert_eq!(d["published"].as_u64().unwrap(), sent, "{t}: {d}");
        assert_eq!(r["events_expected"].as_u64().unwrap(), sent * 8, "{t}");
        assert_eq!(r["events_received"], r["events_expected"], "{t}: {r}");
        assert_eq!(r["lost"], 0, "{t}");
        assert_eq!(r["errors"], serde_json::json!({}), "{t}");
        let up = d["bytes_up_per_stroke"].as_f64().unwrap();
        if t == "ws" || t == "webtransport" {
            // One masked frame per stroke: 4 header bytes (payload ≥ 126) + 4 mask + JSON;
            // WebTransport: the JSON and its newline on the command stream. No answers.
            assert!((150.0..300.0).contains(&up), "{t}: {up}");
            assert_eq!(d["bytes_up_answers"], 0, "{t}");
        } else {
            // A POST: the request head and the JSON body, more than the frame's payload.
            assert!((200.0..400.0).contains(&up), "{t}: {up}");
            assert!(
                d["bytes_up_answers_per_stroke"].as_f64().unwrap() > 100.0,
                "{t}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `loadtest run --transport webtransport` on `feed` (and `extra` options) against a server
/// it starts; the result from `summary.json`.
fn webtransport_run(feed: &str, extra: &[&str]) -> serde_json::Value {
    let out = std::env::temp_dir().join(format!(
        "loadtest-wt-{feed}-{}-{}",
        extra.len(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary_of(
        loadtest()
            .args(["run", "--transport", "webtransport", "--feed", feed])
            .args(["--clients", "10", "--rate", "20", "--send-rate", "4"])
            .args(["--duration", "3s", "--ramp", "300ms", "--out"])
            .arg(&out)
            .args(extra),
        &out,
    );
    let _ = std::fs::remove_dir_all(&out);
    summary["results"][0].clone()
}

/// The load tester's WebTransport client against the real server, on each feed: every event
/// delivered once, the client's sessions equal to the server's count, bytes counted as
/// QUIC's UDP payload both ways.
#[test]
fn webtransport_delivers_every_clock_chat_and_draw_event_and_counts_as_the_server_does() {
    for feed in pushpoll::names::FeedName::ALL.map(|f| f.as_str()) {
        let r = webtransport_run(feed, &[]);
        assert_eq!(r["lost"], 0, "{feed}: {r}");
        assert_eq!(r["duplicates"], 0, "{feed}: {r}");
        assert_eq!(r["errors"], serde_json::json!({}), "{feed}: {r}");
        let expected = r["events_expected"].as_u64().unwrap();
        assert_eq!(r["events_received"], expected, "{feed}: {r}");
        let least = match feed {
            "chat" => 10 * 50,
            // About 3 ticks (4 with the first) per client.
            "clock" => 10 * 3,
            // 10 clients × 4 strokes/s × 3 s, to each of the 10.
            _ => 10 * 100,
        };
        assert!(expected >= least, "{feed}: {expected} expected: {r}");
        assert_eq!(r["requests"], 10, "{feed}: one session per client: {r}");
        assert_eq!(r["server_requests"], r["requests"], "{feed}: {r}");
        assert_eq!(r["bytes_basis"], "quic_udp_payload", "{feed}");
        // Each session's handshake alone is over a kilobyte each way.
        assert!(r["bytes_in"].as_u64().unwrap() > 10 * 1_000, "{feed}: {r}");
        assert!(r["bytes_out"].as_u64().unwrap() > 10 * 1_000, "{feed}: {r}");
        assert!(r.get("datagrams").is_none(), "{feed}: {r}");
        if feed == "draw" {
            assert_eq!(
                r["draw"]["published"], r["draw"]["strokes_sent"],
                "every stroke sent on a command stream was published: {r}"
            );
        }
    }
}

/// Datagram mode on the clock: the ticks come as datagrams and the loss the transport
/// accepts is reported apart from `lost`, in every file.
#[test]
fn webtransport_datagram_mode_reports_what_came_as_datagrams_and_what_was_missing() {
    let out = std::env::temp_dir().join(format!("loadtest-wt-dgram-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary_of(
        loadtest()
            .args(["run", "--transport", "webtransport", "--feed", "clock"])
            .args(["--datagrams", "--clients", "10", "--duration", "3s"])
            .args(["--ramp", "300ms", "--out"])
            .arg(&out),
        &out,
    );
    let r = &summary["results"][0];
    let received = r["events_received"].as_u64().unwrap();
    let d = &r["datagrams"];
    assert!(received >= 30, "{r}");
    // Every tick fits a datagram; the first of each session may come as one too.
    assert_eq!(d["received"], received, "{r}");
    // What loopback lost is reported, whatever it is; the run's own loss stays 0.
    assert!(d["lost"].as_u64().is_some(), "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let at = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(at("bytes_basis"), "quic_udp_payload");
    assert_eq!(at("datagrams_received"), received.to_string());
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("webtransport in datagram mode"), "{md}");
    assert!(md.contains("QUIC UDP payload"), "{md}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn datagram_mode_is_refused_where_it_cannot_apply() {
    fails_with(
        &["run", "--transport", "webtransport", "--datagrams"],
        "--feed clock or draw",
    );
    fails_with(
        &[
            "run",
            "--transport",
            "sse",
            "--feed",
            "clock",
            "--datagrams",
        ],
        "--transport webtransport",
    );
}
