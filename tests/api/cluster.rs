//! Many nodes, one chat (`--redis`): real `pushpoll` processes over one real `redis-server`
//! on a free loopback port. Every message reaches every subscriber on every node and
//! transport once, in one id order; sessions, nicks, whispers and presence hold across
//! nodes; a killed node's clients resume on another from their cursors; Redis killed,
//! restarted or stopped loses nothing it acknowledged.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pushpoll::feed::{EventBody, WireEvent};
use reqwest::Method;
use serde_json::json;

use crate::support::redis::RedisServer;
use crate::support::{Subscriber, TRANSPORTS, TestApp, spawn_binary};

const WAIT: Duration = Duration::from_secs(10);

/// What docs/SCALE.md states: a dead node's users leave within `NODE_TTL + HEARTBEAT` (5 s
/// + 1 s) plus one reaper beat; the test allows 1 s more for scheduling.
const LEAVE_BOUND: Duration = Duration::from_secs(8);

async fn node(redis: &RedisServer) -> TestApp {
    spawn_binary(&[
        "--redis",
        &redis.url(),
        "--rate-limit",
        "100000",
        "--rate-limit-bytes",
        "1073741824",
    ])
    .await
}

/// The id of the newest chat event on `app`.
async fn chat_cursor(app: &TestApp) -> u64 {
    app.poll("/poll/chat?history=0").await.1
}

fn text(event: &WireEvent) -> &str {
    match &event.body {
        EventBody::Message { text, .. } | EventBody::Whisper { text, .. } => text,
        other => panic!("not a message: {other:?}"),
    }
}

async fn users(app: &TestApp, room: &str) -> Vec<String> {
    let (status, body) = app.get_json(&format!("/api/chat/users?room={room}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["users"].clone()).unwrap()
}

/// Waits until `room`'s online list on `app` satisfies `ok`; how long it took.
async fn until_users(
    app: &TestApp,
    room: &str,
    within: Duration,
    ok: impl Fn(&[String]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = users(app, room).await;
        if ok(&now) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "online in {room} after {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_are_one_chat_on_every_transport() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let cursor = chat_cursor(&a).await;

    // One session store: a cookie from node A is valid on node B; a nick is held once.
    let alice = a.login("alice").await;
    let bob = b.login("bob").await;
    let carol = b.login("carol").await;
    let (status, body, _) = b
        .send_json(Method::GET, "/api/session", Some(&alice), json!(null))
        .await;
    assert_eq!((status, &body["nick"]), (200, &json!("alice")), "{body}");
    let (status, body, _) = b
        .send_json(Method::POST, "/api/session", None, json!({"nick": "ALICE"}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("nick_taken"))
    );
    let (status, _, _) = a
        .send_json(
            Method::PATCH,
            "/api/session",
            Some(&bob),
            json!({"nick": "Carol"}),
        )
        .await;
    assert_eq!(
        status, 409,
        "carol's nick, held on node B, is refused on node A"
    );

    // Subscribers on every transport on both nodes, anonymous; and alice's and carol's
    // own streams, on the node where they did not sign in.
    let query = format!("chat?rooms=lobby&history=0&after={cursor}");
    let mut subs = Vec::new();
    for app in [&a, &b] {
        for t in TRANSPORTS {
            subs.push((
                format!("{t}@{}", app.addr),
                Subscriber::open(app, t, &query, None).await,
            ));
        }
    }
    let mut alice_sse = Subscriber::open(&b, "sse", &query, Some(&alice)).await;
    let mut carol_ws = Subscriber::open(&a, "ws", &query, Some(&carol)).await;

    // Presence is the union over nodes: both are online, each through the other node.
    until_users(&a, "lobby", WAIT, |u| u.contains(&"alice".into())).await;
    until_users(&b, "lobby", WAIT, |u| u.contains(&"carol".into())).await;

    // Writers on both nodes at once; then a whisper from B to A's user, then a marker.
    const EACH: usize = 15;
    let write = |app: &TestApp, cookie: String, who: &'static str| {
        let http = app.http.clone();
        let url = app.url("/api/chat/messages");
        async move {
            for i in 0..EACH {
                let res = http
                    .post(&url)
                    .header("cookie", &cookie)
                    .json(&json!({"room": "lobby", "text": format!("{who}-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        }
    };
    tokio::join!(
        write(&a, alice.clone(), "alice"),
        write(&b, bob.clone(), "bob")
    );
    let (status, body, _) = a
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&bob),
            json!({"to": "alice", "text": "psst"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(b.say(&bob, "lobby", "end").await.0, 201);

    let mut orders = Vec::new();
    for (name, sub) in &mut subs {
        let got = sub.messages(2 * EACH + 1, WAIT).await;
        let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{name}: {ids:?}");
        let texts: HashSet<&str> = got.iter().map(text).collect();
        assert_eq!(texts.len(), 2 * EACH + 1, "{name}: each message once");
        assert!(!texts.contains("psst"), "{name} saw a whisper");
        assert_eq!(text(got.last().unwrap()), "end", "{name}");
        orders.push((name.clone(), ids));
    }
    for (name, ids) in &orders[1..] {
        assert_eq!(ids, &orders[0].1, "{name} and {} differ", orders[0].0);
    }
    let got = alice_sse.messages(2 * EACH + 2, WAIT).await;
    assert_eq!(
        text(&got[2 * EACH]),
        "psst",
        "alice gets bob's whisper on node B"
    );
    let got = carol_ws.messages(2 * EACH + 1, WAIT).await;
    assert!(got.iter().all(|e| text(e) != "psst"), "carol does not");

    // History is one log too.
    let (_, body) = b.get_json("/api/chat/history?room=lobby&limit=200").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 2 * EACH + 1);

    // Carol's only stream closes: she leaves, once, and the union forgets her.
    drop(carol_ws);
    until_users(&b, "lobby", WAIT, |u| !u.contains(&"carol".into())).await;
    let mut watcher =
        Subscriber::open(&a, "sse", &format!("chat?rooms=lobby&after={cursor}"), None).await;
    let mut leaves = 0;
    while let Some(event) = watcher.next_event(Duration::from_millis(500)).await {
        if matches!(&event.body, EventBody::Leave { nick, .. } if nick == "carol") {
            leaves += 1;
        }
    }
    assert_eq!(leaves, 1, "carol's leave is written once");
}

/// A client that keeps reading the chat from `after` over one transport, and when its node
/// goes away, asks the next node from its cursor. Returns the messages it got.
async fn resuming_reader(
    nodes: Vec<String>,
    transport: &'static str,
    cookie: String,
    mut after: u64,
    want: usize,
) -> Vec<WireEvent> {
    let http = reqwest::Client::new();
    let mut got: Vec<WireEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut node = 0;
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "{transport}: {} of {want}",
            got.len()
        );
        let base = &nodes[node % nodes.len()];
        let query = format!("chat?rooms=lobby&history=0&after={after}");
        // Reads until the connection fails; then the next node.
        fn take(event: WireEvent, after: &mut u64, got: &mut Vec<WireEvent>) {
            *after = (*after).max(event.id);
            if matches!(event.body, EventBody::Message { .. }) {
                got.push(event);
            }
        }
        match transport {
            "longpoll" => loop {
                let url = format!(
                    "http://{base}/longpoll/chat?rooms=lobby&history=0&after={after}&timeout=2"
                );
                let Ok(res) = http.get(&url).header("cookie", &cookie).send().await else {
                    break;
                };
                let Ok(body) = res.json::<serde_json::Value>().await else {
                    break;
                };
                let events: Vec<WireEvent> =
                    serde_json::from_value(body["events"].clone()).unwrap();
                for event in events {
                    take(event, &mut after, &mut got);
                }
                after = after.max(body["next"].as_u64().unwrap());
                if got.len() >= want {
                    break;
                }
            },
            "sse" => {
                let Ok(res) = http
                    .get(format!("http://{base}/sse/{query}"))
                    .header("cookie", &cookie)
                    .send()
                    .await
                else {
                    node += 1;
                    continue;
                };
                let mut body = res.bytes_stream();
                let mut buf = Vec::new();
                'read: while let Ok(Some(Ok(chunk))) =
                    tokio::time::timeout(Duration::from_secs(3), body.next()).await
                {
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        let frame: Vec<u8> = buf.drain(..end + 2).collect();
                        let frame = String::from_utf8(frame).unwrap();
                        if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: "))
                            && !pushpoll::wire::is_heartbeat(data.as_bytes())
                        {
                            take(serde_json::from_str(data).unwrap(), &mut after, &mut got);
                        }
                        if got.len() >= want {
                            break 'read;
                        }
                    }
                }
            }
            "ws" => {
                use tokio_tungstenite::tungstenite::client::IntoClientRequest;
                let mut request = format!("ws://{base}/ws/{query}")
                    .into_client_request()
                    .unwrap();
                request
                    .headers_mut()
                    .insert("cookie", cookie.parse().unwrap());
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
                    node += 1;
                    continue;
                };
                while let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(3), ws.next()).await
                {
                    if let tokio_tungstenite::tungstenite::Message::Text(text) = message
                        && !pushpoll::wire::is_heartbeat(text.as_bytes())
                    {
                        take(serde_json::from_str(&text).unwrap(), &mut after, &mut got);
                        if got.len() >= want {
                            break;
                        }
                    }
                }
            }
            other => panic!("{other}"),
        }
        node += 1;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_resume_on_another_from_their_cursors() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis).await;
    let mut b = node(&redis).await;
    let cursor = chat_cursor(&a).await;
    let writer = a.login("writer").await;
    let reader = b.login("reader").await;
    // bea's only client is on node B: when B dies, a surviving node must say she left.
    let bea = b.login("bea").await;
    let _bea_stream = Subscriber::open(&b, "sse", "chat?rooms=lobby&history=0", Some(&bea)).await;
    until_users(&a, "lobby", WAIT, |u| u.contains(&"bea".into())).await;

    const N: usize = 40;
    // The readers start on B, then go to A.
    let nodes = vec![b.addr.to_string(), a.addr.to_string()];
    let readers: Vec<_> = ["ws", "sse", "longpoll"]
        .into_iter()
        .map(|t| tokio::spawn(resuming_reader(nodes.clone(), t, reader.clone(), cursor, N)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut acked = Vec::new();
    let mut killed_at = None;
    for i in 0..N {
        let (status, body) = a.say(&writer, "lobby", &format!("m{i}")).await;
        assert_eq!(status, 201, "{body}");
        acked.push(body["id"].as_u64().unwrap());
        if i == N / 4 {
            b.kill9().await;
            killed_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (reader, t) in readers.into_iter().zip(["ws", "sse", "longpoll"]) {
        let got = reader.await.unwrap();
        let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
        assert_eq!(
            ids, acked,
            "{t}: every acknowledged message once, in order, across the kill"
        );
    }
    // bea leaves within the stated bound, written by node A.
    let took = until_users(&a, "lobby", LEAVE_BOUND, |u| !u.contains(&"bea".into())).await;
    let since_kill = killed_at.unwrap().elapsed();
    eprintln!("bea left {took:?} after the last write, {since_kill:?} after the kill");
    // Measured from the kill: the bound docs/SCALE.md states (7 s) plus 1 s of scheduling.
    assert!(since_kill <= LEAVE_BOUND, "{since_kill:?}");
    let (events, _) = a
        .poll(&format!("/poll/chat?rooms=lobby&history=0&after={cursor}"))
        .await;
    let leaves = events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Leave { nick, .. } if nick == "bea"))
        .count();
    assert_eq!(leaves, 1);
}

/// Sends `text` until it is acknowledged; the statuses seen before (503s while Redis is away).
async fn say_until_stored(app: &TestApp, cookie: &str, text: &str) -> (u64, Vec<u16>) {
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, headers) = app
            .send_json(
                Method::POST,
                "/api/chat/messages",
                Some(cookie),
                json!({"room": "lobby", "text": text}),
            )
            .await;
        if status == 201 {
            return (body["id"].as_u64().unwrap(), refused);
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert!(headers.contains_key("retry-after"));
        refused.push(status);
        assert!(Instant::now() < deadline, "not stored within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_loses_nothing_it_acknowledged() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let cursor = chat_cursor(&a).await;
    let cookie = a.login("alice").await;
    let query = format!("chat?rooms=lobby&history=0&after={cursor}");
    let mut on_a = Subscriber::open(&a, "sse", &query, None).await;
    let mut on_b = Subscriber::open(&b, "ws", &query, None).await;
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(
            say_until_stored(&a, &cookie, &format!("before-{i}"))
                .await
                .0,
        );
    }
    redis.kill9();
    let (status, body, _) = a
        .send_json(
            Method::POST,
            "/api/chat/messages",
            Some(&cookie),
            json!({"room": "lobby", "text": "while down"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("store_unavailable"))
    );
    redis.restart().await;
    for i in 0..10 {
        let (id, _) = say_until_stored(&b, &cookie, &format!("after-{i}")).await;
        assert!(id > acked[9], "ids continue above the old ones: {id}");
        acked.push(id);
    }
    for sub in [&mut on_a, &mut on_b] {
        let got = sub.messages(20, WAIT).await;
        let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
        assert_eq!(ids, acked, "open streams resume, nothing acknowledged lost");
    }
    let (_, body) = b.get_json("/api/chat/history?room=lobby&limit=50").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_for_five_seconds_refuses_writes_then_delivers() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let cursor = chat_cursor(&a).await;
    let cookie = a.login("alice").await;
    let query = format!("chat?rooms=lobby&history=0&after={cursor}");
    let mut on_b = Subscriber::open(&b, "sse", &query, None).await;
    let mut acked = vec![say_until_stored(&a, &cookie, "first").await.0];
    redis.stop();
    let stopped = Instant::now();
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    while stopped.elapsed() < Duration::from_secs(5) {
        let asked = Instant::now();
        let (status, body) = a.say(&cookie, "lobby", "during").await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(
            (status, &body["error"]["code"]),
            (503, &json!("store_unavailable"))
        );
        refused += 1;
    }
    redis.cont();
    eprintln!(
        "{refused} writes refused while Redis was stopped, the slowest answer in {slowest:?}"
    );
    assert!(refused >= 1);
    // docs/API.md: a write gets its 503 within the 2 s deadline (plus slack for a loaded
    // machine).
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");
    let (id, _) = say_until_stored(&a, &cookie, "last").await;
    acked.push(id);
    // A refused write's outcome is unknown (docs/API.md): Redis runs what it had received
    // once it resumes. What Redis stored is delivered, in order, once; the acknowledged
    // messages among it.
    let (_, history) = b.get_json("/api/chat/history?room=lobby&limit=200").await;
    let stored: Vec<(u64, String)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let during = stored.len() - 2;
    assert!(during <= refused, "{stored:?}");
    assert_eq!(stored[0], (acked[0], "first".to_string()));
    assert_eq!(stored[stored.len() - 1], (acked[1], "last".to_string()));
    assert!(
        stored[1..stored.len() - 1]
            .iter()
            .all(|(_, t)| t == "during")
    );
    let got = on_b.messages(stored.len(), WAIT).await;
    assert_eq!(
        got.iter()
            .map(|e| (e.id, text(e).to_string()))
            .collect::<Vec<_>>(),
        stored
    );
}

/// The Redis log keeps `--redis-retention` events (trimmed in whole stream nodes of 100): a
/// node that must read a cursor older than that from Redis says so with a `gap`, and
/// delivers from the oldest event kept, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_redis_retention_gets_a_gap() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = spawn_binary(&[
        "--redis",
        &redis.url(),
        "--redis-retention",
        "100",
        "--rate-limit",
        "100000",
    ])
    .await;
    let cookie = a.login("alice").await;
    assert_eq!(
        a.say(&cookie, "quiet", "the only message here").await.0,
        201
    );
    for i in 0..350 {
        assert_eq!(a.say(&cookie, "lobby", &format!("m{i}")).await.0, 201);
    }
    // A room whose last message is older than the retention holds no history in Redis.
    let quiet = redis
        .command(&["EXISTS", "pushpoll:room:quiet"])
        .await
        .unwrap();
    assert_eq!(quiet.as_deref(), Some("0"));
    let kept = redis
        .command(&["XLEN", "pushpoll:log"])
        .await
        .unwrap()
        .unwrap();
    let kept: u64 = kept.parse().unwrap();
    assert!((100..350).contains(&kept), "{kept} kept");
    // A node started now has nothing in memory: it reads the cursor's events from Redis.
    let b = node(&redis).await;
    let (events, _) = b.poll("/poll/chat?rooms=lobby&after=1").await;
    let EventBody::Gap {
        after,
        resumed_from,
    } = &events[0].body
    else {
        panic!("no gap first: {:?}", events[0]);
    };
    assert_eq!(*after, 1);
    assert!(*resumed_from > 2, "{resumed_from}");
    assert_eq!(
        events[1].id, *resumed_from,
        "delivery resumes where the gap says"
    );
    let ids: Vec<u64> = events[1..].iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // The room's history is trimmed with the log.
    let (_, body) = b.get_json("/api/chat/history?room=lobby&limit=200").await;
    let oldest = body["events"][0]["id"].as_u64().unwrap();
    assert!(oldest >= *resumed_from - 100, "{oldest}");
}

/// The budgets are the cluster's, not each node's: a session's messages and an address's
/// logins count wherever they were sent, and another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_over_every_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let args = [
        "--redis",
        &redis.url(),
        "--rate-limit",
        "5",
        "--login-rate",
        "4",
    ];
    let (a, b) = (spawn_binary(&args).await, spawn_binary(&args).await);
    let cookie = a.login("alice").await;
    for (i, app) in [&a, &b, &a, &b, &b].into_iter().enumerate() {
        assert_eq!(app.say(&cookie, "lobby", &format!("m{i}")).await.0, 201);
    }
    for app in [&a, &b] {
        let (status, body, headers) = app
            .send_json(
                Method::POST,
                "/api/chat/messages",
                Some(&cookie),
                json!({"room": "lobby", "text": "one too many"}),
            )
            .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (429, &json!("rate_limited"))
        );
        assert!(headers.contains_key("retry-after"));
    }
    // alice's login was the first of this address's 4 per minute; 3 more over both nodes.
    for (i, app) in [&b, &a, &b].into_iter().enumerate() {
        let (status, _, _) = app
            .send_json(
                Method::POST,
                "/api/session",
                None,
                json!({"nick": format!("u{i}")}),
            )
            .await;
        assert_eq!(status, 201);
    }
    for app in [&a, &b] {
        let (status, body, _) = app
            .send_json(Method::POST, "/api/session", None, json!({"nick": "late"}))
            .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (429, &json!("rate_limited"))
        );
    }
    let other = crate::support::client_from(2);
    let res = other
        .post(b.url("/api/session"))
        .json(&json!({"nick": "elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "another address is still served");
}

/// A node stopped normally (SIGTERM) marks itself dead in Redis as it goes: another node
/// writes its users' `leave`s at its next beat, without waiting for the 5 s expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_normally_hands_its_users_over_within_a_beat() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis).await;
    let mut b = node(&redis).await;
    let dee = b.login("dee").await;
    let _stream = Subscriber::open(&b, "sse", "chat?rooms=lobby&history=0", Some(&dee)).await;
    until_users(&a, "lobby", WAIT, |u| u.contains(&"dee".into())).await;
    let stopping = Instant::now();
    b.terminate().await;
    until_users(&a, "lobby", Duration::from_secs(3), |u| {
        !u.contains(&"dee".into())
    })
    .await;
    eprintln!("dee left {:?} after SIGTERM", stopping.elapsed());
}

/// A Redis that lost everything (no persistence, or its files gone): the nodes' ids still go
/// on above every id they delivered, so no cursor of theirs is reused, and open streams keep
/// delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_loses_its_data_ids_continue_above_what_the_nodes_delivered() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis).await;
    let cursor = chat_cursor(&a).await;
    let cookie = a.login("alice").await;
    let mut sub = Subscriber::open(
        &a,
        "ws",
        &format!("chat?rooms=lobby&history=0&after={cursor}"),
        None,
    )
    .await;
    let mut last = 0;
    for i in 0..5 {
        last = say_until_stored(&a, &cookie, &format!("m{i}")).await.0;
    }
    redis.command(&["FLUSHALL"]).await.unwrap();
    // The session went with the data: sign in again, then write.
    let cookie = a.login("alice").await;
    let (id, _) = say_until_stored(&a, &cookie, "after the loss").await;
    assert!(id > last, "{id} is above {last}");
    let got = sub.messages(6, WAIT).await;
    assert_eq!(text(&got[5]), "after the loss");
    assert_eq!(got[5].id, id);
}

/// A node checks a message's sender against Redis in the same step that stores it: renamed on
/// another node a moment ago, the sender is named by the new nick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_carries_the_nick_given_on_another_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let cookie = a.login("alice").await;
    assert_eq!(a.say(&cookie, "lobby", "as alice").await.0, 201);
    let (status, _, _) = b
        .send_json(
            Method::PATCH,
            "/api/session",
            Some(&cookie),
            json!({"nick": "alicia"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = a.say(&cookie, "lobby", "as alicia").await;
    assert_eq!(status, 201, "{body}");
    let (_, history) = b.get_json("/api/chat/history?room=lobby").await;
    let from: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["from"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["alice", "alicia"]);
}

/// A node that was only paused past the 5 s expiry (SIGSTOP) is taken for dead and its users
/// leave; when it runs again its next heartbeat finds it unknown, and it states its presence
/// again: its user is back online without reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_the_expiry_states_its_presence_again() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis).await;
    let b = node(&redis).await;
    let eve = b.login("eve").await;
    let _stream = Subscriber::open(&b, "sse", "chat?rooms=lobby&history=0", Some(&eve)).await;
    until_users(&a, "lobby", WAIT, |u| u.contains(&"eve".into())).await;
    b.signal(libc::SIGSTOP);
    until_users(&a, "lobby", LEAVE_BOUND, |u| !u.contains(&"eve".into())).await;
    b.signal(libc::SIGCONT);
    let back = until_users(&a, "lobby", Duration::from_secs(3), |u| {
        u.contains(&"eve".into())
    })
    .await;
    eprintln!("eve back online {back:?} after SIGCONT");
}

/// docs/API.md: a write to a node whose Redis stops answering is answered within the 2 s
/// deadline, however many writers wait on that Redis: 200 concurrent writers (each its own
/// session, from 8 addresses) write as fast as they are answered; 1 s in, Redis is stopped
/// for 6 s. Each answer, `201` (stored just before the stop) or `503 store_unavailable`, comes
/// within the deadline plus `SLACK`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_200_concurrent_writers_are_each_answered_within_the_deadline() {
    const WRITERS: usize = 200;
    /// The contract's bound (docs/API.md), not the crate's constant.
    const DEADLINE: Duration = Duration::from_secs(2);
    /// On this 2-core machine, shared with builds (load average 10 while it was measured),
    /// the slowest answer came 0.12 s past the deadline: 200 HTTP exchanges and as many timer
    /// wake-ups at once. 1 s leaves room for a slower machine and still fails a request that
    /// waits for two deadlines in a row (4 s), the fault this test is for.
    const SLACK: Duration = Duration::from_secs(1);
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = spawn_binary(&["--redis", &redis.url(), "--login-rate", "1000"]).await;
    let mut cookies = Vec::new();
    for i in 0..WRITERS {
        cookies.push(a.login(&format!("w{i}")).await);
    }
    let clients: Vec<reqwest::Client> = (2..10).map(crate::support::client_from).collect();
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(1);
    let end_at = stop_at + Duration::from_secs(6);
    let writers: Vec<_> = cookies
        .into_iter()
        .enumerate()
        .map(|(i, cookie)| {
            let http = clients[i % clients.len()].clone();
            let url = a.url("/api/chat/messages");
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < end_at {
                    let asked = Instant::now();
                    let res = http
                        .post(&url)
                        .header("cookie", &cookie)
                        .json(&json!({"room": "lobby", "text": "during"}))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let status = match res {
                        Ok(res) if res.status() == 503 => {
                            let body: serde_json::Value = res.json().await.unwrap();
                            assert_eq!(body["error"]["code"], "store_unavailable");
                            503
                        }
                        Ok(res) => res.status().as_u16(),
                        Err(err) => panic!("no answer: {err}"),
                    };
                    answers.push((asked, status, asked.elapsed()));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep_until(stop_at.into()).await;
    redis.stop();
    let mut answers = Vec::new();
    for writer in writers {
        answers.extend(writer.await.unwrap());
    }
    redis.cont();
    // What was asked while Redis was stopped, or answered after it stopped.
    let during: Vec<(u16, Duration)> = answers
        .iter()
        .filter(|(asked, _, took)| *asked + *took >= stop_at)
        .map(|(_, status, took)| (*status, *took))
        .collect();
    let mut refused: Vec<Duration> = during
        .iter()
        .filter(|(status, _)| *status == 503)
        .map(|(_, took)| *took)
        .collect();
    refused.sort();
    let slowest = during.iter().map(|(_, took)| *took).max().unwrap();
    eprintln!(
        "{} answers after the stop: {} × 503 (median {:?}, max {:?}), {} × 201; slowest answer {:?}",
        during.len(),
        refused.len(),
        refused[refused.len() / 2],
        refused[refused.len() - 1],
        during.iter().filter(|(status, _)| *status == 201).count(),
        slowest,
    );
    assert!(
        refused.len() >= WRITERS,
        "every writer was refused at least once"
    );
    assert!(
        during.iter().all(|(status, _)| matches!(status, 201 | 503)),
        "{during:?}"
    );
    assert!(slowest <= DEADLINE + SLACK, "{slowest:?}");
    let cookie = a.login("after").await;
    say_until_stored(&a, &cookie, "after the stop").await;
}

/// A node that misses announcements (its push queue overflows) at a moment when it cannot
/// read the log either still delivers every event to its subscribers, in id order, once.
/// Node B runs with a push queue of 4 (`--redis-push-queue`, hidden) under a Redis user
/// whose `XRANGE` is refused for a while (an ACL), so the catch-up that follows an overflow
/// fails, as it would on a command connection that times out while the subscription still
/// delivers. B is stopped (SIGSTOP) while node A stores 300 messages, then continued: the
/// 300 announcements buffered for it arrive at once, most are dropped, and those that come
/// through arrive after holes. Each must wait until its hole is read from the log, once
/// reading works again; published at once, it would leave the hole behind for good, no `gap`.
/// (With the log readable, the catch-up after the overflow reads every hole before a later
/// announcement is handled, so this is the path that needs the hole fill.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_misses_announcements_while_its_log_reads_fail_still_delivers_every_id_in_order()
 {
    const N: usize = 300;
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let acl = |rule: &'static str| {
        let redis = &redis;
        async move {
            let reply = redis
                .command(&["ACL", "SETUSER", "reader", rule])
                .await
                .unwrap();
            assert_eq!(reply.as_deref(), Some("OK"), "ACL SETUSER reader {rule}");
        }
    };
    for rule in ["on", ">secret", "~*", "&*", "+@all"] {
        acl(rule).await;
    }
    let a = node(&redis).await;
    let reader_url = format!("redis://reader:secret@127.0.0.1:{}", redis.port());
    let b = spawn_binary(&["--redis", &reader_url, "--redis-push-queue", "4"]).await;
    let cursor = chat_cursor(&b).await;
    let query = format!("chat?rooms=lobby&history=0&after={cursor}");
    let mut on_b = [
        Subscriber::open(&b, "sse", &query, None).await,
        Subscriber::open(&b, "ws", &query, None).await,
    ];
    let cookie = a.login("writer").await;

    acl("-xrange").await;
    b.signal(libc::SIGSTOP);
    let writers: Vec<_> = (0..10)
        .map(|w| {
            let http = a.http.clone();
            let url = a.url("/api/chat/messages");
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..N / 10 {
                    let res = http
                        .post(&url)
                        .header("cookie", &cookie)
                        .json(&json!({"room": "lobby", "text": format!("w{w}-{i}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201);
                    let body: serde_json::Value = res.json().await.unwrap();
                    ids.push(body["id"].as_u64().unwrap());
                }
                ids
            })
        })
        .collect();
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    acked.sort();
    b.signal(libc::SIGCONT);
    // B takes in what was buffered for it, and fails to read the log meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    acl("+xrange").await;
    for sub in &mut on_b {
        let got = sub.messages(N, WAIT).await;
        let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
        assert_eq!(ids, acked, "every id, in order, once");
    }
}

/// The engine at work on its own, against a real Redis: two handles on one log stand for two
/// nodes, and no ingest task runs, so the test alone decides what the second one is told.
mod engine {
    use std::sync::Arc;

    use pushpoll::engine::redis::Redis;
    use pushpoll::engine::redis::log::RedisLog;
    use pushpoll::feed::{
        Audience, EventBody, Feed, Filter, Limits, Retention, SharedEvent, Start, Subscription,
    };
    use pushpoll::names::FeedName;
    use tokio_util::sync::CancellationToken;

    use crate::support::Watchdog;
    use crate::support::redis::RedisServer;

    const RETENTION: u64 = 100;

    async fn open(redis: &RedisServer) -> Arc<RedisLog> {
        let (handle, _pushes) = Redis::connect(&redis.url(), "engine:", RETENTION, 16)
            .await
            .expect("connect");
        RedisLog::open(handle).await.expect("open the log")
    }

    /// A feed of its own, kept in memory, as a node's is.
    fn feed() -> Feed {
        Feed::new(
            FeedName::Chat,
            Retention::All,
            Limits::new(4096, 1024),
            None,
        )
    }

    fn watch(feed: &Feed) -> Subscription {
        let filter = Filter {
            rooms: vec!["lobby".into()],
            session: None,
        };
        feed.subscribe(
            Some(feed.latest_id().unwrap_or(0)),
            Start::Next,
            0,
            filter,
            CancellationToken::new(),
        )
    }

    /// Everything the subscription holds now.
    fn drain(sub: &mut Subscription) -> Vec<SharedEvent> {
        std::iter::from_fn(|| sub.try_next()).collect()
    }

    async fn say(log: &RedisLog, feed: &Feed, text: &str) -> SharedEvent {
        let body = EventBody::Message {
            room: "lobby".into(),
            from: "alice".into(),
            text: text.into(),
        };
        log.append(
            feed,
            pushpoll::feed::clock::now_micros(),
            body,
            Audience::Room("lobby".into()),
        )
        .await
        .expect("append")
    }

    /// `RedisLog::deliver`, given an announcement N+k while its feed ends at N, publishes
    /// N+1…N+k−1 first, read from the log; and when the log no longer holds the start of
    /// the hole, a `gap` first, then what it holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_announcement_after_a_hole_is_delivered_after_the_hole_read_from_the_log() {
        let _watchdog = Watchdog::arm();
        let Some(redis) = RedisServer::start().await else {
            return;
        };
        let (writer, writer_feed) = (open(&redis).await, feed());
        let (reader, reader_feed) = (open(&redis).await, feed());
        let mut seen = watch(&reader_feed);

        let mut written = Vec::new();
        for i in 0..5 {
            written.push(say(&writer, &writer_feed, &format!("m{i}")).await);
        }
        // The reader hears only of the last one: 1…4 are a hole.
        let last = written.last().unwrap().clone();
        reader.deliver(&reader_feed, last).await.expect("deliver");
        let ids: Vec<u64> = drain(&mut seen).iter().map(|e| e.id).collect();
        assert_eq!(ids, written.iter().map(|e| e.id).collect::<Vec<_>>());

        // 300 more: the log keeps the newest 100 to 200, so the hole's start is gone.
        for i in 0..300 {
            written.push(say(&writer, &writer_feed, &format!("n{i}")).await);
        }
        let last = written.last().unwrap().clone();
        reader
            .deliver(&reader_feed, last.clone())
            .await
            .expect("deliver");
        let got = drain(&mut seen);
        let first: pushpoll::feed::WireEvent = serde_json::from_slice(&got[0].json).unwrap();
        let EventBody::Gap {
            after,
            resumed_from,
        } = first.body
        else {
            panic!("no gap first: {:?}", got[0]);
        };
        assert_eq!(after, written[4].id);
        let kept: Vec<u64> = written
            .iter()
            .map(|e| e.id)
            .filter(|id| *id >= resumed_from)
            .collect();
        assert!((100..=200).contains(&kept.len()), "{} kept", kept.len());
        let ids: Vec<u64> = got[1..].iter().map(|e| e.id).collect();
        assert_eq!(
            ids, kept,
            "after the gap, every id the log holds, in order, once"
        );
    }

    /// The room's history holds ids only; each message is kept once, in the log. A history
    /// read returns the messages as the log holds them, and reaches exactly as far back as
    /// the log does, whatever the room's index still lists.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_reads_the_log_and_reaches_as_far_back_as_it() {
        let _watchdog = Watchdog::arm();
        let Some(redis) = RedisServer::start().await else {
            return;
        };
        let (log, feed) = (open(&redis).await, feed());
        let text = "x".repeat(1000);
        let mut written = Vec::new();
        for _ in 0..250 {
            written.push(say(&log, &feed, &text).await);
        }
        let number = |reply: Result<Option<String>, String>| -> u64 {
            reply.unwrap().unwrap().parse().unwrap()
        };
        let entries = number(redis.command(&["XLEN", "engine:room:lobby"]).await);
        let bytes = number(
            redis
                .command(&["MEMORY", "USAGE", "engine:room:lobby", "SAMPLES", "0"])
                .await,
        );
        assert!(bytes / entries < 64, "{bytes} bytes for {entries} ids");

        let history = log.history("lobby", u64::MAX, 200).await.expect("history");
        let kept = number(redis.command(&["XLEN", "engine:log"]).await);
        assert!(
            entries > kept,
            "the room's index lists ids the log no longer holds: {entries} against {kept}"
        );
        let want: Vec<&SharedEvent> = written
            .iter()
            .rev()
            .take(kept.min(200) as usize)
            .rev()
            .collect();
        assert_eq!(
            history.iter().map(|e| e.id).collect::<Vec<_>>(),
            want.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert_eq!(history.last().unwrap().json, written.last().unwrap().json);
        // Older than that: what the log still holds, then nothing.
        let older = log
            .history("lobby", history[0].id, 200)
            .await
            .expect("history");
        let oldest_kept = written[written.len() - kept as usize].id;
        assert!(older.iter().all(|e| e.id >= oldest_kept), "beyond the log");
        assert_eq!(older.len() as u64 + history.len() as u64, kept);
    }
}
