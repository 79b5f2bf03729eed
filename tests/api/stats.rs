//! The counters behind `/api/stats` and `/metrics` move with real traffic, and only with it.

use std::time::Duration;

use futures_util::StreamExt;

use crate::support::{Streaming, spawn_app};

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn the_stats_counters_move_with_each_transport() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let before = app.stats().await;
    for t in pushpoll::names::Transport::NAMES {
        let fig = &before.transports[t];
        assert_eq!(
            (fig.requests, fig.open, fig.bytes_sent, fig.events_sent),
            (0, 0, 0, 0),
            "{t}"
        );
    }

    let mut polled_bytes = 0;
    for _ in 0..3 {
        polled_bytes += app
            .http
            .get(app.url("/poll/clock"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
    }
    let cursor = app.latest_tick().await; // a fourth poll
    let mut sse = Streaming::open(app.http.get(app.url("/sse/clock"))).await;
    sse.next_sse_event(WAIT).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url("/ws/clock"))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    let held = {
        let url = app.url(&format!(
            "/longpoll/clock?after={}&timeout=5",
            cursor + 60_000
        ));
        let http = app.http.clone();
        tokio::spawn(async move { http.get(url).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;

    let during = app.stats().await;
    let poll = &during.transports["poll"];
    assert_eq!(poll.requests, 4);
    assert_eq!(poll.events_sent, 4);
    assert!(
        poll.bytes_sent as usize > polled_bytes,
        "{} vs {polled_bytes}",
        poll.bytes_sent
    );
    assert_eq!(during.transports["sse"].open, 1);
    assert_eq!(during.transports["ws"].open, 1);
    assert_eq!(
        during.transports["longpoll"].open, 1,
        "the parked long poll counts as open"
    );
    assert!(during.transports["sse"].events_sent >= 1);
    assert!(
        during.transports["sse"].bytes_sent > 13,
        "retry line plus events"
    );
    assert!(during.transports["ws"].events_sent >= 1);
    assert!(during.process.rss_bytes > 1_000_000);
    assert!(during.process.cpu_user_s + during.process.cpu_system_s > 0.0);
    assert!(during.uptime_s > 0.0);
    assert!(during.connections.open >= 3);

    drop(sse);
    drop(ws);
    held.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = app.stats().await;
    for t in ["sse", "ws", "longpoll"] {
        assert_eq!(
            after.transports[t].open, 0,
            "{t} still open after the client left"
        );
    }
    // Watching the figures does not move them.
    assert_eq!(after.transports["poll"].requests, 4);
}

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_text_format() {
    let app = spawn_app(&[]).await;
    app.latest_tick().await;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("pushpoll_requests_total{transport=\"poll\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE pushpoll_open_connections gauge"));
    assert!(text.contains("pushpoll_process_resident_memory_bytes "));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
    }
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app(&[]).await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn pages_and_static_files_are_served_with_a_strict_policy() {
    let app = spawn_app(&[]).await;
    for path in [
        "/",
        "/demos/poll.html",
        "/demos/longpoll.html",
        "/demos/iframe.html",
        "/demos/sse.html",
        "/demos/ws.html",
        "/static/demo.js",
        "/static/style.css",
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(!res.text().await.unwrap().is_empty(), "{path} is empty");
    }
    assert_eq!(
        app.stats().await.transports["poll"].requests,
        0,
        "pages are not transport requests"
    );
}

#[tokio::test]
async fn the_facts_module_is_served_as_javascript_and_pages_carry_the_facts_filled_in() {
    let app = spawn_app(&[]).await;
    let res = app
        .http
        .get(app.url("/static/facts.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(res.headers().contains_key("content-security-policy"));
    assert_eq!(res.text().await.unwrap(), pushpoll::facts::module());
    let page = app
        .http
        .get(app.url("/demos/sse.html"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cap = pushpoll::facts::MAX_H2_STREAMS;
    assert!(
        page.contains(&format!("<!--fact:h2-max-streams-->{cap}<!--/fact-->")),
        "sse.html does not state the stream cap {cap}"
    );
}

#[tokio::test]
async fn the_stats_stream_sends_a_snapshot_each_second_and_counts_in_no_transport() {
    let app = spawn_app(&[]).await;
    let mut stream = Streaming::open(app.http.get(app.url("/api/stats/stream"))).await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.next_sse(WAIT).await.unwrap().retry, Some(2000));
    let mut uptimes = Vec::new();
    while uptimes.len() < 2 {
        let msg = stream.next_sse(WAIT).await.unwrap();
        assert_eq!(msg.event.as_deref(), Some("stats"));
        let snapshot: pushpoll::stats::Snapshot = serde_json::from_str(&msg.data.unwrap()).unwrap();
        assert!(snapshot.transports.values().all(|t| t.requests == 0));
        uptimes.push(snapshot.uptime_s);
    }
    assert!(uptimes[1] - uptimes[0] > 0.5, "{uptimes:?}");
}

#[tokio::test]
async fn the_committed_results_are_served_as_a_page_and_raw_files() {
    let app = spawn_app(&[]).await;
    let res = app.http.get(app.url("/results/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let page = res.text().await.unwrap();
    assert!(page.contains("<table>"), "the tables are rendered");
    assert!(page.contains(r#"<img src="compare-default/latency.svg""#));
    let svg = app
        .http
        .get(app.url("/results/compare-default/latency.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let (_, summary) = app.get_json("/results/compare-default/summary.json").await;
    assert_eq!(
        summary["results"].as_array().unwrap().len(),
        pushpoll::names::Transport::ALL.len(),
        "one row per transport"
    );
    let (status, body) = app.get_json("/results/../Cargo.toml").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

/// The compare page's static table of what `results/` measured must be the committed
/// `compare-default` run's figures, not a copy that drifted.
#[tokio::test]
async fn the_compare_pages_measured_table_matches_the_committed_results() {
    let app = spawn_app(&[]).await;
    let page = app
        .http
        .get(app.url("/demos/compare.html"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/results/compare-default/summary.json"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ms = |us: f64| {
        let ms = us / 1000.0;
        if ms >= 100.0 {
            format!("{ms:.0}")
        } else {
            format!("{ms:.1}")
        }
    };
    let cited = format!(
        "(compare-default, {})",
        &summary["started"].as_str().unwrap()[..10]
    );
    for kind in pushpoll::names::Transport::ALL {
        let (transport, label) = (kind.as_str(), kind.title());
        let r = summary["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["transport"] == transport)
            .unwrap();
        let start = page
            .find(&format!("<th scope=\"row\">{label}</th><td>"))
            .unwrap_or_else(|| panic!("no measured row for {label}"));
        let row = &page[start..start + page[start..].find("</tr>").unwrap()];
        // The cells as a reader sees them: figures are `<span class="figure">` (docs/FIGURES.md)
        // and the first one cites its run beside it.
        let cells: Vec<String> = row
            .split("<td>")
            .skip(1)
            .map(|cell| visible_text(cell).replace(&cited, ""))
            .map(|cell| cell.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let down = format!("{:.0}", r["bytes_down_per_event"].as_f64().unwrap());
        let latency = format!(
            "{} / {} ms",
            ms(r["latency_us"]["p50"].as_f64().unwrap()),
            ms(r["latency_us"]["p99"].as_f64().unwrap())
        );
        assert_eq!(cells[1], down, "{label}: {row}");
        assert_eq!(cells[3], latency, "{label}: {row}");
        assert_eq!(cells[4], r["lost"].to_string(), "{label}: {row}");
        assert!(
            !row.contains("<!--figure:"),
            "{label}: a figure marker left unexpanded"
        );
    }
    assert!(
        page.contains(r#"<a class="figure-source" href="/results/compare-default/summary.json""#),
        "the table cites its run"
    );
}

/// `html` without its tags.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}
