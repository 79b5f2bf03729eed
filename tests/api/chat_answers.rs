//! One answer holds at most 64 KiB of events, plus one: a short poll, a
//! long poll and a page of history of big messages stop there, and their cursor (`next`, or
//! `before` = the oldest id returned) leads to the rest, every message once, in order. (In
//! the `chat` group, so the test command runs them against every engine.)

use std::time::Duration;

use crate::support::{TestApp, spawn_app};

/// The contract's cap (not the crate's constant, so a changed constant fails here).
const ANSWER_BYTES: usize = 64 * 1024;
/// 2000 four-byte characters: 8,000 bytes of text, sent as is in the JSON.
const BIG: usize = 2000;

/// Posts `n` big messages to `lobby`; returns their ids.
async fn post_big(app: &TestApp, n: usize) -> Vec<u64> {
    let cookie = app.login("big").await;
    let text = "🦀".repeat(BIG);
    let mut ids = Vec::new();
    for _ in 0..n {
        let (status, body) = app.say(&cookie, "lobby", &text).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_u64().unwrap());
    }
    ids
}

/// One answer's events (their ids) and its body's length; asserts the cap.
async fn capped(app: &TestApp, path: &str) -> (Vec<u64>, serde_json::Value) {
    let res = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let bytes = res.bytes().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let events = body["events"].as_array().unwrap();
    let largest = events
        .iter()
        .map(|e| e.to_string().len())
        .max()
        .unwrap_or(0);
    assert!(
        bytes.len() <= ANSWER_BYTES + largest + 64,
        "{path}: {} bytes in {} events",
        bytes.len(),
        events.len()
    );
    let ids = events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    (ids, body)
}

#[tokio::test]
async fn chat_polls_stop_at_64_kib_and_next_leads_to_every_message_once() {
    let app = spawn_app(&[
        "--rate-limit",
        "1000000",
        "--rate-limit-bytes",
        "1073741824",
    ])
    .await;
    let sent = post_big(&app, 30).await;
    for transport in ["poll", "longpoll"] {
        let mut got = Vec::new();
        let mut cursor = 0;
        let mut answers = 0;
        while got.len() < sent.len() {
            let (ids, body) = capped(
                &app,
                &format!("/{transport}/chat?after={cursor}&limit=1000&timeout=1"),
            )
            .await;
            assert!(ids.len() < sent.len(), "{transport}: not capped");
            got.extend(ids);
            cursor = body["next"].as_u64().unwrap();
            answers += 1;
            assert!(
                answers <= 10,
                "{transport}: {answers} answers for 30 messages"
            );
        }
        assert_eq!(got, sent, "{transport}: every message once, in order");
    }
}

#[tokio::test]
async fn chat_history_pages_stop_at_64_kib_and_before_leads_to_the_older_ones() {
    let app = spawn_app(&[
        "--rate-limit",
        "1000000",
        "--rate-limit-bytes",
        "1073741824",
    ])
    .await;
    let sent = post_big(&app, 30).await;
    let mut got: Vec<u64> = Vec::new();
    let mut before = String::new();
    for _ in 0..10 {
        let (ids, _) = capped(
            &app,
            &format!("/api/chat/history?room=lobby&limit=200{before}"),
        )
        .await;
        if ids.is_empty() {
            break;
        }
        assert!(ids.len() < sent.len(), "not capped");
        // Newest first in paging, oldest first within a page.
        before = format!("&before={}", ids[0]);
        got.splice(0..0, ids);
    }
    assert_eq!(got, sent);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
