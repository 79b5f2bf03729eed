//! A real `redis-server` for the integration tests: its own free loopback port and temporary
//! directory, AOF with `appendfsync always` (an acknowledged write is on disk before the
//! reply), and the faults the scale-out tests need: `kill -9` and a restart on the same port
//! and data (the AOF is replayed), SIGSTOP/SIGCONT. scripts/test.sh installs redis-server;
//! when it is missing the tests skip, except under CI=true, where they fail.
#![allow(dead_code)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a start or restart may take before the test fails: an AOF of a test's few
/// writes replays in milliseconds, so 10 s only ever expires on a real fault.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process. Dropping it kills its process group (SIGKILL) and removes
/// its directory.
pub struct RedisServer {
    bin: PathBuf,
    port: u16,
    /// The data directory (`--dir`): the AOF lives here across [`RedisServer::restart`], and
    /// the server's log (`redis.log`), quoted when it fails to start.
    dir: tempfile::TempDir,
    /// None between [`RedisServer::kill9`] and [`RedisServer::restart`].
    child: Option<Child>,
}

/// Where `redis-server` is: on PATH, or Debian's /usr/bin.
fn find_redis_server() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|bin| bin.is_file())
        })
        .or_else(|| {
            let debian = Path::new("/usr/bin/redis-server");
            debian.is_file().then(|| debian.to_path_buf())
        })
}

/// A free loopback port. Another process may take it between this and redis-server's bind;
/// [`RedisServer::start`] then tries another.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisServer {
    /// Starts redis-server and waits until it answers PING. None (the test skips, saying why)
    /// when redis-server is not installed; under CI=true that panics instead.
    pub async fn start() -> Option<RedisServer> {
        let Some(bin) = find_redis_server() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true: redis-server is not installed (scripts/test.sh installs it with apt-get)"
            );
            eprintln!(
                "skipped: redis-server is not installed (scripts/test.sh installs it with apt-get)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pushpoll-redis.")
            .tempdir()
            .expect("a temporary directory for redis-server");
        // The port is free when picked but may be taken before redis-server binds it (tests
        // run side by side): then redis-server exits at once, and another port is tried.
        let mut server = RedisServer {
            bin,
            port: free_port(),
            dir,
            child: None,
        };
        let mut last_error = String::new();
        for _ in 0..5 {
            match server.spawn_and_wait().await {
                Ok(()) => return Some(server),
                Err(error) => {
                    last_error = error;
                    server.port = free_port();
                }
            }
        }
        panic!("redis-server did not start in 5 tries; the last: {last_error}");
    }

    /// `redis://127.0.0.1:PORT`, for `--redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (AOF, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id (for CPU readings from /proc/PID/stat); None after [`kill9`].
    ///
    /// [`kill9`]: RedisServer::kill9
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no shutdown, no final fsync; what the AOF holds is what `appendfsync always`
    /// wrote before each reply. Returns once the process is gone (reaped) and its port closed.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory, so it reloads the AOF; returns once it
    /// answers PING (not `-LOADING`). Kills the running one first, if any.
    pub async fn restart(&mut self) {
        self.kill9();
        if let Err(error) = self.spawn_and_wait().await {
            panic!(
                "redis-server did not restart on port {}: {error}",
                self.port
            );
        }
    }

    /// SIGSTOP: the process (and its port) stays, but nothing answers: the "Redis stopped"
    /// fault, where clients see timeouts rather than refused connections.
    pub fn stop(&self) {
        if let Some(child) = &self.child {
            signal_group(child, libc::SIGSTOP);
        }
    }

    /// SIGCONT: resumes after [`RedisServer::stop`].
    pub fn cont(&self) {
        if let Some(child) = &self.child {
            signal_group(child, libc::SIGCONT);
        }
    }

    /// Sends one command (RESP array of bulk strings) on a fresh connection and returns the
    /// reply: a simple string or integer as its text, a bulk string as its contents, a nil as
    /// None; an error reply is an `Err` with its text. For tests that look at Redis directly
    /// without the redis crate.
    pub async fn command(&self, args: &[&str]) -> Result<Option<String>, String> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect to redis on {}: {e}", self.port))?;
        let mut stream = BufReader::new(stream);
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send to redis: {e}"))?;
        read_reply(&mut stream).await
    }

    /// Spawns redis-server on `self.port` and waits for +PONG; on failure the child is
    /// killed and the error quotes the end of its log.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let log = dir.join("redis.log");
        let mut command = Command::new(&self.bin);
        // No config file: built-in defaults plus these, so nothing of a system Redis
        // (/etc/redis, /var/lib/redis, its port 6379) is read or touched.
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            // Foreground child, so the test owns it; no pid file (written only when
            // daemonized, or when asked for).
            .args(["--daemonize", "no"])
            // Durability as the scale-out issue requires: every write appended to the AOF
            // and fsynced before the reply; no RDB snapshots (`save ""`), so the AOF is the
            // only copy and a restart's state is exactly what it holds.
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            // Loopback only, no password: protected mode would refuse nothing here, but off
            // says so.
            .args(["--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Drop and the faults signal the group, which includes an
            // AOF-rewrite child redis-server may fork.
            .process_group(0);
        // SAFETY: prctl(2) only, between fork and exec: async-signal-safe, no allocation.
        // If the test process dies without dropping this (the watchdog aborts it), the kernel
        // kills redis-server rather than leave it running. (PDEATHSIG follows the thread
        // that spawned it; the test's threads live as long as the test does.)
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        self.child = Some(child);

        let started = Instant::now();
        loop {
            if ping(self.port).await {
                return Ok(());
            }
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                _ => None,
            };
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                if exited.is_some() {
                    // Reaped by try_wait: its pid may no longer be ours to signal.
                    self.child = None;
                } else {
                    self.kill9();
                }
                let why = exited.map_or_else(
                    || format!("no +PONG within {START_TIMEOUT:?}"),
                    |status| format!("it exited ({status})"),
                );
                return Err(format!(
                    "{why}; end of {}:\n{}",
                    log.display(),
                    tail(&log, 10)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too; no SIGCONT needed first.
        self.kill9();
    }
}

/// Signals the child's process group (its pid is the group id: `process_group(0)`).
fn signal_group(child: &Child, signal: i32) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) on the process group of our own child; no memory is involved.
    unsafe { libc::kill(-pgid, signal) };
}

/// Whether the server answers `PING` with `+PONG` within 500 ms. While it replays the AOF it
/// answers `-LOADING ...`, which is not up yet.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

/// Reads one RESP reply of the simple kinds (`+`, `-`, `:`, `$`); arrays are refused (the
/// helper is for SET/GET/INCR-like checks). Bounded: a bulk string over 1 MiB is an error.
async fn read_reply(stream: &mut BufReader<TcpStream>) -> Result<Option<String>, String> {
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read from redis: {e}"))?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or("redis closed the connection")?;
    match kind {
        "+" | ":" => Ok(Some(rest.to_string())),
        "-" => Err(rest.to_string()),
        "$" => {
            let len: i64 = rest
                .parse()
                .map_err(|_| format!("bad bulk length {rest}"))?;
            if len < 0 {
                return Ok(None);
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= 1 << 20)
                .ok_or(format!("bulk string of {len} bytes"))?;
            let mut body = vec![0u8; len + 2];
            stream
                .read_exact(&mut body)
                .await
                .map_err(|e| format!("read from redis: {e}"))?;
            body.truncate(len);
            String::from_utf8(body)
                .map(Some)
                .map_err(|_| "bulk string not UTF-8".to_string())
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

/// The last `n` lines of a file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
