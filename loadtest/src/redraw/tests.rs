//! `loadtest charts` on copies of committed results: a run and a redraw give the same bytes,
//! drawing is deterministic, and `--check` names a tampered, missing or stray chart.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// The repository's `results/DIR`.
fn committed(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../results")
        .join(dir)
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "loadtest-charts-{name}-{}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies `results/FROM/summary.json` to `to/summary.json`.
fn copy_summary(from: &str, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::copy(
        committed(from).join("summary.json"),
        to.join("summary.json"),
    )
    .unwrap();
}

fn args(check: bool, dir: &Path) -> ChartsArgs {
    ChartsArgs {
        check,
        dirs: vec![dir.to_path_buf()],
    }
}

fn names(paths: &[PathBuf], root: &Path) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

/// What a `compare` writes (the summary in memory, drawn by `export::write_all`) is byte for
/// byte what `loadtest charts` draws from the `summary.json` it wrote beside it.
#[test]
fn a_run_and_a_redraw_of_its_summary_draw_the_same_bytes() {
    let dir = temp_dir("run");
    let summary = Summary::read(&committed("compare-default")).unwrap();
    crate::export::write_all(&dir, &summary).unwrap();
    let found = compare(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(
        names(
            &found
                .drawn
                .iter()
                .map(|c| c.path.clone())
                .collect::<Vec<_>>(),
            &dir
        ),
        [
            "bytes_per_event.svg",
            "cpu_per_event.svg",
            "latency.svg",
            "requests_per_event.svg"
        ]
    );
    assert_eq!(found.stale, Vec::<PathBuf>::new());
    assert_eq!(found.undrawn, Vec::<PathBuf>::new());
    fs::remove_dir_all(&dir).unwrap();
}

/// The same data drawn twice, each time from its file, gives the same bytes: for every kind
/// of data the command reads (a run, the faults' runs, a soak, a side-by-side report).
#[test]
fn drawing_the_same_data_twice_gives_the_same_bytes() {
    let dir = temp_dir("twice");
    copy_summary("compare-default", &dir.join("compare"));
    copy_summary("churn/run", &dir.join("churn/run"));
    copy_summary("storm/jitter", &dir.join("storm/jitter"));
    copy_summary("storm/no-jitter", &dir.join("storm/no-jitter"));
    copy_summary("soak", &dir.join("soak"));
    copy_summary("peers", &dir.join("peers"));
    let first = compare(std::slice::from_ref(&dir)).unwrap();
    let second = compare(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(first.drawn, second.drawn);
    let mut files = names(
        &first
            .drawn
            .iter()
            .map(|c| c.path.clone())
            .collect::<Vec<_>>(),
        &dir,
    );
    files.retain(|f| !f.starts_with("compare/") && !f.contains("/run/") && !f.contains("jitter/"));
    assert_eq!(
        files,
        [
            "churn/recovery.svg",
            "peers/bytes_per_event.svg",
            "peers/cpu_per_delivery.svg",
            "peers/latency_p50.svg",
            "peers/latency_p99.svg",
            "peers/requests_per_s.svg",
            "peers/rss_per_connection.svg",
            "soak/chart.svg",
            "storm/storm.svg",
        ]
    );
    // No clock, path or hash order in a chart: each is drawn from its data alone.
    for chart in &first.drawn {
        assert!(
            !chart.svg.contains(&*dir.to_string_lossy()),
            "{:?}",
            chart.path
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// `--check` writes nothing and fails naming the chart that differs; the redraw puts it
/// back, and `--check` passes again.
#[test]
fn check_fails_on_a_tampered_chart_and_a_redraw_mends_it() {
    let dir = temp_dir("tampered");
    copy_summary("compare-default", &dir);
    // Nothing drawn yet: every chart is missing.
    let found = compare(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(found.stale.len(), 4);
    assert!(run(&args(true, &dir)).is_err());
    assert!(!dir.join("latency.svg").exists(), "--check wrote a chart");

    run(&args(false, &dir)).unwrap();
    run(&args(true, &dir)).unwrap();

    let latency = dir.join("latency.svg");
    let drawn = fs::read_to_string(&latency).unwrap();
    // One figure changed, as a hand edit or a chart drawn from other data would.
    let tampered = drawn.replacen("log scale", "log  scale", 1);
    assert_ne!(tampered, drawn);
    fs::write(&latency, &tampered).unwrap();
    let found = compare(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(found.stale, std::slice::from_ref(&latency));
    let err = run(&args(true, &dir)).unwrap_err();
    assert!(err.to_string().contains("1 of 4 charts"), "{err:#}");
    assert_eq!(fs::read_to_string(&latency).unwrap(), tampered);

    run(&args(false, &dir)).unwrap();
    assert_eq!(fs::read_to_string(&latency).unwrap(), drawn);
    run(&args(true, &dir)).unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

/// An SVG that no data draws is named, in both modes: it would otherwise lag forever.
#[test]
fn a_chart_no_data_draws_is_named() {
    let dir = temp_dir("stray");
    copy_summary("compare-default", &dir);
    run(&args(false, &dir)).unwrap();
    fs::create_dir_all(dir.join("old")).unwrap();
    fs::write(dir.join("old/latency.svg"), "<svg/>").unwrap();
    let found = compare(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(found.undrawn, [dir.join("old/latency.svg")]);
    assert!(run(&args(true, &dir)).is_err());
    assert!(run(&args(false, &dir)).is_err());
    fs::remove_dir_all(&dir).unwrap();
}

/// Two churn runs side by side: which one `recovery.svg` is drawn from is ambiguous, and the
/// error names both.
#[test]
fn two_churn_runs_in_one_directory_are_refused() {
    let dir = temp_dir("two-churns");
    copy_summary("churn/run", &dir.join("a"));
    copy_summary("churn/run", &dir.join("b"));
    let err = compare(std::slice::from_ref(&dir)).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("recovery.svg") && text.contains("/a") && text.contains("/b"),
        "{text}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_directory_that_is_not_there_is_an_error() {
    let dir = temp_dir("gone").join("nothing-here");
    let err = compare(std::slice::from_ref(&dir)).unwrap_err();
    assert!(
        err.to_string().contains("is not a directory of results"),
        "{err}"
    );
}

/// A run measured before bytes were counted both ways: its `bytes_per_event` is drawn as
/// bytes down, and bytes up and the total as n/a, not as 0 or as the down figure.
#[test]
fn a_summary_from_before_bytes_up_were_counted_draws_them_as_not_measured() {
    let summary = Summary::read(&committed("scale-sse-10k")).unwrap();
    let result = &summary.results[0];
    assert!((result.bytes_down_per_event - 231.05).abs() < 1e-9);
    assert!(result.bytes_up_per_event.is_nan() && result.bytes_per_event.is_nan());
    let charts = crate::export::charts(&summary).unwrap();
    let (_, bytes) = charts
        .iter()
        .find(|(name, _)| name == "bytes_per_event.svg")
        .unwrap();
    assert!(
        bytes.contains(">\n231\n</text>"),
        "the down figure is labelled"
    );
    assert_eq!(
        bytes.matches(">\nn/a\n</text>").count(),
        2,
        "up and total are n/a"
    );
}

/// Every text of every committed chart, as its data draws it, is at least 14 px at the
/// chart's own size: readable from a projector's back row.
#[test]
fn every_text_in_every_chart_is_at_least_14_px() {
    let found = compare(&[committed("")]).unwrap();
    assert!(found.drawn.len() > 100, "{} charts", found.drawn.len());
    let mut small = Vec::new();
    for chart in &found.drawn {
        for size in chart.svg.split("font-size=\"").skip(1) {
            let px: f64 = size.split('"').next().unwrap().parse().unwrap();
            if px < 14.0 {
                small.push(format!("{}: {px} px", chart.path.display()));
            }
        }
    }
    small.dedup();
    assert!(small.is_empty(), "text under 14 px:\n{}", small.join("\n"));
}
