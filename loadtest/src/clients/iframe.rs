//! The hidden iframe: one HTML response of `<script>` chunks, ended by the server at
//! 256 KiB and then reopened from the cursor.

use pushpoll::names::Transport;

use super::{Client, Ctx, stream};
use pushpoll::wire::IframeDecoder;

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let mut parser = IframeDecoder::default();
    stream::read(ctx, client, Transport::Iframe, |chunk, on_json| {
        parser.push(chunk, |json| on_json(json))
    })
    .await
}
