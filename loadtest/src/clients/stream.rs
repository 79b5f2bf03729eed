//! The part the three streaming clients share: open one GET, feed the body, as the network
//! cuts it, to a parser that hands back whole events.

use http_body_util::BodyExt;

use pushpoll::names::Transport;

use super::{Client, Ctx, expect_status};
use crate::net::Http;

pub async fn read(
    ctx: &Ctx,
    client: &mut Client,
    transport: Transport,
    mut push: impl FnMut(&[u8], &mut dyn FnMut(&[u8])),
) -> anyhow::Result<()> {
    let mut http = Http::connect(ctx.addr, &ctx.metrics.io).await?;
    let path = client.path(ctx, transport, "");
    client.requested(ctx);
    let response = http.get(&path).await?;
    client.opened(ctx);
    expect_status(response.status(), 200)?;
    let mut body = response.into_body();
    loop {
        let frame = tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            frame = body.frame() => frame,
        };
        match frame {
            // The response ended (the iframe's 256 KiB, or the server closing): reconnect.
            None => return Ok(()),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    push(&data, &mut |json| client.on_json(ctx, json));
                }
            }
        }
    }
}
