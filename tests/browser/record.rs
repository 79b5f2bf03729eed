//! Figures the browser tests measure, written into the folder `PUSHPOLL_RECORD` names (by
//! `scripts/browser-results.sh`, which then copies them into `results/browsers/`); off by
//! default, so test runs never change the tree. The compare page shows what is committed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::Engine;

/// Tests of different engines run side by side: one writer at a time.
static WRITING: Mutex<()> = Mutex::new(());

const TRANSPORTS: [&str; pushpoll::names::Transport::ALL.len()] = pushpoll::names::Transport::NAMES;

/// One kill-and-recover run of the compare page in `engine`: per transport, the connections
/// the kill broke and the milliseconds until the lane delivered again.
pub fn recovery(engine: Engine, browser_version: &str, run: &[(&str, u64, f64)]) {
    let Some((_one, path, mut all)) = open_record("recovery.json", || {
        json!({
            "what": "Back after: on /demos/compare.html, from the click on \"Kill the connection\" (POST /api/debug/kill, which drops the lane's clock and chat connections the way a network failure would) to the lane's first clock event over a new connection, in milliseconds, as the page measures it (performance.now()). killed: connections the kill broke.",
            "test": "tests/browser/compare.rs, killing_each_transports_connection_recovers_without_losing_a_chat_message",
            "command": "scripts/browser-results.sh",
            "machine": machine(),
            "engines": {},
        })
    }) else {
        return;
    };
    let entry = &mut all["engines"][engine.name()];
    if entry.is_null() {
        *entry = json!({ "browser": format!("{} {browser_version}", label(engine)), "runs": [] });
    }
    let mut one = serde_json::Map::new();
    for (transport, killed, ms) in run {
        one.insert(
            transport.to_string(),
            json!({ "ms": ms.round() as u64, "killed": killed }),
        );
    }
    entry["runs"]
        .as_array_mut()
        .unwrap()
        .push(Value::Object(one));
    std::fs::write(&path, serde_json::to_string_pretty(&all).unwrap() + "\n").unwrap();
    std::fs::write(path.with_file_name("recovery.md"), table(&all)).unwrap();
}

fn label(engine: Engine) -> &'static str {
    match engine {
        Engine::Chromium => "Chromium",
        Engine::Firefox => "Firefox ESR",
        Engine::WebKit => "WebKitGTK MiniBrowser",
    }
}

/// The markdown table: one row per transport, one column per engine, the median of the runs
/// and their range.
fn table(all: &Value) -> String {
    let engines: BTreeMap<String, Value> = all["engines"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let order: Vec<&str> = ["chromium", "firefox", "webkit"]
        .into_iter()
        .filter(|e| engines.contains_key(*e))
        .collect();
    let mut out = String::from("# Recovery after a killed connection, per browser engine\n\n");
    out.push_str(all["what"].as_str().unwrap_or(""));
    out.push_str(&format!(
        "\n\nEach cell: median over the runs (fastest–slowest), milliseconds. Test: `{}`. Command: `{}`. Machine: {}.\n\n",
        all["test"].as_str().unwrap_or(""),
        all["command"].as_str().unwrap_or(""),
        all["machine"].as_str().unwrap_or("")
    ));
    out.push_str("| transport |");
    for e in &order {
        out.push_str(&format!(
            " {} ({} runs) |",
            engines[*e]["browser"].as_str().unwrap_or(e),
            engines[*e]["runs"].as_array().map_or(0, Vec::len)
        ));
    }
    out.push_str("\n|---|");
    for _ in &order {
        out.push_str("--:|");
    }
    out.push('\n');
    for t in TRANSPORTS {
        out.push_str(&format!("| {t} |"));
        for e in &order {
            let mut ms: Vec<u64> = engines[*e]["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r[t]["ms"].as_u64())
                .collect();
            ms.sort_unstable();
            let cell = match ms.as_slice() {
                [] => "–".to_string(),
                [one] => format!("{one}"),
                many => format!(
                    "{} ({}–{})",
                    many[many.len() / 2],
                    many[0],
                    many[many.len() - 1]
                ),
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

/// CPU, cores, memory and OS of this machine, in one line.
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024 / 1024);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores, {memory_gib} GiB, {os}")
}

/// The timeline's frame times at 10 ticks/s in `engine` (timeline.rs,
/// the_timeline_keeps_up_at_10_ticks_a_second): one run per engine, the last one kept.
pub fn timeline_frames(engine: Engine, browser_version: &str, figures: Value) {
    let Some((_one, path, mut all)) = open_record("timeline-frames.json", || {
        json!({
            "what": "The live timeline of /demos/compare.html with every lane running at 10 clock ticks a second (pushpoll --tick-ms 100), the page 1280×720 with the timeline on screen, for `seconds`: each draw of the timeline as the page measures it on the browser's performance timeline (performance.measure around each draw, read back by a PerformanceObserver of 'measure'), the intervals between requestAnimationFrame callbacks, and the long tasks (PerformanceObserver 'longtask') and long animation frames ('long-animation-frame') over 50 ms where the engine has those entry types (null where it has not); still_page_frame_interval_ms: the same intervals on /demos/glossary.html, where nothing moves, just before (120 of them or as many as come in 5 s; `intervals` says how many): the engine's own pace; paused_frame_interval_ms: the same on the compare page right after (240 or as many as come in 8 s), its lanes still running but the timeline paused (not redrawn); null where fewer than two came. Times are performance.now() as each engine reports it (Firefox ESR and WebKitGTK here in whole milliseconds). The browsers run headless (Chromium --headless=new, Firefox -headless) or, WebKitGTK, in a window on a virtual X display (Xvfb); `visibility` is document.visibilityState.",
            "test": "tests/browser/timeline.rs, the_timeline_keeps_up_at_10_ticks_a_second",
            "command": "scripts/timeline-frames.sh",
            "machine": machine(),
            "engines": {},
        })
    }) else {
        return;
    };
    let mut figures = figures;
    figures["browser"] = json!(format!("{} {browser_version}", label(engine)));
    let now = utc_now();
    figures["started"] = json!(now);
    all["engines"][engine.name()] = figures;
    all["started"] = json!(now);
    std::fs::write(&path, serde_json::to_string_pretty(&all).unwrap() + "\n").unwrap();
    std::fs::write(
        path.with_file_name("timeline-frames.md"),
        frames_table(&all),
    )
    .unwrap();
}

/// The markdown of timeline-frames.json: one row per engine.
fn frames_table(all: &Value) -> String {
    let mut out =
        String::from("# The live timeline's frame times at 10 ticks/s, per browser engine\n\n");
    out.push_str(all["what"].as_str().unwrap_or(""));
    out.push_str(&format!(
        "\n\nTest: `{}`. Command: `{}`. Machine: {}. Last run: {}.\n\n",
        all["test"].as_str().unwrap_or(""),
        all["command"].as_str().unwrap_or(""),
        all["machine"].as_str().unwrap_or(""),
        all["started"].as_str().unwrap_or("")
    ));
    out.push_str("| engine | draws | draw p50 / p95 / max (ms) | frame interval p50 / p95 (ms) | frames over 50 ms | long tasks over 50 ms | long animation frames over 50 ms | frame interval, timeline paused, p50 / p95 (ms) | frame interval on a still page p50 / p95 (ms) |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    let ms = |v: &Value| v.as_f64().map_or("–".to_string(), |v| format!("{v:.1}"));
    let count = |v: &Value| {
        v.as_u64()
            .map_or("not in this engine".to_string(), |v| v.to_string())
    };
    for engine in ["chromium", "firefox", "webkit"] {
        let e = &all["engines"][engine];
        if e.is_null() {
            continue;
        }
        out.push_str(&format!(
            "| {} | {} | {} / {} / {} | {} / {} | {} | {} | {} | {} / {} | {} / {} |\n",
            e["browser"].as_str().unwrap_or(engine),
            e["draws"],
            ms(&e["draw_ms"]["p50"]),
            ms(&e["draw_ms"]["p95"]),
            ms(&e["draw_ms"]["max"]),
            ms(&e["frame_interval_ms"]["p50"]),
            ms(&e["frame_interval_ms"]["p95"]),
            e["frames_over_50_ms"],
            count(&e["long_tasks_over_50_ms"]),
            count(&e["long_animation_frames_over_50_ms"]),
            ms(&e["paused_frame_interval_ms"]["p50"]),
            ms(&e["paused_frame_interval_ms"]["p95"]),
            ms(&e["still_page_frame_interval_ms"]["p50"]),
            ms(&e["still_page_frame_interval_ms"]["p95"]),
        ));
    }
    out
}

/// The time now, UTC, as `YYYY-MM-DDTHH:MM:SSZ` (from `date`, as the scripts write theirs).
fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The record `name` in the folder `PUSHPOLL_RECORD` names: its path, and its JSON as an
/// earlier run left it or as `fresh()` makes it, with the lock that keeps other writers out
/// until it is written. None when nothing is recorded.
fn open_record(
    name: &str,
    fresh: impl FnOnce() -> Value,
) -> Option<(
    std::sync::MutexGuard<'static, ()>,
    std::path::PathBuf,
    Value,
)> {
    let dir = std::path::PathBuf::from(std::env::var_os("PUSHPOLL_RECORD")?);
    let one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let all = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(fresh);
    Some((one, path, all))
}
