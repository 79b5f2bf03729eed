//! Start the `pushpoll` binary as a child process and read the URL it prints: the one way the
//! load tester and the tests start a real server in a process of its own (for a fresh heap
//! per transport, the server's RSS, SIGTERM, `kill -9`). It listens on `127.0.0.1:0`, so the
//! URL in its first line, [`banner`], is how the caller learns the port.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a starting server may take to print its URL.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The first line the binary prints once it listens on `addr`; [`url_in`] reads it back.
pub fn banner(addr: SocketAddr) -> String {
    format!("pushpoll is running: open http://{addr}/ for the demos (Ctrl-C stops it)")
}

/// The first line the binary prints when it serves HTTPS on `addr` (`--tls-…`).
pub fn banner_tls(addr: SocketAddr) -> String {
    format!("pushpoll is running: open https://{addr}/ for the demos (Ctrl-C stops it)")
}

/// A server started by [`start`]: killed when dropped.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
    /// The URL as printed, without its trailing `/`: `http://127.0.0.1:PORT`.
    pub url: String,
}

/// Spawns `command`, a `pushpoll` command line whose arguments, environment and stderr the
/// caller chose (`--addr 127.0.0.1:0` among them), with its stdout piped and killed on drop,
/// and waits up to [`START_TIMEOUT`] for the URL it prints. Spawning's own error is returned
/// as it is, for the caller to name the binary.
pub async fn start(command: &mut Command) -> anyhow::Result<Spawned> {
    let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .context("pushpoll did not start within 10 s")??
        .context("pushpoll exited at start")?;
    let (url, addr) = url_in(&line)?;
    Ok(Spawned { child, addr, url })
}

/// [`start`] for a blocking [`std::process::Command`], in tests without a runtime: its
/// stdout piped, it waits for the first line without a deadline, and the child is not
/// killed on drop (the caller kills it).
pub fn start_blocking(
    command: &mut std::process::Command,
) -> anyhow::Result<(std::process::Child, SocketAddr)> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let (_, addr) = url_in(&line)?;
    Ok((child, addr))
}

/// The URL in a [`banner`] or [`banner_tls`] line (the first word starting `http://` or
/// `https://`, without its trailing
/// `/`) and the address it names.
pub fn url_in(line: &str) -> anyhow::Result<(String, SocketAddr)> {
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .with_context(|| format!("no URL in {line:?}"))?
        .trim_end_matches('/');
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let addr = authority
        .parse()
        .with_context(|| format!("no address in {line:?}"))?;
    Ok((url.to_owned(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_reads_back_as_its_address() {
        let addr: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let (url, read) = url_in(&banner(addr)).unwrap();
        assert_eq!((url.as_str(), read), ("http://127.0.0.1:40123", addr));
        assert!(url_in("pushpoll is starting").is_err());
        assert!(url_in("open http://localhost:3000/").is_err());
        let (url, read) = url_in(&banner_tls(addr)).unwrap();
        assert_eq!((url.as_str(), read), ("https://127.0.0.1:40123", addr));
    }
}
