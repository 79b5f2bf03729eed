//! SIGTERM with one client of each kind attached: every stream ends, the WebSocket sees
//! 1001, and the real binary exits within 5 s.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Streaming, spawn_app};

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn sigterm_ends_every_stream_closes_websockets_with_1001_and_exits_within_5s() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushpoll"));
    command
        .args([
            "--addr",
            "127.0.0.1:0",
            "--db",
            ":memory:",
            "--tick-ms",
            "100",
        ])
        .stderr(Stdio::null());
    // The printed line names the demo URL with the port chosen.
    let spawned = pushpoll::spawn::start(&mut command).await.unwrap();
    let (mut child, base) = (spawned.child, spawned.url);
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "no URL in the printed line: {base}"
    );
    assert!(
        !base.ends_with(":0"),
        "the printed URL must name the real port: {base}"
    );
    let http = reqwest::Client::new();

    let mut sse = Streaming::open(http.get(format!("{base}/sse/clock"))).await;
    let mut iframe = Streaming::open(http.get(format!("{base}/iframe/clock"))).await;
    sse.next_sse_event(WAIT).await.unwrap();
    iframe.next_iframe_event(WAIT).await.unwrap();
    let latest: serde_json::Value = http
        .get(format!("{base}/poll/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let far = latest["next"].as_u64().unwrap() + 3_600_000;
    let longpoll = tokio::spawn({
        let url = format!("{base}/longpoll/clock?after={far}&timeout=60");
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    });
    let ws_url = base.replace("http://", "ws://") + "/ws/clock";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    ws.next().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };

    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the server did not exit within 5 s")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let took = started.elapsed();

    let close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.expect("close code"),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Away);
    sse.read_to_end(WAIT).await;
    iframe.read_to_end(WAIT).await;
    let answered = tokio::time::timeout(WAIT, longpoll).await.unwrap().unwrap();
    assert_eq!(answered["events"], serde_json::json!([]));
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn shutdown_with_idle_clients_is_quick() {
    let app = spawn_app(&["--tick-ms", "100"]).await;
    let _sse = Streaming::open(app.http.get(app.url("/sse/clock"))).await;
    let took = app.shutdown().await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
