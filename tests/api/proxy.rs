//! pushpoll behind real nginx, started by `scripts/proxy.sh`: through `deploy/nginx.conf`
//! every transport delivers each event as it happens; through `--naive`
//! (`deploy/nginx-naive.conf`) the failures the proxy lab page (demos/proxy.html) claims are
//! the ones observed. nginx is installed by scripts/test.sh; without it these tests skip,
//! except under CI=true, where they fail.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pushpoll::feed::{EventBody, WireEvent};
use tokio_tungstenite::tungstenite::Message;

use crate::nginx::{Proxied, proxied, repo};
use crate::support::{Streaming, now_micros};

/// A tick counts as delivered "as it happens" when it reaches the client within this long of
/// its own timestamp (the same machine's clock; on loopback the path adds well under 10 ms).
const ON_TIME: Duration = Duration::from_secs(1);

/// How late an event arrived: now minus its own timestamp.
fn late(event: &WireEvent) -> Duration {
    Duration::from_micros(now_micros().saturating_sub(event.ts))
}

fn is_tick(event: &WireEvent) -> bool {
    matches!(event.body, EventBody::Tick { .. })
}

/// Reads `n` ticks of an SSE or iframe stream and returns how late each one arrived.
async fn stream_lateness(stream: &mut Streaming, sse: bool, n: usize) -> Vec<Duration> {
    let mut lateness = Vec::new();
    while lateness.len() < n {
        let event = if sse {
            stream
                .next_sse_event(Duration::from_secs(5))
                .await
                .map(|(_, e)| e)
        } else {
            stream.next_iframe_event(Duration::from_secs(5)).await
        }
        .expect("the stream ended");
        if is_tick(&event) {
            lateness.push(late(&event));
        }
    }
    lateness
}

#[tokio::test]
async fn through_the_good_config_sse_and_the_iframe_deliver_each_tick_as_it_happens() {
    let Some(p) = proxied(&["--tick-ms", "200"], &[]).await else {
        return;
    };
    assert_eq!(p.header("/healthz").await, "good");
    for (path, sse) in [("/sse/clock", true), ("/iframe/clock", false)] {
        let mut stream = Streaming::open(p.app.http.get(p.url(path))).await;
        assert_eq!(stream.status, 200, "{path}");
        // Ticks come every 200 ms; each must arrive within ON_TIME of its timestamp, not in
        // a burst later.
        let lateness = stream_lateness(&mut stream, sse, 5).await;
        assert!(
            lateness.iter().all(|l| *l < ON_TIME),
            "{path}: ticks arrived late through the good config: {lateness:?}"
        );
    }
}

/// Fetch streaming through the good config, both ways in: a GET, and the chat's kind of
/// subscription, a POST with a JSON body (here on the clock).
#[tokio::test]
async fn through_the_good_config_the_fetch_stream_delivers_each_tick_as_it_happens() {
    let Some(p) = proxied(&["--tick-ms", "200"], &[]).await else {
        return;
    };
    let get = p.app.http.get(p.url("/fetch/clock"));
    let post = p
        .app
        .http
        .post(p.url("/fetch/clock"))
        .json(&serde_json::json!({}));
    for (how, request) in [("GET", get), ("POST", post)] {
        let mut stream = Streaming::open(request).await;
        assert_eq!(stream.status, 200, "{how}");
        assert_eq!(stream.headers["x-proxy-config"], "good", "{how}");
        let mut lateness = Vec::new();
        while lateness.len() < 5 {
            let event = stream
                .next_ndjson_event(Duration::from_secs(5))
                .await
                .expect("the stream ended");
            if is_tick(&event) {
                lateness.push(late(&event));
            }
        }
        assert!(
            lateness.iter().all(|l| *l < ON_TIME),
            "{how} /fetch/clock: ticks arrived late through the good config: {lateness:?}"
        );
    }
}

#[tokio::test]
async fn through_the_good_config_websocket_upgrades_and_delivers_each_tick_as_it_happens() {
    let Some(p) = proxied(&["--tick-ms", "200"], &[]).await else {
        return;
    };
    let url = p.url("/ws/clock").replacen("http://", "ws://", 1);
    let (mut ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade passes through the good config");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["x-proxy-config"], "good");
    let mut ticks = 0;
    while ticks < 5 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let Ok(event) = serde_json::from_str::<WireEvent>(&text) else {
                    continue;
                };
                if is_tick(&event) {
                    assert!(late(&event) < ON_TIME, "a tick {:?} late", late(&event));
                    ticks += 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn through_the_good_config_polls_answer_and_a_long_poll_is_held_past_ten_seconds() {
    let Some(p) = proxied(&[], &[]).await else {
        return;
    };
    // Short polling: the latest tick at once.
    let res = p.app.http.get(p.url("/poll/clock")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["events"][0]["type"], "tick");
    // Long polling on the clock: the next tick, as it happens.
    let next = body["next"].as_u64().unwrap();
    let res = p
        .app
        .http
        .get(p.url(&format!("/longpoll/clock?after={next}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let event: WireEvent = serde_json::from_value(body["events"][0].clone()).unwrap();
    assert!(late(&event) < ON_TIME);
    // A long poll on a quiet feed held 12 s (longer than the naive config's 10 s read
    // timeout) is answered by the server, not cut by the proxy.
    let started = Instant::now();
    let res = p
        .app
        .http
        .get(p.url("/longpoll/chat?rooms=quiet&after=0&timeout=12"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(12));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["events"], serde_json::json!([]));
}

#[tokio::test]
async fn the_good_config_refuses_a_body_over_16_kib_with_the_contracts_json_error() {
    let Some(p) = proxied(&[], &[]).await else {
        return;
    };
    let res = p
        .app
        .http
        .post(p.url("/api/chat/messages"))
        .header("content-type", "application/json")
        .body(vec![b' '; 17 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    // Answered by nginx (its error_page), before the body crossed to the server.
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("proxy")),
        "{body}"
    );
}

/// What the naive proxy does to a stream: the arrival of each read, and the ticks it held.
struct Arrivals {
    /// Time from the request to the first byte (status line and headers included).
    first_byte: Duration,
    /// Bytes per burst: reads that arrived within 100 ms of the previous one are one burst.
    bursts: Vec<usize>,
    /// How late each tick was when it arrived.
    lateness: Vec<Duration>,
}

/// Reads `path` through the naive proxy for `for_` and records how it arrives.
async fn arrivals(p: &Proxied, path: &str, sse: bool, for_: Duration) -> Arrivals {
    let started = Instant::now();
    let mut stream = Streaming::open(p.app.http.get(p.url(path))).await;
    let first_byte = started.elapsed();
    assert_eq!(stream.status, 200);
    let mut bursts: Vec<usize> = Vec::new();
    let mut last = Instant::now();
    let mut seen = 0;
    let mut lateness = Vec::new();
    while started.elapsed() < for_ {
        let left = for_.saturating_sub(started.elapsed());
        let Ok(more) = tokio::time::timeout(left, stream.fill(for_)).await else {
            break;
        };
        assert!(more, "{path}: the stream ended");
        let n = stream.total_bytes - seen;
        seen = stream.total_bytes;
        match bursts.last_mut() {
            Some(burst) if last.elapsed() < Duration::from_millis(100) => *burst += n,
            _ => bursts.push(n),
        }
        last = Instant::now();
        // Parse what came: the buffered bytes hold whole ticks and at most one partial one.
        loop {
            let event = if sse {
                complete_sse(&mut stream).await
            } else {
                complete_iframe(&mut stream).await
            };
            match event {
                Some(e) if is_tick(&e) => lateness.push(late(&e)),
                Some(_) => {}
                None => break,
            }
        }
    }
    Arrivals {
        first_byte,
        bursts,
        lateness,
    }
}

/// The next whole SSE event already received, without waiting for more.
async fn complete_sse(stream: &mut Streaming) -> Option<WireEvent> {
    use pushpoll::wire::SSE_MESSAGE_END as END;
    loop {
        if !stream.buffered().windows(END.len()).any(|w| w == END) {
            return None;
        }
        // A block without data (`retry:`, a `: ping` comment) is skipped.
        if let Some(data) = stream.next_sse(Duration::from_secs(1)).await?.data {
            return serde_json::from_str(&data).ok();
        }
    }
}

/// The next whole iframe event already received, without waiting for more.
async fn complete_iframe(stream: &mut Streaming) -> Option<WireEvent> {
    use pushpoll::wire::IFRAME_CALL_CLOSE as CLOSE;
    let whole = stream.buffered().windows(CLOSE.len()).any(|w| w == CLOSE);
    if !whole {
        return None;
    }
    stream.next_iframe_event(Duration::from_secs(1)).await
}

#[tokio::test]
async fn through_the_naive_proxy_sse_and_the_iframe_arrive_late_in_bursts_of_about_4_kib() {
    // Ten ticks a second (about 134 bytes each over SSE) fill nginx's 4 KiB buffer in about
    // three seconds; at the default one a second it takes about 30 s.
    let Some(p) = proxied(&["--tick-ms", "100"], &["--naive"]).await else {
        return;
    };
    assert_eq!(p.header("/healthz").await, "naive");
    let (sse, iframe) = tokio::join!(
        arrivals(&p, "/sse/clock", true, Duration::from_secs(8)),
        arrivals(&p, "/iframe/clock", false, Duration::from_secs(8)),
    );
    for (name, a) in [("sse", &sse), ("iframe", &iframe)] {
        eprintln!(
            "{name}: first byte after {:?}, bursts {:?}, ticks {}, lateness {:?}..{:?}",
            a.first_byte,
            a.bursts,
            a.lateness.len(),
            a.lateness.iter().min(),
            a.lateness.iter().max()
        );
        // Nothing at all, not even the status line, until the first buffer is full.
        assert!(
            a.first_byte > Duration::from_millis(1500),
            "{name}: the first byte came after {:?}; not buffered?",
            a.first_byte
        );
        // Then whole buffers at once: each burst after the first is about 4 KiB (one
        // memory page, nginx's proxy_buffer_size), tens of ticks.
        assert!(!a.bursts.is_empty(), "{name}: no burst within 8 s");
        for burst in &a.bursts[1..] {
            assert!(
                (3500..=8192 + 64).contains(burst),
                "{name}: a burst of {burst} bytes"
            );
        }
        // The oldest tick of a burst waited for the buffer to fill: seconds, not ms.
        let worst = a.lateness.iter().max().copied().unwrap_or_default();
        assert!(
            worst > Duration::from_millis(1500),
            "{name}: the latest tick was only {worst:?} late"
        );
    }
}

#[tokio::test]
async fn through_the_naive_proxy_a_websocket_upgrade_is_refused_with_426() {
    let Some(p) = proxied(&[], &["--naive"]).await else {
        return;
    };
    let url = p.url("/ws/clock").replacen("http://", "ws://", 1);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            // nginx dropped the hop-by-hop Upgrade and Connection headers, so the server saw
            // a plain GET (docs/API.md: 426 upgrade_required).
            assert_eq!(response.status(), 426);
            assert_eq!(response.headers()["x-proxy-config"], "naive");
        }
        other => panic!("the upgrade should fail through the naive proxy: {other:?}"),
    }
}

#[tokio::test]
async fn through_the_naive_proxy_a_long_poll_held_past_10_s_is_cut_with_504_short_polls_work() {
    let Some(p) = proxied(&[], &["--naive"]).await else {
        return;
    };
    let res = p.app.http.get(p.url("/poll/clock")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["events"][0]["type"], "tick");
    // The clock ticks every second, so a long poll on it is answered within the timeout.
    let next = body["next"].as_u64().unwrap();
    let res = p
        .app
        .http
        .get(p.url(&format!("/longpoll/clock?after={next}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A quiet feed is held by the server for 12 s; nginx gives up reading at 10 s.
    let started = Instant::now();
    let res = p
        .app
        .http
        .get(p.url("/longpoll/chat?rooms=quiet&after=0&timeout=12"))
        .send()
        .await
        .unwrap();
    let held = started.elapsed();
    assert_eq!(res.status(), 504);
    assert!(
        (Duration::from_millis(9500)..Duration::from_secs(12)).contains(&held),
        "cut after {held:?}"
    );
}

#[tokio::test]
async fn stock_nginx_honours_x_accel_buffering_so_pushpoll_streams_are_on_time() {
    // The naive config without its `proxy_ignore_headers X-Accel-Buffering` line: nginx's
    // defaults, buffering on. pushpoll's `X-Accel-Buffering: no` turns it off per response.
    let naive = std::fs::read_to_string(repo().join("deploy/nginx-naive.conf")).unwrap();
    let line = "proxy_ignore_headers X-Accel-Buffering;";
    assert!(naive.contains(line));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stock.conf");
    std::fs::write(&config, naive.replace(line, "")).unwrap();
    let Some(p) = proxied(
        &["--tick-ms", "200"],
        &["--config", config.to_str().unwrap()],
    )
    .await
    else {
        return;
    };
    for (path, sse) in [("/sse/clock", true), ("/iframe/clock", false)] {
        let mut stream = Streaming::open(p.app.http.get(p.url(path))).await;
        let lateness = stream_lateness(&mut stream, sse, 5).await;
        assert!(
            lateness.iter().all(|l| *l < ON_TIME),
            "{path}: {lateness:?}"
        );
    }
}

/// The fixes the lab page quotes are lines of deploy/nginx.conf, word for word.
#[test]
fn the_lab_pages_quoted_fixes_are_in_the_good_config() {
    let good = std::fs::read_to_string(repo().join("deploy/nginx.conf")).unwrap();
    let page = std::fs::read_to_string(repo().join("demos/proxy.html")).unwrap();
    let mut quotes = 0;
    for part in page.split("<code class=\"fix\">").skip(1) {
        let quote = part.split("</code>").next().unwrap();
        let quote = quote
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        assert!(good.contains(&quote), "not in deploy/nginx.conf: {quote}");
        quotes += 1;
    }
    assert!(quotes >= 5, "the page quotes {quotes} fixes");
}

#[tokio::test]
async fn through_the_naive_proxy_a_quiet_event_stream_is_cut_at_10_s_with_its_buffer_lost() {
    let Some(p) = proxied(&[], &["--naive"]).await else {
        return;
    };
    // A chat room nobody writes to: the server sends `retry: 2000` at once and then nothing
    // until its 15 s keep-alive; nginx holds the first bytes in its buffer and gives up
    // reading after 10 s (proxy_read_timeout).
    let started = Instant::now();
    let mut stream = Streaming::open(p.app.http.get(p.url("/sse/chat?rooms=quiet"))).await;
    let head_after = started.elapsed();
    assert_eq!(stream.status, 200);
    stream.read_to_end(Duration::from_secs(5)).await;
    let ended_after = started.elapsed();
    eprintln!(
        "head after {head_after:?}, ended after {ended_after:?}, {} body bytes",
        stream.total_bytes
    );
    // The head itself waited for the timeout, then the response ended with none of the
    // buffered bytes (not even the `retry:` line) passed on.
    assert!(head_after >= Duration::from_millis(9500), "{head_after:?}");
    assert!(ended_after < Duration::from_secs(12), "{ended_after:?}");
    assert_eq!(stream.total_bytes, 0);
}
