//! `fetch()` streaming: one endless `application/x-ndjson` response, one event per line.

use pushpoll::names::Transport;

use super::{Client, Ctx, stream};
use pushpoll::wire::NdjsonDecoder;

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let mut parser = NdjsonDecoder::default();
    stream::read(ctx, client, Transport::Fetch, |chunk, on_json| {
        parser.push(chunk, |json| on_json(json))
    })
    .await
}
