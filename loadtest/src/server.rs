//! The server under test: either started here (the `pushpoll` binary next to this one, on a
//! free loopback port with `--db :memory:`, through [`pushpoll::spawn`]), or a running one at
//! `--url`. Also how its own figures are read, from `/api/stats`, on a connection that is not
//! the clients'.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pushpoll::spawn;
use pushpoll::stats::Snapshot;
use tokio::process::{Child, Command};

use crate::net::{Http, IoCounters, body};

/// A server started by the load tester; stopped with SIGTERM when dropped.
pub struct Spawned {
    child: Child,
    pub addr: SocketAddr,
}

/// Where the `pushpoll` binary is: `$PUSHPOLL_BIN`, or beside this executable.
pub(crate) fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PUSHPOLL_BIN") {
        return Ok(path.into());
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no directory for this executable")?;
    for candidate in [dir.join("pushpoll"), dir.join("../pushpoll")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "cannot find the pushpoll binary beside {} (build it with `cargo build --release`, or set PUSHPOLL_BIN)",
        me.display()
    )
}

impl Spawned {
    pub async fn start(clients: usize) -> anyhow::Result<Spawned> {
        let bin = server_binary()?;
        let max = (clients + 1000).to_string();
        let mut command = Command::new(&bin);
        command
            .args([
                "--addr",
                "127.0.0.1:0",
                "--db",
                ":memory:",
                "--max-connections",
                &max,
            ])
            // The publisher measures transports, not the rate limit.
            .args(["--rate-limit", "1000000"])
            .env("PUSHPOLL_RATE_LIMIT_BYTES", "1073741824")
            // Every client sends from 127.0.0.1: the draw budget is per address.
            .args(["--draw-rate", "1000000", "--draw-rate-total", "10000000"])
            // Every client is 127.0.0.1: one peer, holding every connection, long poll and
            // stream. (Environment variables, which an older build given as PUSHPOLL_BIN
            // ignores, where a flag it does not know would stop it.)
            .env("PUSHPOLL_MAX_CONNECTIONS_PER_PEER", &max)
            // Every WebTransport client holds a session slot.
            .env("PUSHPOLL_MAX_WEBTRANSPORT_SESSIONS", &max)
            .env("PUSHPOLL_MAX_REQUESTS_PER_PEER", &max)
            .env("PUSHPOLL_LOG", "warn")
            .stderr(Stdio::inherit());
        let started = spawn::start(&mut command)
            .await
            .with_context(|| format!("cannot start {}", bin.display()))?;
        // Only loopback is a target, whatever the server printed.
        let addr = parse_url(&started.url)?;
        Ok(Spawned {
            child: started.child,
            addr,
        })
    }

    /// True once the server process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(6), self.child.wait()).await;
    }
}

/// `http://127.0.0.1:3000/` → the socket address; only loopback addresses are accepted.
pub fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// URLs are supported"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = host
        .replace("localhost", "127.0.0.1")
        .parse()
        .with_context(|| format!("{url:?}: expected http://127.0.0.1:PORT"))?;
    if !addr.ip().is_loopback() {
        bail!("{url:?} is not a loopback address: loadtest only sends traffic to this machine");
    }
    Ok(addr)
}

/// Reads `/api/stats` (these requests are not counted in the transport figures).
pub async fn stats(addr: SocketAddr) -> anyhow::Result<Snapshot> {
    let mut http = Http::connect(addr, &Arc::new(IoCounters::default())).await?;
    let response = tokio::time::timeout(Duration::from_secs(5), http.get("/api/stats"))
        .await
        .context("/api/stats did not answer within 5 s")??;
    if !response.status().is_success() {
        bail!("/api/stats answered {}", response.status());
    }
    Ok(serde_json::from_slice(&body(response).await?)?)
}

/// The newest chat id: the cursor every client starts from, so each must get every message
/// published after it.
pub async fn chat_cursor(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut http = Http::connect(addr, &Arc::new(IoCounters::default())).await?;
    let response = http.get("/poll/chat?history=0").await?;
    let value: serde_json::Value = serde_json::from_slice(&body(response).await?)?;
    value["next"].as_u64().context("no cursor in /poll/chat")
}

/// The draw feed's newest id (0 when empty): the cursor every draw client starts from.
pub async fn draw_cursor(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut http = Http::connect(addr, &Arc::new(IoCounters::default())).await?;
    let response = http.get("/poll/draw?limit=1").await?;
    let value: serde_json::Value = serde_json::from_slice(&body(response).await?)?;
    value["next"].as_u64().context("no cursor in /poll/draw")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_targets() {
        assert_eq!(parse_url("http://127.0.0.1:3000/").unwrap().port(), 3000);
        assert!(parse_url("http://localhost:8080").is_ok());
        assert!(parse_url("http://10.0.0.1:3000").is_err());
        assert!(parse_url("https://127.0.0.1:3000").is_err());
        assert!(parse_url("http://example.com:80").is_err());
    }
}
