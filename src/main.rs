//! The `pushpoll` binary: configuration, telemetry, bind, serve until a signal.

use anyhow::Context as _;
use clap::Parser as _;
use pushpoll::Config;
use tracing_subscriber::EnvFilter;

// The allocator decides whether RSS falls back after a spike (issue 9, item 6). glibc keeps
// freed memory in per-thread arenas; jemalloc with background threads purges dirty pages on
// a decay timer. The choice and its measurement are in results/alloc/README.md; the
// features exist so scripts/alloc-compare.sh can rebuild every candidate.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PUSHPOLL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    match pushpoll::raise_open_files_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(before, after, "raised the open-files limit")
        }
        Ok((_, now)) if now < config.max_connections + 64 => tracing::warn!(
            limit = now,
            max_connections = config.max_connections,
            "the open-files limit (hard limit reached) is below --max-connections; raise it with `ulimit -Hn`"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not raise the open-files limit"),
    }

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    let tls = pushpoll::tls::Tls::from_config(&config, addr)?;
    match &tls {
        None => {
            println!("pushpoll is running: open http://{addr}/ for the demos (Ctrl-C stops it)")
        }
        // One write for all the lines: a caller that reads only the first line and closes
        // the pipe (spawn::start) must not make a later println! fail.
        Some(tls) => println!("{}\n{}", pushpoll::spawn::banner_tls(addr), tls.describe()),
    }

    pushpoll::run_with_tls(listener, config, tls, shutdown_signal()).await
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
