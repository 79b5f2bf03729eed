//! WebSocket: the upgrade, then one text message per event. tokio-tungstenite runs over the
//! counted TCP stream (`client_async`), so frames and handshake are counted too; it answers
//! the server's pings as it reads.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Client, Ctx};
use crate::net::tcp;

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let stream = tcp(ctx.addr, &ctx.metrics.io).await?;
    let url = format!("ws://{}{}", ctx.addr, client.path(ctx, "ws", ""));
    client.requested(ctx);
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await?;
    client.opened(ctx);
    loop {
        let message = tokio::select! {
            () = ctx.stop.cancelled() => {
                let _ = socket.close(None).await;
                return Ok(());
            }
            message = socket.next() => message,
        };
        match message {
            None | Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Ok(Message::Text(text))) => client.on_json(ctx, text.as_bytes()),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
        }
    }
}
