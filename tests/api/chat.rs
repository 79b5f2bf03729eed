//! The chat over every transport: one room whatever the transport, exactly once and
//! in order, whispers kept private, every subscription resumable from its cursor.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushpoll::feed::{EventBody, WireEvent};
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Subscriber, TRANSPORTS, TestApp, spawn_app};

const WAIT: Duration = Duration::from_secs(5);

async fn app() -> TestApp {
    spawn_app(&["--rate-limit", "100000"]).await
}

/// The id of the newest chat event: a cursor that skips history and presence so far.
async fn chat_cursor(app: &TestApp) -> u64 {
    let (_, next) = app.poll("/poll/chat?history=0").await;
    next
}

fn texts(events: &[WireEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.body {
            EventBody::Message { text, .. } | EventBody::Whisper { text, .. } => text.clone(),
            other => panic!("not a message: {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_reach_a_subscriber_on_every_transport_in_order_exactly_once() {
    let app = app().await;
    let cursor = chat_cursor(&app).await;
    let mut subscribers = Vec::new();
    for t in TRANSPORTS {
        subscribers.push((
            t,
            Subscriber::open(&app, t, &format!("chat?rooms=lobby&after={cursor}"), None).await,
        ));
    }
    // Two writers post over HTTP, two speak over their WebSocket, all at once.
    let mut writers = Vec::new();
    for w in 0..4 {
        let cookie = app.login(&format!("writer{w}")).await;
        let app_http = app.http.clone();
        let url = app.url("/api/chat/messages");
        let ws = if w >= 2 {
            Some(app.ws("/ws/chat?history=0", Some(&cookie)).await)
        } else {
            None
        };
        writers.push(tokio::spawn(async move {
            let mut ws = ws;
            for i in 0..50 {
                let text = format!("w{w} m{i}");
                match ws.as_mut() {
                    Some(ws) => ws
                        .send(Message::text(
                            json!({"type":"say","room":"lobby","text":text}).to_string(),
                        ))
                        .await
                        .unwrap(),
                    None => {
                        let res = app_http
                            .post(&url)
                            .header("cookie", &cookie)
                            .json(&json!({"room":"lobby","text":text}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 201);
                    }
                }
            }
            // Keep the socket open until the server has stored all 50 (they come back on it):
            // closing with unread data in the receive buffer resets the connection, and the
            // server would lose the frames it had not read yet.
            if let Some(ws) = ws.as_mut() {
                let mut mine = 0;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while mine < 50 {
                    let next = tokio::time::timeout_at(deadline, ws.next()).await;
                    let Ok(Some(Ok(Message::Text(text)))) = next else {
                        panic!("writer {w}: {mine} of its 50 messages came back");
                    };
                    if text.contains(&format!("\"w{w} m")) {
                        mine += 1;
                    }
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut reference: Option<Vec<u64>> = None;
    for (t, sub) in &mut subscribers {
        let got = sub.messages(200, Duration::from_secs(20)).await;
        let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
        assert!(
            ids.windows(2).all(|w| w[1] > w[0]),
            "{t}: out of order or duplicated"
        );
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            200,
            "{t}: duplicates"
        );
        // Each writer's own messages arrive in the order they were sent.
        for w in 0..4 {
            let mine: Vec<String> = texts(&got)
                .into_iter()
                .filter(|x| x.starts_with(&format!("w{w} ")))
                .collect();
            let expected: Vec<String> = (0..50).map(|i| format!("w{w} m{i}")).collect();
            assert_eq!(mine, expected, "{t}: writer {w}");
        }
        match &reference {
            None => reference = Some(ids),
            Some(r) => assert_eq!(&ids, r, "{t} saw a different sequence"),
        }
        assert!(
            sub.next_event(Duration::from_millis(300))
                .await
                .is_none_or(|e| !matches!(e.body, EventBody::Message { .. })),
            "{t}: more than 200"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whisper_reaches_only_its_sender_and_recipient_whatever_their_rooms_and_transports() {
    let app = app().await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let cursor = chat_cursor(&app).await;
    let q = |rooms: &str| format!("chat?rooms={rooms}&after={cursor}");
    let mut alice_sub = Subscriber::open(&app, "sse", &q("lobby"), Some(&alice)).await;
    let mut bob_sub = Subscriber::open(&app, "ws", &q("red"), Some(&bob)).await;
    let mut bob_poll = Subscriber::open(&app, "poll", &q("blue"), Some(&bob)).await;
    let mut carol_sub = Subscriber::open(&app, "iframe", &q("lobby,red"), Some(&carol)).await;
    let mut anon = Subscriber::open(&app, "longpoll", &q("lobby,red"), None).await;

    let (status, _, _) = app
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&alice),
            json!({"to":"bob","text":"psst"}),
        )
        .await;
    assert_eq!(status, 201);
    // A marker everybody in lobby/red sees after the whisper.
    for room in ["lobby", "red", "blue"] {
        assert_eq!(
            app.say(&carol, room, &format!("marker {room}")).await.0,
            201
        );
    }
    let whisper_then_marker = |got: Vec<WireEvent>| texts(&got);
    assert_eq!(
        whisper_then_marker(alice_sub.messages(2, WAIT).await),
        vec!["psst", "marker lobby"]
    );
    assert_eq!(
        whisper_then_marker(bob_sub.messages(2, WAIT).await),
        vec!["psst", "marker red"]
    );
    assert_eq!(
        whisper_then_marker(bob_poll.messages(2, WAIT).await),
        vec!["psst", "marker blue"]
    );
    assert_eq!(
        whisper_then_marker(carol_sub.messages(2, WAIT).await),
        vec!["marker lobby", "marker red"]
    );
    assert_eq!(
        whisper_then_marker(anon.messages(2, WAIT).await),
        vec!["marker lobby", "marker red"]
    );

    // Nor can a later subscriber replay it from history or a cursor.
    let (events, _) = app
        .poll(&format!("/poll/chat?rooms=lobby,red&after={cursor}"))
        .await;
    assert!(
        events.iter().all(|e| e.body.kind() != "whisper"),
        "{events:?}"
    );

    let (status, body, _) = app
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&alice),
            json!({"to":"nobody","text":"hi"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_resumes_after_a_disconnect_with_nothing_lost_or_duplicated() {
    let app = app().await;
    let alice = app.login("alice").await;
    for t in TRANSPORTS {
        let cursor = chat_cursor(&app).await;
        let mut sub = Subscriber::open(&app, t, &format!("chat?after={cursor}"), None).await;
        app.say(&alice, "lobby", &format!("{t} before")).await;
        let seen = sub.messages(1, WAIT).await;
        drop(sub);
        for i in 0..3 {
            app.say(&alice, "lobby", &format!("{t} missed {i}")).await;
        }
        let last = seen[0].id;
        let mut resumed = if t == "sse" {
            // What EventSource does: the same URL, with the last id in a header.
            let req = app
                .http
                .get(app.url("/sse/chat"))
                .header("Last-Event-ID", last.to_string());
            Subscriber::Stream {
                stream: crate::support::Streaming::open(req).await,
                sse: true,
            }
        } else {
            Subscriber::open(&app, t, &format!("chat?after={last}"), None).await
        };
        let got = resumed.messages(3, WAIT).await;
        assert_eq!(
            texts(&got),
            (0..3)
                .map(|i| format!("{t} missed {i}"))
                .collect::<Vec<_>>(),
            "{t}"
        );
        assert!(got[0].id > last);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_gets_the_rooms_history_first_and_history_pages_back() {
    let app = spawn_app(&["--rate-limit", "1000", "--history", "5"]).await;
    let alice = app.login("alice").await;
    for i in 0..12 {
        app.say(
            &alice,
            if i % 2 == 0 { "lobby" } else { "red" },
            &format!("m{i}"),
        )
        .await;
    }
    for t in TRANSPORTS {
        let mut sub = Subscriber::open(&app, t, "chat?rooms=lobby", None).await;
        assert_eq!(
            texts(&sub.messages(5, WAIT).await),
            ["m2", "m4", "m6", "m8", "m10"],
            "{t}: default history"
        );
        let mut sub = Subscriber::open(&app, t, "chat?rooms=lobby,red&history=3", None).await;
        assert_eq!(
            texts(&sub.messages(3, WAIT).await),
            ["m9", "m10", "m11"],
            "{t}: history=3 over two rooms"
        );
    }
    let (status, page) = app.get_json("/api/chat/history?room=lobby&limit=2").await;
    assert_eq!(status, 200);
    let page: Vec<WireEvent> = serde_json::from_value(page["events"].clone()).unwrap();
    assert_eq!(texts(&page), ["m8", "m10"]);
    let (_, older) = app
        .get_json(&format!(
            "/api/chat/history?room=lobby&limit=3&before={}",
            page[0].id
        ))
        .await;
    let older: Vec<WireEvent> = serde_json::from_value(older["events"].clone()).unwrap();
    assert_eq!(texts(&older), ["m2", "m4", "m6"]);
    let (status, _) = app.get_json("/poll/chat?history=201").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_joins_leaves_and_renames_are_events_and_served() {
    let app = app().await;
    let cursor = chat_cursor(&app).await;
    let mut watcher = Subscriber::open(
        &app,
        "sse",
        &format!("chat?rooms=lobby,red&after={cursor}"),
        None,
    )
    .await;
    let bob = app.login("bob").await;
    let bob_ws = app
        .ws("/ws/chat?rooms=lobby,red&history=0", Some(&bob))
        .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = watcher.next_event(WAIT).await.expect("join events");
        seen.push(e.body);
    }
    assert!(seen.contains(&EventBody::Join {
        room: "lobby".into(),
        nick: "bob".into()
    }));
    assert!(seen.contains(&EventBody::Join {
        room: "red".into(),
        nick: "bob".into()
    }));

    let alice = app.login("alice").await;
    app.poll_with_cookie("/poll/chat?rooms=red", &alice).await;
    assert_eq!(
        watcher.next_event(WAIT).await.unwrap().body,
        EventBody::Join {
            room: "red".into(),
            nick: "alice".into()
        }
    );
    let (_, users) = app.get_json("/api/chat/users?room=red").await;
    assert_eq!(users["users"], json!(["alice", "bob"]));
    let (_, rooms) = app.get_json("/api/chat/rooms").await;
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .contains(&json!({"room":"red","online":2})),
        "{rooms}"
    );

    let (status, body, _) = app
        .send_json(
            Method::PATCH,
            "/api/session",
            Some(&bob),
            json!({"nick":"robert"}),
        )
        .await;
    assert_eq!((status, body["nick"].as_str()), (200, Some("robert")));
    assert_eq!(
        watcher.next_event(WAIT).await.unwrap().body,
        EventBody::Rename {
            from: "bob".into(),
            nick: "robert".into()
        }
    );

    drop(bob_ws);
    let mut left = Vec::new();
    while left.len() < 2 {
        left.push(watcher.next_event(WAIT).await.expect("leave events").body);
    }
    assert!(
        left.contains(&EventBody::Leave {
            room: "lobby".into(),
            nick: "robert".into()
        }),
        "{left:?}"
    );
    assert!(
        left.contains(&EventBody::Leave {
            room: "red".into(),
            nick: "robert".into()
        }),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_leaves_and_closes_the_sessions_socket() {
    let app = app().await;
    let alice = app.login("alice").await;
    let mut ws = app.ws("/ws/chat?history=0", Some(&alice)).await;
    let (status, _, headers) = app
        .send_json(Method::DELETE, "/api/session", Some(&alice), json!(null))
        .await;
    assert_eq!(status, 204);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1000);
    assert_eq!(app.say(&alice, "lobby", "still here?").await.0, 401);
    let (status, _, _) = app
        .send_json(Method::GET, "/api/session", Some(&alice), json!(null))
        .await;
    assert_eq!(status, 401);
    // The nick is free again.
    app.login("alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_with_a_leave_and_its_sockets_close_with_4000() {
    let app = spawn_app(&["--idle-timeout", "600ms"]).await;
    let cursor = chat_cursor(&app).await;
    let mut watcher = Subscriber::open(&app, "poll", &format!("chat?after={cursor}"), None).await;
    let alice = app.login("alice").await;
    let mut ws = app.ws("/ws/chat?history=0", Some(&alice)).await;
    let mut sse = Subscriber::open(&app, "sse", "chat?history=0", Some(&alice)).await;
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed within 5 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4000);
    assert_eq!(close.reason.as_str(), "idle timeout");
    let Subscriber::Stream { stream, .. } = &mut sse else {
        unreachable!()
    };
    stream.read_to_end(WAIT).await;
    let mut bodies = Vec::new();
    while let Some(e) = watcher.next_event(Duration::from_millis(1500)).await {
        bodies.push(e.body);
    }
    assert!(
        bodies.contains(&EventBody::Join {
            room: "lobby".into(),
            nick: "alice".into()
        }),
        "{bodies:?}"
    );
    assert_eq!(
        bodies.last(),
        Some(&EventBody::Leave {
            room: "lobby".into(),
            nick: "alice".into()
        }),
        "{bodies:?}"
    );
    assert_eq!(app.say(&alice, "lobby", "hello?").await.0, 401);
}

#[tokio::test]
async fn a_cursor_beyond_the_log_gets_a_gap_event() {
    let app = app().await;
    let alice = app.login("alice").await;
    app.say(&alice, "lobby", "one").await;
    let (events, next) = app.poll("/poll/chat?after=999999").await;
    assert_eq!(
        events[0].body,
        EventBody::Gap {
            after: 999_999,
            resumed_from: next + 1
        }
    );
}
