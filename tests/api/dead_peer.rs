//! A dead peer, for real: a client on "another machine" (`support::netns`) holds a stream,
//! then its machine drops every packet (`nftables`, in the client's namespace: a laptop that
//! lost its network without closing anything), and the test measures how long the server
//! keeps the connection (`connections.open` in `/api/stats`, asked on the server's own
//! loopback). It must let go within the bound docs/API.md states (Limits:
//! `listener::liveness`), for SSE, the hidden iframe, long polling and WebSocket. The bound is
//! made small here through the flags (`--keepalive 1s --dead-peer-timeout 3s`, a 2 s hold);
//! the defaults' arithmetic is checked against the Limits table separately.
//!
//! Needs root, iproute2 and `nft` (nftables); without them a test is skipped with a line on
//! stderr, except under `CI=true`, where it fails.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::lan::{pushpoll_in, start};
use crate::support::netns::{Lan, Netns, SERVER_IP};
use crate::support::{Streaming, Watchdog, client_of};

/// `--keepalive` (H) in these tests.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// `--dead-peer-timeout` (U) in these tests.
const DEAD_PEER: Duration = Duration::from_secs(3);
/// The long poll's hold (`timeout=`) in these tests.
const HOLD: Duration = Duration::from_secs(2);
/// What the server may take beyond the bound to see the kernel's error (its next read or
/// write of the socket) and to be asked: the stats are read every 100 ms.
const NOTICE: Duration = Duration::from_millis(1500);

/// `nft` ARGS in namespace `ns`.
fn nft(ns: &Netns, args: &str) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft"])
        .args(args.split(' '))
        .output()
        .map_err(|e| format!("`nft` cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`nft {args}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The client's machine drops every packet, in and out: nothing reaches the server again,
/// not even a RST.
fn pull_the_plug(client: &Netns) -> Result<(), String> {
    nft(client, "add table inet dead")?;
    for hook in ["input", "output"] {
        nft(
            client,
            &format!(
                "add chain inet dead {hook} {{ type filter hook {hook} priority 0 ; policy drop ; }}"
            ),
        )?;
    }
    Ok(())
}

/// `nft` is there and works in `ns` (a table made and deleted); `false` (with a line on
/// stderr) when not, and a panic under `CI=true`.
fn nft_works(ns: &Netns) -> bool {
    let tried = nft(ns, "add table inet probe").and_then(|()| nft(ns, "delete table inet probe"));
    match tried {
        Ok(()) => true,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true: nftables is needed (scripts/test.sh installs it): {why}")
        }
        Err(why) => {
            eprintln!("skipped: nftables is needed (scripts/test.sh installs it): {why}");
            false
        }
    }
}

/// The TCP connections the server holds, asked on its own loopback (the operator's view).
async fn open_connections(server: &Netns, port: u16) -> i64 {
    server
        .run(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let stats: serde_json::Value = http
                .get(format!("http://127.0.0.1:{port}/api/stats"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            stats["connections"]["open"].as_i64().unwrap()
        })
        .await
}

/// Starts a server in the LAN, opens `transport`'s connection from the client side, pulls the
/// plug and returns how long the server held the connection afterwards.
async fn held_after_the_plug(transport: &'static str) -> Option<Duration> {
    let lan = Lan::create()?;
    if !nft_works(&lan.client) {
        return None;
    }
    let heartbeat = format!("{}s", HEARTBEAT.as_secs());
    let dead_peer = format!("{}s", DEAD_PEER.as_secs());
    let (_child, printed) = start(pushpoll_in(
        &lan.server,
        &[
            "--addr",
            "0.0.0.0:0",
            "--keepalive",
            &heartbeat,
            "--dead-peer-timeout",
            &dead_peer,
        ],
    ))
    .await;
    let (_, local) = pushpoll::spawn::url_in(&printed[0]).unwrap();
    let port = local.port();
    let addr = SocketAddr::from((SERVER_IP, port));
    let base = open_connections(&lan.server, port).await;

    // The client holds its connection in its namespace's runtime (the draw feed: quiet, so
    // only heartbeats cross a stream, the case `--send-timeout` never sees).
    let hold = HOLD.as_secs();
    let held: Box<dyn std::any::Any + Send> = lan
        .client
        .run(async move {
            let url = format!("http://{addr}/{transport}/draw");
            let held: Box<dyn std::any::Any + Send> = match transport {
                "sse" | "iframe" => {
                    let mut stream = Streaming::open(reqwest::Client::new().get(&url)).await;
                    assert_eq!(stream.status, 200);
                    assert!(
                        stream.fill(Duration::from_secs(3)).await,
                        "the stream opened"
                    );
                    Box::new(stream)
                }
                "ws" => {
                    let mut ws = client_of(addr).ws("/ws/draw", None).await;
                    use futures_util::StreamExt as _;
                    let first = tokio::time::timeout(Duration::from_secs(3), ws.next()).await;
                    assert!(
                        matches!(first, Ok(Some(Ok(_)))),
                        "the heartbeat came: {first:?}"
                    );
                    Box::new(ws)
                }
                "longpoll" => {
                    // A held poll, as the page keeps one: asked again as soon as answered.
                    let http = reqwest::Client::new();
                    let poller = tokio::spawn(async move {
                        let mut after = 0u64;
                        loop {
                            let res = http
                                .get(format!("{url}?after={after}&timeout={hold}"))
                                .send()
                                .await;
                            let Ok(res) = res else { return };
                            let Ok(body) = res.json::<serde_json::Value>().await else {
                                return;
                            };
                            after = body["next"].as_u64().unwrap_or(after);
                        }
                    });
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Box::new(poller.abort_handle())
                }
                other => panic!("unknown transport {other}"),
            };
            held
        })
        .await;
    // The server holds the client's connection.
    let during = open_connections(&lan.server, port).await;
    assert!(
        during > base,
        "{transport}: the connection is open ({during} > {base})"
    );

    pull_the_plug(&lan.client).unwrap_or_else(|e| panic!("{e}"));
    let plugged = Instant::now();
    let limit = bound(transport) + NOTICE + Duration::from_secs(5);
    loop {
        if open_connections(&lan.server, port).await <= base {
            break;
        }
        assert!(
            plugged.elapsed() < limit,
            "{transport}: the server still holds a dead peer after {:?}",
            plugged.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let released = plugged.elapsed();
    drop(held);
    eprintln!(
        "{transport}: dead peer released after {released:?} (bound {:?})",
        bound(transport)
    );
    Some(released)
}

/// The stated bound for these tests' flags.
fn bound(transport: &str) -> Duration {
    if transport == "longpoll" {
        pushpoll::liveness::longpoll_bound(HOLD, DEAD_PEER)
    } else {
        pushpoll::liveness::stream_bound(HEARTBEAT, DEAD_PEER)
    }
}

async fn released_within_the_bound(transport: &'static str) {
    let _watchdog = Watchdog::arm();
    let Some(released) = held_after_the_plug(transport).await else {
        return;
    };
    assert!(
        released <= bound(transport) + NOTICE,
        "{transport}: released after {released:?}, bound {:?} (+{NOTICE:?} to notice)",
        bound(transport)
    );
}

#[tokio::test]
async fn a_dead_sse_peer_is_released_within_the_bound() {
    released_within_the_bound("sse").await;
}

#[tokio::test]
async fn a_dead_iframe_peer_is_released_within_the_bound() {
    released_within_the_bound("iframe").await;
}

#[tokio::test]
async fn a_dead_longpoll_peer_is_released_within_the_bound() {
    released_within_the_bound("longpoll").await;
}

#[tokio::test]
async fn a_dead_websocket_peer_is_released_within_the_bound() {
    released_within_the_bound("ws").await;
}

/// The defaults' arithmetic, as docs/API.md's Limits table states it: the bound for a stream
/// or WebSocket is `--keepalive` + `--dead-peer-timeout`, for a long poll its hold +
/// `--dead-peer-timeout`, and the keepalive probes fit in `--dead-peer-timeout`.
#[test]
fn the_default_bounds_are_the_ones_the_limits_table_states() {
    use clap::Parser as _;
    let config = pushpoll::Config::try_parse_from(["pushpoll"]).unwrap();
    let (h, u) = (config.keepalive, config.dead_peer_timeout);
    let stream = pushpoll::liveness::stream_bound(h, u).as_secs();
    let hold = Duration::from_secs(pushpoll::transport::longpoll::DEFAULT_HOLD_S);
    let longpoll = pushpoll::liveness::longpoll_bound(hold, u).as_secs();
    let probes = pushpoll::liveness::keepalive_idle(u)
        + pushpoll::liveness::keepalive_interval(u) * pushpoll::liveness::KEEPALIVE_PROBES;
    assert_eq!(probes, u, "the keepalive probes end at U");
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).unwrap();
    let row = api
        .lines()
        .find(|l| l.starts_with("| a dead peer"))
        .expect("the Limits row of a dead peer");
    for claim in [
        format!("U = {} s", u.as_secs()),
        format!("H + U = {stream} s"),
        format!(
            "hold + U = {longpoll} s for a long poll held {} s",
            hold.as_secs()
        ),
    ] {
        assert!(row.contains(&claim), "the Limits row says {claim:?}: {row}");
    }
}
