//! WebTransport over HTTP/3, server side: wtransport's own client against the real server,
//! the certificate pinned by the hash `GET /api/webtransport` gives, as a page will.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use wtransport::tls::Sha256Digest;
use wtransport::tls::client::{ServerHashVerification, build_default_tls_config};
use wtransport::tls::rustls::RootCertStore;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream};

use crate::support::quic::{client, published};
use crate::support::{TestApp, spawn_app, spawn_app_on};

async fn connect_with(
    app: &TestApp,
    n: u8,
    hashes: &[Sha256Digest],
    path: &str,
    cookie: Option<&str>,
    window: Option<u32>,
) -> Result<Connection, String> {
    let (port, _) = published(app).await;
    let url = format!("https://127.0.0.1:{port}{path}");
    let mut options = wtransport::endpoint::ConnectOptions::builder(url);
    if let Some(cookie) = cookie {
        options = options.add_header("cookie", cookie);
    }
    let endpoint = client(n, hashes, window);
    tokio::time::timeout(Duration::from_secs(5), endpoint.connect(options.build()))
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
        .map_err(|e| e.to_string())
}

/// A session from `127.0.0.N` at `path`, pinned by the hashes the server lists now.
/// A session at `path` from 127.0.0.`n` and the server-opened stream of its events: what
/// most tests start with.
async fn open(app: &TestApp, n: u8, path: &str) -> (Connection, Lines) {
    let connection = connect(app, n, path).await.expect("session");
    let lines = Lines::accept(&connection).await;
    (connection, lines)
}

async fn connect(app: &TestApp, n: u8, path: &str) -> Result<Connection, String> {
    let (_, hashes) = published(app).await;
    connect_with(app, n, &hashes, path, None, None).await
}

/// The server-opened event stream, line by line.
struct Lines(BufReader<RecvStream>);

impl Lines {
    async fn accept(connection: &Connection) -> Lines {
        let stream = tokio::time::timeout(Duration::from_secs(5), connection.accept_uni())
            .await
            .expect("the server opens its stream")
            .expect("uni stream");
        Lines(BufReader::new(stream))
    }

    async fn next(&mut self) -> Value {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.0.read_line(&mut line))
            .await
            .expect("a line within 5 s")
            .expect("read");
        assert!(line.ends_with('\n'), "a whole line: {line:?}");
        serde_json::from_str(&line).expect("one JSON value per line")
    }

    /// The next event, skipping heartbeat lines.
    async fn event(&mut self) -> Value {
        loop {
            let value = self.next().await;
            if value.get("heartbeat").is_none() {
                return value;
            }
        }
    }
}

#[tokio::test]
async fn clock_ticks_arrive_as_ndjson_on_a_server_opened_stream_after_a_heartbeat() {
    let app = spawn_app(&["--keepalive", "15s"]).await;
    let (_connection, mut lines) = open(&app, 1, "/webtransport/clock").await;
    assert_eq!(
        lines.next().await,
        serde_json::json!({ "heartbeat": 15000 })
    );
    let first = lines.event().await;
    let second = lines.event().await;
    assert_eq!(first["type"], "tick", "{first}");
    let (a, b) = (
        first["id"].as_u64().unwrap(),
        second["id"].as_u64().unwrap(),
    );
    // The clock's ids are its ticks' milliseconds: increasing, a tick apart.
    assert!(b > a, "increasing ids: {first} {second}");
    let stats = app.stats().await.webtransport;
    assert!(
        stats.sessions >= 1 && stats.open == 1 && stats.events_sent >= 2,
        "{stats:?}"
    );
    assert_eq!(stats.datagrams_sent, 0, "{stats:?}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("pushpoll_webtransport_sessions_open 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_session_resumes_by_cursor_after_a_break() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("resumer").await;
    let (connection, mut lines) = open(&app, 1, "/webtransport/chat").await;
    app.say(&cookie, "lobby", "before").await;
    let seen = lines.event().await;
    assert_eq!(seen["text"], "before", "{seen}");
    connection.close(0u32.into(), b"break");
    drop((lines, connection));
    // Missed while away.
    for text in ["one", "two"] {
        app.say(&cookie, "lobby", text).await;
    }
    let cursor = seen["id"].as_u64().unwrap();
    let (_again, mut lines) = open(&app, 1, &format!("/webtransport/chat?after={cursor}")).await;
    let (one, two) = (lines.event().await, lines.event().await);
    assert_eq!((&one["text"], &two["text"]), (&"one".into(), &"two".into()));
    assert_eq!(one["id"].as_u64(), Some(cursor + 1), "{one}");
    assert_eq!(two["id"].as_u64(), Some(cursor + 2), "{two}");
}

#[tokio::test]
async fn a_chat_command_on_a_bidi_stream_comes_back_on_the_feed() {
    let app = spawn_app(&[]).await;
    let cookie = app.login("quic").await;
    let (_, hashes) = published(&app).await;
    let connection = connect_with(&app, 1, &hashes, "/webtransport/chat", Some(&cookie), None)
        .await
        .expect("session");
    let mut lines = Lines::accept(&connection).await;
    assert!(lines.next().await.get("heartbeat").is_some());
    let (mut send, recv) = connection
        .open_bi()
        .await
        .expect("open")
        .await
        .expect("bidi");
    send.write_all(b"{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"over quic\"}\n")
        .await
        .expect("write");
    let event = loop {
        let event = lines.event().await;
        if event["type"] == "message" {
            break event;
        }
    };
    assert_eq!(event["text"], "over quic", "{event}");
    assert_eq!(event["from"], "quic", "{event}");
    // A refusal comes back on the command stream itself.
    send.write_all(b"{\"type\":\"shout\"}\n")
        .await
        .expect("write");
    let mut replies = BufReader::new(recv);
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), replies.read_line(&mut reply))
        .await
        .expect("a reply")
        .expect("read");
    let reply: Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "unknown_type", "{reply}");
}

#[tokio::test]
async fn datagram_mode_delivers_ticks_as_datagrams_and_the_chat_refuses_it() {
    let app = spawn_app(&[]).await;
    let (connection, _lines) = open(&app, 1, "/webtransport/clock?datagrams=1").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let datagram = tokio::time::timeout(Duration::from_secs(5), connection.receive_datagram())
            .await
            .expect("a datagram within 5 s")
            .expect("datagram");
        let tick: Value = serde_json::from_slice(datagram.payload().as_ref()).expect("json");
        assert_eq!(tick["type"], "tick", "{tick}");
        ids.push(tick["id"].as_u64().unwrap());
    }
    assert!(ids[1] > ids[0], "{ids:?}");
    let stats = app.stats().await.webtransport;
    assert!(stats.datagrams_sent >= 2, "{stats:?}");
    // A chat line lost unseen is what the chat never allows.
    let refused = refusal(&app, "/webtransport/chat?datagrams=1").await;
    assert_eq!(refused["code"], "invalid_datagrams", "{refused}");
}

/// The one line a refused session carries (the error event), and the close that follows:
/// [`pushpoll::transport::webtransport::close::REFUSED`], its reason the error's code first.
async fn refusal(app: &TestApp, path: &str) -> Value {
    use pushpoll::transport::webtransport::close;
    let connection = connect(app, 1, path)
        .await
        .expect("the session, to be told why");
    let mut lines = Lines::accept(&connection).await;
    let error = lines.next().await;
    assert_eq!(error["type"], "error", "{error}");
    let code = error["code"].as_str().expect("code").to_string();
    assert!(
        !error["message"].as_str().unwrap_or("").is_empty(),
        "{error}"
    );
    // The client's own close, as a page's after reading the line, or the server's.
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("closed within the second the server waits");
    match closed {
        wtransport::error::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.code(), close::REFUSED.into(), "{close}");
            let reason = String::from_utf8_lossy(close.reason()).to_string();
            assert!(reason.starts_with(&format!("{code}: ")), "{reason}");
        }
        other => panic!("closed by the server with REFUSED, not {other}"),
    }
    error
}

/// `POST /api/webtransport/ticket` as `cookie`: (status, body).
async fn ask_ticket(app: &TestApp, cookie: Option<&str>, origin: Option<&str>) -> (u16, Value) {
    let mut request = app.http.post(app.url("/api/webtransport/ticket"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sends `line` on a new bidi stream of `connection`.
async fn command(connection: &Connection, line: &str) -> (wtransport::SendStream, RecvStream) {
    let (mut send, recv) = connection.open_bi().await.unwrap().await.unwrap();
    send.write_all(format!("{line}\n").as_bytes())
        .await
        .expect("write");
    (send, recv)
}

async fn next_message(lines: &mut Lines) -> Value {
    loop {
        let event = lines.event().await;
        if event["type"] == "message" {
            return event;
        }
    }
}

#[tokio::test]
async fn a_ticket_carries_its_askers_chat_session_once() {
    let app = spawn_app(&[]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let (status, body) = ask_ticket(&app, Some(&alice), None).await;
    assert_eq!(status, 201, "{body}");
    let ticket = body["ticket"].as_str().expect("ticket").to_string();
    assert_eq!(ticket.len(), 22, "128 bits in base64url: {body}");
    assert_eq!(body["expiresInMs"], 30_000, "{body}");
    let (connection, mut lines) =
        open(&app, 1, &format!("/webtransport/chat?ticket={ticket}")).await;
    let _sending = command(
        &connection,
        r#"{"type":"say","room":"lobby","text":"with a ticket"}"#,
    )
    .await;
    let said = next_message(&mut lines).await;
    assert_eq!(
        (&said["from"], &said["text"]),
        (&"alice".into(), &"with a ticket".into()),
        "the ticket is alice's session, not anyone else's: {said}"
    );
    // Presence: alice is online while her session is open.
    let (_, users) = app.get_json("/api/chat/users?room=lobby").await;
    assert!(users.to_string().contains("alice"), "{users}");
    // Used once: a second session with it is refused, and so is a made-up one.
    let again = refusal(&app, &format!("/webtransport/chat?ticket={ticket}")).await;
    assert_eq!(again["code"], "invalid_ticket", "{again}");
    let made_up = refusal(&app, "/webtransport/chat?ticket=AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(made_up["code"], "invalid_ticket", "{made_up}");
    // The clock and the canvas have no sessions to carry.
    let (_, body) = ask_ticket(&app, Some(&bob), None).await;
    let clock = refusal(
        &app,
        &format!(
            "/webtransport/clock?ticket={}",
            body["ticket"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(clock["code"], "invalid_ticket", "{clock}");
    // Without a ticket (or cookie) the session is anonymous: it reads, it cannot say.
    let (anonymous, _lines) = open(&app, 1, "/webtransport/chat").await;
    let (_send, recv) = command(
        &anonymous,
        r#"{"type":"say","room":"lobby","text":"who am I"}"#,
    )
    .await;
    let mut reply = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(recv).read_line(&mut reply),
    )
    .await
    .expect("a reply")
    .expect("read");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "unauthorized", "{reply}");
}

#[tokio::test]
async fn a_ticket_is_only_for_a_signed_in_same_origin_asker_and_expires() {
    let app = spawn_app(&["--webtransport-ticket-ttl", "300ms"]).await;
    let (status, body) = ask_ticket(&app, None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let carol = app.login("carol").await;
    let (status, body) = ask_ticket(&app, Some(&carol), Some("http://evil.example")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden_origin", "{body}");
    let own = format!("http://{}", app.addr);
    let (status, body) = ask_ticket(&app, Some(&carol), Some(&own)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["expiresInMs"], 300, "{body}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late = refusal(
        &app,
        &format!(
            "/webtransport/chat?ticket={}",
            body["ticket"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(late["code"], "invalid_ticket", "{late}");
    // A ticket of a session that has since logged out carries nothing.
    let (_, body) = ask_ticket(&app, Some(&carol), None).await;
    let (status, _, _) = app
        .send_json(
            reqwest::Method::DELETE,
            "/api/session",
            Some(&carol),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let ended = refusal(
        &app,
        &format!(
            "/webtransport/chat?ticket={}",
            body["ticket"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(ended["code"], "invalid_ticket", "{ended}");
    assert!(
        ended["message"].as_str().unwrap().contains("ended"),
        "{ended}"
    );
}

#[tokio::test]
async fn tickets_per_session_are_bounded_the_oldest_dropped() {
    let app = spawn_app(&[]).await;
    let dave = app.login("dave").await;
    let mut tickets = Vec::new();
    for _ in 0..=pushpoll::net::tickets::PER_OWNER {
        let (status, body) = ask_ticket(&app, Some(&dave), None).await;
        assert_eq!(status, 201, "{body}");
        tickets.push(body["ticket"].as_str().unwrap().to_string());
    }
    let oldest = refusal(&app, &format!("/webtransport/chat?ticket={}", tickets[0])).await;
    assert_eq!(oldest["code"], "invalid_ticket", "{oldest}");
    let newest = connect(
        &app,
        1,
        &format!("/webtransport/chat?ticket={}", tickets.last().unwrap()),
    )
    .await
    .expect("the newest still serves");
    Lines::accept(&newest).await.next().await;
}

#[tokio::test]
async fn the_kill_switch_breaks_a_tagged_session_and_it_resumes_by_cursor() {
    let app = spawn_app(&["--tick-ms", "200"]).await;
    let tag = "wt-lane-aB3dE6gH9jK2mN5pQ8sT1v";
    let (connection, mut lines) = open(&app, 1, &format!("/webtransport/clock?tag={tag}")).await;
    let seen = lines.event().await["id"].as_u64().unwrap();
    let (status, body, _) = app
        .send_json(
            reqwest::Method::POST,
            "/api/debug/kill",
            None,
            serde_json::json!({ "tag": tag }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["killed"], 1, "{body}");
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("closed by the kill");
    match closed {
        wtransport::error::ConnectionError::ApplicationClosed(close) => assert_eq!(
            close.code(),
            pushpoll::transport::webtransport::close::KILLED.into()
        ),
        other => panic!("closed with KILLED, not {other}"),
    }
    // An untagged session is not the tag's; a new one resumes after the cursor.
    let again = connect(
        &app,
        1,
        &format!("/webtransport/clock?after={seen}&tag={tag}"),
    )
    .await
    .expect("session");
    let next = Lines::accept(&again).await.event().await;
    assert!(next["id"].as_u64().unwrap() > seen, "{next}");
    let bad_tag = refusal(&app, "/webtransport/clock?tag=short").await;
    assert_eq!(bad_tag["code"], "invalid_tag", "{bad_tag}");
}

#[tokio::test]
async fn refuse_webtransport_says_so_on_the_session_and_the_others_serve() {
    let app = spawn_app(&["--refuse", "webtransport"]).await;
    let refused = refusal(&app, "/webtransport/clock").await;
    assert_eq!(refused["code"], "transport_refused", "{refused}");
    let stats = app.stats().await;
    assert_eq!(stats.transports["webtransport"].requests, 1, "{stats:?}");
    assert_eq!(stats.transports["webtransport"].events_sent, 0, "{stats:?}");
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn a_session_has_its_row_in_the_transports_figures_and_metrics() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let (connection, mut lines) = open(&app, 1, "/webtransport/clock").await;
    for _ in 0..3 {
        lines.event().await;
    }
    let stats = app.stats().await;
    let row = &stats.transports["webtransport"];
    assert_eq!((row.requests, row.open), (1, 1), "{row:?}");
    assert!(row.events_sent >= 3 && row.bytes_sent > 0, "{row:?}");
    assert_eq!(row.bytes_sent, stats.webtransport.bytes_sent, "{stats:?}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("pushpoll_open_connections{transport=\"webtransport\"} 1\n"),
        "{metrics}"
    );
    drop((lines, connection));
}

#[tokio::test]
async fn the_made_certificate_is_p256_backdated_and_valid_at_most_14_days() {
    let app = spawn_app(&[]).await;
    let (port, hashes) = published(&app).await;
    assert_eq!(port, app.addr.port(), "UDP at the TCP port number");
    assert_eq!(hashes.len(), 1);
    let connection = connect(&app, 1, "/webtransport/clock")
        .await
        .expect("session");
    let chain = connection
        .peer_identity()
        .expect("the server's certificate");
    let cert = &chain.as_slice()[0];
    assert_eq!(cert.hash(), hashes[0], "the listed hash is the served one");
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).expect("x509");
    let validity = parsed.validity();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    assert!(
        (now - 120..=now - 30).contains(&not_before),
        "not-before about a minute ago: {not_before} vs {now}"
    );
    assert!(not_after - not_before <= 14 * 86_400, "{validity:?}");
    assert!(not_after - not_before >= 13 * 86_400, "{validity:?}");
    let key = parsed.public_key();
    assert_eq!(
        key.algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1",
        "an EC key"
    );
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    assert_eq!(curve.as_deref(), Some("1.2.840.10045.3.1.7"), "P-256");
}

#[tokio::test]
async fn rotation_lists_the_next_hash_then_swaps_and_new_sessions_need_it() {
    let app = spawn_app(&["--webtransport-rotate", "3s"]).await;
    let (_, first) = published(&app).await;
    assert_eq!(first.len(), 1);
    let old = first[0].clone();
    // Within the notice both are listed, then only the new one.
    let mut saw_both = false;
    let new = loop {
        let (_, now) = published(&app).await;
        match now.as_slice() {
            [only] if *only != old => break only.clone(),
            [a, b] => {
                assert_eq!(*a, old);
                assert_ne!(*b, old);
                saw_both = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(saw_both, "the next hash was listed before the swap");
    let fresh = connect_with(
        &app,
        1,
        std::slice::from_ref(&new),
        "/webtransport/clock",
        None,
        None,
    )
    .await;
    Lines::accept(&fresh.expect("a session pinned to the new certificate"))
        .await
        .event()
        .await;
    let stale = connect_with(&app, 1, &[old], "/webtransport/clock", None, None).await;
    assert!(stale.is_err(), "the old certificate no longer serves");
}

#[tokio::test]
async fn with_tls_cert_the_real_certificate_serves_and_no_hash_is_listed() {
    // A CA and a leaf for 127.0.0.1 signed by it, as a real deployment has.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
    let server = crate::tls::TlsServer::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .await;
    let mut h2 = server.h2().await;
    let body = server.get_json(&mut h2, "/api/webtransport").await;
    assert_eq!(body["certificateHashes"], serde_json::json!([]), "{body}");
    assert_eq!(body["port"].as_u64(), Some(u64::from(server.addr.port())));
    // Verified the ordinary way: the CA as the one root, the name checked.
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let tls = build_default_tls_config(std::sync::Arc::new(roots), None);
    let config = ClientConfig::builder()
        .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_custom_tls(tls)
        .build();
    let url = format!(
        "https://127.0.0.1:{}/webtransport/clock",
        server.addr.port()
    );
    let connection = tokio::time::timeout(
        Duration::from_secs(5),
        Endpoint::client(config).unwrap().connect(url),
    )
    .await
    .expect("in time")
    .expect("a session verified by the CA");
    Lines::accept(&connection).await.event().await;
}

#[tokio::test]
async fn no_webtransport_turns_it_off() {
    let app = spawn_app(&["--no-webtransport"]).await;
    let (status, body) = app.get_json("/api/webtransport").await;
    assert_eq!(status, 404, "{body}");
    let udp =
        tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], app.addr.port()))).await;
    assert!(udp.is_ok(), "nothing holds the UDP port");
}

#[tokio::test]
async fn a_udp_port_another_program_holds_turns_webtransport_off_not_the_server() {
    // A UDP port held here, and the TCP port of the same number free for the server.
    let (_held, listener) = loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
        let port = udp.local_addr().expect("its address").port();
        if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let app = spawn_app_on(listener, &[]).await;
    let (status, body) = app.get_json("/api/webtransport").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get_json("/poll/clock").await;
    assert_eq!(status, 200, "the TCP transports still serve: {body}");
}

// The bounds: each attacked from 127.0.0.3 while another address is still served.

#[tokio::test]
async fn per_peer_cap_refuses_one_address_and_serves_another() {
    let app = spawn_app(&["--max-connections-per-peer", "2"]).await;
    let a = connect(&app, 3, "/webtransport/clock")
        .await
        .expect("first");
    let b = connect(&app, 3, "/webtransport/clock")
        .await
        .expect("second");
    assert!(
        connect(&app, 3, "/webtransport/clock").await.is_err(),
        "a third from the same address"
    );
    let other = connect(&app, 4, "/webtransport/clock")
        .await
        .expect("another address");
    Lines::accept(&other).await.event().await;
    assert!(app.stats().await.webtransport_connections.refused_per_peer >= 1);
    app.another_peer_is_served().await;
    drop((a, b));
}

#[tokio::test]
async fn total_cap_refuses_past_it_and_tcp_is_still_served() {
    let app = spawn_app(&["--max-webtransport-sessions", "2"]).await;
    let a = connect(&app, 3, "/webtransport/clock")
        .await
        .expect("first");
    let b = connect(&app, 3, "/webtransport/clock")
        .await
        .expect("second");
    assert!(connect(&app, 3, "/webtransport/clock").await.is_err());
    assert!(app.stats().await.webtransport_connections.refused >= 1);
    app.another_peer_is_served().await;
    // A slot comes back when a session ends.
    a.close(0u32.into(), b"done");
    drop(a);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = connect(&app, 4, "/webtransport/clock").await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Lines::accept(&again.expect("a freed slot serves another address"))
        .await
        .event()
        .await;
    drop(b);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_closed_at_send_timeout() {
    let app = spawn_app(&["--keepalive", "100ms", "--send-timeout", "1s"]).await;
    let (_, hashes) = published(&app).await;
    // A 1 KiB window that this client never reads from: the server's writes stall.
    let stalled = connect_with(&app, 3, &hashes, "/webtransport/clock", None, Some(1024))
        .await
        .expect("session");
    let _unread = tokio::time::timeout(Duration::from_secs(5), stalled.accept_uni())
        .await
        .expect("stream")
        .expect("stream");
    let closed = tokio::time::timeout(Duration::from_secs(20), stalled.closed())
        .await
        .expect("closed within 20 s");
    assert!(closed.to_string().contains("send timeout"), "{closed}");
    assert!(app.stats().await.webtransport_connections.send_timeouts >= 1);
    let other = connect(&app, 4, "/webtransport/clock")
        .await
        .expect("another address");
    Lines::accept(&other).await.event().await;
    app.another_peer_is_served().await;
}

#[tokio::test]
async fn streams_per_connection_are_capped() {
    let app = spawn_app(&[]).await;
    let connection = connect(&app, 3, "/webtransport/chat")
        .await
        .expect("session");
    // The CONNECT stream is one of the three bidirectional streams a peer may open.
    let mut open = Vec::new();
    for _ in 0..2 {
        let opening = connection.open_bi().await.expect("open");
        open.push(opening.await.expect("granted"));
    }
    let third = tokio::time::timeout(Duration::from_secs(1), async {
        connection.open_bi().await.ok()?.await.ok()
    })
    .await;
    assert!(
        third.is_err(),
        "a fourth bidirectional stream is not granted"
    );
    let other = connect(&app, 4, "/webtransport/clock")
        .await
        .expect("another address");
    Lines::accept(&other).await.event().await;
}

#[tokio::test]
async fn a_command_line_past_64_kib_closes_its_stream() {
    let app = spawn_app(&[]).await;
    let connection = connect(&app, 3, "/webtransport/chat")
        .await
        .expect("session");
    let (mut send, recv) = connection.open_bi().await.unwrap().await.unwrap();
    let long = vec![b'x'; 70 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), send.write_all(&long)).await;
    let mut replies = BufReader::new(recv);
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), replies.read_line(&mut reply))
        .await
        .expect("a reply")
        .expect("read");
    let reply: Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(reply["code"], "too_big", "{reply}");
    let mut rest = String::new();
    let n = tokio::time::timeout(Duration::from_secs(5), replies.read_line(&mut rest))
        .await
        .expect("the stream ends");
    assert!(matches!(n, Ok(0) | Err(_)), "{rest}");
    let other = connect(&app, 4, "/webtransport/clock")
        .await
        .expect("another address");
    Lines::accept(&other).await.event().await;
}

#[tokio::test]
async fn a_quic_connection_that_never_asks_for_a_session_is_closed_at_the_header_timeout() {
    let app = spawn_app(&["--header-timeout", "1s"]).await;
    let (port, hashes) = published(&app).await;
    // QUIC and TLS done (ALPN h3), then nothing: no HTTP/3 settings, no CONNECT.
    let verifier = ServerHashVerification::new(hashes);
    let tls = build_default_tls_config(
        std::sync::Arc::new(RootCertStore::empty()),
        Some(std::sync::Arc::new(verifier)),
    );
    let crypto = wtransport::quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let config = wtransport::quinn::ClientConfig::new(std::sync::Arc::new(crypto));
    let endpoint =
        wtransport::quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 3], 0))).unwrap();
    let silent = endpoint
        .connect_with(
            config,
            SocketAddr::from(([127, 0, 0, 1], port)),
            "localhost",
        )
        .unwrap()
        .await
        .expect("the QUIC handshake");
    tokio::time::timeout(Duration::from_secs(5), silent.closed())
        .await
        .expect("closed within the header timeout and a margin");
    assert!(
        app.stats()
            .await
            .webtransport_connections
            .handshake_timeouts
            >= 1
    );
    let other = connect(&app, 4, "/webtransport/clock")
        .await
        .expect("another address");
    Lines::accept(&other).await.event().await;
    app.another_peer_is_served().await;
}

/// Resolves every name to the relay.
#[derive(Debug)]
struct ToRelay(SocketAddr);

impl wtransport::config::DnsResolver for ToRelay {
    fn resolve(&self, _host: &str) -> std::pin::Pin<Box<dyn wtransport::config::DnsLookupFuture>> {
        let to = self.0;
        Box::pin(async move { Ok(Some(to)) })
    }
}

/// A UDP relay from `127.0.0.1:PORT` (returned) to `server`, leaving from `127.0.0.3`;
/// aborting it makes the client vanish without a word, as a lost network does.
async fn relay(server: SocketAddr) -> (u16, tokio::task::JoinHandle<()>) {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
    back.connect(server).await.unwrap();
    let port = front.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
        let mut client = None;
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut a) => {
                    client = Some(from);
                    let _ = back.send(&a[..n]).await;
                }
                Ok(n) = back.recv(&mut b) => {
                    if let Some(to) = client {
                        let _ = front.send_to(&b[..n], to).await;
                    }
                }
            }
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_peer_gone_silent_is_dropped_at_the_idle_timeout() {
    let app = spawn_app(&["--dead-peer-timeout", "2s", "--keepalive", "500ms"]).await;
    let (port, hashes) = published(&app).await;
    let (front, relaying) = relay(SocketAddr::from(([127, 0, 0, 1], port))).await;
    // The URL names the server (its Host check reads the authority); the name resolves to
    // the relay.
    let verifier = ServerHashVerification::new(hashes.iter().cloned());
    let tls = build_default_tls_config(
        std::sync::Arc::new(RootCertStore::empty()),
        Some(std::sync::Arc::new(verifier)),
    );
    let mut config = ClientConfig::builder()
        .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_custom_tls(tls)
        .build();
    config.set_dns_resolver(ToRelay(SocketAddr::from(([127, 0, 0, 1], front))));
    let url = format!("https://localhost:{port}/webtransport/clock");
    let connection = Endpoint::client(config)
        .unwrap()
        .connect(url)
        .await
        .expect("session");
    // Kept: dropping the stream would tell the server (STOP_SENDING) and end the session.
    let mut lines = Lines::accept(&connection).await;
    lines.event().await;
    assert_eq!(app.stats().await.webtransport.open, 1);
    relaying.abort();
    let gone = std::time::Instant::now();
    // Still held within the idle timeout (2 s): only the timeout ends it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.stats().await.webtransport.open,
        1,
        "held until the idle timeout"
    );
    let mut open = 1;
    for _ in 0..60 {
        open = app.stats().await.webtransport.open;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "the silent peer's session is gone within 6 s");
    assert!(
        gone.elapsed() >= Duration::from_secs(2),
        "{:?}",
        gone.elapsed()
    );
    let other = connect(&app, 4, "/webtransport/clock")
        .await
        .expect("another address");
    Lines::accept(&other).await.event().await;
    drop((lines, connection));
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_servers_own_is_served() {
    let app = spawn_app(&[]).await;
    let (port, hashes) = published(&app).await;
    let session = async |origin: &str| {
        let url = format!("https://127.0.0.1:{port}/webtransport/clock");
        let options = wtransport::endpoint::ConnectOptions::builder(url)
            .add_header("origin", origin)
            .build();
        client(1, &hashes, None).connect(options).await
    };
    let foreign = session("http://evil.example").await;
    assert!(foreign.is_err(), "a page of another site gets no session");
    let own = session(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("the server's own page");
    Lines::accept(&own).await.event().await;
}

#[tokio::test]
async fn strokes_sent_on_a_bidi_stream_come_back_as_datagrams_in_datagram_mode() {
    let app = spawn_app(&[]).await;
    let (connection, _lines) = open(&app, 1, "/webtransport/draw?datagrams=1").await;
    let (mut send, _recv) = connection.open_bi().await.unwrap().await.unwrap();
    let frame = serde_json::json!({
        "type": "draw",
        "strokes": [{ "color": "#00aa00", "width": 3, "points": [1, 2, 3, 4] }],
    });
    send.write_all(format!("{frame}\n").as_bytes())
        .await
        .expect("write");
    let datagram = tokio::time::timeout(Duration::from_secs(5), connection.receive_datagram())
        .await
        .expect("a datagram within 5 s")
        .expect("datagram");
    let stroke: Value = serde_json::from_slice(datagram.payload().as_ref()).expect("json");
    assert_eq!(stroke["color"], "#00aa00", "{stroke}");
    assert_eq!(stroke["id"], 1, "{stroke}");
    assert_eq!(app.stats().await.webtransport.datagrams_sent, 1);
}
