//! A stream that goes silent without closing (a network that vanished: no FIN, no RST, no
//! error) is noticed by the page, not only by the server: the SSE page reopens its stream
//! from its cursor after 2.5 times the heartbeat interval the server announced
//! (`static/clients/common.js`, `SILENCE_FACTOR`; docs/API.md).
//!
//! The browser reaches the server through a relay in this test that can freeze the clock
//! stream's connection: it stays open and carries nothing either way, which is what a dead
//! network looks like from both ends. Other connections (and the page's new stream) are relayed
//! normally: a browser may send the new request over a kept-alive connection it already holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::spawn_app;
use crate::webdriver::{Browser, Engine};
use crate::{eval, in_every_engine, until_true};

/// `--keepalive` here: the page's silence limit is 2.5 times it.
const HEARTBEAT_MS: u64 = 1000;
const SILENCE_FACTOR: f64 = pushpoll::liveness::SILENCE_FACTOR;

/// What the relay saw: when each request for a path starting with `/sse/clock` began.
#[derive(Default)]
struct Seen {
    clock_streams: Vec<Instant>,
}

struct Relay {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    /// One flag per relayed clock stream: set, the connection carries nothing more.
    frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Relay {
    async fn start(listener: TcpListener, server: std::net::SocketAddr) -> Relay {
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let frozen: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let (seen2, frozen2) = (seen.clone(), frozen.clone());
        tokio::spawn(async move {
            while let Ok((browser, _)) = listener.accept().await {
                let flag = Arc::new(AtomicBool::new(false));
                let (seen, frozen) = (seen2.clone(), frozen2.clone());
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(server).await else {
                        return;
                    };
                    let (mut br, mut bw) = browser.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let up_flag = flag.clone();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = br.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            // Requests on a kept-alive connection start at a read's start in
                            // practice (one request per write); good enough to count them.
                            if buf[..n].starts_with(b"GET /sse/clock") {
                                seen.lock().unwrap().clock_streams.push(Instant::now());
                                frozen.lock().unwrap().push(up_flag.clone());
                            }
                            if up_flag.load(Ordering::Acquire) {
                                continue; // dropped: the network is gone
                            }
                            if uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = ur.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if flag.load(Ordering::Acquire) {
                            continue;
                        }
                        if bw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Frozen connections are held open (neither end is told) until the test
                    // ends.
                    if flag.load(Ordering::Acquire) {
                        std::future::pending::<()>().await;
                    }
                    up.abort();
                });
            }
        });
        Relay { port, seen, frozen }
    }

    /// Every clock stream open now goes silent, both ways, without closing.
    fn freeze_streams(&self) {
        for flag in self.frozen.lock().unwrap().iter() {
            flag.store(true, Ordering::Release);
        }
    }

    fn clock_streams(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().clock_streams.clone()
    }
}

async fn the_sse_page_reopens_a_silent_stream(engine: Engine) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let keepalive = format!("{HEARTBEAT_MS}ms");
    let app = spawn_app(&[
        "--tick-ms",
        "200",
        "--keepalive",
        &keepalive,
        "--public-url",
        &public,
    ])
    .await;
    let relay = Relay::start(listener, app.addr).await;
    assert_eq!(public, format!("http://127.0.0.1:{}", relay.port));
    let browser = Browser::launch(engine).await;
    let (page, _errors) = browser.open(&format!("{public}/demos/sse.html")).await;
    assert!(
        until_true(
            &page,
            "/\\d/.test(document.querySelector('#clock-time')?.textContent ?? '')",
            Duration::from_secs(15),
        )
        .await,
        "{}: the clock runs over SSE",
        engine.name()
    );
    assert_eq!(relay.clock_streams().len(), 1, "one clock stream so far");

    relay.freeze_streams();
    let frozen_at = Instant::now();
    let before: String = eval(&page, "document.querySelector('#clock-time').textContent").await;
    let limit = Duration::from_millis((HEARTBEAT_MS as f64 * SILENCE_FACTOR) as u64);
    let deadline = frozen_at + limit + Duration::from_secs(5);
    let reopened = loop {
        if let Some(at) = relay.clock_streams().get(1) {
            break *at;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no new stream {:?} after the old one went silent",
            engine.name(),
            frozen_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after = reopened - frozen_at;
    eprintln!(
        "{}: the SSE page reopened its silent stream after {after:?} (limit {limit:?})",
        engine.name()
    );
    // The last tick crossed at most one tick (200 ms) before the freeze; the page checks
    // every 250 ms; a browser may take a moment to open the new connection.
    assert!(
        after >= limit - Duration::from_millis(200),
        "{}: reopened after {after:?}, before the {limit:?} limit",
        engine.name()
    );
    assert!(
        after <= limit + Duration::from_millis(1500),
        "{}: reopened after {after:?}, limit {limit:?}",
        engine.name()
    );
    // And the clock runs again on the page, over the new stream.
    let moved =
        format!("(document.querySelector('#clock-time')?.textContent ?? '') !== {before:?}");
    assert!(
        until_true(&page, &moved, Duration::from_secs(5)).await,
        "{}: the clock runs again after the reconnection",
        engine.name()
    );
}

in_every_engine!(the_sse_page_reopens_a_silent_stream);
