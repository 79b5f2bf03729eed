//! One measured run of one transport: connect the clients over the ramp, publish for the
//! duration, drain, and turn what was counted into a [`TransportResult`]; one function per
//! phase.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pushpoll::names::{FeedName, Transport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clients::{self, Client, Ctx};
use crate::draw::Sending;
use crate::faults::FaultState;
use crate::metrics::{Metrics, summarize};
use crate::nchan;
use crate::net::IoSnapshot;
use crate::plan::Plan;
use crate::publisher::{Publisher, room_name};
use crate::report::{ByteBasis, Datagrams, DrawCost, NodeResult, TransportResult};
use crate::server;

/// The server the clients measure: pushpoll (its `/api/stats`, its chat publisher, its feed
/// cursors), or nginx + Nchan (`crate::nchan`: the worker's /proc, publishing to `/pub`,
/// nchan's subscriber locations). Every phase is the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pushpoll,
    /// The pid of the nginx worker serving `--url`.
    Nchan(u32),
}

impl Target {
    /// Each server's figures now, in order; the first failure is the error.
    async fn sample(
        &self,
        servers: &[SocketAddr],
        transport: Transport,
    ) -> anyhow::Result<Vec<Sample>> {
        let mut all = Vec::with_capacity(servers.len());
        match *self {
            Target::Pushpoll => {
                for addr in servers {
                    let s = server::stats(*addr).await?;
                    all.push(Sample {
                        cpu_s: s.process.cpu_user_s + s.process.cpu_system_s,
                        rss_bytes: s.process.rss_bytes,
                        // TCP connections and WebTransport sessions (QUIC, on UDP).
                        open: s.connections.open + s.webtransport.open,
                        requests: server_requests(&s, transport),
                    });
                }
            }
            Target::Nchan(worker) => {
                let w = nchan::WorkerSample::read(worker)?;
                // nginx keeps no request count we can read.
                all.push(Sample {
                    cpu_s: w.cpu_s,
                    rss_bytes: w.rss_bytes,
                    open: w.sockets,
                    requests: 0,
                });
            }
        }
        Ok(all)
    }
}

/// The server's count of `transport`'s requests. WebTransport sessions are counted in the
/// statistics' own `webtransport` section (`sessions`, when accepted) while its row under
/// `transports` may stay at 0; the larger of the two is the count either way.
fn server_requests(s: &pushpoll::stats::Snapshot, transport: Transport) -> u64 {
    let row = s
        .transports
        .get(transport.as_str())
        .map_or(0, |t| t.requests);
    match transport {
        Transport::WebTransport => row.max(s.webtransport.sessions),
        _ => row,
    }
}

/// One server's figures at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// CPU seconds, user + system.
    cpu_s: f64,
    rss_bytes: u64,
    open: i64,
    /// The measured transport's requests, as the server counted them.
    requests: u64,
}

/// Runs `transport` against the nodes at `addrs` (one, or several of one cluster: see
/// [`node_of`]); `urls` are their `--url`s, for the per-node rows. `alive` says whether the
/// server is still up; if it dies the run stops early and reports what it measured, with a
/// `server_died` error.
///
/// The phases, in order: [`Run::start`] (the shared state and the servers' figures before),
/// [`ramp`] (connect the clients), [`window`] (publish, sample, inject faults), [`drain`]
/// (wait for the last deliveries), [`finish`] (stop the clients) and [`tally`] (the figures).
pub async fn run(
    plan: &Plan,
    target: Target,
    transport: Transport,
    nodes: &[(String, SocketAddr)],
    alive: &mut dyn FnMut() -> bool,
) -> anyhow::Result<TransportResult> {
    let run = Run::start(plan, target, transport, nodes).await?;
    let (tasks, connected) = ramp(&run, alive).await;
    let window = window(&run, connected, alive).await?;
    let drained = drain(&run, &window).await?;
    let (finished, after) = finish(&run, &window, tasks).await;
    Ok(tally(&run, &window, &drained, &finished, &after))
}

/// The node subscriber `index` connects to, of `nodes`: round-robin, so N nodes get the
/// clients in turn (0, 1, …, N−1, 0, …) and their counts differ by at most one, each
/// node's clients spread over the rooms like the whole run's.
pub fn node_of(index: usize, nodes: usize) -> usize {
    index % nodes.max(1)
}

/// How many of `clients` subscribers [`node_of`] gives each of `nodes` nodes.
pub fn clients_per_node(clients: usize, nodes: usize) -> Vec<usize> {
    let nodes = nodes.max(1);
    (0..nodes)
        .map(|n| clients / nodes + usize::from(n < clients % nodes))
        .collect()
}

/// One node of the run: its `--url`, its subscribers' shared state, and which of the run's
/// distinct servers it is (a server given twice is one server, read once for the total).
struct Node {
    url: String,
    ctx: Arc<Ctx>,
    server: usize,
}

/// What every phase of one run shares.
struct Run<'a> {
    plan: &'a Plan,
    target: Target,
    transport: Transport,
    /// The first node's address: the publisher's, and where the cursor is read.
    addr: SocketAddr,
    nodes: Vec<Node>,
    /// The distinct server addresses among the nodes, in first-seen order.
    servers: Vec<SocketAddr>,
    /// What is counted for the run rather than for a node's subscribers: the publisher's
    /// failures and the runner's own errors (`not_connected_N`, `server_died`).
    metrics: Arc<Metrics>,
    /// Stops the clients at the end (every node's: one token).
    stop: CancellationToken,
    /// `--feed draw`: the clients are the senders (`crate::draw`).
    sending: Option<Arc<Sending>>,
    progress: ProgressBar,
    /// The feed's newest id before the run (chat and draw), where every client starts.
    cursor: Option<u64>,
    /// Where every client starts in nchan's channel.
    nchan_cursor: Option<nchan::Cursor>,
    /// Each server's figures before the clients connected.
    before: Vec<Sample>,
    /// A faulted run tags every client so the injector can break it (see `faults`).
    faults: Option<Arc<FaultState>>,
}

impl<'a> Run<'a> {
    async fn start(
        plan: &'a Plan,
        target: Target,
        transport: Transport,
        nodes: &[(String, SocketAddr)],
    ) -> anyhow::Result<Run<'a>> {
        let Some((_, addr)) = nodes.first().cloned() else {
            anyhow::bail!("no server to measure");
        };
        let sending = (plan.feed == FeedName::Draw)
            .then(|| Arc::new(Sending::new(plan.send_rate, plan.duration, plan.clients)));
        let per_node = clients_per_node(plan.clients, nodes.len());
        let first = Ctx::new(
            addr,
            plan.feed,
            per_node[0],
            plan.poll_interval,
            sending.clone(),
            plan.datagrams,
        );
        let stop = first.stop.clone();
        let mut servers: Vec<SocketAddr> = Vec::new();
        let mut run_nodes = Vec::with_capacity(nodes.len());
        for (i, (url, node_addr)) in nodes.iter().enumerate() {
            let server = match servers.iter().position(|a| a == node_addr) {
                Some(s) => s,
                None => {
                    servers.push(*node_addr);
                    servers.len() - 1
                }
            };
            let ctx = if i == 0 {
                first.clone()
            } else {
                first.on_node(*node_addr, per_node[i])
            };
            run_nodes.push(Node {
                url: url.clone(),
                ctx,
                server,
            });
        }
        let progress = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {prefix:>8} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        progress.set_prefix(transport.as_str());
        progress.enable_steady_tick(Duration::from_millis(120));

        let (mut cursor, mut nchan_cursor) = (None, None);
        match (target, plan.feed) {
            (Target::Nchan(_), feed) => nchan_cursor = Some(nchan::start(addr, feed).await?),
            (Target::Pushpoll, FeedName::Chat) => cursor = Some(server::chat_cursor(addr).await?),
            (Target::Pushpoll, FeedName::Draw) => cursor = Some(server::draw_cursor(addr).await?),
            (Target::Pushpoll, FeedName::Clock) => {}
        }
        // WebTransport's endpoint and certificate hashes, read once per node before any
        // client connects (a server without WebTransport stops the run here, clearly).
        if transport == Transport::WebTransport && target == Target::Pushpoll {
            for node in &run_nodes {
                node.ctx.webtransport.get(node.ctx.addr).await?;
            }
        }
        let before = target.sample(&servers, transport).await?;
        let faults = if plan.faults.enabled() {
            Some(FaultState::new(plan.clients)?)
        } else {
            None
        };
        Ok(Run {
            plan,
            target,
            transport,
            addr,
            nodes: run_nodes,
            servers,
            metrics: Arc::new(Metrics::new(1)),
            stop,
            sending,
            progress,
            cursor,
            nchan_cursor,
            before,
            faults,
        })
    }

    /// The feed whose rules count the deliveries: nchan's clock is published like chat
    /// (each tick a message every client must receive), so it is counted like chat.
    fn counted(&self) -> FeedName {
        match self.target {
            Target::Nchan(_) => FeedName::Chat,
            Target::Pushpoll => self.plan.feed,
        }
    }

    /// Every server's figures, or `None` if any cannot be read.
    async fn sample_if_up(&self) -> Option<Vec<Sample>> {
        self.target.sample(&self.servers, self.transport).await.ok()
    }

    /// A counter of every node's metrics, summed (and the run's own).
    fn total(&self, counter: impl Fn(&Metrics) -> u64) -> u64 {
        counter(&self.metrics)
            + self
                .nodes
                .iter()
                .map(|n| counter(&n.ctx.metrics))
                .sum::<u64>()
    }

    fn connected(&self) -> usize {
        self.total(|m| m.connected.load(Relaxed) as u64) as usize
    }

    /// Deliveries so far, duplicates included.
    fn delivered(&self) -> u64 {
        self.total(|m| m.delivered.load(Relaxed))
    }

    /// Each node's requests and socket bytes so far.
    fn node_counts(&self) -> Vec<(u64, IoSnapshot)> {
        self.nodes
            .iter()
            .map(|n| {
                (
                    n.ctx.metrics.requests.load(Relaxed),
                    n.ctx.metrics.io.snapshot(),
                )
            })
            .collect()
    }
}

/// Connects the clients, spread over the ramp, then waits (up to 15 s, while the server is
/// alive) for all of them to be connected. Returns the client tasks and how many connected;
/// the missing ones are counted as an error.
async fn ramp(run: &Run<'_>, alive: &mut dyn FnMut() -> bool) -> (Vec<JoinHandle<Client>>, usize) {
    let (plan, progress) = (run.plan, &run.progress);
    let mut tasks = Vec::with_capacity(plan.clients);
    let step = plan.ramp.div_f64(plan.clients as f64);
    let ramp_start = Instant::now();
    for i in 0..plan.clients {
        let mut client = Client::new(i, room_name(i % plan.rooms), run.cursor);
        if !plan.faults.jitter {
            client = client.without_jitter();
        }
        if let Some(faults) = &run.faults {
            client = client.with_faults(faults.clone());
        }
        let ctx = run.nodes[node_of(i, run.nodes.len())].ctx.clone();
        tasks.push(match &run.nchan_cursor {
            Some(cursor) => {
                tokio::spawn(nchan::subscribe(ctx, run.transport, client, cursor.clone()))
            }
            None => tokio::spawn(clients::run(ctx, run.transport, client)),
        });
        let due = ramp_start + step.mul_f64((i + 1) as f64);
        tokio::time::sleep_until(due.into()).await;
        if i % 256 == 0 {
            progress.set_message(format!("connecting {}/{}", run.connected(), plan.clients));
        }
    }
    let connect_deadline = Instant::now() + Duration::from_secs(15);
    while run.connected() < plan.clients && Instant::now() < connect_deadline && alive() {
        progress.set_message(format!("connecting {}/{}", run.connected(), plan.clients));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = run.connected();
    if connected < plan.clients {
        run.metrics
            .error(format!("not_connected_{}", plan.clients - connected));
    }
    (tasks, connected)
}

/// The measured window, as it stood when publishing ended.
struct Window {
    /// Each server's figures as the window opened.
    start: Vec<Sample>,
    started: Instant,
    /// The load tester's CPU seconds as it opened, and each node's client requests and
    /// socket bytes.
    own_cpu_before: f64,
    node_counts_before: Vec<(u64, IoSnapshot)>,
    /// `--redis-pid`: the Redis process's CPU seconds as it opened.
    redis_cpu_before: Option<f64>,
    /// Sampled once a second while publishing: each server's peaks, and the peaks of their
    /// sums (the total's).
    rss_peak: Vec<u64>,
    open_peak: Vec<i64>,
    rss_peak_total: u64,
    open_peak_total: i64,
    /// The server died (or stopped answering) during the window.
    died: bool,
    /// The chat messages the server acknowledged: (id, room index).
    acked: Vec<(u64, usize)>,
}

/// Reads `--redis-pid`'s CPU seconds; a process that has gone reads as `None`, and the
/// figure is then left out rather than invented.
fn redis_cpu(plan: &Plan) -> Option<f64> {
    plan.redis_pid
        .and_then(|pid| crate::procfs::cpu_seconds(pid).ok())
}

/// The measured window: publish for the duration (chat; nchan: both feeds) or let the
/// clients send (draw), with the fault injector breaking connections, sampling the servers'
/// RSS and open connections every second.
async fn window(
    run: &Run<'_>,
    connected: usize,
    alive: &mut dyn FnMut() -> bool,
) -> anyhow::Result<Window> {
    let (plan, addr, metrics) = (run.plan, run.addr, &run.metrics);
    let publisher = match (run.target, plan.feed) {
        (Target::Pushpoll, FeedName::Chat) => Some(Publisher::connect(addr, plan.rate).await?),
        _ => None,
    };
    let start = run.target.sample(&run.servers, run.transport).await?;
    let own_cpu_before = own_cpu_seconds();
    let node_counts_before = run.node_counts();
    let redis_cpu_before = redis_cpu(plan);
    let started = Instant::now();
    if let Some(sending) = &run.sending {
        sending.go.cancel();
    }
    let acked = Arc::new(Mutex::new(Vec::new()));
    let publishing = {
        let (metrics, acked) = (metrics.clone(), acked.clone());
        let (rate, duration, rooms, size) =
            (plan.rate, plan.duration, plan.rooms, plan.message_size);
        let (target, feed) = (run.target, plan.feed);
        tokio::spawn(async move {
            match (publisher, target) {
                (Some(p), _) => p.run(rate, duration, rooms, size, metrics, acked).await,
                (None, Target::Nchan(_)) => {
                    nchan::publish_for(addr, feed, rate, duration, size, metrics, acked).await;
                }
                (None, Target::Pushpoll) => tokio::time::sleep(duration).await,
            }
        })
    };
    let injector_stop = CancellationToken::new();
    let injector = run.faults.as_ref().map(|state| {
        tokio::spawn(crate::faults::inject(
            state.clone(),
            plan.faults.clone(),
            addr,
            plan.clients,
            plan.duration,
            injector_stop.clone(),
        ))
    });
    let mut rss_peak: Vec<u64> = start.iter().map(|s| s.rss_bytes).collect();
    let mut open_peak: Vec<i64> = start.iter().map(|s| s.open).collect();
    let mut rss_peak_total: u64 = rss_peak.iter().sum();
    let mut open_peak_total: i64 = open_peak.iter().sum();
    let mut died = false;
    let mut last = (Instant::now(), 0u64);
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    while !publishing.is_finished() {
        sample.tick().await;
        if !alive() {
            died = true;
            break;
        }
        match run.target.sample(&run.servers, run.transport).await {
            Ok(all) => {
                for (i, s) in all.iter().enumerate() {
                    rss_peak[i] = rss_peak[i].max(s.rss_bytes);
                    open_peak[i] = open_peak[i].max(s.open);
                }
                rss_peak_total = rss_peak_total.max(all.iter().map(|s| s.rss_bytes).sum());
                open_peak_total = open_peak_total.max(all.iter().map(|s| s.open).sum());
            }
            Err(_) => {
                died = true;
                break;
            }
        }
        let delivered = run.delivered();
        let rate = (delivered - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), delivered);
        run.progress.set_message(format!(
            "{connected}/{} connected · {rate:>9.0} events/s · {} errors",
            plan.clients,
            run.total(Metrics::error_count)
        ));
    }
    if died {
        publishing.abort();
        metrics.error("server_died");
    } else {
        let _ = publishing.await;
    }
    // Breaks stop with the publishing, so every client has the drain to recover in.
    injector_stop.cancel();
    if let Some(injector) = injector {
        let _ = injector.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Window {
        start,
        started,
        own_cpu_before,
        node_counts_before,
        redis_cpu_before,
        rss_peak,
        open_peak,
        rss_peak_total,
        open_peak_total,
        died,
        acked,
    })
}

/// What was expected, and the window's figures once the drain ended.
struct Drained {
    /// Acknowledged chat messages per room.
    per_room: Vec<u64>,
    expected: u64,
    /// `--feed draw`: strokes the server published in the run.
    published: u64,
    /// The window's length, drain included, and what each node's clients did within it.
    window_s: f64,
    node_counts_in_window: Vec<(u64, IoSnapshot)>,
    own_cpu: f64,
    /// `--redis-pid`: its CPU seconds in the window (none if it could not be read).
    redis_cpu: Option<f64>,
    /// Each server's figures at the end of the window (none if one died).
    after_window: Option<Vec<Sample>>,
}

/// Drain: wait until every client has every acknowledged message of its room, or until the
/// slowest transport had ample time to deliver. Closes the measured window.
async fn drain(run: &Run<'_>, window: &Window) -> anyhow::Result<Drained> {
    let (plan, addr, died) = (run.plan, run.addr, window.died);
    let per_room = count_per_room(&window.acked, plan.rooms);
    let mut expected: u64 = (0..plan.clients).map(|i| per_room[i % plan.rooms]).sum();
    // `--feed draw`: every stroke the server published in the run, to every client. Read
    // after the senders' window (a send still in flight may add a stroke or two later; the
    // drain below waits for them, and the count is read again at the end).
    let mut published = 0;
    if let (Some(start), false) = (run.cursor.filter(|_| plan.feed == FeedName::Draw), died) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        published = server::draw_cursor(addr).await?.saturating_sub(start);
        expected = published * plan.clients as u64;
    }
    let drain_until = Instant::now() + plan.drain;
    while !died
        && matches!(run.counted(), FeedName::Chat | FeedName::Draw)
        && run
            .delivered()
            .saturating_sub(run.total(|m| m.duplicates.load(Relaxed)))
            < expected
        && Instant::now() < drain_until
    {
        run.progress
            .set_message(format!("draining {}/{expected}", run.delivered()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window_s = window.started.elapsed().as_secs_f64();
    let node_counts_in_window = run
        .node_counts()
        .into_iter()
        .zip(&window.node_counts_before)
        .map(|((requests, io), (requests_before, io_before))| {
            (requests - requests_before, io.since(*io_before))
        })
        .collect();
    let own_cpu = own_cpu_seconds() - window.own_cpu_before;
    let redis_cpu = window
        .redis_cpu_before
        .zip(redis_cpu(plan))
        .map(|(before, after)| after - before);
    let after_window = if died { None } else { run.sample_if_up().await };
    Ok(Drained {
        per_room,
        expected,
        published,
        window_s,
        node_counts_in_window,
        own_cpu,
        redis_cpu,
        after_window,
    })
}

/// Stops the clients and collects them, then reads the servers' figures once the requests
/// they sent just before stopping are in (none if one died).
async fn finish(
    run: &Run<'_>,
    window: &Window,
    tasks: Vec<JoinHandle<Client>>,
) -> (Vec<Client>, Option<Vec<Sample>>) {
    run.stop.cancel();
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(client) = task.await {
            finished.push(client);
        }
    }
    // Requests the clients sent just before stopping may still be on their way in.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = if window.died {
        None
    } else {
        run.sample_if_up().await
    };
    run.progress.finish_and_clear();
    (finished, after)
}

/// One node's (or the whole run's) deliveries as the clients counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
}

/// Deliveries per node (`nodes` of them, [`node_of`] each client's), by `feed`'s rules:
/// per client, the acknowledged messages of its room it received and those it never did,
/// against what its room was sent (`per_room`); `--feed draw`: every stroke `published`.
/// Every client of the plan counts in `expected`, whether or not it finished. The clock's
/// expected is what was received (a state feed: ticks a client polls past are skipped by
/// design).
pub fn delivered_per_node(
    plan: &Plan,
    feed: FeedName,
    nodes: usize,
    per_room: &[u64],
    acked: &[(u64, usize)],
    published: u64,
    finished: &[Client],
) -> Vec<Delivered> {
    let (clients, rooms) = (plan.clients, plan.rooms);
    let mut out = vec![Delivered::default(); nodes.max(1)];
    for i in 0..clients {
        out[node_of(i, nodes)].expected += match feed {
            FeedName::Draw => published,
            _ => per_room[i % rooms],
        };
    }
    let acked_ids: HashMap<u64, usize> = acked.iter().copied().collect();
    for client in finished {
        let node = &mut out[node_of(client.index, nodes)];
        match feed {
            FeedName::Chat => {
                let room = client.index % rooms;
                let got = client
                    .seen
                    .iter()
                    .filter(|id| acked_ids.get(id) == Some(&room))
                    .count() as u64;
                node.received += got;
                node.lost += per_room[room] - got.min(per_room[room]);
            }
            // Each client must have seen every stroke published after the cursor.
            FeedName::Draw => {
                node.received += client.seen.len() as u64;
                node.lost += published.saturating_sub(client.seen.len() as u64);
            }
            // The clock is a state feed: ticks a client polls past are skipped by design.
            // Its "expected" is what the clients together saw, so `lost` stays 0.
            _ => node.received += client.seen.len() as u64,
        }
    }
    if feed != FeedName::Chat && feed != FeedName::Draw {
        for node in &mut out {
            node.expected = node.received;
        }
    }
    out
}

/// Turns what was counted into the transport's result: loss per client against what its
/// room was sent, and every figure per event and per second; with several nodes (or
/// `--redis-pid`) the same per node, the result being their total.
fn tally(
    run: &Run<'_>,
    window: &Window,
    drained: &Drained,
    finished: &[Client],
    after: &Option<Vec<Sample>>,
) -> TransportResult {
    let (plan, transport, counted) = (run.plan, run.transport, run.counted());
    let per_node = delivered_per_node(
        plan,
        counted,
        run.nodes.len(),
        &drained.per_room,
        &window.acked,
        drained.published,
        finished,
    );
    let received: u64 = per_node.iter().map(|d| d.received).sum();
    let lost: u64 = per_node.iter().map(|d| d.lost).sum();
    let (events_expected, events_received) = match counted {
        FeedName::Chat | FeedName::Draw => (drained.expected, received),
        _ => (received, received),
    };

    // Each server's requests of this transport, and CPU seconds in the window.
    let server_requests: Vec<u64> = (0..run.servers.len())
        .map(|s| {
            after
                .as_ref()
                .map(|a| a[s].requests)
                .unwrap_or_default()
                .saturating_sub(run.before[s].requests)
        })
        .collect();
    let server_cpu: Vec<f64> = (0..run.servers.len())
        .map(|s| {
            drained
                .after_window
                .as_ref()
                .map(|a| a[s].cpu_s - window.start[s].cpu_s)
                .unwrap_or(0.0)
        })
        .collect();
    let io_in_window =
        drained
            .node_counts_in_window
            .iter()
            .fold(IoSnapshot::default(), |sum, (_, io)| IoSnapshot {
                read: sum.read + io.read,
                written: sum.written + io.written,
            });
    let node_metrics: Vec<&Metrics> = std::iter::once(&*run.metrics)
        .chain(run.nodes.iter().map(|n| &*n.ctx.metrics))
        .collect();
    let total_metrics = Metrics::sum(&node_metrics);
    let mut result = transport_result(Counted {
        transport,
        plan,
        metrics: &total_metrics,
        window_s: drained.window_s,
        io_in_window,
        requests_in_window: drained.node_counts_in_window.iter().map(|(r, _)| r).sum(),
        events_expected,
        events_received,
        lost: if matches!(counted, FeedName::Chat | FeedName::Draw) {
            lost
        } else {
            0
        },
        server_requests: server_requests.iter().sum(),
        server_cpu_s: server_cpu.iter().sum(),
        server_rss_peak_bytes: window.rss_peak_total,
        open_connections_peak: window.open_peak_total,
        loadtest_cpu_s: drained.own_cpu,
    });
    result.faults = run.faults.as_ref().map(|state| {
        let unrecovered = finished.iter().filter(|c| c.awaiting_recovery()).count();
        state.result(&plan.faults, unrecovered as u64)
    });
    result.draw = run
        .sending
        .as_ref()
        .map(|s| DrawCost::of(s, transport, drained.published));
    result.redis_cpu_s = drained.redis_cpu;
    if run.nodes.len() > 1 || plan.redis_pid.is_some() {
        let subscribers = clients_per_node(plan.clients, run.nodes.len());
        for (i, node) in run.nodes.iter().enumerate() {
            let (requests_in_window, io_in_window) = drained.node_counts_in_window[i];
            let d = per_node[i];
            let s = node.server;
            let mut figures = transport_result(Counted {
                transport,
                plan,
                metrics: &node.ctx.metrics,
                window_s: drained.window_s,
                io_in_window,
                requests_in_window,
                events_expected: d.expected,
                events_received: d.received,
                lost: d.lost,
                server_requests: server_requests[s],
                server_cpu_s: server_cpu[s],
                server_rss_peak_bytes: window.rss_peak[s],
                open_connections_peak: window.open_peak[s],
                // The load tester is one process for every node: its CPU is the total's.
                loadtest_cpu_s: 0.0,
            });
            figures.clients = subscribers[i];
            result.nodes.push(NodeResult {
                url: node.url.clone(),
                figures,
            });
        }
    }
    result
}

/// What one transport's run counted, for the whole run or one node: [`transport_result`]
/// turns it into the figures per event and per second.
struct Counted<'a> {
    transport: Transport,
    plan: &'a Plan,
    metrics: &'a Metrics,
    window_s: f64,
    io_in_window: IoSnapshot,
    requests_in_window: u64,
    events_expected: u64,
    events_received: u64,
    lost: u64,
    server_requests: u64,
    server_cpu_s: f64,
    server_rss_peak_bytes: u64,
    open_connections_peak: i64,
    loadtest_cpu_s: f64,
}

/// The one place a transport's result is computed from its counts (faults and draw costs
/// are added by the caller).
fn transport_result(c: Counted<'_>) -> TransportResult {
    let metrics = c.metrics;
    let (window_s, io_in_window) = (c.window_s, c.io_in_window);
    let webtransport = c.transport == Transport::WebTransport;
    // Datagram mode: the ids found missing are the transport's accepted loss, not `lost`.
    let datagrams = (webtransport && c.plan.datagrams).then(|| Datagrams {
        received: metrics.datagrams.load(Relaxed),
        lost: metrics.datagrams_lost.load(Relaxed),
    });
    let accepted = datagrams.as_ref().map_or(0, |d| d.lost);
    let bytes_in = metrics.io.read.load(Relaxed);
    let bytes_out = metrics.io.written.load(Relaxed);
    let received = c.events_received;
    let per_event = |x: f64| {
        if received > 0 {
            x / received as f64
        } else {
            0.0
        }
    };
    TransportResult {
        transport: c.transport.to_string(),
        clients: c.plan.clients,
        duration_s: window_s,
        rate: c.plan.rate,
        events_expected: c.events_expected,
        events_received: received,
        lost: c.lost.saturating_sub(accepted),
        duplicates: metrics.duplicates.load(Relaxed),
        requests: metrics.requests.load(Relaxed),
        requests_per_s: c.requests_in_window as f64 / window_s.max(1e-9),
        server_requests: c.server_requests,
        latency_us: summarize(&metrics.merged()),
        bytes_basis: if webtransport {
            ByteBasis::QuicUdpPayload
        } else {
            ByteBasis::Tcp
        },
        bytes_in,
        bytes_out,
        bytes_per_event: per_event((bytes_in + bytes_out) as f64),
        bytes_down_per_event: per_event(bytes_in as f64),
        bytes_up_per_event: per_event(bytes_out as f64),
        bytes_down_per_s: io_in_window.read as f64 / window_s.max(1e-9),
        bytes_up_per_s: io_in_window.written as f64 / window_s.max(1e-9),
        bytes_per_s: (io_in_window.read + io_in_window.written) as f64 / window_s.max(1e-9),
        server_cpu_s: c.server_cpu_s,
        server_cpu_us_per_event: per_event(c.server_cpu_s * 1e6),
        server_rss_peak_bytes: c.server_rss_peak_bytes,
        open_connections_peak: c.open_connections_peak,
        loadtest_cpu_s: c.loadtest_cpu_s,
        errors: metrics.errors(),
        faults: None,
        datagrams,
        draw: None,
        nodes: Vec::new(),
        redis_cpu_s: None,
    }
}

fn count_per_room(acked: &[(u64, usize)], rooms: usize) -> Vec<u64> {
    let mut per_room = vec![0u64; rooms];
    for (_, room) in acked {
        per_room[*room] += 1;
    }
    per_room
}

/// This process's CPU time (user + system), so a saturated generator is visible.
fn own_cpu_seconds() -> f64 {
    let p = pushpoll::stats::Process::now();
    p.cpu_user_s + p.cpu_system_s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{TargetArgs, WorkloadArgs};

    fn plan(feed: &str, clients: u64, rooms: u64) -> Plan {
        let w = WorkloadArgs {
            feed: feed.into(),
            clients,
            rate: 10.0,
            duration: "1s".into(),
            ramp: "1s".into(),
            poll_interval: "1s".into(),
            rooms,
            message_size: 100,
            send_rate: 1.0,
            datagrams: false,
        };
        let t = TargetArgs {
            url: Vec::new(),
            redis_pid: None,
            out: None,
        };
        Plan::new(&w, &t).unwrap()
    }

    fn client(index: usize, seen: &[u64]) -> Client {
        let mut c = Client::new(index, room_name(index), None);
        c.seen = seen.iter().copied().collect();
        c
    }

    #[test]
    fn subscribers_go_round_robin_over_the_nodes() {
        let nodes: Vec<usize> = (0..7).map(|i| node_of(i, 3)).collect();
        assert_eq!(nodes, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..100).all(|i| node_of(i, 1) == 0));
        assert_eq!(clients_per_node(7, 3), [3, 2, 2]);
        assert_eq!(clients_per_node(1000, 3), [334, 333, 333]);
        assert_eq!(clients_per_node(2, 3), [1, 1, 0]);
        assert_eq!(clients_per_node(5, 1), [5]);
        // What node_of hands out is what clients_per_node counts, for any size.
        for (clients, n) in [(1, 1), (10, 4), (999, 2), (1000, 3), (64, 64)] {
            let mut counted = vec![0; n];
            for i in 0..clients {
                counted[node_of(i, n)] += 1;
            }
            assert_eq!(counted, clients_per_node(clients, n), "{clients} over {n}");
            assert_eq!(counted.iter().sum::<usize>(), clients);
        }
    }

    #[test]
    fn deliveries_are_counted_per_node_and_sum_to_the_run() {
        // 6 clients over 2 rooms and 3 nodes; 3 messages in room 0 (ids 1, 2, 3), 1 in room
        // 1 (id 4). Client i is in room i % 2 and on node i % 3.
        let p = plan("chat", 6, 2);
        let acked = [(1, 0), (2, 0), (3, 0), (4, 1)];
        let per_room = count_per_room(&acked, 2);
        let finished = [
            client(0, &[1, 2, 3]), // node 0, room 0: all
            client(1, &[4]),       // node 1, room 1: all
            client(2, &[1, 3]),    // node 2, room 0: lost 1
            client(3, &[]),        // node 0, room 1: lost 1
            client(4, &[1, 2, 3, 4]), // node 1, room 0: 4 is not its room's
                                   // client 5 (node 2, room 1) never finished: expected, not counted received.
        ];
        let d = delivered_per_node(&p, p.feed, 3, &per_room, &acked, 0, &finished);
        assert_eq!(
            d,
            [
                Delivered {
                    expected: 4,
                    received: 3,
                    lost: 1
                },
                Delivered {
                    expected: 4,
                    received: 4,
                    lost: 0
                },
                Delivered {
                    expected: 4,
                    received: 2,
                    lost: 1
                },
            ]
        );
        // One node: the same clients give the run's figures, which the nodes sum to.
        let one = delivered_per_node(&p, p.feed, 1, &per_room, &acked, 0, &finished);
        let sum = |f: fn(&Delivered) -> u64| d.iter().map(f).sum::<u64>();
        assert_eq!(
            one,
            [Delivered {
                expected: sum(|d| d.expected),
                received: sum(|d| d.received),
                lost: sum(|d| d.lost),
            }]
        );
        assert_eq!(
            one[0].expected,
            (0..6).map(|i| per_room[i % 2]).sum::<u64>()
        );
    }

    #[test]
    fn the_clock_expects_what_each_node_received_and_loses_nothing() {
        let p = plan("clock", 4, 1);
        let finished = [client(0, &[10, 11]), client(1, &[10]), client(2, &[11])];
        let d = delivered_per_node(&p, p.feed, 2, &[0], &[], 0, &finished);
        assert_eq!(
            d[0],
            Delivered {
                expected: 3,
                received: 3,
                lost: 0
            }
        );
        assert_eq!(
            d[1],
            Delivered {
                expected: 1,
                received: 1,
                lost: 0
            }
        );
    }
}
