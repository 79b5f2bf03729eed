//! The operator endpoints seen from another machine (`src/operator.rs`), on a network each
//! test makes for itself (`support::netns`): the server in one namespace, "a student's laptop
//! on the same Wi-Fi" in the other, at a non-loopback address. What docs/CLASSROOM.md's "What
//! another machine on the network sees and does" says is checked here, sentence by sentence:
//! `/metrics` and the process and connection figures are refused or left out, every page,
//! transport, the chat and the canvas are served, a tag reads and kills only the caller's own
//! requests, the operator's token opens everything, and on plain HTTP a sniffer on the link
//! reads cookies and whispers (with `--tls-self-signed` it does not).
//! Also on loopback: behind a proxy, the forwarded client decides who is the operator.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::lan::{get_json, pushpoll_in, start};
use crate::support::netns::{CLIENT_IP, Lan, SERVER_IP};
use crate::support::{
    Streaming, Subscriber, TRANSPORTS, Watchdog, client_from, client_of, now_micros, spawn_app,
};

const WAIT: Duration = Duration::from_secs(3);
const TOKEN: &str = "b3BlcmF0b3ItdG9rZW4tZm9yLXRlc3Rz";

/// The sorted keys of a JSON object.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// `GET url` with `headers`: the status and the body as JSON (`null` when it is not JSON),
/// and the body as text.
async fn get_with(url: String, headers: Vec<(&'static str, String)>) -> (u16, Value, String) {
    let mut req = reqwest::Client::new().get(&url);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let res = req.send().await.expect(&url);
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_default(),
        text,
    )
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![(AUTHORIZATION.as_str(), format!("Bearer {token}"))]
}

/// The first `stats` event of `/api/stats/stream` at `base`, asked with `headers`.
async fn first_stats_event(base: String, headers: Vec<(&'static str, String)>) -> Value {
    let mut req = reqwest::Client::new().get(format!("{base}/api/stats/stream"));
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let mut stream = Streaming::open(req).await;
    assert_eq!(stream.status, 200);
    loop {
        let message = stream.next_sse(WAIT).await.expect("a stats event");
        if message.event.as_deref() == Some("stats") {
            return serde_json::from_str(message.data.as_deref().unwrap()).unwrap();
        }
    }
}

/// The keys `/api/stats` has for another machine: the per-transport figures only (and
/// WebTransport's, apart until it is one of the transports).
fn assert_public(stats: &Value) {
    assert_eq!(
        keys(stats),
        ["transports", "uptime_s", "webtransport"],
        "{stats}"
    );
    let mut transports = pushpoll::names::Transport::NAMES.to_vec();
    transports.sort();
    assert_eq!(keys(&stats["transports"]), transports);
    for figures in stats["transports"].as_object().unwrap().values() {
        assert_eq!(
            keys(figures),
            ["bytes_sent", "events_sent", "open", "requests"]
        );
    }
}

fn assert_operator_only(status: u16, body: &Value) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "operator_only", "{body}");
}

#[tokio::test]
async fn from_another_machine_the_operator_figures_are_refused_and_this_machine_reads_them() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (_child, printed) = start(pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"])).await;
    let (local, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let remote = format!("http://{}", SocketAddr::from((SERVER_IP, addr.port())));

    lan.client
        .run(async move {
            let (status, body, _) = get_with(format!("{remote}/metrics"), vec![]).await;
            assert_operator_only(status, &body);
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("--operator-token-file"), "{message}");
            // A client cannot say it is this machine: only a trusted proxy forwards.
            let forged = vec![("x-forwarded-for", "127.0.0.1".to_string())];
            let (status, body, _) = get_with(format!("{remote}/metrics"), forged).await;
            assert_operator_only(status, &body);
            // `/api/stats` and its stream: the per-transport figures, without the process's
            // CPU and memory or the connection counts.
            let (status, stats, _) = get_with(format!("{remote}/api/stats"), vec![]).await;
            assert_eq!(status, 200);
            assert_public(&stats);
            assert_public(&first_stats_event(remote.clone(), vec![]).await);
            // A bearer token, when the server has none, is not the operator's.
            let (status, body, _) = get_with(format!("{remote}/api/stats"), bearer(TOKEN)).await;
            assert_operator_only(status, &body);
            // Health and readiness answer anyone: a load balancer on the network asks them.
            assert_eq!(get_json(format!("{remote}/readyz")).await.0, 200);
            assert_eq!(get_with(format!("{remote}/healthz"), vec![]).await.0, 200);
        })
        .await;

    // On the server's machine, loopback reads everything.
    lan.server
        .run(async move {
            let (status, _, text) = get_with(format!("{local}/metrics"), vec![]).await;
            assert_eq!(status, 200);
            assert!(
                text.contains("pushpoll_process_resident_memory_bytes"),
                "{text}"
            );
            let (status, stats, _) = get_with(format!("{local}/api/stats"), vec![]).await;
            assert_eq!(status, 200);
            assert_eq!(
                keys(&stats),
                [
                    "connections",
                    "process",
                    "transports",
                    "uptime_s",
                    "webtransport",
                    "webtransport_connections"
                ]
            );
            assert!(stats["process"]["rss_bytes"].as_u64() > Some(0), "{stats}");
            let streamed = first_stats_event(local, vec![]).await;
            assert!(streamed["process"]["rss_bytes"].as_u64() > Some(0));
        })
        .await;
}

#[tokio::test]
async fn with_the_operator_token_another_machine_reads_everything_and_a_wrong_one_nothing() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The token from a file, and from the environment.
    let from_file = pushpoll_in(
        &lan.server,
        &[
            "--addr",
            "0.0.0.0:0",
            "--operator-token-file",
            path.to_str().unwrap(),
        ],
    );
    let mut from_env = pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"]);
    from_env.env("PUSHPOLL_OPERATOR_TOKEN", TOKEN);
    for command in [from_file, from_env] {
        let (_child, printed) = start(command).await;
        let (local, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
        let remote = format!("http://{}", SocketAddr::from((SERVER_IP, addr.port())));
        lan.client
            .run(async move {
                let (status, _, text) = get_with(format!("{remote}/metrics"), bearer(TOKEN)).await;
                assert_eq!(status, 200, "{text}");
                assert!(text.contains("pushpoll_requests_total"), "{text}");
                let (status, stats, _) =
                    get_with(format!("{remote}/api/stats"), bearer(TOKEN)).await;
                assert_eq!(status, 200);
                assert!(stats["process"]["rss_bytes"].as_u64() > Some(0), "{stats}");
                let streamed = first_stats_event(remote.clone(), bearer(TOKEN)).await;
                assert!(
                    streamed["connections"]["max"].as_u64() > Some(0),
                    "{streamed}"
                );

                // Without it: refused, and the message names the token.
                let (status, body, _) = get_with(format!("{remote}/metrics"), vec![]).await;
                assert_operator_only(status, &body);
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains("Authorization: Bearer"), "{message}");
                // A wrong token is refused everywhere, even where no token would be served.
                let wrong = "b3BlcmF0b3ItdG9rZW4tZm9yLXRlc3R0";
                for path in [
                    "/metrics",
                    "/api/stats",
                    "/api/debug/wire?tag=page-0123456789abcdefABCDEF",
                ] {
                    let (status, body, _) =
                        get_with(format!("{remote}{path}"), bearer(wrong)).await;
                    assert_operator_only(status, &body);
                }
                // Another scheme is not the operator's business: a proxy's own login.
                let basic = vec![(AUTHORIZATION.as_str(), "Basic dXNlcjpwYXNz".to_string())];
                let (status, stats, _) = get_with(format!("{remote}/api/stats"), basic).await;
                assert_eq!(status, 200);
                assert_public(&stats);
            })
            .await;
        // This machine needs no token.
        let (status, _, _) = lan
            .server
            .run(get_with(format!("{local}/metrics"), vec![]))
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn a_token_file_other_users_can_read_stops_the_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator-token");
    std::fs::write(&path, TOKEN).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"))
            .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
            .arg("--operator-token-file")
            .arg(&path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server stops at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(
        !stderr.contains(TOKEN),
        "the token is not printed: {stderr}"
    );
}

/// A tag of 22+ characters, as the pages make them.
const TEACHER_TAG: &str = "page-teacher0123456789abcdef";
const STUDENT_TAG: &str = "page-student0123456789abcdef";

/// `POST /api/debug/kill {"tag": tag}` at `base`: how many connections it broke.
async fn kill(base: String, tag: &'static str) -> u64 {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/debug/kill"))
        .json(&json!({ "tag": tag }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["killed"].as_u64().expect("killed")
}

/// The client addresses of the exchanges `GET /api/debug/wire?tag=` shows at `base`.
async fn wire_addresses(base: String, tag: &'static str) -> Vec<String> {
    let (status, wire) = get_json(format!("{base}/api/debug/wire?tag={tag}")).await;
    assert_eq!(status, 200, "{wire}");
    wire["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .map(|x| x["client"]["address"].as_str().unwrap().to_string())
        .collect()
}

/// Reads `stream` until a tick stamped after `since` (µs) arrives: the stream is alive after
/// that moment, not only holding what it received before.
async fn ticks_after(stream: &mut Streaming, since: u64) {
    loop {
        let (_, tick) = stream.next_sse_event(WAIT).await.expect("the stream ended");
        if tick.ts > since {
            return;
        }
    }
}

async fn open_sse(url: String) -> Streaming {
    let stream = Streaming::open(reqwest::Client::new().get(url)).await;
    assert_eq!(stream.status, 200);
    stream
}

#[tokio::test]
async fn from_another_machine_a_tag_reads_and_kills_only_that_machines_requests() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (_child, printed) = start(pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"])).await;
    let (local, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let remote = format!("http://{}", SocketAddr::from((SERVER_IP, addr.port())));
    let student = CLIENT_IP.to_string();

    // The teacher, on the server's machine, opens a tagged stream; its "show the wire" view
    // is on the projector, tag and all.
    let mut teacher = lan
        .server
        .run(open_sse(format!("{local}/sse/clock?tag={TEACHER_TAG}")))
        .await;
    teacher.next_sse_event(WAIT).await.expect("a tick");
    // A student who copied the tag reads nothing of the teacher's and cannot kill it.
    let r = remote.clone();
    let (seen, killed) = lan
        .client
        .run(async move {
            (
                wire_addresses(r.clone(), TEACHER_TAG).await,
                kill(r, TEACHER_TAG).await,
            )
        })
        .await;
    assert_eq!(seen, Vec::<String>::new());
    assert_eq!(killed, 0);
    ticks_after(&mut teacher, now_micros()).await;

    // The student's own streams, under the teacher's tag and under its own: the student
    // reads and kills those, and only those.
    let r = remote.clone();
    let (mut same_tag, mut own_tag) = lan
        .client
        .run(async move {
            (
                open_sse(format!("{r}/sse/clock?tag={TEACHER_TAG}")).await,
                open_sse(format!("{r}/sse/clock?tag={STUDENT_TAG}")).await,
            )
        })
        .await;
    same_tag.next_sse_event(WAIT).await.expect("a tick");
    own_tag.next_sse_event(WAIT).await.expect("a tick");
    let r = remote.clone();
    let (under_teachers, under_own) = lan
        .client
        .run(async move {
            (
                wire_addresses(r.clone(), TEACHER_TAG).await,
                wire_addresses(r, STUDENT_TAG).await,
            )
        })
        .await;
    assert_eq!(under_teachers, std::slice::from_ref(&student));
    assert_eq!(under_own, std::slice::from_ref(&student));
    // The operator sees both machines under the tag.
    let l = local.clone();
    let all: BTreeSet<String> = lan
        .server
        .run(wire_addresses(l, TEACHER_TAG))
        .await
        .into_iter()
        .collect();
    assert_eq!(all, BTreeSet::from([student.clone(), "127.0.0.1".into()]));

    assert_eq!(lan.client.run(kill(remote.clone(), TEACHER_TAG)).await, 1);
    let killed_at = now_micros();
    same_tag.read_to_end(WAIT).await;
    // The teacher's stream outlives the student's kill, and so does the student's other tag.
    ticks_after(&mut teacher, killed_at).await;
    ticks_after(&mut own_tag, killed_at).await;
    // The operator's kill takes the rest of the tag: the teacher's own stream.
    assert_eq!(lan.server.run(kill(local, TEACHER_TAG)).await, 1);
    teacher.read_to_end(WAIT).await;
}

#[tokio::test]
async fn from_another_machine_the_pages_every_transport_the_chat_and_the_canvas_are_served() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (_child, printed) = start(pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"])).await;
    let (_, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let remote = SocketAddr::from((SERVER_IP, addr.port()));
    let here = SocketAddr::from(([127, 0, 0, 1], addr.port()));

    // Two people on the server's machine: one whispers to the other.
    lan.server
        .run(async move {
            let app = client_of(here);
            let teacher = app.login("teacher").await;
            let bob = app.login("bob").await;
            app.poll_with_cookie("/poll/chat?rooms=lobby", &bob).await;
            let whisper = json!({ "to": "bob", "text": "psst-for-bob-only" });
            let (status, body, _) = app
                .send_json(
                    reqwest::Method::POST,
                    "/api/chat/messages",
                    Some(&teacher),
                    whisper,
                )
                .await;
            assert_eq!(status, 201, "{body}");
        })
        .await;

    lan.client
        .run(async move {
            let app = client_of(remote);
            for page in [
                "/",
                "/demos/compare.html",
                "/demos/dashboard.html",
                "/demos/sse.html",
                "/static/compare.js",
            ] {
                let res = app.http.get(app.url(page)).send().await.unwrap();
                assert_eq!(res.status(), 200, "{page}");
            }
            // The clock over every transport.
            for transport in TRANSPORTS {
                let mut sub = Subscriber::open(&app, transport, "clock", None).await;
                assert!(
                    sub.next_event(WAIT).await.is_some(),
                    "no tick over {transport}"
                );
            }
            // The chat: sign in, send, see the public rooms and who is in them, read the
            // history; a whisper between two others is not delivered here.
            let cookie = app.login("student").await;
            let (status, body) = app.say(&cookie, "lobby", "hello from the network").await;
            assert_eq!(status, 201, "{body}");
            let polled = app
                .poll_with_cookie("/poll/chat?rooms=lobby&after=0", &cookie)
                .await;
            let texts: Vec<&str> = polled["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["text"].as_str())
                .collect();
            assert!(texts.contains(&"hello from the network"), "{polled}");
            assert!(!texts.contains(&"psst-for-bob-only"), "{polled}");
            let (status, rooms) = app.get_json("/api/chat/rooms").await;
            assert_eq!(status, 200);
            assert!(
                rooms["rooms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["room"] == "lobby"),
                "{rooms}"
            );
            let (_, users) = app.get_json("/api/chat/users?room=lobby").await;
            let users = users["users"].as_array().unwrap();
            assert!(users.contains(&json!("student")), "{users:?}");
            assert!(users.contains(&json!("bob")), "{users:?}");
            let (_, history) = app.get_json("/api/chat/history?room=lobby").await;
            assert!(
                history["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["text"] == "hello from the network"),
                "{history}"
            );
            // The canvas.
            let stroke =
                json!({ "strokes": [{ "color": "#ff0000", "width": 3, "points": [1, 2, 3, 4] }] });
            let (status, body, _) = app
                .send_json(reqwest::Method::POST, "/api/draw", None, stroke)
                .await;
            assert_eq!(status, 201, "{body}");
        })
        .await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_decides_who_is_the_operator() {
    // 127.0.0.2 is the proxy; 127.0.0.1 is this machine's own client.
    let app = spawn_app(&["--trust-proxy", "127.0.0.2"]).await;
    let metrics = |n: u8, forwarded: Option<&'static str>| {
        let mut req = client_from(n).get(app.url("/metrics"));
        if let Some(forwarded) = forwarded {
            req = req.header("x-forwarded-for", forwarded);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        metrics(2, Some("203.0.113.7")).await,
        403,
        "a client on the network"
    );
    assert_eq!(
        metrics(2, Some("127.0.0.1")).await,
        200,
        "the proxy's own machine"
    );
    assert_eq!(
        metrics(2, None).await,
        200,
        "the proxy itself, on this machine"
    );
    assert_eq!(metrics(1, None).await, 200);
}

#[tokio::test]
async fn a_proxy_on_this_machine_that_is_not_trusted_does_not_make_its_clients_the_operator() {
    // No --trust-proxy: an nginx on this machine set up as deploy/nginx.conf is, whose
    // X-Forwarded-For the budgets ignore.
    let app = spawn_app(&[]).await;
    let base = app.url("");
    let through_proxy = |client: &'static str| {
        let (http, base) = (app.http.clone(), base.clone());
        move |path: &str| {
            http.get(format!("{base}{path}"))
                .header("x-forwarded-for", client)
        }
    };
    let student = through_proxy("203.0.113.7");
    let res = student("/metrics").send().await.unwrap();
    assert_eq!(res.status(), 403);
    let stats: Value = student("/api/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_public(&stats);
    // Its client still reads its own tagged requests, by the address the proxy forwarded.
    let res = student(&format!("/poll/clock?tag={STUDENT_TAG}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let wire: Value = student(&format!("/api/debug/wire?tag={STUDENT_TAG}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wire["exchanges"].as_array().unwrap().len(), 1, "{wire}");
    let other: Value = through_proxy("203.0.113.8")(&format!("/api/debug/wire?tag={STUDENT_TAG}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["exchanges"], json!([]), "another client of the proxy");
    // This machine's own clients, through it or not, are the operator.
    let res = through_proxy("127.0.0.1")("/metrics").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = app.get_json("/api/stats").await;
    assert_eq!(status, 200);
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// One request on a connection of its own (`Connection: close`), over `tls` if given: the
/// whole answer as text.
async fn exchange(
    server: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    request: String,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tcp = tokio::net::TcpStream::connect(server).await.unwrap();
    let mut answer = Vec::new();
    match tls {
        None => {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes()).await.unwrap();
            tcp.read_to_end(&mut answer).await.unwrap();
        }
        Some(config) => {
            let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
            let mut tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            tls.write_all(request.as_bytes()).await.unwrap();
            // The server may close without close_notify once it has answered.
            let _ = tls.read_to_end(&mut answer).await;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// An HTTP/1.1 request for `server`, with a session `cookie` and a JSON `body` if given.
fn request(
    method: &str,
    path: &str,
    server: SocketAddr,
    cookie: Option<&str>,
    body: Option<Value>,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())
}

/// The `name=value` of an answer's `Set-Cookie`.
fn cookie_of(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no Set-Cookie in {answer}"))
        .to_string()
}

const WHISPER: &str = "psst-the-answer-is-42";

/// On the link while, from the client namespace, alice and bob sign in, bob polls, alice
/// whispers to bob, bob's tagged poll reads it and a request carries an operator token: what
/// crossed the link, and alice's cookie.
async fn sniffed(
    lan: &Lan,
    server: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> (Vec<u8>, String) {
    let capture = lan.server.capture();
    let alice = lan
        .client
        .run(async move {
            let login = |nick: &str| {
                request(
                    "POST",
                    "/api/session",
                    server,
                    None,
                    Some(json!({ "nick": nick })),
                )
            };
            let alice = cookie_of(&exchange(server, tls.clone(), login("alice")).await);
            let bob = cookie_of(&exchange(server, tls.clone(), login("bob")).await);
            let poll = |path: &str| request("GET", path, server, Some(&bob), None);
            exchange(server, tls.clone(), poll("/poll/chat?rooms=lobby")).await;
            let whisper = json!({ "to": "bob", "text": WHISPER });
            let path = "/api/chat/messages";
            let sent = exchange(
                server,
                tls.clone(),
                request("POST", path, server, Some(&alice), Some(whisper)),
            )
            .await;
            assert!(sent.starts_with("HTTP/1.1 201"), "{sent}");
            let read = exchange(
                server,
                tls.clone(),
                poll(&format!("/poll/chat?rooms=lobby&after=0&tag={STUDENT_TAG}")),
            )
            .await;
            assert!(read.contains(WHISPER), "bob reads the whisper: {read}");
            // And an operator's token, sent from this machine.
            let stats = request("GET", "/api/stats", server, None, None).replacen(
                "Connection: close\r\n",
                &format!("Connection: close\r\nAuthorization: Bearer {TOKEN}\r\n"),
                1,
            );
            exchange(server, tls, stats).await;
            alice
        })
        .await;
    (capture.stop(), alice)
}

/// The first `pushpoll_session=…` cookie in `captured` that is `expected` (the copy a sniffer
/// makes, read from the frames rather than from the answer).
fn copied_cookie(captured: &[u8], expected: &str) -> String {
    let name = format!("{}=", pushpoll::chat::session::COOKIE);
    let mut rest = captured;
    while let Some(at) = pushpoll::wire::find(rest, name.as_bytes()) {
        let value: Vec<u8> = rest[at..]
            .iter()
            .copied()
            .take_while(|b| !b";\r\n ".contains(b))
            .collect();
        let value = String::from_utf8_lossy(&value).into_owned();
        if value == expected {
            return value;
        }
        rest = &rest[at + name.len()..];
    }
    panic!("{expected} is not in the capture")
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    pushpoll::wire::find(haystack, needle.as_bytes()).is_some()
}

#[tokio::test]
async fn over_plain_http_a_sniffer_on_the_link_reads_cookies_whispers_tags_and_tokens_and_over_tls_none()
 {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (_plain, printed) = start(pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"])).await;
    let (_, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let server = SocketAddr::from((SERVER_IP, addr.port()));
    let (seen, alice) = sniffed(&lan, server, None).await;
    assert!(holds(&seen, &alice), "the session cookie crosses the link");
    assert!(holds(&seen, WHISPER), "the whisper crosses the link");
    assert!(holds(&seen, STUDENT_TAG), "the tag crosses the link");
    assert!(holds(&seen, TOKEN), "the operator's token crosses the link");
    // Whoever copied the cookie off the link posts as its owner.
    let copied = copied_cookie(&seen, &alice);
    let copier = lan
        .client
        .run(async move {
            let app = client_of(server);
            let (status, body) = app.say(&copied, "lobby", "not really alice").await;
            assert_eq!(status, 201, "{body}");
            let (_, history) = app.get_json("/api/chat/history?room=lobby").await;
            history
        })
        .await;
    let posted = copier["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["text"] == "not really alice")
        .unwrap_or_else(|| panic!("{copier}"));
    assert_eq!(posted["from"], "alice");

    let (_tls, printed) = start(pushpoll_in(
        &lan.server,
        &["--addr", "0.0.0.0:0", "--tls-self-signed"],
    ))
    .await;
    let (_, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let fingerprint = printed
        .iter()
        .find_map(|l| l.split_once("SHA-256 fingerprint "))
        .map(|(_, f)| f.trim().to_string())
        .unwrap_or_else(|| panic!("no fingerprint in {printed:?}"));
    let config = crate::tls::pinned(&fingerprint, &[b"http/1.1"]);
    let server = SocketAddr::from((SERVER_IP, addr.port()));
    let (seen, alice) = sniffed(&lan, server, Some(std::sync::Arc::new(config))).await;
    assert!(
        seen.len() > 4096,
        "the capture saw the exchanges: {} bytes",
        seen.len()
    );
    assert!(!holds(&seen, &alice), "a cookie in the clear over TLS");
    assert!(!holds(&seen, WHISPER), "a whisper in the clear over TLS");
    assert!(!holds(&seen, STUDENT_TAG), "a tag in the clear over TLS");
    assert!(!holds(&seen, TOKEN), "a token in the clear over TLS");
}
