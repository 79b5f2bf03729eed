//! Server-Sent Events: one endless `text/event-stream` response.

use pushpoll::names::Transport;

use super::{Client, Ctx, stream};
use pushpoll::wire::SseDecoder;

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let mut parser = SseDecoder::default();
    stream::read(ctx, client, Transport::Sse, |chunk, on_json| {
        parser.push(chunk, |json| on_json(json))
    })
    .await
}
