//! WebSocket: the upgrade, then one text message per event. tokio-tungstenite runs over the
//! counted TCP stream (`client_async`), so frames and handshake are counted too; it answers
//! the server's pings as it reads.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use pushpoll::names::Transport;

use super::{Client, Ctx};
use crate::net::tcp;

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let stream = tcp(ctx.addr, &ctx.metrics.io).await?;
    let url = format!("ws://{}{}", ctx.addr, client.path(ctx, Transport::Ws, ""));
    client.requested(ctx);
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await?;
    client.opened(ctx);
    loop {
        let message = tokio::select! {
            () = ctx.stop.cancelled() => {
                // The closing handshake (RFC 6455 §5.5.1): send a Close, then read until the
                // server's Close, so its frame is read (and counted as bytes down) rather
                // than left in the socket; at most a second.
                let _ = socket.close(None).await;
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await;
                return Ok(());
            }
            message = socket.next() => message,
            // `--feed draw`: this client's next stroke, as a frame on the same socket.
            stroke = due(ctx, &mut client.draw) => {
                let text = crate::draw::ws_frame(stroke);
                let frame = crate::draw::client_frame_bytes(text.len());
                if let Some(sending) = &ctx.sending {
                    sending.sends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    socket.send(Message::Text(text.into())).await?;
                    sending.strokes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    sending.ws_frame_bytes.fetch_add(frame, std::sync::atomic::Ordering::Relaxed);
                }
                continue;
            }
        };
        match message {
            None | Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Ok(Message::Text(text))) => client.on_json(ctx, text.as_bytes()),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
        }
    }
}

/// The next stroke this client is due to send; never, without `--feed draw`.
async fn due(ctx: &Ctx, schedule: &mut Option<crate::draw::Schedule>) -> serde_json::Value {
    match (schedule, &ctx.sending) {
        (Some(schedule), Some(sending)) => schedule.due(sending).await,
        _ => std::future::pending().await,
    }
}
