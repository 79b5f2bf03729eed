//! WebTransport over HTTP/3: the client is being written (branch base only).

use super::{Client, Ctx};

pub async fn session(_ctx: &Ctx, _client: &mut Client) -> anyhow::Result<()> {
    anyhow::bail!("the load tester's WebTransport client is not written yet")
}
