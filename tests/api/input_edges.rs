//! Input edges: a `rooms=` list as long as a request head allows is refused
//! with a 400 in time linear in its length, and other clients never notice.

use std::time::{Duration, Instant};

use crate::support::{TestApp, client_from, spawn_app};

/// `n` distinct room names, as short as they can be (1–3 characters of `[A-Za-z0-9_-]`), so
/// that 17,000 of them still fit the 64 KiB request head.
fn distinct_names(n: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let base = ALPHABET.len();
    let mut names = Vec::with_capacity(n);
    for len in 1..=3u32 {
        for i in 0..base.pow(len) {
            if names.len() == n {
                return names;
            }
            let mut name = String::new();
            let mut rest = i;
            for _ in 0..len {
                name.push(ALPHABET[rest % base] as char);
                rest /= base;
            }
            names.push(name);
        }
    }
    names
}

async fn poll_rooms(client: &reqwest::Client, app: &TestApp, rooms: &str) -> (u16, String) {
    let res = client
        .get(app.url(&format!("/poll/chat?rooms={rooms}")))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn seventeen_thousand_rooms_get_a_fast_400_and_other_clients_are_served() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let attacker = client_from(1);
    let bystander = client_from(2);
    let first_tick = app.latest_tick().await;

    let names = distinct_names(17_000);
    let raw = names.join(",");
    assert!(raw.len() < 64 * 1024 - 200, "{} bytes", raw.len());
    // Before the fix this de-duplicated quadratically: ~145 million comparisons, 227 ms a
    // request in a release build and seconds in a test build. Now the 17th distinct name
    // stops the scan (and the raw length is refused before any split).
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = poll_rooms(&attacker, &app, &raw).await;
        let took = started.elapsed();
        assert_eq!(status, 400, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json error");
        assert_eq!(body["error"]["code"], "invalid_room", "{body}");
        assert!(took < Duration::from_secs(1), "17k rooms took {took:?}");
    }

    // A long list of one repeated name is bounded by bytes, before any splitting.
    let repeated = vec!["a"; 20_000].join(",");
    let (status, body) = poll_rooms(&attacker, &app, &repeated).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_room"), "{body}");

    // The bound itself: 16 distinct rooms (with repeats and blanks) pass, a 17th is refused.
    let sixteen = names[..16].join(",");
    let (status, body) = poll_rooms(&attacker, &app, &format!("{sixteen},{sixteen}, A ")).await;
    assert_eq!(status, 200, "{body}");
    let seventeen = names[..17].join(",");
    let (status, body) = poll_rooms(&attacker, &app, &seventeen).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_room"), "{body}");

    // Another client, from another address, is served and the clock still ticks for it.
    let res = bystander
        .get(app.url(&format!("/longpoll/clock?after={first_tick}")))
        .send()
        .await
        .expect("bystander request");
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["next"].as_u64().is_some_and(|next| next > first_tick),
        "the clock stood still: {body}"
    );
}
