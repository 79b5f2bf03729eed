//! WebSocket: the upgrade, then one text message per event. The protocol is spoken by
//! [`crate::wsframe`] directly over the counted TCP stream, so handshake, frame headers and
//! masks are counted too; it parses every frame one read brought, answers the server's
//! pings with masked pongs, and closes with the closing handshake.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use pushpoll::names::Transport;

use super::{Client, Ctx};
use crate::net::tcp;
use crate::wsframe::{self, Incoming, OP_CLOSE, OP_PONG, Reader};

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let path = client.path(ctx, Transport::Ws, "");
    session_at(ctx, client, &path).await
}

/// One WebSocket session on `path`: pushpoll's `/ws/FEED?…`, or another server's subscriber
/// location (`crate::nchan`), which sends the same JSON events as text frames.
pub async fn session_at(ctx: &Ctx, client: &mut Client, path: &str) -> anyhow::Result<()> {
    let mut stream = tcp(ctx.addr, &ctx.metrics.io).await?;
    let host = ctx.addr.to_string();
    let mut reader = Reader::default();
    client.requested(ctx);
    wsframe::handshake(&mut stream, &host, path, &mut reader)
        .await
        .map_err(|err| match err.downcast_ref::<wsframe::Refused>() {
            // The errors table names a refusal by its status, as for the other transports.
            Some(refused) => super::BadStatus(refused.0).into(),
            None => err,
        })?;
    client.opened(ctx);
    // Pinned once for the whole session: a fresh `cancelled()` per event would register
    // with the token (a lock shared by every client) and deregister again, per event.
    let stop = ctx.stop.cancelled();
    tokio::pin!(stop);
    loop {
        // Every frame the last read completed, before reading again.
        loop {
            let incoming = match reader.next() {
                Ok(Some(incoming)) => incoming,
                Ok(None) => break,
                Err(err) => {
                    // Fail the connection (§7.1.7) with the code that names the fault.
                    let _ = send_close(&mut stream, Some(err.close_code())).await;
                    return Err(err.into());
                }
            };
            match incoming {
                // The heartbeat (`{"heartbeat":MS}`) is no event; the decoders of the
                // streams skip it the same way (`pushpoll::wire`).
                Incoming::Text(text) if pushpoll::wire::is_heartbeat(text.as_bytes()) => {}
                Incoming::Text(text) => client.on_text(ctx, &text),
                Incoming::Binary(_) => {}
                Incoming::Ping(payload) => {
                    let pong = wsframe::client_frame(OP_PONG, payload);
                    stream.write_all(&pong).await?;
                }
                Incoming::Close(code) => {
                    // Echo the status code (§5.5.1); the server then closes the TCP
                    // connection, which is not waited for.
                    let _ = send_close(&mut stream, code).await;
                    return Ok(());
                }
            }
        }
        tokio::select! {
            () = &mut stop => {
                // The closing handshake (RFC 6455 §5.5.1): send a Close, then read until the
                // server's Close, so its frame is read (and counted as bytes down) rather
                // than left in the socket; at most a second.
                let _ = send_close(&mut stream, None).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    loop {
                        match reader.next() {
                            Ok(Some(Incoming::Close(_))) | Err(_) => return,
                            Ok(Some(_)) => continue,
                            Ok(None) => {}
                        }
                        if !matches!(reader.fill(&mut stream).await, Ok(1..)) {
                            return;
                        }
                    }
                })
                .await;
                return Ok(());
            }
            read = reader.fill(&mut stream) => {
                if read? == 0 {
                    // What tungstenite reported here, and the error table counted as a
                    // closed connection.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed without a closing handshake",
                    )
                    .into());
                }
            }
            // `--feed draw`: this client's next stroke, as a frame on the same socket.
            stroke = due(ctx, &mut client.draw) => {
                let text = crate::draw::ws_frame(stroke);
                if let Some(sending) = &ctx.sending {
                    let frame = wsframe::client_frame(wsframe::OP_TEXT, text.as_bytes());
                    sending.sends.fetch_add(1, Relaxed);
                    stream.write_all(&frame).await?;
                    sending.strokes.fetch_add(1, Relaxed);
                    sending
                        .ws_frame_bytes
                        .fetch_add(crate::draw::client_frame_bytes(text.len()), Relaxed);
                }
            }
        }
    }
}

/// Sends a Close frame, with `code` as its body if there is one.
async fn send_close<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: Option<u16>,
) -> std::io::Result<()> {
    let body = code.map(u16::to_be_bytes);
    let frame = wsframe::client_frame(OP_CLOSE, body.as_ref().map_or(&[][..], |b| &b[..]));
    stream.write_all(&frame).await
}

/// The next stroke this client is due to send; never, without `--feed draw`.
pub(super) async fn due(
    ctx: &Ctx,
    schedule: &mut Option<crate::draw::Schedule>,
) -> serde_json::Value {
    match (schedule, &ctx.sending) {
        (Some(schedule), Some(sending)) => schedule.due(sending).await,
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pushpoll::names::FeedName;

    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::metrics::Metrics;

    /// A client of the chat feed, and a server (tungstenite's, which checks the handshake
    /// and refuses unmasked client frames, §5.1) that `serve` plays.
    async fn pair<F, Fut>(serve: F) -> (anyhow::Result<()>, Arc<Metrics>)
    where
        F: FnOnce(WebSocketStream<TcpStream>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            serve(tokio_tungstenite::accept_async(socket).await.unwrap()).await;
        });
        let metrics = Arc::new(Metrics::new(1));
        let ctx = Ctx {
            addr,
            feed: FeedName::Chat,
            metrics: metrics.clone(),
            stop: CancellationToken::new(),
            poll_interval: Duration::from_secs(1),
            sending: None,
            datagrams: false,
            webtransport: Default::default(),
        };
        let mut client = Client::new(0, "lobby".into(), None);
        let ended = tokio::time::timeout(Duration::from_secs(5), session(&ctx, &mut client))
            .await
            .expect("the session ends");
        server.await.unwrap();
        (ended, metrics)
    }

    fn event(id: u64) -> String {
        format!(
            r#"{{"id":{id},"ts":{},"type":"message","room":"lobby","from":"a","text":"hi"}}"#,
            pushpoll::feed::clock::now_micros()
        )
    }

    #[tokio::test]
    async fn events_are_counted_pings_answered_and_the_close_echoed() {
        let (ended, metrics) = pair(|mut ws| async move {
            ws.send(Message::text(event(1))).await.unwrap();
            ws.send(Message::Ping(b"are you there".to_vec().into()))
                .await
                .unwrap();
            ws.send(Message::text(event(2))).await.unwrap();
            // The pong carries the ping's payload (§5.5.3), masked (tungstenite checks).
            match ws.next().await {
                Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"are you there"),
                other => panic!("expected a pong, got {other:?}"),
            }
            ws.send(Message::text(event(2))).await.unwrap();
            ws.send(Message::Close(Some(CloseFrame {
                code: 4001.into(),
                reason: "ping timeout".into(),
            })))
            .await
            .unwrap();
            // The client echoes the code.
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4001),
                other => panic!("expected the close echoed, got {other:?}"),
            }
        })
        .await;
        ended.unwrap();
        assert_eq!(metrics.delivered.load(Relaxed), 3);
        assert_eq!(metrics.duplicates.load(Relaxed), 1);
        assert_eq!(metrics.merged().len(), 2);
    }

    #[tokio::test]
    async fn a_fragmented_event_is_counted_once_whole() {
        let (ended, metrics) = pair(|mut ws| async move {
            let json = event(5);
            let (a, b) = json.split_at(10);
            // Raw frames: a text frame without FIN, a ping, the continuation with FIN.
            let raw = ws.get_mut();
            let mut bytes = vec![0x01, a.len() as u8];
            bytes.extend_from_slice(a.as_bytes());
            bytes.extend_from_slice(&[0x89, 0x00, 0x80, b.len() as u8]);
            bytes.extend_from_slice(b.as_bytes());
            raw.write_all(&bytes).await.unwrap();
            assert!(matches!(ws.next().await, Some(Ok(Message::Pong(_)))));
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        ended.unwrap();
        assert_eq!(metrics.delivered.load(Relaxed), 1);
        assert!(metrics.errors().is_empty(), "{:?}", metrics.errors());
    }

    #[tokio::test]
    async fn a_masked_server_frame_fails_the_connection_with_1002() {
        let (ended, _) = pair(|mut ws| async move {
            ws.get_mut()
                .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'{' ^ 1, b'}' ^ 2])
                .await
                .unwrap();
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1002),
                other => panic!("expected close 1002, got {other:?}"),
            }
        })
        .await;
        let err = ended.unwrap_err();
        assert_eq!(
            err.downcast_ref::<wsframe::WsError>(),
            Some(&wsframe::WsError::Masked)
        );
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_with_1009_before_it_is_read() {
        let (ended, _) = pair(|mut ws| async move {
            let mut header = vec![0x81, 127];
            header.extend_from_slice(&(1u64 << 40).to_be_bytes());
            ws.get_mut().write_all(&header).await.unwrap();
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
                other => panic!("expected close 1009, got {other:?}"),
            }
        })
        .await;
        assert!(matches!(
            ended.unwrap_err().downcast_ref::<wsframe::WsError>(),
            Some(wsframe::WsError::TooBig(_))
        ));
    }

    #[tokio::test]
    async fn a_refused_upgrade_is_its_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let ctx = Ctx {
            addr,
            feed: FeedName::Chat,
            metrics: Arc::new(Metrics::new(1)),
            stop: CancellationToken::new(),
            poll_interval: Duration::from_secs(1),
            sending: None,
            datagrams: false,
            webtransport: Default::default(),
        };
        let mut client = Client::new(0, "lobby".into(), None);
        let err = session(&ctx, &mut client).await.unwrap_err();
        // Named in the errors table as the other transports' refusals are.
        assert_eq!(super::super::kind(&err), "http_503");
    }
}
