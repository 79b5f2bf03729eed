//! The soak's hostile clients: small raw-TCP/HTTP loops that do what a broken or malicious
//! client does, at a fixed, modest rate and count, each kind from its own loopback source
//! address (127.0.0.21-25) so the server's per-peer limits can tell them from the normal
//! clients. What the server answered is counted by outcome (`login_429`,
//! `slowloris_closed_lt15s`…) in a [`Metrics`] error map, which the summary reports.
//!
//! They are not tests of the limits (the integration tests assert those); they are there so
//! the soak measures memory and latency while the limits are being hit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::net::{Http, IoCounters, body, tcp_from};

/// Connections sending a request head one byte every 2 s, or nothing at all.
const SLOWLORIS: usize = 20;
/// SSE subscribers with `after=0` that never read.
const UNREAD_SSE: usize = 4;
/// A connection held by a hostile client is given up after this long, whatever happens, so
/// every loop is bounded in time even against a server without deadlines.
const HOLD_CAP: Duration = Duration::from_secs(90);
/// Bytes of one oversized header.
const BIG_HEADER: usize = 128 * 1024;

/// The most sockets the hostile clients hold at once (for the open-files check).
pub const MAX_SOCKETS: usize = SLOWLORIS + UNREAD_SSE + 8;

/// What the hostile clients do, for the soak's README.
pub const DESCRIPTION: &str = "\
- slowloris, 127.0.0.21: 10 connections trickling a request head one byte every 2 s, and 10 \
that send nothing (`slowloris_*`, `idle_*`: how long the server let each stay);
- 127.0.0.22: 4 SSE subscribers to the chat with `after=0` that never read, each looked at \
after 60 s and replaced (`unread_sse_*`);
- 127.0.0.23: 5 logins a second, each new session renamed twice (`login_*`, `rename_*`);
- 127.0.0.24: one session short-polling the chat with 16 room names it never used before, \
4 times a second (`rooms16_*`);
- 127.0.0.25: a request with a 128 KiB header once a second (`big_header_*`).
";

fn source(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Starts every kind; each ends when `stop` is cancelled.
pub fn spawn_all(
    addr: SocketAddr,
    stop: CancellationToken,
    outcomes: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..SLOWLORIS {
        // Half trickle a header, half connect and send nothing.
        let kind = if i % 2 == 0 { "slowloris" } else { "idle" };
        tasks.push(tokio::spawn(repeat(stop.clone(), outcomes.clone(), {
            let stop = stop.clone();
            move || trickle(addr, source(21), kind, stop.clone())
        })));
    }
    for _ in 0..UNREAD_SSE {
        tasks.push(tokio::spawn(repeat(stop.clone(), outcomes.clone(), {
            let stop = stop.clone();
            move || unread_sse(addr, source(22), stop.clone())
        })));
    }
    tasks.push(tokio::spawn(login_flood(
        addr,
        source(23),
        stop.clone(),
        outcomes.clone(),
    )));
    tasks.push(tokio::spawn(room_flood(
        addr,
        source(24),
        stop.clone(),
        outcomes.clone(),
    )));
    tasks.push(tokio::spawn(repeat(stop.clone(), outcomes, {
        let stop = stop.clone();
        move || big_header(addr, source(25), stop.clone())
    })));
    tasks
}

/// Runs `attempt` again and again until `stop`, counting each outcome it returns (`None`:
/// stopped), with a pause of at least a second between attempts so none spins.
async fn repeat<F, Fut>(stop: CancellationToken, outcomes: Arc<Metrics>, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    while !stop.is_cancelled() {
        let started = Instant::now();
        match attempt().await {
            Some(outcome) => outcomes.error(outcome),
            None => return,
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(started + Duration::from_secs(1)) => {}
        }
    }
}

/// How long a connection was held, in the buckets the reading uses: the header deadline
/// (10 s by default) should end these within the first.
fn held_bucket(held: Duration) -> &'static str {
    match held.as_secs() {
        0..15 => "lt15s",
        15..40 => "lt40s",
        _ => "ge40s",
    }
}

/// Slowloris: a request head trickled one byte every 2 s (`kind` "slowloris"), or a
/// connection that sends nothing at all ("idle"). Reports how long the server let it stay.
async fn trickle(
    addr: SocketAddr,
    from: IpAddr,
    kind: &str,
    stop: CancellationToken,
) -> Option<String> {
    let started = Instant::now();
    let Ok(mut stream) = tcp_from(addr, Some(from), &Arc::default()).await else {
        return Some(format!("{kind}_connect_failed"));
    };
    if kind == "slowloris" {
        let head = format!("GET /api/stats HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
        if stream.write_all(head.as_bytes()).await.is_err() {
            return Some(format!("{kind}_write_refused"));
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            // Anything from the server (a 408, or the end of the stream) means it let go.
            _ = stream.read(&mut buf) => {
                return Some(format!("{kind}_closed_{}", held_bucket(started.elapsed())));
            }
            _ = tick.tick() => {
                if started.elapsed() >= HOLD_CAP {
                    return Some(format!("{kind}_still_open_at_cap"));
                }
                if kind == "slowloris" && stream.write_all(b"a").await.is_err() {
                    return Some(format!("{kind}_closed_{}", held_bucket(started.elapsed())));
                }
            }
        }
    }
}

/// An SSE subscriber from the start of the chat (`after=0`) that never reads: after a minute
/// it looks whether the server is still sending (drains up to 32 MiB or 5 s).
async fn unread_sse(addr: SocketAddr, from: IpAddr, stop: CancellationToken) -> Option<String> {
    let Ok(mut stream) = tcp_from(addr, Some(from), &Arc::default()).await else {
        return Some("unread_sse_connect_failed".into());
    };
    let head = format!(
        "GET /sse/chat?after=0&rooms=lobby,room1,room2,room3 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return Some("unread_sse_write_refused".into());
    }
    tokio::select! {
        () = stop.cancelled() => return None,
        () = tokio::time::sleep(Duration::from_secs(60)) => {}
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some("unread_sse_closed_by_server".into()),
            Ok(Ok(n)) => {
                total += n;
                if total > 32 << 20 {
                    return Some("unread_sse_still_sending".into());
                }
            }
            Err(_) => return Some("unread_sse_still_open".into()),
        }
    }
}

/// A 128 KiB header on a plain GET, once a second; counts the status (or the close).
async fn big_header(addr: SocketAddr, from: IpAddr, stop: CancellationToken) -> Option<String> {
    let Ok(mut stream) = tcp_from(addr, Some(from), &Arc::default()).await else {
        return Some("big_header_connect_failed".into());
    };
    let mut request = format!("GET /api/stats HTTP/1.1\r\nHost: {addr}\r\nX-Big: ").into_bytes();
    request.resize(request.len() + BIG_HEADER, b'a');
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    // The server may answer and close before it has read it all: a failed write is fine,
    // what it answered is read below either way.
    let _ = stream.write_all(&request).await;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let read = tokio::select! {
            () = stop.cancelled() => return None,
            read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => read,
        };
        match read {
            Ok(Ok(n)) if n > 0 && head.len() < 64 => head.extend_from_slice(&buf[..n]),
            Err(_) => return Some("big_header_no_answer_15s".into()),
            _ => break,
        }
    }
    Some(match status_of(&head) {
        Some(status) => format!("big_header_{status}"),
        None => "big_header_closed".into(),
    })
}

/// The status code of a raw HTTP/1.1 response head.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    words.next()?.parse().ok()
}

/// Signs in a session with `nick` on `http`; the cookie, or the outcome to count.
async fn sign_in(http: &mut Http, nick: &str) -> Result<String, String> {
    let body = Bytes::from(serde_json::json!({ "nick": nick }).to_string());
    let response = http
        .send(Method::POST, "/api/session", None, Some(body))
        .await
        .map_err(|_| "connection".to_string())?;
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get(hyper::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let _ = body_of(response).await;
    match (status, cookie) {
        (201, Some(cookie)) => Ok(cookie),
        (status, _) => Err(status.to_string()),
    }
}

async fn body_of(response: hyper::Response<hyper::body::Incoming>) -> Option<Bytes> {
    tokio::time::timeout(Duration::from_secs(10), body(response))
        .await
        .ok()?
        .ok()
}

/// Keeps `http` connected from `from`; `false` when it cannot.
async fn reconnect(http: &mut Option<Http>, addr: SocketAddr, from: IpAddr) -> bool {
    if http.as_ref().is_none_or(Http::is_closed) {
        *http = Http::connect_from(addr, Some(from), &Arc::new(IoCounters::default()))
            .await
            .ok();
    }
    http.is_some()
}

/// Five logins a second from one address, each new session then renamed twice: the login
/// rate limit and the rename budget should refuse most of them.
async fn login_flood(
    addr: SocketAddr,
    from: IpAddr,
    stop: CancellationToken,
    outcomes: Arc<Metrics>,
) {
    let mut http = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pid = std::process::id();
    for n in 0u64.. {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !reconnect(&mut http, addr, from).await {
            outcomes.error("login_connect_failed");
            continue;
        }
        let Some(conn) = http.as_mut() else { continue };
        let cookie = match sign_in(conn, &format!("fl{pid}-{n}")).await {
            Ok(cookie) => {
                outcomes.error("login_201");
                cookie
            }
            Err(outcome) => {
                outcomes.error(format!("login_{outcome}"));
                continue;
            }
        };
        for r in 0..2 {
            let body =
                Bytes::from(serde_json::json!({ "nick": format!("fr{pid}-{n}-{r}") }).to_string());
            let outcome = match conn
                .send(Method::PATCH, "/api/session", Some(&cookie), Some(body))
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = body_of(response).await;
                    status.to_string()
                }
                Err(_) => "connection".into(),
            };
            outcomes.error(format!("rename_{outcome}"));
        }
    }
}

/// One session short-polls the chat with 16 room names it never used before, four times a
/// second: the presence bounds should keep the rooms it is in, and the server's memory, small.
async fn room_flood(
    addr: SocketAddr,
    from: IpAddr,
    stop: CancellationToken,
    outcomes: Arc<Metrics>,
) {
    let mut http = None;
    let mut cookie = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pid = std::process::id();
    for n in 0u64.. {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !reconnect(&mut http, addr, from).await {
            outcomes.error("rooms16_connect_failed");
            continue;
        }
        let Some(conn) = http.as_mut() else { continue };
        let session = match &cookie {
            Some(c) => c,
            None => match sign_in(conn, &format!("rf{pid}-{n}")).await {
                Ok(c) => cookie.insert(c),
                Err(outcome) => {
                    outcomes.error(format!("rooms16_login_{outcome}"));
                    continue;
                }
            },
        };
        let rooms: Vec<String> = (0..16).map(|j| format!("f{n}r{j}")).collect();
        let path = format!("/poll/chat?history=0&rooms={}", rooms.join(","));
        let outcome = match conn.send(Method::GET, &path, Some(session), None).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = body_of(response).await;
                if status == 401 {
                    cookie = None;
                }
                status.to_string()
            }
            Err(_) => "connection".into(),
        };
        outcomes.error(format!("rooms16_{outcome}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_reads_the_status_line_only() {
        assert_eq!(
            status_of(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            Some(431)
        );
        assert_eq!(
            status_of(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"),
            Some(200)
        );
        assert_eq!(status_of(b""), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 abc\r\n"), None);
    }

    #[test]
    fn holds_fall_in_the_buckets_the_reading_names() {
        assert_eq!(held_bucket(Duration::from_secs(10)), "lt15s");
        assert_eq!(held_bucket(Duration::from_secs(30)), "lt40s");
        assert_eq!(held_bucket(Duration::from_secs(90)), "ge40s");
    }
}
