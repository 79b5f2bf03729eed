//! Long polling: ask, wait for the answer (held until an event or 25 s), ask again at once
//! with the new cursor.

use pushpoll::names::Transport;

use super::{Client, Ctx, expect_status, poll::record};
use crate::net::{Http, body};

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let mut http = Http::connect(ctx.addr, &ctx.metrics.io).await?;
    // A long poll is parked until there is news, so "connected" is the open connection,
    // not the first answer (which may be 25 s away).
    client.opened(ctx);
    loop {
        let path = client.path(ctx, Transport::LongPoll, "&timeout=25");
        client.requested(ctx);
        let response = tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            response = http.get(&path) => response?,
        };
        expect_status(response.status(), 200)?;
        let bytes = body(response).await?;
        record(ctx, client, &bytes)?;
        if http.is_closed() {
            return Ok(());
        }
    }
}
