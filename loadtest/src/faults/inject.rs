//! The injector: the kills of a churn or a storm, sent through the server's diagnostics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use pushpoll::feed::clock::now_micros;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{BUCKET, FaultPlan, FaultState, KILL_TIMEOUT, QUIET_END, STORM_SENDERS};
use crate::net::{Http, IoCounters, body};

/// Sends the kills while the window lasts: churn every 100 ms, the storm once at its time.
/// Churn stops [`QUIET_END`] before the end of the window (`duration`), so that every
/// broken client has events to recover to; `stop` ends it early.
pub async fn inject(
    state: Arc<FaultState>,
    plan: FaultPlan,
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    stop: CancellationToken,
) {
    let io = Arc::new(IoCounters::default());
    let Ok(mut http) = Http::connect(addr, &io).await else {
        state.kill_failures.fetch_add(1, Relaxed);
        return;
    };
    let start = Instant::now();
    let mut storm = plan.storm.map(|at| start + at);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut credit = 0.0f64;
    // xorshift: which client a churn break picks; only needs to be spread, not secret.
    let mut rng = u64::from_str_radix(&state.run_id[..16], 16).unwrap_or(1) | 1;
    loop {
        let next = match storm {
            Some(at) => tokio::time::Instant::from_std(at),
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next), if storm.is_some() => {
                storm = None;
                storm_now(&state, addr, clients).await;
                continue;
            }
            _ = tick.tick() => {}
        }
        let Some(rate) = plan.churn else { continue };
        if start.elapsed() + QUIET_END > duration {
            continue;
        }
        credit += rate * clients as f64 * 0.1;
        while credit >= 1.0 {
            credit -= 1.0;
            // A client still recovering from its last break is left alone (try a few).
            let mut pick = None;
            for _ in 0..8 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % clients as u64) as usize;
                if !state.busy(i) {
                    pick = Some(i);
                    break;
                }
            }
            let Some(i) = pick else { continue };
            if kill(&state, &mut http, i).await.is_err() {
                state.kill_failures.fetch_add(1, Relaxed);
                match Http::connect(addr, &io).await {
                    Ok(fresh) => http = fresh,
                    Err(_) => return,
                }
            }
        }
    }
}

/// Breaks every client at once: all marked first, then the kills sent over
/// [`STORM_SENDERS`] connections in parallel (a few ms for 200).
async fn storm_now(state: &Arc<FaultState>, addr: SocketAddr, clients: usize) {
    let bucket = state.origin.elapsed().as_nanos() / BUCKET.as_nanos();
    state.storm_bucket.store(bucket as u64 + 1, Relaxed);
    let mut senders = Vec::new();
    for s in 0..STORM_SENDERS {
        let state = state.clone();
        senders.push(tokio::spawn(async move {
            let io = Arc::new(IoCounters::default());
            let Ok(mut http) = Http::connect(addr, &io).await else {
                state.kill_failures.fetch_add(1, Relaxed);
                return;
            };
            for i in (s..clients).step_by(STORM_SENDERS) {
                if kill(&state, &mut http, i).await.is_err() {
                    state.kill_failures.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    for sender in senders {
        let _ = sender.await;
    }
    state
        .storm_kills_us
        .store(started.elapsed().as_micros() as u64, Relaxed);
}

#[derive(Deserialize)]
struct Killed {
    killed: u64,
}

/// Marks client `i` broken, then asks the server to drop its connections. The mark comes
/// first so the client, seeing its connection fail, knows it was on purpose; if the server
/// had nothing open for the tag (a short poll between requests, a long poll between its
/// answer and the next ask) the mark is taken back.
async fn kill(state: &FaultState, http: &mut Http, i: usize) -> anyhow::Result<()> {
    let at = now_micros();
    state.broken_at[i].store(at, Relaxed);
    state.kills_sent.fetch_add(1, Relaxed);
    let request = serde_json::to_vec(&serde_json::json!({ "tag": state.tag(i) }))?;
    let answer = tokio::time::timeout(KILL_TIMEOUT, async {
        let response = http
            .send(
                hyper::Method::POST,
                "/api/debug/kill",
                None,
                Some(Bytes::from(request)),
            )
            .await?;
        // Only success or failure matters here (a failed kill is counted), so the check is
        // this one line rather than the clients' `expect_status`, which faults must not import.
        anyhow::ensure!(
            response.status() == hyper::StatusCode::OK,
            "kill answered {}",
            response.status()
        );
        let killed: Killed = serde_json::from_slice(&body(response).await?)?;
        anyhow::Ok(killed.killed)
    })
    .await;
    let killed = match answer {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            let _ = state.broken_at[i].compare_exchange(at, 0, Relaxed, Relaxed);
            return Err(e);
        }
        Err(_) => {
            let _ = state.broken_at[i].compare_exchange(at, 0, Relaxed, Relaxed);
            bail!("kill timed out");
        }
    };
    state.breaks.fetch_add(killed, Relaxed);
    if killed == 0 {
        let _ = state.broken_at[i].compare_exchange(at, 0, Relaxed, Relaxed);
    }
    Ok(())
}
