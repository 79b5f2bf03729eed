//! Presence and identity on budgets: a room-name poll flood, rename and nick floods,
//! a login flood from one address and the live-session cap each meet their bound, while a
//! client from another address (127.0.0.2) is still served and sees the clock tick.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pushpoll::feed::EventBody;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestApp, client_from, spawn_app, spawn_binary};

const WAIT: Duration = Duration::from_secs(5);
/// The contract's bound (not the crate's constant, so a changed constant fails here).
const MAX_ROOMS_PER_SESSION: usize = 32;

/// The chat's latest event id, as a poll without a cursor reports it.
async fn chat_position(app: &TestApp) -> u64 {
    app.poll("/poll/chat?rooms=lobby&history=0").await.1
}

async fn patch_nick(app: &TestApp, cookie: &str, nick: &str) -> (u16, serde_json::Value, bool) {
    let (status, body, headers) = app
        .send_json(
            Method::PATCH,
            "/api/session",
            Some(cookie),
            json!({ "nick": nick }),
        )
        .await;
    (status, body, headers.contains_key("retry-after"))
}

#[tokio::test]
async fn a_poll_flood_of_new_rooms_joins_at_most_32_and_presence_answers_during_it() {
    // The real binary, in its own process, so its memory is its own.
    let app = spawn_binary(&[]).await;
    let flooder = app.login("flood").await;
    let before = chat_position(&app).await;
    let rss_before = app.server_rss();

    // Four loops polling with 16 never-seen room names each time, for 4 s.
    let until = Instant::now() + Duration::from_secs(4);
    let floods: Vec<_> = (0..4)
        .map(|w| {
            let (http, url, cookie) = (app.http.clone(), app.url(""), flooder.clone());
            tokio::spawn(async move {
                let mut polls = 0u64;
                while Instant::now() < until {
                    let rooms: Vec<String> = (0..16).map(|i| format!("f{w}x{polls}x{i}")).collect();
                    let res = http
                        .get(format!(
                            "{url}/poll/chat?history=0&rooms={}",
                            rooms.join(",")
                        ))
                        .header("cookie", &cookie)
                        .send()
                        .await
                        .expect("flood poll");
                    assert_eq!(res.status(), 200, "the rooms asked for are still served");
                    polls += 1;
                }
                polls
            })
        })
        .collect();

    // During the flood, presence reads answer within 1 s for another peer.
    let other = client_from(2);
    let mut reads = 0;
    while Instant::now() + Duration::from_millis(500) < until {
        for path in ["/api/chat/users?room=lobby", "/api/chat/rooms"] {
            let started = Instant::now();
            let res = tokio::time::timeout(Duration::from_secs(1), other.get(app.url(path)).send())
                .await
                .unwrap_or_else(|_| panic!("{path} did not answer within 1 s during the flood"))
                .expect("presence read");
            assert_eq!(res.status(), 200);
            assert!(started.elapsed() < Duration::from_secs(1));
            reads += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reads >= 4, "presence was read during the flood ({reads})");
    let mut polls = 0;
    for flood in floods {
        polls += flood.await.expect("flood task");
    }
    assert!(polls >= 40, "the flood ran ({polls} polls)");

    // Give the writer a moment, then count what was written: joins only, 32 at most.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = chat_position(&app).await - before;
    assert!(
        (1..=MAX_ROOMS_PER_SESSION as u64).contains(&written),
        "{written} presence events written for {polls} polls of 16 new rooms"
    );
    let (_, rooms) = app.get_json("/api/chat/rooms").await;
    let listed = rooms["rooms"].as_array().expect("rooms").len();
    assert!(listed <= MAX_ROOMS_PER_SESSION + 1, "{listed} rooms listed");
    let grown = app.server_rss().saturating_sub(rss_before);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn renames_spend_the_message_budget_and_only_budgeted_ones_are_fanned_out() {
    let app = spawn_app(&["--rate-limit", "10"]).await;
    let renamer = app.login("renamer").await;
    let before = chat_position(&app).await;
    let (mut ok, mut limited) = (0, 0);
    for i in 0..100 {
        let (status, body, retry_after) = patch_nick(&app, &renamer, &format!("n{i}")).await;
        match status {
            200 => ok += 1,
            429 => {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                assert!(retry_after, "a 429 says when to retry");
                limited += 1;
            }
            other => panic!("rename {i}: {other} {body}"),
        }
    }
    assert_eq!((ok, limited), (10, 90));
    // Renaming to the current nick is free and writes nothing.
    assert_eq!(patch_nick(&app, &renamer, "n9").await.0, 200);

    let (events, _) = app
        .poll(&format!("/poll/chat?after={before}&rooms=lobby&limit=1000"))
        .await;
    let renames = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Rename { .. }))
        .count();
    assert_eq!(
        renames, 10,
        "only the budgeted renames were stored and fanned out"
    );

    // Another address, another session: its own budget is whole.
    let other = client_from(2);
    let res = other
        .post(app.url("/api/session"))
        .json(&json!({"nick": "other"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string();
    assert_eq!(patch_nick(&app, &cookie, "other2").await.0, 200);
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn a_websocket_nick_flood_gets_error_events_past_the_budget() {
    let app = spawn_app(&["--rate-limit", "10"]).await;
    let cookie = app.login("nicker").await;
    let mut ws = app.ws("/ws/chat?history=0", Some(&cookie)).await;
    for i in 0..50 {
        let frame = json!({"type": "nick", "nick": format!("k{i}")}).to_string();
        ws.send(Message::Text(frame.into())).await.expect("send");
    }
    let (mut renames, mut errors) = (0, 0);
    let deadline = Instant::now() + WAIT;
    while renames + errors < 50 && Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(WAIT, ws.next()).await else {
            break;
        };
        let value: serde_json::Value = serde_json::from_str(&text).expect("json frame");
        match value["type"].as_str() {
            Some("rename") => renames += 1,
            Some("error") => {
                assert_eq!(value["code"], "rate_limited", "{value}");
                errors += 1;
            }
            _ => {}
        }
    }
    assert_eq!((renames, errors), (10, 40));
    // The socket is still open and usable once the budget refills; the other peer is served.
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn a_login_flood_from_one_address_gets_429_while_another_logs_in() {
    let app = spawn_app(&["--login-rate", "5"]).await;
    let (mut created, mut limited) = (0, 0);
    for i in 0..20 {
        let (status, body, headers) = app
            .send_json(
                Method::POST,
                "/api/session",
                None,
                json!({"nick": format!("u{i}")}),
            )
            .await;
        match status {
            201 => created += 1,
            429 => {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                assert!(headers.contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("login {i}: {other} {body}"),
        }
    }
    assert_eq!((created, limited), (5, 15));
    let res = client_from(2)
        .post(app.url("/api/session"))
        .json(&json!({"nick": "elsewhere"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 201, "another address logs in");
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn live_sessions_are_capped_with_503_and_a_logout_frees_a_place() {
    let app = spawn_app(&["--max-sessions", "5"]).await;
    let mut cookies = Vec::new();
    for i in 0..5 {
        cookies.push(app.login(&format!("s{i}")).await);
    }
    let (status, body, _) = app
        .send_json(Method::POST, "/api/session", None, json!({"nick": "sixth"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_sessions")),
        "{body}"
    );
    let login_elsewhere = || async {
        client_from(2)
            .post(app.url("/api/session"))
            .json(&json!({"nick": "elsewhere"}))
            .send()
            .await
            .expect("login")
            .status()
            .as_u16()
    };
    assert_eq!(login_elsewhere().await, 503, "the cap is for everyone");
    app.another_peer_is_served().await;
    let (status, _, _) = app
        .send_json(
            Method::DELETE,
            "/api/session",
            Some(&cookies[0]),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(login_elsewhere().await, 201, "a logout frees a place");
}

/// `POST /api/session` through a trusted proxy on 127.0.0.1 for the client `forwarded`.
async fn login_as(app: &TestApp, forwarded: &str, nick: &str) -> u16 {
    app.http
        .post(app.url("/api/session"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "nick": nick }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn chat_logins_from_one_ipv6_64_share_one_budget_and_another_64_is_served() {
    let app = spawn_app(&["--trust-proxy", "127.0.0.1", "--login-rate", "5"]).await;
    // 60 addresses of one /64, as a host that picks a new address for every login would.
    let mut granted = 0;
    for i in 1..=60 {
        match login_as(&app, &format!("2001:db8:1:2::{i:x}"), &format!("v6n{i}")).await {
            201 => granted += 1,
            429 => {}
            other => panic!("login {i}: {other}"),
        }
    }
    assert_eq!(granted, 5, "the /64 has one budget of 5 a minute");
    // Another /64, and an IPv4 client, each have their own.
    assert_eq!(login_as(&app, "2001:db8:1:3::1", "nextnet").await, 201);
    assert_eq!(login_as(&app, "192.0.2.7", "four").await, 201);

    // Keyed by whole address (--ipv6-prefix 128), each address has its own budget again.
    let apart = spawn_app(&[
        "--trust-proxy",
        "127.0.0.1",
        "--login-rate",
        "5",
        "--ipv6-prefix",
        "128",
    ])
    .await;
    for i in 1..=10 {
        let status = login_as(&apart, &format!("2001:db8:1:2::{i:x}"), &format!("w{i}")).await;
        assert_eq!(status, 201, "login {i}");
    }
}

#[tokio::test]
async fn chat_a_look_alike_nick_is_refused_while_the_nick_it_imitates_is_online() {
    let app = spawn_app(&[]).await;
    let alice = app.login("alice").await;
    let post = |nick: &'static str| {
        let app = &app;
        async move {
            let (status, body, _) = app
                .send_json(Method::POST, "/api/session", None, json!({ "nick": nick }))
                .await;
            (status, body["error"]["code"].clone())
        }
    };
    // Cyrillic а, capital i for l, digit one for l, full width, case.
    for nick in ["\u{430}lice", "AIice", "a1ice", "\u{ff41}lice", "ALICE"] {
        assert_eq!(post(nick).await, (409, json!("nick_taken")), "{nick:?}");
    }
    // A rename to a look-alike is refused too; a different nick is not.
    let bob = app.login("bob").await;
    assert_eq!(patch_nick(&app, &bob, "\u{430}lice").await.0, 409);
    assert_eq!(patch_nick(&app, &bob, "alicia").await.0, 200);
    // Once alice leaves, the look-alike is free.
    let (status, _, _) = app
        .send_json(Method::DELETE, "/api/session", Some(&alice), json!({}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(post("\u{430}lice").await.0, 201);
}

/// What the server charges a room message from `from` with `text` (ASCII names, a 16-digit
/// `ts`): the event's JSON with a one-digit id, as docs/API.md defines the byte budget.
fn charged(room: &str, from: &str, text: &str) -> usize {
    format!(
        r#"{{"id":0,"ts":1796067548356253,"type":"message","room":"{room}","from":"{from}","text":"{text}"}}"#
    )
    .len()
}

/// The byte budget (`--rate-limit-bytes`, default 32 KiB per 10 s), on every path that
/// stores: four 8 KB messages fit and the fifth is refused with `429` and `Retry-After`
/// while a short message that fits is still taken (the charge is bytes, not messages); a
/// whisper past it is refused too; over WebSocket the refusal is an `error` event and the
/// socket stays open. Another session from another address has its own budget.
#[tokio::test]
async fn a_session_storing_big_messages_meets_its_byte_budget_while_another_address_is_served() {
    const BUDGET: usize = 32 * 1024;
    let app = spawn_app(&[]).await;
    let big = app.login("big").await;
    let before = chat_position(&app).await;
    // 2000 characters (the most a message takes) of 4 bytes each.
    let text = "😀".repeat(2000);
    let each = charged("lobby", "big", &text);
    let fit = BUDGET / each;
    assert_eq!(fit, 4, "{each} bytes per message");
    for i in 0..fit {
        let (status, body) = app.say(&big, "lobby", &text).await;
        assert_eq!(status, 201, "message {i}: {body}");
    }
    let (status, body, headers) = app
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&big),
            json!({"room": "lobby", "text": text}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("rate_limited"))
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("bytes"),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // The refused message was not charged: what is left still takes a short one.
    assert!(fit * each + charged("lobby", "big", "hi") <= BUDGET);
    assert_eq!(app.say(&big, "lobby", "hi").await.0, 201);

    let res = client_from(2)
        .post(app.url("/api/session"))
        .json(&json!({"nick": "other"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 201);
    let (status, body, _) = app
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&big),
            json!({"to": "other", "text": text}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("rate_limited")),
        "a whisper"
    );

    let mut ws = app.ws("/ws/chat?rooms=lobby&history=0", Some(&big)).await;
    for text in [text.as_str(), "ok"] {
        let frame = json!({"type": "say", "room": "lobby", "text": text}).to_string();
        ws.send(Message::Text(frame.into())).await.expect("send");
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let Ok(Some(Ok(Message::Text(frame)))) = tokio::time::timeout(WAIT, ws.next()).await else {
            panic!("the socket closed or went quiet after {seen:?}");
        };
        let value: serde_json::Value = serde_json::from_str(&frame).expect("json frame");
        match value["type"].as_str() {
            Some("error") => seen.push(value["code"].as_str().unwrap_or_default().to_string()),
            Some("message") => seen.push(value["text"].as_str().unwrap_or_default().to_string()),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        ["rate_limited", "ok"],
        "refused, then served on the same socket"
    );

    // Another address, another session: a whole budget of its own.
    let other = client_from(3);
    let res = other
        .post(app.url("/api/session"))
        .json(&json!({"nick": "elsewhere"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string();
    assert_eq!(app.say(&cookie, "lobby", &text).await.0, 201);
    app.another_peer_is_served().await;

    let (events, _) = app
        .poll(&format!("/poll/chat?after={before}&rooms=lobby&limit=1000"))
        .await;
    let from_big = events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Message { from, .. } if from == "big"))
        .count();
    assert_eq!(from_big, fit + 2, "only what fitted was stored");
}
