//! `--feed draw --send-rate N`: every client is also a sender. Each sends N strokes a second
//! (one stroke of [`POINTS`] points per send, open-loop on its own timetable, as a person
//! drawing would) during the measured window, and receives everyone's strokes over its
//! transport. A WebSocket client sends each stroke as a frame on its own socket; the HTTP
//! transports `POST /api/draw` on a keep-alive connection of their own.
//!
//! Upstream bytes are kept apart from the subscription's, so a send has its own cost:
//! - HTTP: what the sender connections wrote (request heads and bodies) and read (the
//!   `201` answers), counted on their TCP sockets;
//! - WebSocket: the client frames as RFC 6455 §5.2 lays them out (2 header bytes, 2 more
//!   from 126 payload bytes, a 4-byte mask, the payload): exactly what tungstenite writes
//!   for a text frame without extensions. Those bytes are in the subscription socket's
//!   `bytes_out` too, since they share it; there is no answer to count.
//! - WebTransport: the command lines written to the session's bidirectional stream (the
//!   JSON and its newline): stream payload, since QUIC's packets carry several frames and
//!   acknowledgements and cannot be split per stroke. The packets that carried them are in
//!   the session's `bytes_out` (its UDP payload); the server answers only refusals.
//!
//! Expected deliveries come from the server's own count: every stroke published in the run
//! (the draw feed's newest id minus the one at the start) to every client, since all follow
//! the whole canvas from the start cursor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use pushpoll::names::Transport;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::net::{Http, IoCounters};
use crate::report::DrawCost;

/// Points per stroke: a tenth of a second of a moving pointer.
pub const POINTS: usize = 16;

/// What the senders of one run share.
#[derive(Debug)]
pub struct Sending {
    /// Strokes per second per client.
    pub rate: f64,
    /// Fired when the measured window starts; senders send from then on for `duration`.
    pub go: CancellationToken,
    pub duration: Duration,
    /// The HTTP sender connections' bytes (both directions).
    pub upload_io: Arc<IoCounters>,
    /// WebSocket client frames carrying strokes, in bytes (header, mask and payload).
    pub ws_frame_bytes: AtomicU64,
    /// WebTransport command lines carrying strokes, in bytes (stream payload).
    pub stream_line_bytes: AtomicU64,
    /// Strokes sent: acknowledged with `201` (HTTP) or written to the socket (WebSocket).
    pub strokes: AtomicU64,
    /// Sends (requests or frames).
    pub sends: AtomicU64,
    /// Clients in the run, to spread their timetables over one period.
    pub clients: usize,
}

impl Sending {
    pub fn new(rate: f64, duration: Duration, clients: usize) -> Sending {
        Sending {
            clients,
            rate,
            go: CancellationToken::new(),
            duration,
            upload_io: Arc::default(),
            ws_frame_bytes: AtomicU64::new(0),
            stream_line_bytes: AtomicU64::new(0),
            strokes: AtomicU64::new(0),
            sends: AtomicU64::new(0),
        }
    }
}

impl DrawCost {
    pub fn of(sending: &Sending, transport: Transport, published: u64) -> DrawCost {
        let strokes = sending.strokes.load(Relaxed);
        let (up, answers) = match transport {
            Transport::Ws => (sending.ws_frame_bytes.load(Relaxed), 0),
            Transport::WebTransport => (sending.stream_line_bytes.load(Relaxed), 0),
            _ => (
                sending.upload_io.written.load(Relaxed),
                sending.upload_io.read.load(Relaxed),
            ),
        };
        let per = |x: u64| {
            if strokes > 0 {
                x as f64 / strokes as f64
            } else {
                0.0
            }
        };
        DrawCost {
            send_rate: sending.rate,
            points: POINTS,
            strokes_sent: strokes,
            sends: sending.sends.load(Relaxed),
            bytes_up: up,
            bytes_up_answers: answers,
            bytes_up_per_stroke: per(up),
            bytes_up_answers_per_stroke: per(answers),
            published,
        }
    }
}

/// The bytes of one masked client frame with `payload` bytes (RFC 6455 §5.2).
pub fn client_frame_bytes(payload: usize) -> u64 {
    let extended = match payload {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    (2 + extended + 4 + payload) as u64
}

/// Stroke `k` of client `index`: a short diagonal in the client's colour, in canvas units.
pub fn stroke(index: usize, k: u64) -> serde_json::Value {
    let x0 = (index * 37 % 900) as u64;
    let y0 = k * 53 % 900;
    let points: Vec<u64> = (0..POINTS as u64)
        .flat_map(|i| [x0 + i * 5, y0 + i * 3])
        .collect();
    serde_json::json!({
        "color": format!("#{:06x}", (index as u64 * 2_654_435_761) & 0xff_ffff),
        "width": 3,
        "points": points,
    })
}

/// One client's timetable: a stroke every `1 / rate` s from the window's start (offset by
/// the client's index so the sends are spread), until the window ends.
#[derive(Debug)]
pub struct Schedule {
    index: usize,
    every: Duration,
    next: Option<Instant>,
    end: Option<Instant>,
    k: u64,
}

impl Schedule {
    pub fn new(sending: &Sending, index: usize) -> Schedule {
        let every = Duration::from_secs_f64(1.0 / sending.rate);
        Schedule {
            index,
            every,
            next: None,
            end: None,
            k: 0,
        }
    }

    /// Waits for the next stroke due and returns it (`{"color",…}`); never returns once the
    /// window is over. Cancel-safe: the state moves only after the wait, with no await after.
    pub async fn due(&mut self, sending: &Sending) -> serde_json::Value {
        let clients = sending.clients;
        sending.go.cancelled().await;
        let now = Instant::now();
        let next = *self.next.get_or_insert_with(|| {
            now + self
                .every
                .mul_f64(self.index as f64 / clients.max(1) as f64)
        });
        let end = *self.end.get_or_insert(now + sending.duration);
        if next >= end {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep_until(next).await;
        // Open loop: a late send does not push the timetable back.
        self.next = Some(next + self.every);
        self.k += 1;
        stroke(self.index, self.k)
    }
}

/// An HTTP transport's sender: `POST /api/draw` on its own keep-alive connection, one
/// stroke per request, until `stop`. Errors are counted in `metrics`. (It takes the client
/// context's parts rather than the context, so `draw` does not import `clients`.)
pub async fn http_sender(
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    sending: Arc<Sending>,
    index: usize,
) {
    let mut schedule = Schedule::new(&sending, index);
    let mut http: Option<Http> = None;
    loop {
        let stroke = tokio::select! {
            () = stop.cancelled() => return,
            stroke = schedule.due(&sending) => stroke,
        };
        if http.as_ref().is_none_or(Http::is_closed) {
            match Http::connect(addr, &sending.upload_io).await {
                Ok(h) => http = Some(h),
                Err(_) => {
                    metrics.error("draw_connect");
                    continue;
                }
            }
        }
        let Some(conn) = http.as_mut() else { continue };
        let body = Bytes::from(serde_json::json!({ "strokes": [stroke] }).to_string());
        sending.sends.fetch_add(1, Relaxed);
        match conn.send(Method::POST, "/api/draw", None, Some(body)).await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer, so its bytes are counted and the connection is reusable.
                let _ = crate::net::body(response).await;
                if status == 201 {
                    sending.strokes.fetch_add(1, Relaxed);
                } else {
                    metrics.error(format!("draw_http_{status}"));
                }
            }
            Err(_) => metrics.error("draw_connection"),
        }
    }
}

/// The text of a WebSocket `draw` frame carrying `stroke`.
pub fn ws_frame(stroke: serde_json::Value) -> String {
    serde_json::json!({ "type": "draw", "strokes": [stroke] }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_follow_rfc_6455() {
        assert_eq!(client_frame_bytes(0), 6);
        assert_eq!(client_frame_bytes(125), 131);
        assert_eq!(client_frame_bytes(126), 134);
        assert_eq!(client_frame_bytes(65536), 65550);
    }

    #[test]
    fn strokes_are_what_the_server_accepts() {
        for (i, k) in [(0, 0), (199, 17), (12345, 999)] {
            let s = stroke(i, k);
            let color = s["color"].as_str().unwrap();
            assert!(color.len() == 7 && color.starts_with('#'), "{color}");
            let points = s["points"].as_array().unwrap();
            assert_eq!(points.len(), 2 * POINTS);
            assert!(points.iter().all(|p| p.as_u64().unwrap() <= 1000));
        }
    }
}
