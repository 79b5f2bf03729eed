//! HTTPS: the real binary with `--tls-self-signed` or `--tls-cert/--tls-key`,
//! real HTTP/2 and HTTP/1.1 clients over rustls (ALPN decides), and all five transports over
//! them, delivering as things happen; the handshake deadline; `Secure` cookies.
//!
//! The test clients trust the self-signed certificate by its SHA-256 fingerprint, read from
//! what the server prints at start-up: pinning, as a person checks it in a browser. They are
//! hyper's own HTTP/2 and HTTP/1.1 clients over tokio-rustls, so a test knows exactly which
//! connection carries which request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushpoll::event::EventBody;
use pushpoll::feed::WireEvent;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout};
use tokio_rustls::client::TlsStream;

use crate::support::{Streaming, Watchdog, now_micros, tcp_from};

const SECOND: Duration = Duration::from_secs(1);

/// The real binary serving HTTPS on 127.0.0.1:0.
pub(crate) struct TlsServer {
    pub(crate) addr: SocketAddr,
    /// The SHA-256 fingerprint it printed.
    fingerprint: String,
    _child: Child,
    /// Kept open so the server can still write to its stdout.
    _stdout: Lines<BufReader<ChildStdout>>,
    _watchdog: Watchdog,
}

impl TlsServer {
    pub(crate) async fn start(args: &[&str]) -> TlsServer {
        let watchdog = Watchdog::arm();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"))
            .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the pushpoll binary");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut next = async || {
            tokio::time::timeout(10 * SECOND, lines.next_line())
                .await
                .expect("the server prints its URL and fingerprint within 10 s")
                .expect("read stdout")
                .expect("a line")
        };
        let banner = next().await;
        let (url, addr) = pushpoll::spawn::url_in(&banner).expect("URL");
        assert!(url.starts_with("https://"), "{banner}");
        let described = next().await;
        let fingerprint = described
            .split_once("SHA-256 fingerprint ")
            .map(|(_, f)| f.trim().to_owned())
            .unwrap_or_else(|| panic!("no fingerprint in {described:?}"));
        TlsServer {
            addr,
            fingerprint,
            _child: child,
            _stdout: lines,
            _watchdog: watchdog,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// A TLS connection from `127.0.0.N` offering `alpn`, trusting the server's certificate
    /// by its fingerprint; checks the protocol ALPN chose.
    pub(crate) async fn tls_from(&self, n: u8, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let tcp = tcp_from(n, self.addr).await;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(pinned(&self.fingerprint, alpn)));
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), alpn.first().copied());
        tls
    }

    /// One HTTP/2 connection (ALPN `h2`) from `127.0.0.N`; every request sent on the
    /// returned handle is a stream of that connection.
    pub(crate) async fn h2_from(&self, n: u8) -> http2::SendRequest<String> {
        let io = TokioIo::new(self.tls_from(n, &[b"h2", b"http/1.1"]).await);
        let (send, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        send
    }

    pub(crate) async fn h2(&self) -> http2::SendRequest<String> {
        self.h2_from(1).await
    }

    /// One HTTP/1.1 connection over TLS (ALPN `http/1.1`).
    async fn h1(&self) -> http1::SendRequest<String> {
        let io = TokioIo::new(self.tls_from(1, &[b"http/1.1"]).await);
        let (send, conn) = http1::handshake(io).await.expect("h1 handshake");
        tokio::spawn(conn);
        send
    }

    /// A request for `path` (absolute URI: h2 sends it as `:scheme`/`:authority`/`:path`).
    pub(crate) fn request(&self, method: &str, path: &str, body: String) -> hyper::Request<String> {
        hyper::Request::builder()
            .method(method)
            .uri(self.url(path))
            .body(body)
            .unwrap()
    }

    /// `GET path` over `h2`, answered `200` over HTTP/2, parsed as JSON.
    pub(crate) async fn get_json(
        &self,
        h2: &mut http2::SendRequest<String>,
        path: &str,
    ) -> serde_json::Value {
        let res = h2
            .send_request(self.request("GET", path, String::new()))
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.version(), hyper::Version::HTTP_2, "{path}");
        serde_json::from_slice(&read_all(res.into_body()).await).expect("json")
    }
}

/// The body's data frames as a stream of chunks.
fn chunks(body: Incoming) -> futures_util::stream::BoxStream<'static, Result<Bytes, String>> {
    futures_util::stream::unfold(body, |mut body| async move {
        loop {
            let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
            match frame.await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), body));
                    }
                }
                Err(err) => return Some((Err(err.to_string()), body)),
            }
        }
    })
    .boxed()
}

pub(crate) async fn read_all(body: Incoming) -> Vec<u8> {
    let mut all = Vec::new();
    let mut chunks = chunks(body);
    while let Some(chunk) = chunks.next().await {
        all.extend_from_slice(&chunk.expect("body"));
    }
    all
}

/// An open response, read as it arrives.
fn streaming(res: hyper::Response<Incoming>) -> Streaming {
    let (parts, body) = res.into_parts();
    Streaming::from_parts(
        parts.status.as_u16(),
        parts.headers,
        parts.version,
        chunks(body),
    )
}

/// Opens `GET path` on `send` and returns it as a [`Streaming`].
async fn open_h2(
    server: &TlsServer,
    send: &mut http2::SendRequest<String>,
    path: &str,
) -> Streaming {
    let res = send
        .send_request(server.request("GET", path, String::new()))
        .await
        .expect("stream request");
    streaming(res)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(alpn: &[&[u8]], config: ClientConfig) -> ClientConfig {
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A rustls client config that accepts exactly the certificate with `fingerprint`.
pub(crate) fn pinned(fingerprint: &str, alpn: &[&[u8]]) -> ClientConfig {
    let verifier = Arc::new(Pinned {
        fingerprint: fingerprint.to_owned(),
        provider: provider(),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    client_config(alpn, config)
}

/// Trusts one certificate, named by its SHA-256 fingerprint; still checks the handshake
/// signatures, so the peer must hold the certificate's key.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if pushpoll::net::tls::fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How long ago (ms) the server stamped `event`: the server and the test share a clock.
fn age_ms(event: &WireEvent) -> i64 {
    (now_micros() as i64 - event.ts as i64) / 1000
}

/// Three ticks of a stream, each read within a tick of being stamped, so delivered as it
/// happened rather than held and flushed later.
async fn ticks_arrive_as_they_happen(
    label: &str,
    stream: &mut Streaming,
    mut next: impl AsyncFnMut(&mut Streaming) -> Option<WireEvent>,
) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let event = next(stream)
            .await
            .unwrap_or_else(|| panic!("{label}: stream ended"));
        if !matches!(event.body, EventBody::Tick { .. }) {
            continue;
        }
        let age = age_ms(&event);
        assert!(
            age < 250,
            "{label}: tick {} read {age} ms after it was stamped",
            event.id
        );
        ids.push(event.id);
    }
    assert!(
        ids.len() >= 2 && ids.windows(2).all(|w| w[0] < w[1]),
        "{ids:?}"
    );
}

#[tokio::test]
async fn all_five_transports_deliver_over_http2_on_one_connection() {
    let server = TlsServer::start(&["--tls-self-signed", "--tick-ms", "300"]).await;
    let mut h2 = server.h2().await;

    // Short poll and long poll, answered over HTTP/2.
    let now = server.get_json(&mut h2, "/poll/clock").await;
    let cursor = now["next"].as_u64().expect("next");
    let started = Instant::now();
    let later = server
        .get_json(
            &mut h2,
            &format!("/longpoll/clock?after={cursor}&timeout=5"),
        )
        .await;
    assert!(
        later["events"][0]["id"].as_u64() > Some(cursor),
        "the long poll answered with a newer tick: {later}"
    );
    assert!(started.elapsed() < 2 * SECOND);

    // SSE and the iframe at the same time on the same connection, streamed as ticks happen.
    let mut sse = open_h2(&server, &mut h2, "/sse/clock").await;
    let mut iframe = open_h2(&server, &mut h2, "/iframe/clock").await;
    for stream in [&sse, &iframe] {
        assert_eq!(stream.status, 200);
        assert_eq!(stream.version, hyper::Version::HTTP_2);
    }
    // Read side by side: a stream not read for a while would hold ticks in the client.
    tokio::join!(
        ticks_arrive_as_they_happen("sse", &mut sse, async |s| {
            s.next_sse_event(2 * SECOND).await.map(|(_, e)| e)
        }),
        ticks_arrive_as_they_happen("iframe", &mut iframe, async |s| {
            s.next_iframe_event(2 * SECOND).await
        }),
    );

    // Both streams, the polls and this stats request share one connection: the server
    // counts one TCP connection open (HTTP/2 multiplexes streams, RFC 9113 §5).
    let stats = server.get_json(&mut h2, "/api/stats").await;
    assert_eq!(stats["connections"]["open"], 1, "{stats}");

    // WebSocket over TLS: an HTTP/1.1 upgrade on a connection of its own (ALPN http/1.1),
    // since the server does not offer RFC 8441's extended CONNECT.
    let mut ws = wss(&server, "/ws/clock").await;
    let mut ticks = 0;
    while ticks < 2 {
        let frame = tokio::time::timeout(2 * SECOND, ws.next())
            .await
            .expect("a tick within 2 s")
            .expect("socket open")
            .expect("frame");
        if pushpoll::wire::is_heartbeat(frame.to_text().expect("text").as_bytes()) {
            continue; // `{"heartbeat":MS}` opens the socket
        }
        ticks += 1;
        let event: WireEvent = serde_json::from_str(frame.to_text().expect("text")).unwrap();
        assert!(matches!(event.body, EventBody::Tick { .. }), "{event:?}");
        assert!(age_ms(&event) < 250, "ws tick {} late", event.id);
    }
}

/// A WebSocket over TLS to `path`, by tokio-tungstenite on a rustls stream.
async fn wss(
    server: &TlsServer,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>> {
    let tls = server.tls_from(1, &[b"http/1.1"]).await;
    let url = format!("wss://{}{path}", server.addr);
    let (ws, response) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket upgrade over TLS");
    assert_eq!(response.status(), 101);
    ws
}

#[tokio::test]
async fn http1_over_tls_when_alpn_says_so() {
    let server = TlsServer::start(&["--tls-self-signed", "--tick-ms", "300"]).await;
    let mut h1 = server.h1().await;
    let get = |path: &str| {
        hyper::Request::get(path)
            .header("host", server.addr.to_string())
            .body(String::new())
            .unwrap()
    };
    let res = h1.send_request(get("/poll/clock")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), hyper::Version::HTTP_11);
    read_all(res.into_body()).await;
    // The same connection, kept alive, then carries a stream.
    let res = h1.send_request(get("/sse/clock")).await.unwrap();
    let mut sse = streaming(res);
    assert_eq!(sse.version, hyper::Version::HTTP_11);
    ticks_arrive_as_they_happen("sse over http/1.1", &mut sse, async |s| {
        s.next_sse_event(2 * SECOND).await.map(|(_, e)| e)
    })
    .await;
}

#[tokio::test]
async fn a_certificate_and_key_from_pem_files() {
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

    let server = TlsServer::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        server.fingerprint,
        pushpoll::net::tls::fingerprint(leaf.der()),
        "the printed fingerprint is the leaf's"
    );

    // Verified the ordinary way: the CA as the one root, the name (an IP SAN) checked.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&[b"h2"], config)));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("a verified handshake");
    let (mut h2, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = server.get_json(&mut h2, "/poll/clock").await;
    assert!(body["next"].as_u64().is_some(), "{body}");
}

#[tokio::test]
async fn mismatched_tls_flags_are_refused_at_start() {
    for args in [
        &["--tls-cert", "c.pem"][..],
        &["--tls-key", "k.pem"][..],
        &[
            "--tls-self-signed",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ][..],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"))
            .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
    }
    // A missing file is a start-up error that names it, not a panic.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"))
        .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
        .args([
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/c.pem"), "{stderr}");
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_by_the_deadline_while_others_are_served() {
    let server = TlsServer::start(&["--tls-self-signed", "--header-timeout", "1s"]).await;
    // From 127.0.0.1: the first bytes of a TLS record header, then nothing.
    let mut stalled = tcp_from(1, server.addr).await;
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = Instant::now();

    // Meanwhile another peer (127.0.0.2) is served over HTTP/2.
    let mut other = server.h2_from(2).await;
    let body = server.get_json(&mut other, "/poll/clock").await;
    assert!(body["next"].as_u64().is_some());

    let mut scratch = [0u8; 64];
    let read = tokio::time::timeout(5 * SECOND, stalled.read(&mut scratch))
        .await
        .expect("the stalled handshake is closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < 3 * SECOND,
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_header_deadline() {
    let server = TlsServer::start(&["--tls-self-signed", "--header-timeout", "1s"]).await;

    // A client that made one request and answers PINGs, then stays idle: closed once no
    // stream has been open for --header-timeout (GOAWAY, then the socket closes).
    let mut idle = server.h2().await;
    server.get_json(&mut idle, "/poll/clock").await;
    let started = Instant::now();
    tokio::time::timeout(5 * SECOND, async {
        while !idle.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the idle connection is closed within 5 s");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A connection that finished the handshake (h2 chosen) and never sent its preface.
    let mut silent = server.tls_from(1, &[b"h2"]).await;
    let started = Instant::now();
    let mut scratch = vec![0u8; 4096];
    let closed = tokio::time::timeout(5 * SECOND, async {
        loop {
            match silent.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent h2 connection stayed open 5 s");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn set_cookie_carries_secure_over_tls() {
    let server = TlsServer::start(&["--tls-self-signed"]).await;
    let mut h2 = server.h2().await;
    let login = |origin: String, nick: &str| {
        hyper::Request::post(server.url("/api/session"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(format!(r#"{{"nick":"{nick}"}}"#))
            .unwrap()
    };
    let res = h2.send_request(login(server.url(""), "tls")).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.version(), hyper::Version::HTTP_2);
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("Set-Cookie")
        .to_str()
        .unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // Over HTTPS the own origin is https://host:port; the same host:port over http:// is
    // another origin (RFC 6454 §4), refused for a state-changing request.
    let plain_origin = format!("http://{}", server.addr);
    let res = h2.send_request(login(plain_origin, "plain")).await.unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn an_http2_header_list_over_64_kib_is_refused() {
    let server = TlsServer::start(&["--tls-self-signed"]).await;
    let mut h2 = server.h2().await;
    let mut request = server.request("GET", "/poll/clock", String::new());
    request
        .headers_mut()
        .insert("x-big", "a".repeat(70 * 1024).parse().unwrap());
    // The server announces SETTINGS_MAX_HEADER_LIST_SIZE = 64 KiB; a client may refuse to send
    // past it (RFC 9113 §6.5.2), else the server answers 431.
    match h2.send_request(request).await {
        Ok(res) => assert_eq!(res.status(), 431),
        Err(err) => assert!(err.to_string().contains("header"), "{err}"),
    }
    // A new connection is served.
    let mut fresh = server.h2().await;
    server.get_json(&mut fresh, "/poll/clock").await;
}

#[tokio::test]
async fn an_http2_stream_its_peer_does_not_read_is_cut_after_the_send_timeout() {
    let server = TlsServer::start(&[
        "--tls-self-signed",
        "--send-timeout",
        "1s",
        "--tick-ms",
        "20",
    ])
    .await;
    let tls = server.tls_from(1, &[b"h2"]).await;
    // A 1 KiB stream window that this client never widens: it opens the SSE stream and
    // never reads its body, so the server's stream stalls on flow control while the socket
    // itself stays writable (the connection-level window is untouched).
    let (mut send, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1024)
        .handshake::<_, String>(TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let response = send
        .send_request(server.request("GET", "/sse/clock", String::new()))
        .await
        .expect("response head");
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let ended = tokio::time::timeout(5 * SECOND, conn).await;
    assert!(ended.is_ok(), "the stalled h2 connection stayed open 5 s");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "cut after {waited:?}");
    drop(response);

    let stats = server
        .get_json(&mut server.h2_from(2).await, "/api/stats")
        .await;
    assert!(
        stats["connections"]["send_timeouts"].as_u64() >= Some(1),
        "{stats}"
    );
}

#[tokio::test]
async fn past_the_per_peer_cap_a_tls_connection_is_closed_and_other_peers_are_served() {
    let server = TlsServer::start(&["--tls-self-signed", "--max-connections-per-peer", "2"]).await;
    // 127.0.0.1 holds its two connections (handshakes done, h2 chosen).
    let _one = server.tls_from(1, &[b"h2"]).await;
    let _two = server.tls_from(1, &[b"h2"]).await;
    // Its third is closed at once, without a plaintext answer in the TLS stream.
    let mut third = tcp_from(1, server.addr).await;
    let mut scratch = [0u8; 64];
    let read = tokio::time::timeout(5 * SECOND, third.read(&mut scratch))
        .await
        .expect("the excess connection is closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // 127.0.0.2 is served.
    let mut other = server.h2_from(2).await;
    let stats = server.get_json(&mut other, "/api/stats").await;
    assert!(
        stats["connections"]["rejected_per_peer"].as_u64() >= Some(1),
        "{stats}"
    );
}

/// The server advertises `SETTINGS_MAX_CONCURRENT_STREAMS` = `facts::MAX_H2_STREAMS`, at
/// least RFC 9113 §6.5.2's recommended 100: one connection holds that many SSE streams at
/// once, and the next request waits for a stream to end (the client honours the setting).
#[tokio::test]
async fn one_http2_connection_holds_the_stream_cap_in_streams_and_the_next_waits() {
    let cap = pushpoll::facts::MAX_H2_STREAMS as usize;
    assert!(cap >= 100, "below RFC 9113 §6.5.2's recommended minimum");
    let server = TlsServer::start(&["--tls-self-signed", "--max-requests-per-peer", "1000"]).await;
    let h2 = server.h2_from(1).await;
    let opened = futures_util::future::join_all((0..cap).map(|_| {
        let mut h2 = h2.clone();
        let request = server.request("GET", "/sse/clock", String::new());
        async move { h2.send_request(request).await.expect("stream") }
    }))
    .await;
    assert!(opened.iter().all(|r| r.status() == 200));
    let mut other = server.h2_from(2).await;
    let stats = server.get_json(&mut other, "/api/stats").await;
    assert_eq!(stats["transports"]["sse"]["open"], cap, "{stats}");
    assert_eq!(stats["connections"]["open"], 2, "{stats}");

    let mut h2_next = h2.clone();
    let next = tokio::spawn(async move {
        let request = hyper::Request::builder()
            .uri(format!("https://{}/healthz", server.addr))
            .body(String::new())
            .unwrap();
        let res = h2_next.send_request(request).await.expect("request");
        (res.status(), server)
    });
    tokio::time::sleep(SECOND).await;
    assert!(
        !next.is_finished(),
        "a stream past the cap of {cap} was answered at once"
    );
    drop(opened);
    let (status, _server) = tokio::time::timeout(5 * SECOND, next)
        .await
        .expect("answered once a stream ended")
        .unwrap();
    assert_eq!(status, 200);
}
