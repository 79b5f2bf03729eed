//! `loadtest soak`: one running server, a long stretch of mixed traffic, and a sample of the
//! server's RSS, open connections and the last window's delivery p99 at start and then at
//! every interval, so that "memory is flat after warm-up" is a measured statement.
//!
//! The traffic reuses the load tester's own parts: the transport clients
//! ([`crate::clients`]) on both feeds, the chat [`Publisher`], and [`Metrics`] for latency.
//! A quarter of the subscribers drop their connection every 10-30 s and resume from their
//! cursor. The hostile clients ([`hostile`]) are small raw-TCP/HTTP loops, each from its own
//! loopback source address, so the server's per-peer limits fall on them and not on the
//! normal clients (which all come from 127.0.0.1, far below the default per-peer cap).
//!
//! Everything is bounded: a fixed number of clients, fixed rates, a fixed duration; the run
//! stops by itself and only ever targets a loopback address.

mod chart;
pub mod hostile;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use pushpoll::names::{FeedName, Transport};

use crate::cli::SoakArgs;
use crate::clients::{self, Client, Ctx};
use crate::metrics::Metrics;
use crate::publisher::{Acked, Publisher, room_name};
use crate::server;

pub use report::{Sample, SoakSummary, flatness};

/// The soak's chart in `dir`, as (file name, SVG), drawn again from its `summary.json` by the
/// code the soak draws it with; none when `dir` holds no soak (its summary has `samples`).
pub fn charts_of(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let Some(value) = crate::report::summary_json(dir)? else {
        return Ok(Vec::new());
    };
    if value.get("samples").is_none() {
        return Ok(Vec::new());
    }
    let summary: SoakSummary = serde_json::from_value(value)
        .with_context(|| format!("parsing {}", dir.join("summary.json").display()))?;
    Ok(vec![(chart::FILE.to_owned(), chart::render(&summary)?)])
}

/// The two feeds every transport is soaked on.
const FEEDS: [FeedName; 2] = [FeedName::Clock, FeedName::Chat];

/// Short polling's interval for the soak's poll clients (the load tester's default).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The publisher stops this long before the end, so the last messages can be delivered
/// (and counted, or counted as lost) before the final sample.
const DRAIN: Duration = Duration::from_secs(5);

/// Chat message size, bytes of text.
const MESSAGE_SIZE: usize = 100;

/// The validated options.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub addr: SocketAddr,
    pub duration: Duration,
    pub sample_every: Duration,
    /// Subscribers per transport and feed.
    pub clients: usize,
    pub rate: f64,
    pub rooms: usize,
    pub rss_tolerance_pct: f64,
    pub out: PathBuf,
}

impl SoakPlan {
    pub fn new(args: &SoakArgs) -> anyhow::Result<SoakPlan> {
        let addr = server::parse_url(&args.url)?;
        let duration = pushpoll::config::parse_duration(&args.duration)
            .map_err(|e| anyhow::anyhow!("--duration {:?}: {e}", args.duration))?;
        let sample_every = pushpoll::config::parse_duration(&args.sample_every)
            .map_err(|e| anyhow::anyhow!("--sample-every {:?}: {e}", args.sample_every))?;
        if duration < Duration::from_secs(20) || duration > Duration::from_secs(4 * 3600) {
            bail!(
                "--duration {} is out of range: use 20s to 4h",
                args.duration
            );
        }
        if sample_every < Duration::from_secs(1) || sample_every > duration {
            bail!(
                "--sample-every {} is out of range: use 1s to the duration",
                args.sample_every
            );
        }
        if args.clients == 0 || args.clients > 500 {
            bail!(
                "--clients {} is out of range: use 1 to 500 per transport and feed",
                args.clients
            );
        }
        if !(args.rate > 0.0 && args.rate <= 100.0) {
            bail!(
                "--rate {} is out of range: use more than 0 and at most 100 messages/s",
                args.rate
            );
        }
        if args.rooms == 0 || args.rooms > 16 {
            bail!("--rooms {} is out of range: use 1 to 16", args.rooms);
        }
        if !(args.rss_tolerance.is_finite() && args.rss_tolerance >= 0.0) {
            bail!(
                "--rss-tolerance {} must be a percentage",
                args.rss_tolerance
            );
        }
        Ok(SoakPlan {
            addr,
            duration,
            sample_every,
            clients: args.clients as usize,
            rate: args.rate,
            rooms: args.rooms as usize,
            rss_tolerance_pct: args.rss_tolerance,
            out: args.out.clone(),
        })
    }

    /// Subscribers in all, over the transport × feed groups.
    pub fn subscribers(&self) -> usize {
        self.clients * Transport::ALL.len() * FEEDS.len()
    }
}

/// One transport on one feed: its clients share a [`Ctx`] and so one [`Metrics`].
struct Group {
    transport: Transport,
    feed: FeedName,
    metrics: Arc<Metrics>,
    tasks: Vec<JoinHandle<Client>>,
}

impl Group {
    fn key(&self) -> String {
        format!("{}/{}", self.feed, self.transport)
    }
}

pub async fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let plan = SoakPlan::new(args)?;
    crate::check_open_files(plan.subscribers() + hostile::MAX_SOCKETS)?;
    let addr = plan.addr;
    let first = server::stats(addr)
        .await
        .with_context(|| format!("cannot reach {}", args.url))?;
    let invoked_as = args
        .invoked_as
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let mut summary = SoakSummary::new(&plan, invoked_as);
    summary.hostile_clients = !args.no_hostile;
    println!(
        "soak: {} subscribers + publisher + hostile clients against {} for {:?}, sampling every {:?} into {}",
        plan.subscribers(),
        args.url,
        plan.duration,
        plan.sample_every,
        plan.out.display()
    );

    let stop = CancellationToken::new();
    let start = Instant::now();
    // The start sample: the server before any of our traffic.
    summary
        .samples
        .push(Sample::from_stats(0.0, &first, BTreeMap::new(), 0));
    report::write(&plan.out, &summary)?;

    // Subscribers, spread over a ramp of 5 s so the server does not see them all at once.
    let chat_cursor = server::chat_cursor(addr).await?;
    let restarts = Arc::new(AtomicU64::new(0));
    let mut groups = Vec::new();
    for feed in FEEDS {
        for transport in Transport::ALL {
            let metrics = Arc::new(Metrics::new(4));
            let ctx = Arc::new(Ctx {
                addr,
                feed,
                metrics: metrics.clone(),
                stop: stop.clone(),
                poll_interval: POLL_INTERVAL,
                sending: None,
                datagrams: false,
                webtransport: Default::default(),
            });
            let mut tasks = Vec::with_capacity(plan.clients);
            for i in 0..plan.clients {
                let cursor = (feed == FeedName::Chat).then_some(chat_cursor);
                let client = Client::new(i, room_name(i % plan.rooms), cursor);
                // Every fourth client reconnects now and then; the others stay.
                tasks.push(if i % 4 == 3 {
                    tokio::spawn(churning(ctx.clone(), transport, client, restarts.clone()))
                } else {
                    tokio::spawn(clients::run(ctx.clone(), transport, client))
                });
            }
            groups.push(Group {
                transport,
                feed,
                metrics,
                tasks,
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Chat senders, open-loop, until shortly before the end.
    let publisher_metrics = Arc::new(Metrics::new(1));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let publishing = {
        let publisher = Publisher::connect(addr, plan.rate).await?;
        let (metrics, acked) = (publisher_metrics.clone(), acked.clone());
        let (rate, rooms) = (plan.rate, plan.rooms);
        let publish_for = plan.duration.saturating_sub(start.elapsed() + DRAIN);
        tokio::spawn(async move {
            publisher
                .run(rate, publish_for, rooms, MESSAGE_SIZE, metrics, acked)
                .await;
        })
    };

    // Hostile clients, each kind from its own source address.
    let outcomes = Arc::new(Metrics::new(1));
    let hostiles = if args.no_hostile {
        Vec::new()
    } else {
        hostile::spawn_all(addr, stop.clone(), outcomes.clone())
    };

    // Sample until the end.
    let end = start + plan.duration;
    let mut next = start + plan.sample_every;
    let mut unreachable = 0;
    loop {
        let due = next.min(end);
        tokio::time::sleep_until(due).await;
        let t = start.elapsed().as_secs_f64();
        let p99_ms = groups
            .iter()
            .map(|g| (g.key(), report::p99_ms(&g.metrics.take_merged())))
            .collect();
        let errors: u64 = groups.iter().map(|g| g.metrics.error_count()).sum();
        match server::stats(addr).await {
            Ok(stats) => {
                unreachable = 0;
                summary
                    .samples
                    .push(Sample::from_stats(t, &stats, p99_ms, errors));
            }
            Err(err) => {
                // A server that stops answering is a finding; three misses in a row end it.
                eprintln!("soak: /api/stats at {t:.0} s: {err:#}");
                summary.stats_failures += 1;
                unreachable += 1;
                if unreachable >= 3 {
                    summary.aborted = Some(format!("/api/stats unreachable at {t:.0} s"));
                    break;
                }
            }
        }
        if let Some(s) = summary.samples.last() {
            println!(
                "soak: {:>5.0} s  rss {:>7.1} MB  open {:>5}  chat p99 {}",
                s.t_s,
                s.rss_bytes as f64 / 1e6,
                s.open,
                report::p99_line(&s.p99_ms, "chat/")
            );
        }
        summary.hostile = outcomes.errors();
        summary.restarts = restarts.load(Relaxed);
        report::write(&plan.out, &summary)?;
        if due >= end {
            break;
        }
        next += plan.sample_every;
    }

    // Stop everything we started, then count what the chat subscribers missed.
    stop.cancel();
    publishing.abort();
    let _ = publishing.await;
    for task in hostiles {
        let _ = task.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
    let acked_rooms: HashMap<u64, usize> = acked.iter().copied().collect();
    let mut chat = report::ChatDelivery {
        acked: acked.len() as u64,
        ..Default::default()
    };
    for group in groups.iter_mut() {
        let key = group.key();
        let mut finished = Vec::new();
        for task in group.tasks.drain(..) {
            if let Ok(client) = task.await {
                finished.push(client);
            }
        }
        summary.client_errors.insert(key, group.metrics.errors());
        if group.feed == FeedName::Chat {
            chat.add(group.transport, &finished, &acked_rooms, plan.rooms);
            chat.duplicates += group.metrics.duplicates.load(Relaxed);
        }
    }
    chat.publish_errors = publisher_metrics.errors();
    summary.chat = chat;
    summary.hostile = outcomes.errors();
    summary.restarts = restarts.load(Relaxed);
    summary.flatness = flatness(&summary.samples, plan.duration, plan.rss_tolerance_pct);
    report::write(&plan.out, &summary)?;
    println!("{}", report::reading(&summary));
    println!("soak: results in {}", plan.out.display());
    Ok(())
}

/// A subscriber that drops its connection every 10-30 s and resumes from its cursor: each
/// cycle runs the ordinary client loop under its own stop token, cancels it, and starts
/// again with the same [`Client`] (cursor and seen ids kept).
async fn churning(
    base: Arc<Ctx>,
    transport: Transport,
    mut client: Client,
    restarts: Arc<AtomicU64>,
) -> Client {
    let (index, room) = (client.index, client.room.clone());
    let mut cycle = index as u64;
    loop {
        let stop = base.stop.child_token();
        let ctx = Arc::new(Ctx {
            addr: base.addr,
            feed: base.feed,
            metrics: base.metrics.clone(),
            stop: stop.clone(),
            poll_interval: base.poll_interval,
            sending: None,
            datagrams: false,
            webtransport: base.webtransport.clone(),
        });
        // Varied per client and per cycle, so the drops do not come in waves.
        let hold = Duration::from_secs(10 + (cycle * 7919) % 21);
        cycle += 1;
        let task = tokio::spawn(clients::run(ctx, transport, client));
        tokio::select! {
            () = base.stop.cancelled() => {}
            () = tokio::time::sleep(hold) => {}
        }
        stop.cancel();
        client = match task.await {
            Ok(client) => client,
            // The client task panicked: what it saw is gone; go on with a fresh one.
            Err(_) => {
                base.metrics.error("client_panicked");
                Client::new(index, room.clone(), None)
            }
        };
        if base.stop.is_cancelled() {
            return client;
        }
        restarts.fetch_add(1, Relaxed);
    }
}
