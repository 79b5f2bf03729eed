//! Out of loopback, on a network each test makes for itself (`support::netns`: two network
//! namespaces joined by a veth pair, the server on one side, "another machine" on the other):
//! a server bound to every interface or to one, reached at its network address; the URLs it
//! prints; whose names it answers to (`--public-url`); `/readyz` during shutdown, asked by a
//! load balancer on the network; and the client address behind a trusted proxy
//! (`--trust-proxy`), which the per-peer budgets charge (on loopback, where 127.0.0.x plays
//! the proxy and its clients).
//!
//! The server runs inside its namespace (`ip netns exec`) rather than on this machine: a
//! server on `0.0.0.0` prints and answers to the addresses of the interfaces it sees
//! (src/net/interfaces.rs), and inside the namespace those are exactly its loopback and the veth,
//! so a test knows what it must print and this machine's own interfaces are never a target.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, HOST, ORIGIN};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::Command;

use crate::support::netns::{LINK, Lan, Netns, SERVER_IP};
use crate::support::{Streaming, Watchdog, client_from, spawn_app};

const WAIT: Duration = Duration::from_secs(3);

/// Starts `command` (the real binary) and returns it with every line it printed at start-up.
pub(crate) async fn start(mut command: Command) -> (tokio::process::Child, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pushpoll");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("pushpoll printed nothing within 10 s")
        .unwrap()
        .expect("pushpoll exited at start");
    printed.push(first);
    // The other lines are written with the first, in one write.
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
    {
        printed.push(line);
    }
    (child, printed)
}

/// The real binary inside `ns` with `args` (and a clock ticking every 100 ms).
pub(crate) fn pushpoll_in(ns: &Netns, args: &[&str]) -> Command {
    let mut command = ns.command(env!("CARGO_BIN_EXE_pushpoll"));
    command
        .args(["--db", ":memory:", "--tick-ms", "100"])
        .args(args);
    command
}

/// `GET url` from wherever the calling task runs (a namespace's, through `Netns::run`): the
/// status and the body as JSON (`null` when it is not JSON).
pub(crate) async fn get_json(url: String) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new().get(&url).send().await.expect(&url);
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[tokio::test]
async fn a_server_on_every_interface_is_reached_at_its_network_address() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (_child, printed) = start(pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"])).await;
    // The first line is the one `pushpoll::spawn` reads: the URL to open on this machine.
    let (local, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    assert_eq!(addr.ip(), IpAddr::from([127, 0, 0, 1]), "{printed:?}");
    let base = format!("http://{}", SocketAddr::from((SERVER_IP, addr.port())));
    // The server's machine has two interfaces, loopback and the veth: one network line.
    assert_eq!(
        printed[1..],
        [format!("  on the network: {base}/ ({LINK})")],
        "{printed:?}"
    );

    // Poll on the server's machine, through loopback.
    let (status, body) = lan
        .server
        .run(get_json(format!("{local}/poll/clock")))
        .await;
    assert_eq!(status, 200);
    assert!(body["next"].as_u64().is_some(), "{body}");

    // From another machine, through the network address.
    lan.client
        .run(async move {
            let http = reqwest::Client::new();
            let (status, body) = get_json(format!("{base}/poll/clock")).await;
            assert_eq!(status, 200);
            assert!(body["next"].as_u64().is_some(), "{body}");
            // A stream.
            let mut sse = Streaming::open(http.get(format!("{base}/sse/clock"))).await;
            assert_eq!(sse.status, 200);
            let (_, first) = sse.next_sse_event(WAIT).await.expect("a tick over SSE");
            let (_, second) = sse.next_sse_event(WAIT).await.expect("another tick");
            assert!(second.id > first.id);

            // A foreign name is refused on the network address too, with the JSON error
            // saying how to add a name.
            let res = http
                .get(format!("{base}/poll/clock"))
                .header(HOST, "rebind.evil.example")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 421);
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unknown_host", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("--public-url"), "{message}");
            // The unspecified address itself is not a name to be reached at.
            let res = http
                .get(format!("{base}/healthz"))
                .header(HOST, format!("0.0.0.0:{}", addr.port()))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 421);

            // A page served from the network address is the server's own origin.
            let res = http
                .post(format!("{base}/api/session"))
                .header(ORIGIN, &base)
                .json(&serde_json::json!({ "nick": "lan-student" }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201, "{:?}", res.text().await);
        })
        .await;
}

#[tokio::test]
async fn a_public_url_is_a_name_and_an_origin_of_the_server() {
    let app = spawn_app(&["--public-url", "https://class.example"]).await;
    let get = |host: &'static str, origin: Option<&'static str>| {
        let mut req = app.http.get(app.url("/poll/clock")).header(HOST, host);
        if let Some(origin) = origin {
            req = req.header(ORIGIN, origin);
        }
        req.send()
    };
    let res = get("class.example", Some("https://class.example"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "https://class.example",
        "a read from the public origin gets CORS"
    );
    let res = get("class.example", Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "a foreign origin may still read without CORS"
    );
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let res = get("other.example", None).await.unwrap();
    assert_eq!(res.status(), 421);

    let login = |origin: &'static str, nick: &'static str| {
        app.http
            .post(app.url("/api/session"))
            .header(HOST, "class.example")
            .header(ORIGIN, origin)
            .json(&serde_json::json!({ "nick": nick }))
            .send()
    };
    assert_eq!(
        login("https://class.example", "pub1")
            .await
            .unwrap()
            .status(),
        201
    );
    let refused = login("https://evil.example", "pub2").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden_origin");
    // The same name over another scheme is another origin.
    assert_eq!(
        login("http://class.example:8080", "pub3")
            .await
            .unwrap()
            .status(),
        403
    );

    // Without the flag, the name is refused.
    let plain = spawn_app(&[]).await;
    let res = plain
        .http
        .get(plain.url("/healthz"))
        .header(HOST, "class.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
}

#[tokio::test]
async fn readyz_turns_503_for_a_load_balancer_on_the_network_once_shutdown_has_begun() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (mut child, printed) = start(pushpoll_in(&lan.server, &["--addr", "0.0.0.0:0"])).await;
    let (_, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let server = SocketAddr::from((SERVER_IP, addr.port()));
    // `/readyz` answers another machine: a load balancer is one.
    let (status, body) = lan
        .client
        .run(get_json(format!("http://{server}/readyz")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({ "ready": true }));
    // A health check already on its way when the signal comes: its head is half sent.
    let (half_sent, sent) = tokio::sync::oneshot::channel();
    let (go, finish) = tokio::sync::oneshot::channel::<()>();
    let probe = lan.client.run(async move {
        let mut probe = tokio::net::TcpStream::connect(server).await.unwrap();
        probe
            .write_all(format!("GET /readyz HTTP/1.1\r\nHost: {server}\r\n").as_bytes())
            .await
            .unwrap();
        half_sent.send(()).unwrap();
        finish.await.unwrap();
        probe.write_all(b"\r\n").await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(WAIT, probe.read_to_string(&mut answer))
            .await
            .expect("the probe is answered")
            .unwrap();
        // And no new connection is taken.
        let refused = tokio::net::TcpStream::connect(server).await.is_err();
        (answer, refused)
    });
    sent.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SAFETY: kill(2) on our own child's pid (`ip netns exec` execs the server: same pid).
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    tokio::time::sleep(Duration::from_millis(300)).await;
    go.send(()).unwrap();
    let (answer, refused) = probe.await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"shutting_down""#), "{answer}");
    assert!(refused, "still accepting after SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the server exits within 5 s")
        .unwrap();
    assert!(status.success());
}

/// `POST /api/session` from `client` with `X-Forwarded-For: forwarded` (if any); the status.
async fn login_as(
    client: &reqwest::Client,
    base: &str,
    nick: &str,
    forwarded: Option<&str>,
) -> u16 {
    let mut req = client
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "nick": nick }));
    if let Some(forwarded) = forwarded {
        req = req.header("x-forwarded-for", forwarded);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_budget() {
    let app = spawn_app(&["--trust-proxy", "127.0.0.0/8", "--login-rate", "2"]).await;
    let base = format!("http://{}", app.addr);
    let proxy = reqwest::Client::new();
    for (i, client) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        assert_eq!(
            login_as(&proxy, &base, &format!("a{i}"), Some(client)).await,
            201
        );
        assert_eq!(
            login_as(&proxy, &base, &format!("b{i}"), Some(client)).await,
            201
        );
    }
    // The same forwarded client is limited; the proxy's own address is not what is counted.
    assert_eq!(
        login_as(&proxy, &base, "c0", Some("203.0.113.1")).await,
        429
    );
    // The right-most untrusted hop counts, not what the client wrote on the left.
    assert_eq!(
        login_as(&proxy, &base, "c1", Some("198.51.100.7, 203.0.113.2")).await,
        429
    );
    // RFC 7239 `Forwarded` is read too.
    let res = proxy
        .post(format!("{base}/api/session"))
        .header("forwarded", "for=203.0.113.3;proto=https")
        .json(&serde_json::json!({ "nick": "d0" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn without_trust_proxy_a_forged_header_does_not_escape_the_budget() {
    let app = spawn_app(&["--login-rate", "2"]).await;
    let base = format!("http://{}", app.addr);
    let client = reqwest::Client::new();
    assert_eq!(
        login_as(&client, &base, "f0", Some("203.0.113.1")).await,
        201
    );
    assert_eq!(
        login_as(&client, &base, "f1", Some("203.0.113.2")).await,
        201
    );
    assert_eq!(
        login_as(&client, &base, "f2", Some("203.0.113.3")).await,
        429
    );
    let res = client
        .post(format!("{base}/api/session"))
        .header("forwarded", "for=203.0.113.4")
        .json(&serde_json::json!({ "nick": "f3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn a_peer_outside_the_trusted_range_cannot_spoof_its_address() {
    // Only 127.0.0.2 is the proxy; 127.0.0.1 is a client that forges the header.
    let app = spawn_app(&["--trust-proxy", "127.0.0.2", "--login-rate", "2"]).await;
    let base = format!("http://{}", app.addr);
    let forger = client_from(1);
    assert_eq!(
        login_as(&forger, &base, "s0", Some("203.0.113.1")).await,
        201
    );
    assert_eq!(
        login_as(&forger, &base, "s1", Some("203.0.113.2")).await,
        201
    );
    assert_eq!(
        login_as(&forger, &base, "s2", Some("203.0.113.3")).await,
        429
    );
    // The trusted proxy's forwarded clients are still served, each on its own budget.
    let proxy = client_from(2);
    assert_eq!(
        login_as(&proxy, &base, "p0", Some("203.0.113.1")).await,
        201
    );
    assert_eq!(
        login_as(&proxy, &base, "p1", Some("127.0.0.1")).await,
        429,
        "a forwarded 127.0.0.1 is the forger's address, and its budget is spent"
    );
}

#[tokio::test]
async fn the_wire_view_shows_the_forwarded_client() {
    let app = spawn_app(&["--trust-proxy", "127.0.0.0/8"]).await;
    let tag = "lan-0123456789abcdefABCDEF";
    let res = app
        .http
        .get(app.url(&format!("/poll/clock?tag={tag}")))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, wire) = app.get_json(&format!("/api/debug/wire?tag={tag}")).await;
    assert_eq!(status, 200);
    let client = &wire["exchanges"][0]["client"];
    assert_eq!(client["address"], "203.0.113.9", "{wire}");
    assert_eq!(client["scheme"], "https");
    assert_eq!(client["forwarded"], true);
    assert!(client["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[tokio::test]
async fn a_server_on_one_interface_answers_there_and_to_that_address_only() {
    let _watchdog = Watchdog::arm();
    let Some(lan) = Lan::create() else {
        return;
    };
    let (_child, printed) = start(pushpoll_in(
        &lan.server,
        &["--addr", &format!("{SERVER_IP}:0")],
    ))
    .await;
    let (base, addr) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    assert_eq!(addr.ip(), IpAddr::from(SERVER_IP), "{printed:?}");
    assert_eq!(printed.len(), 1, "nothing else to print: {printed:?}");
    let port = addr.port();
    lan.client
        .run(async move {
            let (status, _) = get_json(format!("{base}/poll/clock")).await;
            assert_eq!(status, 200);
            // Loopback's names are not this server's.
            let res = reqwest::Client::new()
                .get(format!("{base}/healthz"))
                .header(HOST, format!("localhost:{port}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 421);
        })
        .await;
    // And loopback is not listened on.
    let refused = lan
        .server
        .run(async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        })
        .await;
    assert!(refused, "the server listens on loopback too");
}
