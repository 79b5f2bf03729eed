//! Short polling on a fixed timetable: each client asks every `--poll-interval`, at times
//! fixed in advance (offset per client), not "interval after the last answer". A slow
//! answer makes the next ask late, not rarer, so slowness shows up as latency rather than
//! as fewer samples (no coordinated omission).

use serde::Deserialize;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Client, Ctx, expect_status};
use crate::net::{Http, body};
use pushpoll::feed::WireEvent;
use pushpoll::names::Transport;

/// `{"events":[…],"next":ID}`, the answer of both polling transports.
#[derive(Deserialize)]
pub struct Batch {
    pub events: Vec<WireEvent>,
    pub next: u64,
}

/// Records a batch and moves the cursor to `next`.
pub fn record(ctx: &Ctx, client: &mut Client, bytes: &[u8]) -> anyhow::Result<()> {
    let batch: Batch = serde_json::from_slice(bytes)?;
    for event in batch.events {
        client.on_event(ctx, event);
    }
    client.cursor = Some(client.cursor.map_or(batch.next, |c| c.max(batch.next)));
    Ok(())
}

pub async fn session(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    let mut http = Http::connect(ctx.addr, &ctx.metrics.io).await?;
    // Spread the clients' timetables evenly over one interval.
    let interval = ctx.poll_interval;
    let slots = 997u64;
    let offset = interval.mul_f64((client.index as u64 % slots) as f64 / slots as f64);
    let mut timetable = tokio::time::interval_at(
        Instant::now() + offset,
        interval.max(std::time::Duration::from_millis(1)),
    );
    timetable.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let closed_loop = interval.is_zero();
    loop {
        if closed_loop {
            if ctx.stop.is_cancelled() {
                return Ok(());
            }
        } else {
            tokio::select! {
                () = ctx.stop.cancelled() => return Ok(()),
                _ = timetable.tick() => {}
            }
        }
        let path = client.path(ctx, Transport::Poll, "");
        client.requested(ctx);
        let response = http.get(&path).await?;
        client.opened(ctx);
        expect_status(response.status(), 200)?;
        let bytes = body(response).await?;
        record(ctx, client, &bytes)?;
        if http.is_closed() {
            return Ok(());
        }
    }
}
