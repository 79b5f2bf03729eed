//! The report's arithmetic (ratios, RSS per connection) and parsing, on hand-made inputs whose
//! answers are worked out in the comments.

use super::read::{Rss, parse_answer, parse_wrk, run_of};
use super::*;
use crate::report::{Latency, TransportResult};

fn result(transport: &str, clients: usize, cpu_us: f64, peak: u64) -> TransportResult {
    TransportResult {
        transport: transport.to_owned(),
        clients,
        rate: 10.0,
        events_received: 1000,
        lost: 2,
        latency_us: Latency {
            p50: 1500,
            p99: 9000,
            ..Latency::default()
        },
        bytes_down_per_event: 123.5,
        server_cpu_us_per_event: cpu_us,
        server_rss_peak_bytes: peak,
        ..TransportResult::default()
    }
}

fn rss(before: u64, after: Option<u64>) -> Rss {
    Rss {
        rss_before_bytes: before,
        rss_after_bytes: after,
        after_wait_s: Some(10.0),
    }
}

#[test]
fn rss_per_connection_is_the_growth_over_the_subscribers_in_kib() {
    // 10 MiB before, 30 MiB at the peak, 1000 subscribers: 20 MiB / 1000 = 20.48 KiB.
    let got = rss_per_connection_kib(Some(10 << 20), 30 << 20, 1000).unwrap();
    assert!((got - 20.48).abs() < 1e-9, "{got}");
    // A peak below the before figure is shown as it is (negative), not hidden.
    assert!(rss_per_connection_kib(Some(2048), 1024, 1).unwrap() < 0.0);
    assert_eq!(rss_per_connection_kib(None, 30 << 20, 1000), None);
    assert_eq!(rss_per_connection_kib(Some(1), 2, 0), None);
}

#[test]
fn ratio_needs_a_positive_finite_divisor() {
    assert_eq!(ratio(3.0, 4.0), Some(0.75));
    assert_eq!(ratio(3.0, 0.0), None);
    assert_eq!(ratio(f64::NAN, 4.0), None);
    assert_eq!(ratio(3.0, f64::INFINITY), None);
}

#[test]
fn a_run_carries_the_results_figures_and_the_rss_deltas() {
    let r = run_of(
        "pushpoll",
        "chat",
        &result("sse", 1000, 4.0, 30 << 20),
        Some(&rss(10 << 20, Some(12 << 20))),
    );
    assert_eq!(
        (r.deliveries, r.lost, r.p50_us, r.p99_us),
        (1000, 2, 1500, 9000)
    );
    assert_eq!(r.bytes_per_event, 123.5);
    assert_eq!(r.rss_after_minus_before_mib, Some(2.0));
    assert!((r.rss_per_connection_kib.unwrap() - 20.48).abs() < 1e-9);
    // Without rss.json: no before, so neither derived RSS figure.
    let bare = run_of("nchan", "chat", &result("sse", 1000, 4.0, 30 << 20), None);
    assert_eq!(bare.rss_per_connection_kib, None);
    assert_eq!(bare.rss_after_minus_before_mib, None);
}

fn report() -> Report {
    let runs = vec![
        run_of("pushpoll", "chat", &result("sse", 1000, 3.0, 0), None),
        run_of("before", "chat", &result("sse", 1000, 6.0, 0), None),
        run_of("nchan", "chat", &result("sse", 1000, 4.0, 0), None),
        run_of("pushpoll", "chat", &result("poll", 1000, 1.0, 0), None),
    ];
    let wrk = |label: &str, rps: f64| Wrk {
        label: label.to_owned(),
        endpoint: "healthz".to_owned(),
        requests_per_s: rps,
        non_2xx_3xx: 0,
        status: Some(200),
        header_bytes: Some(100),
        body_bytes: Some(2),
    };
    Report {
        labels: vec!["pushpoll".into(), "before".into(), "nchan".into()],
        runs,
        wrk: vec![wrk("pushpoll", 45000.0), wrk("nchan", 50000.0)],
    }
}

#[test]
fn a_row_whose_generator_was_over_70_percent_of_its_core_gives_no_ratio() {
    let mut r = report();
    let busy = |r: &mut Report, label: &str, percent: f64| {
        let run = r
            .runs
            .iter_mut()
            .find(|x| x.label == label && x.transport == "sse");
        run.unwrap().loadtest_cpu_percent = Some(percent);
    };
    busy(&mut r, "pushpoll", 70.0);
    assert_eq!(r.cpu_ratio("pushpoll", "sse", 1000), Some(0.75));
    busy(&mut r, "pushpoll", 70.1);
    assert_eq!(r.cpu_ratio("pushpoll", "sse", 1000), None);
    assert!(render::markdown(&r).contains("not used: loadtest > 70 %"));
    // nchan's generator over the line takes every label's ratio of that row.
    busy(&mut r, "pushpoll", 50.0);
    busy(&mut r, "nchan", 99.4);
    assert_eq!(r.cpu_ratio("pushpoll", "sse", 1000), None);
    assert_eq!(r.cpu_ratio("before", "sse", 1000), None);
}

#[test]
fn ratios_divide_each_pushpoll_label_by_nchan() {
    let r = report();
    assert_eq!(r.compared(), ["pushpoll", "before"]);
    assert_eq!(r.cpu_ratio("pushpoll", "sse", 1000), Some(0.75));
    assert_eq!(r.cpu_ratio("before", "sse", 1000), Some(1.5));
    // No nchan run of poll: no ratio.
    assert_eq!(r.cpu_ratio("pushpoll", "poll", 1000), None);
    assert_eq!(r.rps_ratio("pushpoll", "healthz"), Some(0.9));
    assert_eq!(r.rps_ratio("before", "healthz"), None);
}

#[test]
fn the_table_puts_the_servers_side_by_side_with_the_ratio() {
    let md = render::markdown(&report());
    assert!(md.contains("Each cell: pushpoll / before / nchan."), "{md}");
    assert!(
        md.contains("## Subscribers (loadtest, chat feed, 10 msg/s)"),
        "{md}"
    );
    assert!(
        md.contains("CPU pushpoll ÷ nchan | CPU before ÷ nchan"),
        "{md}"
    );
    // sse 1000: CPU 3 / 6 / 4, ratios 0.75 and 1.5; poll has only pushpoll.
    assert!(md.contains("| sse | 1000 | 1000 / 1000 / 1000 | 2 / 2 / 2 | 1.5 / 1.5 / 1.5 | 9 / 9 / 9 | 124 / 124 / 124 | 3 / 6 / 4 | 0.75 | 1.5 |"), "{md}");
    assert!(md.contains("| poll | 1000 | 1000 / – / – |"), "{md}");
    assert!(md.contains("| 45000 / – / 50000 | 0.9 | n/a |"), "{md}");
    let csv = render::csv(&report());
    assert!(
        csv.contains("\npushpoll,sse,1000,1000,2,1500,9000,123.5,3,0.75,"),
        "{csv}"
    );
    assert!(
        csv.contains("\nnchan,sse,1000,1000,2,1500,9000,123.5,4,,"),
        "{csv}"
    );
}

#[test]
fn charts_draw_every_measure_and_latency_on_a_log_axis() {
    let files = charts::all(&report()).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "latency_p50.svg",
            "latency_p99.svg",
            "cpu_per_delivery.svg",
            "bytes_per_event.svg",
            "rss_per_connection.svg",
            "requests_per_s.svg"
        ]
    );
    assert!(files[0].1.contains("milliseconds (log scale)"));
    assert!(files[0].1.contains(">\npushpoll\n<") && files[0].1.contains(">\nnchan\n<"));
}

/// The charts `loadtest charts` draws from the report's `summary.json` are the ones `run`
/// draws from the report in memory: the JSON carries every figure a chart shows.
#[test]
fn the_charts_redrawn_from_summary_json_are_the_charts_drawn_by_the_report() {
    let report = report();
    let dir = std::env::temp_dir().join(format!(
        "loadtest-sidebyside-charts-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("summary.json"), render::json(&report).unwrap()).unwrap();
    assert_eq!(charts_of(&dir).unwrap(), charts::all(&report).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrk_and_curl_outputs_parse() {
    let text = "Running 10s test @ http://127.0.0.1:1/healthz\n  1 threads and 50 connections\n\
                Requests/sec:  51234.56\nTransfer/sec:      7.23MB\n";
    assert_eq!(parse_wrk(text).unwrap(), (51234.56, 0));
    let with_errors = "  Non-2xx or 3xx responses: 17\nRequests/sec:  10.00\n";
    assert_eq!(parse_wrk(with_errors).unwrap(), (10.0, 17));
    assert!(parse_wrk("nothing here").is_err());
    assert_eq!(parse_answer("304 190 0\n"), (Some(304), Some(190), Some(0)));
    assert_eq!(parse_answer(""), (None, None, None));
}
