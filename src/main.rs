//! The `pushpoll` binary: configuration, telemetry, bind, serve until a signal.

use anyhow::Context as _;
use clap::Parser as _;
use pushpoll::Config;
use tracing_subscriber::EnvFilter;

// The allocator decides whether RSS falls back after a spike. glibc keeps
// freed memory in per-thread arenas; jemalloc with background threads purges dirty pages on
// a decay timer. The choice and its measurement are in results/alloc/README.md; the
// features exist so scripts/alloc-compare.sh can rebuild every candidate.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // The cores the process may run on (its affinity mask, a cgroup's quota), as the
    // multi-thread runtime counts them for its workers.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let current_thread = config.runtime.current_thread(cores);
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config, current_thread, cores))
}

async fn serve(config: Config, current_thread: bool, cores: usize) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PUSHPOLL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tracing::info!(current_thread, cores, "async runtime");

    // The default --max-connections fits the limit by construction; only a value given on the
    // command line (or in PUSHPOLL_MAX_CONNECTIONS) can ask for more than the kernel allows.
    match pushpoll::raise_open_files_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!(before, after, "raised the open-files limit");
            }
            if let Some(short) = config.open_files_shortfall(after) {
                tracing::warn!(
                    limit = after,
                    max_connections = config.max_connections(),
                    reserve = pushpoll::config::OPEN_FILES_RESERVE,
                    short,
                    "the open-files limit (hard limit reached) is below --max-connections plus the server's reserve; lower --max-connections, or raise the limit with `ulimit -Hn`"
                );
            }
        }
        Err(err) => tracing::warn!(%err, "could not raise the open-files limit"),
    }

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    let tls = pushpoll::net::tls::Tls::from_config(&config, addr)?;
    print_urls(addr, &config, tls.as_ref());

    pushpoll::run_with_tls(listener, config, tls, shutdown_signal()).await
}

/// Prints where the server can be reached: first the URL to open on this machine (the line
/// `pushpoll::spawn` reads back; for `0.0.0.0`/`[::]` the loopback address), then each
/// network address and `--public-url`, as dev servers such as Vite do. One write, whose
/// failure is ignored: a parent that read the first line and closed the pipe must not make
/// `println!` panic the server.
fn print_urls(addr: std::net::SocketAddr, config: &Config, tls: Option<&pushpoll::net::tls::Tls>) {
    use std::io::Write as _;
    let interfaces = pushpoll::net::interfaces::list();
    let public: Vec<String> = config.public_url.iter().map(|u| u.to_string()).collect();
    let local = pushpoll::net::interfaces::local(addr);
    let mut text = match tls {
        None => pushpoll::spawn::banner(local),
        Some(_) => pushpoll::spawn::banner_tls(local),
    };
    text.push('\n');
    for line in pushpoll::net::interfaces::more_urls(addr, &interfaces, &public) {
        // The network addresses are served with the same scheme as the first line; a
        // --public-url keeps its own.
        let line = match tls {
            Some(_) if line.starts_with("  on the network: http://") => {
                line.replacen("http://", "https://", 1)
            }
            _ => line,
        };
        text.push_str(&line);
        text.push('\n');
    }
    if let Some(tls) = tls {
        text.push_str(&tls.describe());
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
