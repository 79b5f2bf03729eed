//! A WebTransport client as the pages are one: the certificate pinned by the hashes
//! `GET /api/webtransport` lists, the chat's session carried by a ticket
//! (`POST /api/webtransport/ticket`), the feed read line by line from the server's stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::tls::Sha256Digest;
use wtransport::tls::client::{ServerHashVerification, build_default_tls_config};
use wtransport::tls::rustls::RootCertStore;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream};

use super::TestApp;

/// `GET /api/webtransport`: the port and the listed hashes, decoded.
pub async fn published(app: &TestApp) -> (u16, Vec<Sha256Digest>) {
    let (status, body) = app.get_json("/api/webtransport").await;
    assert_eq!(status, 200, "{body}");
    let hashes = body["certificateHashes"]
        .as_array()
        .expect("certificateHashes")
        .iter()
        .map(|h| {
            assert_eq!(h["algorithm"], "sha-256", "{body}");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h["value"].as_str().expect("value"))
                .expect("base64");
            Sha256Digest::new(bytes.try_into().expect("32 bytes"))
        })
        .collect();
    (body["port"].as_u64().expect("port") as u16, hashes)
}

/// A client endpoint on `127.0.0.N` that accepts only `hashes` (wtransport's verifier also
/// holds the certificate to the browsers' rules: P-256, within its validity, at most 14 days),
/// with the QUIC stream receive window `window` (a small one makes a slow reader).
pub fn client(n: u8, hashes: &[Sha256Digest], window: Option<u32>) -> Endpoint<Client> {
    endpoint(SocketAddr::from(([127, 0, 0, n], 0)), hashes, window)
}

fn endpoint(from: SocketAddr, hashes: &[Sha256Digest], window: Option<u32>) -> Endpoint<Client> {
    let verifier = ServerHashVerification::new(hashes.iter().cloned());
    let tls = build_default_tls_config(Arc::new(RootCertStore::empty()), Some(Arc::new(verifier)));
    let mut transport = QuicTransportConfig::default();
    if let Some(window) = window {
        transport
            .stream_receive_window(window.into())
            .receive_window(window.into());
    }
    let config = ClientConfig::builder()
        .with_bind_address(from)
        .with_custom_tls_and_transport(tls, transport)
        .build();
    Endpoint::client(config).expect("client endpoint")
}

/// `POST /api/webtransport/ticket` as the session `cookie`: the ticket.
pub async fn ticket(app: &TestApp, cookie: &str) -> String {
    let (status, body, _) = app
        .send_json(
            reqwest::Method::POST,
            "/api/webtransport/ticket",
            Some(cookie),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["ticket"].as_str().expect("ticket").to_string()
}

/// A session at `path` (`/webtransport/FEED?…`) at the app's address (on loopback from
/// 127.0.0.1), pinned to the listed hashes.
pub async fn connect(app: &TestApp, path: &str) -> Result<Connection, String> {
    let (port, hashes) = published(app).await;
    let ip = app.addr.ip();
    let url = format!("https://{}{path}", SocketAddr::new(ip, port));
    let from: SocketAddr = match ip {
        std::net::IpAddr::V4(v4) if v4.is_loopback() => ([127, 0, 0, 1], 0).into(),
        std::net::IpAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        std::net::IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        endpoint(from, &hashes, None).connect(url),
    )
    .await
    .map_err(|_| "no answer in 5 s".to_string())?
    .map_err(|e| e.to_string())
}

/// A session the API tests read like any other transport's: its server-opened stream, one
/// NDJSON line at a time.
pub struct Session {
    pub connection: Connection,
    lines: BufReader<RecvStream>,
}

impl Session {
    /// Subscribes at `/webtransport/{feed_and_query}`; with `cookie`, the chat session rides
    /// on a ticket, as a page's does.
    pub async fn open(app: &TestApp, feed_and_query: &str, cookie: Option<&str>) -> Session {
        let mut path = format!("/webtransport/{feed_and_query}");
        if let Some(cookie) = cookie {
            let sep = if path.contains('?') { '&' } else { '?' };
            path = format!("{path}{sep}ticket={}", ticket(app, cookie).await);
        }
        let connection = connect(app, &path).await.expect("a WebTransport session");
        let stream = tokio::time::timeout(Duration::from_secs(5), connection.accept_uni())
            .await
            .unwrap_or_else(|_| panic!("the server opens its stream for {path}"))
            .expect("uni stream");
        Session {
            connection,
            lines: BufReader::new(stream),
        }
    }

    /// The next line's JSON (heartbeats included), or `None` if none comes within `within`
    /// or the stream ended.
    pub async fn next_line(&mut self, within: Duration) -> Option<serde_json::Value> {
        let mut line = String::new();
        match tokio::time::timeout(within, self.lines.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {
                assert!(line.ends_with('\n'), "a whole line: {line:?}");
                Some(serde_json::from_str(&line).expect("one JSON value per line"))
            }
            _ => None,
        }
    }
}
