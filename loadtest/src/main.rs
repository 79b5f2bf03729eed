//! `loadtest`: parse → plan → run each transport → export, rewriting the results after each
//! transport so an interrupted compare keeps what it measured.

mod chart;
mod cli;
mod clients;
mod draw;
mod export;
mod faults;
mod machine;
mod metrics;
mod nchan;
mod net;
mod plan;
mod procfs;
mod publisher;
mod redraw;
mod report;
mod runner;
mod server;
mod sidebyside;
mod soak;
mod wsclients;
mod wsframe;

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use pushpoll::names::Transport;

use crate::cli::{Command, Opts};
use crate::plan::Plan;
use crate::report::Summary;
use crate::runner::Target;

fn main() -> ExitCode {
    let opts = match Opts::try_parse() {
        Ok(opts) => opts,
        Err(err) if !err.use_stderr() => {
            // --help, --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let text = err.to_string();
            eprintln!(
                "loadtest: {}",
                text.lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("loadtest: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let (transports, measure) = match &opts.command {
        Command::Run { transport, measure } => (vec![*transport], measure),
        Command::Compare { measure } => (Transport::ALL.to_vec(), measure),
        // The soak is its own kind of run: one server, every transport at once, sampled.
        Command::Soak(args) => return soak::run(args).await,
        Command::Charts(args) => return redraw::run(args),
        Command::SideBySide(args) => return sidebyside::run(&args.dir),
        Command::WsClients(args) => return wsclients::run(args).await,
    };
    let plan = Plan::new(&measure.workload, &measure.target)?.with_faults(&measure.faults)?;
    if plan.datagrams && !transports.contains(&Transport::WebTransport) {
        bail!(
            "--datagrams is WebTransport's datagram mode: use it with --transport webtransport or compare"
        );
    }
    let target = if nchan::chosen(&measure.server.peer)? {
        Target::Nchan(nchan::worker(&transports, &plan).await?)
    } else {
        Target::Pushpoll
    };
    check_open_files(plan.clients)?;
    let mut summary = Summary {
        workload: plan.workload(),
        machine: machine::describe(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started: pushpoll::feed::clock::rfc3339_utc(pushpoll::feed::clock::now_micros() / 1000),
        results: Vec::new(),
    };
    // The nodes to measure: every --url (checked to answer before any traffic; nchan's
    // was), or none (a fresh server per transport, below).
    let mut remote = Vec::with_capacity(plan.urls.len());
    for url in &plan.urls {
        let addr = server::parse_url(url)?;
        if target == Target::Pushpoll {
            server::stats(addr)
                .await
                .with_context(|| format!("cannot reach {url}"))?;
        }
        remote.push((url.clone(), addr));
    }
    let mut skipped = Vec::new();
    for transport in transports {
        if target != Target::Pushpoll
            && let Some(why) = nchan::missing(transport)
        {
            skipped.push((transport, why));
            continue;
        }
        let (result, spawned) = if !remote.is_empty() {
            let result = runner::run(&plan, target, transport, &remote, &mut || true).await?;
            (result, None)
        } else {
            // A fresh server per transport: no transport inherits another's memory.
            let mut spawned = server::Spawned::start(plan.clients).await?;
            let node = [(format!("http://{}/", spawned.addr), spawned.addr)];
            let alive = &mut || !spawned.exited();
            let result = runner::run(&plan, target, transport, &node, alive).await;
            (result?, Some(spawned))
        };
        let mut result = result;
        if let Some(baseline) = &plan.faults.baseline {
            faults::charge_baseline(baseline, &mut result)?;
        }
        let died = result.errors.contains_key("server_died");
        summary.results.push(result);
        export::write_all(&plan.out, &summary)
            .with_context(|| format!("cannot write {}", plan.out.display()))?;
        if let Some(spawned) = spawned {
            spawned.stop().await;
        }
        if died {
            println!("{}", export::terminal_table(&summary));
            println!("{}", export::terminal_bytes_table(&summary));
            bail!(
                "the server died during the {transport} run; results so far are in {}",
                plan.out.display()
            );
        }
    }
    println!("{}", export::terminal_table(&summary));
    for (transport, why) in skipped {
        println!("{transport}: {why}\n");
    }
    println!("{}", export::terminal_bytes_table(&summary));
    if let Some(table) = export::terminal_nodes_table(&summary) {
        println!("{table}");
    }
    if let Some(table) = faults::table(&summary) {
        println!("{table}");
    }
    println!("results: {}", plan.out.display());
    Ok(())
}

/// Each client needs a socket; refuse a plan that cannot fit under the open-files limit.
fn check_open_files(clients: usize) -> anyhow::Result<()> {
    let (_, limit) = pushpoll::raise_open_files_limit().context("reading the open-files limit")?;
    let needed = clients as u64 + 64;
    if needed > limit {
        bail!(
            "{clients} clients need about {needed} open files, but the open-files limit is {limit} (raise it with `ulimit -n`)"
        );
    }
    Ok(())
}
