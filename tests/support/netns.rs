//! A network a test makes for itself: two network namespaces joined by a veth pair, so a
//! client reaches a server from another machine's address without any test touching this
//! machine's own interfaces (tests may target only loopback or namespaces they made).
//!
//! The server side holds [`SERVER_IP`], the client side [`CLIENT_IP`], each on an interface
//! named [`LINK`] and each with its own loopback. A server started in the server namespace
//! (`Netns::command`, i.e. `ip netns exec`) sees only those two interfaces, so what it prints
//! and which names it answers to are known exactly; a client task run in the client namespace
//! (`Netns::run`) connects from `CLIENT_IP`, as a student's laptop on the classroom Wi-Fi.
//! The addresses are the same in every test: each pair of namespaces is a network of its own,
//! so tests running side by side (and other test processes) cannot collide; only the
//! namespaces' names are unique (`pushpoll-PID-N-server`/`-client`).
//!
//! Needs root (`CAP_SYS_ADMIN`, `CAP_NET_ADMIN`) and `ip` (iproute2). Without them a test is
//! skipped with a line on stderr, except under `CI=true`, where it fails. The namespaces are
//! deleted when the [`Lan`] is dropped, panics included; those a killed test process left
//! behind are deleted by the next [`Lan::create`].
#![allow(dead_code)]

use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

/// The server side's address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// The client side's address: "another machine" to the server.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// The prefix length of the little network the two share.
const PREFIX: u8 = 24;
/// The veth's name in each namespace.
pub const LINK: &str = "lan0";

const NAME_PREFIX: &str = "pushpoll-";

/// Two namespaces joined by a veth pair; see the module documentation.
pub struct Lan {
    pub server: Netns,
    pub client: Netns,
}

/// One network namespace of a [`Lan`], with a thread inside it that runs the test's tasks.
pub struct Netns {
    name: String,
    /// The runtime of the thread that entered the namespace: every socket its tasks open is
    /// in the namespace (a socket belongs to the namespace of the thread that created it).
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lan {
    /// Makes the two namespaces and the link between them, up and addressed. `None` (with a
    /// line on stderr) when this machine cannot; under `CI=true` that panics instead.
    pub fn create() -> Option<Lan> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        remove_stale();
        let base = format!("{NAME_PREFIX}{}-{n}", std::process::id());
        let (server, client) = (format!("{base}-server"), format!("{base}-client"));
        match build(&server, &client) {
            Ok(()) => {}
            Err(why) => {
                let _ = ip(&["netns", "del", &server]);
                let _ = ip(&["netns", "del", &client]);
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("CI=true: cannot make a test network (root and iproute2 needed): {why}");
                }
                eprintln!("skipped: cannot make a test network (root and iproute2 needed): {why}");
                return None;
            }
        }
        // From here on, dropping a `Netns` deletes its namespace.
        let entered = |name: String| {
            Netns::enter(name.clone()).unwrap_or_else(|e| {
                let _ = ip(&["netns", "del", &name]);
                panic!("cannot run a thread in {name}: {e}")
            })
        };
        let server = entered(server);
        let client = entered(client);
        Some(Lan { server, client })
    }
}

fn build(server: &str, client: &str) -> Result<(), String> {
    ip(&["netns", "add", server])?;
    ip(&["netns", "add", client])?;
    // Each end is made inside its namespace, so the pair never appears in this machine's
    // own namespace (where other tests' servers on 0.0.0.0 would list it).
    ip(&[
        "link", "add", LINK, "netns", server, "type", "veth", "peer", "name", LINK, "netns", client,
    ])?;
    for (ns, addr) in [(server, SERVER_IP), (client, CLIENT_IP)] {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/{PREFIX}"),
            "dev",
            LINK,
        ])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", LINK, "up"])?;
    }
    // The link carries frames once both ends are up (`LOWER_UP`).
    let deadline = Instant::now() + Duration::from_secs(5);
    for ns in [server, client] {
        while !ip(&["-n", ns, "-o", "link", "show", LINK])?.contains("LOWER_UP") {
            if Instant::now() > deadline {
                return Err(format!("{LINK} in {ns} is not up after 5 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// Runs `ip ARGS`; its stdout, or its stderr as the error.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes the namespaces of test processes that are gone (killed before their `Drop` ran).
fn remove_stale() {
    let Ok(listed) = ip(&["netns", "list"]) else {
        return;
    };
    for name in listed.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Moves the calling thread into the namespace `name` (only this thread: `setns(2)` with
/// `CLONE_NEWNET` changes the caller alone; threads it starts afterwards inherit it).
fn enter_thread(name: &str) -> Result<(), String> {
    let path = format!("/run/netns/{name}");
    let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: setns(2) on a namespace file descriptor we hold open, for this thread only.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Netns {
    /// Starts the namespace's thread: it enters the namespace, then runs a runtime of its
    /// own until the namespace is dropped.
    fn enter(name: String) -> Result<Netns, String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_name = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("in {name}"))
            .spawn(move || {
                let runtime = enter_thread(&thread_name).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("runtime: {e}"))
                });
                match runtime {
                    Ok(runtime) => {
                        let _ = ready_tx.send(Ok(runtime.handle().clone()));
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("spawn a thread: {e}"))?;
        let handle = ready_rx
            .recv()
            .map_err(|_| "the namespace's thread died".to_string())??;
        Ok(Netns {
            name,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `task` inside the namespace (on its thread) and returns what it returns; a panic
    /// in it is this call's panic. Responses and streams it returns may be read anywhere:
    /// their connections stay with the namespace's runtime, which runs until the namespace
    /// is dropped.
    pub fn run<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + 'static {
        let joined = self.handle.spawn(task);
        async move {
            match joined.await {
                Ok(value) => value,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => panic!("the namespace's task did not finish: {err}"),
            }
        }
    }

    /// Runs blocking `work` on a thread of its own inside the namespace.
    pub fn thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter_thread(&name).unwrap_or_else(|e| panic!("{e}"));
            work()
        })
    }

    /// `program` run inside the namespace (`ip netns exec NAME program`, which execs it: the
    /// child's pid is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // A process still inside (a server being killed) keeps the namespace alive until it
        // exits; its name is gone at once.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// What a sniffer on the link sees: every frame that crosses [`LINK`] in one namespace (both
/// directions), read by a raw packet socket (`AF_PACKET`) until [`Capture::stop`].
pub struct Capture {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

/// The most a capture keeps: far more than a test's few requests.
const CAPTURE_BYTES: usize = 64 << 20;

impl Netns {
    /// Starts capturing on [`LINK`]; returns once the socket listens, so nothing sent after
    /// this call is missed.
    pub fn capture(&self) -> Capture {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = self.thread(move || {
            let socket = match packet_socket(LINK) {
                Ok(socket) => socket,
                Err(e) => panic!("a packet socket on {LINK}: {e}"),
            };
            let _ = ready_tx.send(());
            let mut seen = Vec::new();
            let mut frame = vec![0u8; 65536];
            while !stopping.load(Ordering::Acquire) && seen.len() < CAPTURE_BYTES {
                // SAFETY: recv(2) into a buffer we own, of its length; the socket has a
                // receive timeout, so the loop sees `stop` at least every 50 ms.
                let n = unsafe {
                    libc::recv(
                        socket.as_raw_fd(),
                        frame.as_mut_ptr().cast(),
                        frame.len(),
                        0,
                    )
                };
                if n > 0 {
                    seen.extend_from_slice(&frame[..n as usize]);
                }
            }
            // What crossed the link before `stop` may still wait in the socket's queue (a
            // loaded machine schedules this thread late): read it to the end.
            while seen.len() < CAPTURE_BYTES {
                // SAFETY: as above; MSG_DONTWAIT returns at once when the queue is empty.
                let n = unsafe {
                    libc::recv(
                        socket.as_raw_fd(),
                        frame.as_mut_ptr().cast(),
                        frame.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 {
                    break;
                }
                seen.extend_from_slice(&frame[..n as usize]);
            }
            seen
        });
        ready_rx
            .recv()
            .expect("the capture thread opens its socket");
        Capture { stop, thread }
    }
}

impl Capture {
    /// Everything captured so far, frames one after another (headers included).
    pub fn stop(self) -> Vec<u8> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        match self.thread.join() {
            Ok(seen) => seen,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// A raw `AF_PACKET` socket bound to the interface `name` of the calling thread's namespace,
/// receiving every protocol, with a 50 ms receive timeout.
fn packet_socket(name: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let cname = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a zeroed sockaddr_ll is valid; we fill the fields bind(2) reads.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = index as i32;
    // SAFETY: bind(2) with a sockaddr_ll of the size given.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: setsockopt(2) with a timeval of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Room for every frame of a test's exchanges however late this thread runs: the default
    // queue (about 200 KiB of kernel buffers) drops frames once it is full.
    let room: libc::c_int = 8 << 20;
    // SAFETY: setsockopt(2) with an int of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const room).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(socket)
}
