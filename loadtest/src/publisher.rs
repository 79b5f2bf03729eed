//! The publisher: chat messages at a fixed rate, open-loop — each session sends on its own
//! timetable whatever the subscribers do, catching up at once if an answer was slow. It
//! keeps the id of every message the server acknowledged (`201`): those are what each
//! subscriber of the room must receive.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hyper::Method;
use tokio::time::{Instant, MissedTickBehavior};

use crate::metrics::Metrics;
use crate::net::{Http, IoCounters};

/// One acknowledged message: its id and the index of its room.
pub type Acked = (u64, usize);

/// Sessions to spread `rate` over, so the contract's per-session rate limit (20 per 10 s)
/// is never the bottleneck, nor its byte budget (32 KiB per 10 s: 15 messages of up to 2000
/// ASCII characters, about 2.1 KB each as stored, are 31 KB).
fn sessions_for(rate: f64) -> usize {
    ((rate / 1.5).ceil() as usize).max(1)
}

pub struct Publisher {
    addr: SocketAddr,
    sessions: Vec<(Http, String)>,
}

impl Publisher {
    /// Signs in the publisher's sessions (its traffic is not counted as the clients').
    pub async fn connect(addr: SocketAddr, rate: f64) -> anyhow::Result<Publisher> {
        let io = Arc::new(IoCounters::default());
        let mut sessions = Vec::new();
        for i in 0..sessions_for(rate) {
            let mut http = Http::connect(addr, &io).await?;
            let mut attempt = 0;
            let cookie = loop {
                let nick = format!("lt{}-{i}-{attempt}", std::process::id());
                let body = Bytes::from(serde_json::json!({ "nick": nick }).to_string());
                let response = http
                    .send(Method::POST, "/api/session", None, Some(body))
                    .await?;
                match response.status().as_u16() {
                    201 => {
                        let cookie = response
                            .headers()
                            .get(hyper::header::SET_COOKIE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.split(';').next())
                            .context("no session cookie")?
                            .to_string();
                        break cookie;
                    }
                    409 if attempt < 10 => attempt += 1,
                    status => anyhow::bail!("signing in the publisher: HTTP {status}"),
                }
            };
            sessions.push((http, cookie));
        }
        Ok(Publisher { addr, sessions })
    }

    /// Publishes `rate` messages per second for `duration` over `rooms`; returns what was
    /// acknowledged. Failures are counted in `metrics` as `publish_*`.
    /// Acknowledged messages are added to `acked` as they come, so a run cut short keeps them.
    pub async fn run(
        self,
        rate: f64,
        duration: Duration,
        rooms: usize,
        message_size: usize,
        metrics: Arc<Metrics>,
        acked: Arc<Mutex<Vec<Acked>>>,
    ) {
        let n = self.sessions.len();
        let every = Duration::from_secs_f64(n as f64 / rate);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, (mut http, cookie)) in self.sessions.into_iter().enumerate() {
            let metrics = metrics.clone();
            let acked = acked.clone();
            let addr = self.addr;
            tasks.push(tokio::spawn(async move {
                // Stagger the sessions so the messages are evenly spaced overall.
                let first = start + every.mul_f64(i as f64 / n as f64);
                let mut timetable = tokio::time::interval_at(first, every);
                timetable.set_missed_tick_behavior(MissedTickBehavior::Burst);
                let mut k = 0usize;
                loop {
                    let tick = timetable.tick().await;
                    if tick.duration_since(start) >= duration {
                        break;
                    }
                    let room = (i + k * n) % rooms;
                    let prefix = format!("s{i} m{k} ");
                    let text = prefix.clone()
                        + &"x".repeat(message_size.saturating_sub(prefix.len()).max(1));
                    k += 1;
                    let body = Bytes::from(
                        serde_json::json!({ "room": room_name(room), "text": text }).to_string(),
                    );
                    match publish(&mut http, addr, &cookie, body).await {
                        Ok(id) => acked
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((id, room)),
                        Err(kind) => metrics.error(kind),
                    }
                }
                let _ = http
                    .send(Method::DELETE, "/api/session", Some(&cookie), None)
                    .await;
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

async fn publish(
    http: &mut Http,
    addr: SocketAddr,
    cookie: &str,
    body: Bytes,
) -> Result<u64, String> {
    if http.is_closed() {
        *http = Http::connect(addr, &Arc::default())
            .await
            .map_err(|_| "publish_connect".to_string())?;
    }
    let response = http
        .send(Method::POST, "/api/chat/messages", Some(cookie), Some(body))
        .await
        .map_err(|_| "publish_connection".to_string())?;
    let status = response.status().as_u16();
    let bytes = crate::net::body(response)
        .await
        .map_err(|_| "publish_connection".to_string())?;
    if status != 201 {
        return Err(format!("publish_http_{status}"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "publish_parse".to_string())?;
    value["id"]
        .as_u64()
        .ok_or_else(|| "publish_parse".to_string())
}

/// The name of room `index`: `lobby`, then `room1`, `room2`…
pub fn room_name(index: usize) -> String {
    if index == 0 {
        "lobby".into()
    } else {
        format!("room{index}")
    }
}
