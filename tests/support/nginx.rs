//! Real nginx in front of the real server, for the reverse-proxy tests (tests/api/proxy.rs,
//! tests/browser/proxy.rs): the server on 127.0.0.1:0 with the proxy's origin allowed, and
//! `scripts/proxy.sh` on another free port. nginx is installed by scripts/test.sh; when it is
//! missing the tests skip, except under CI=true, where they fail.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{TestApp, spawn_app};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether nginx is installed. Missing: the test skips, unless CI=true, where it fails.
fn nginx_or_skip() -> bool {
    let found = Path::new("/usr/sbin/nginx").exists()
        || std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("nginx").is_file())
        });
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "nginx is not installed (scripts/test.sh installs nginx-light)"
        );
        eprintln!("skipped: nginx is not installed (scripts/test.sh installs nginx-light)");
    }
    found
}

/// A free loopback port for nginx to listen on (the server must know it before nginx starts:
/// its Host check allows the proxy's origin, `--allow-origin`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The real server, and `scripts/proxy.sh` in front of it.
pub struct Proxied {
    pub app: TestApp,
    pub proxy: Proxy,
}

/// `scripts/proxy.sh` running nginx in the foreground, in a process group of its own that
/// is stopped with SIGTERM when this is dropped (the script passes it on to nginx).
pub struct Proxy {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`, the proxy's origin.
    pub base: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The group: the script and nginx's master and worker. SAFETY: kill(2) with a
            // process group id of our own child; no memory is involved.
            unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
            // Give the script its moment to remove its temporary directory (its EXIT trap)
            // before kill_on_drop's SIGKILL; nginx stops at once on SIGTERM.
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Starts the server with `server_args` and the proxy with `proxy_args` (`--naive`,
/// `--config FILE`); None when nginx is missing outside CI.
pub async fn proxied(server_args: &[&str], proxy_args: &[&str]) -> Option<Proxied> {
    if !nginx_or_skip() {
        return None;
    }
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut args = vec!["--allow-origin", origin.as_str()];
    args.extend_from_slice(server_args);
    let app = spawn_app(&args).await;
    let listen = format!("127.0.0.1:{port}");
    let upstream = app.addr.to_string();
    let mut command = tokio::process::Command::new(repo().join("scripts/proxy.sh"));
    command
        .args(["--listen", &listen, "--upstream", &upstream])
        .args(proxy_args)
        .process_group(0)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null());
    if std::env::var_os("TEST_LOG").is_none() {
        command.stderr(std::process::Stdio::null());
    }
    let child = command.spawn().expect("run scripts/proxy.sh");
    let proxy = Proxy {
        child,
        base: origin,
    };
    // Up when /healthz answers through it, with the header that names the config.
    let started = Instant::now();
    loop {
        if let Ok(res) = app.http.get(format!("{}/healthz", proxy.base)).send().await
            && res.status() == 200
            && res.headers().contains_key("x-proxy-config")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not come up on {listen} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(Proxied { app, proxy })
}

impl Proxied {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.proxy.base)
    }

    pub async fn header(&self, path: &str) -> String {
        let res = self.app.http.get(self.url(path)).send().await.unwrap();
        res.headers()["x-proxy-config"]
            .to_str()
            .unwrap()
            .to_string()
    }
}
