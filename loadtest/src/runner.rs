//! One measured run of one transport: connect the clients over the ramp, publish for the
//! duration, drain, and turn what was counted into a [`TransportResult`]; one function per
//! phase.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pushpoll::stats::Snapshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clients::{self, Client, Ctx};
use crate::draw::Sending;
use crate::faults::FaultState;
use crate::metrics::{Metrics, summarize};
use crate::net::IoSnapshot;
use crate::plan::Plan;
use crate::publisher::{Publisher, room_name};
use crate::report::{DrawCost, TransportResult};
use crate::server;

/// Runs `transport` against the server at `addr`. `alive` says whether the server is still
/// up; if it dies the run stops early and reports what it measured, with a `server_died`
/// error.
///
/// The phases, in order: [`Run::start`] (the shared state and the server's figures before),
/// [`ramp`] (connect the clients), [`window`] (publish, sample, inject faults), [`drain`]
/// (wait for the last deliveries), [`finish`] (stop the clients) and [`tally`] (the figures).
pub async fn run(
    plan: &Plan,
    transport: &'static str,
    addr: SocketAddr,
    alive: &mut dyn FnMut() -> bool,
) -> anyhow::Result<TransportResult> {
    let run = Run::start(plan, transport, addr).await?;
    let (tasks, connected) = ramp(&run, alive).await;
    let window = window(&run, connected, alive).await?;
    let drained = drain(&run, &window).await?;
    let (finished, after) = finish(&run, &window, tasks).await;
    Ok(tally(&run, &window, &drained, &finished, after.as_ref()))
}

/// What every phase of one run shares.
struct Run<'a> {
    plan: &'a Plan,
    transport: &'static str,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    /// Stops the clients at the end.
    stop: CancellationToken,
    ctx: Arc<Ctx>,
    /// `--feed draw`: the clients are the senders (`crate::draw`).
    sending: Option<Arc<Sending>>,
    progress: ProgressBar,
    /// The feed's newest id before the run (chat and draw), where every client starts.
    cursor: Option<u64>,
    /// The server's figures before the clients connected.
    before: Snapshot,
    /// A faulted run tags every client so the injector can break it (see `faults`).
    faults: Option<Arc<FaultState>>,
}

impl<'a> Run<'a> {
    async fn start(
        plan: &'a Plan,
        transport: &'static str,
        addr: SocketAddr,
    ) -> anyhow::Result<Run<'a>> {
        let sending = (plan.feed == "draw")
            .then(|| Arc::new(Sending::new(plan.send_rate, plan.duration, plan.clients)));
        let ctx = Ctx::new(
            addr,
            plan.feed,
            plan.clients,
            plan.poll_interval,
            sending.clone(),
        );
        let (metrics, stop) = (ctx.metrics.clone(), ctx.stop.clone());
        let progress = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {prefix:>8} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        progress.set_prefix(transport);
        progress.enable_steady_tick(Duration::from_millis(120));

        let cursor = if plan.feed == "chat" {
            Some(server::chat_cursor(addr).await?)
        } else if plan.feed == "draw" {
            Some(server::draw_cursor(addr).await?)
        } else {
            None
        };
        let before = server::stats(addr).await?;
        let faults = if plan.faults.enabled() {
            Some(FaultState::new(plan.clients)?)
        } else {
            None
        };
        Ok(Run {
            plan,
            transport,
            addr,
            metrics,
            stop,
            ctx,
            sending,
            progress,
            cursor,
            before,
            faults,
        })
    }
}

/// Connects the clients, spread over the ramp, then waits (up to 15 s, while the server is
/// alive) for all of them to be connected. Returns the client tasks and how many connected;
/// the missing ones are counted as an error.
async fn ramp(run: &Run<'_>, alive: &mut dyn FnMut() -> bool) -> (Vec<JoinHandle<Client>>, usize) {
    let (plan, metrics, progress) = (run.plan, &run.metrics, &run.progress);
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
        tasks.push(tokio::spawn(clients::run(
            run.ctx.clone(),
            run.transport,
            client,
        )));
        let due = ramp_start + step.mul_f64((i + 1) as f64);
        tokio::time::sleep_until(due.into()).await;
        if i % 256 == 0 {
            progress.set_message(format!(
                "connecting {}/{}",
                metrics.connected.load(Relaxed),
                plan.clients
            ));
        }
    }
    let connect_deadline = Instant::now() + Duration::from_secs(15);
    while metrics.connected.load(Relaxed) < plan.clients
        && Instant::now() < connect_deadline
        && alive()
    {
        progress.set_message(format!(
            "connecting {}/{}",
            metrics.connected.load(Relaxed),
            plan.clients
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = metrics.connected.load(Relaxed);
    if connected < plan.clients {
        metrics.error(format!("not_connected_{}", plan.clients - connected));
    }
    (tasks, connected)
}

/// The measured window, as it stood when publishing ended.
struct Window {
    /// The server's figures as the window opened.
    start: Snapshot,
    started: Instant,
    /// The load tester's CPU seconds, client requests and socket bytes as it opened.
    own_cpu_before: f64,
    requests_before: u64,
    io_before: IoSnapshot,
    /// Sampled once a second while publishing.
    rss_peak: u64,
    open_peak: i64,
    /// The server died (or stopped answering) during the window.
    died: bool,
    /// The chat messages the server acknowledged: (id, room index).
    acked: Vec<(u64, usize)>,
}

/// The measured window: publish for the duration (chat) or let the clients send (draw),
/// with the fault injector breaking connections, sampling the server's RSS and open
/// connections every second.
async fn window(
    run: &Run<'_>,
    connected: usize,
    alive: &mut dyn FnMut() -> bool,
) -> anyhow::Result<Window> {
    let (plan, addr, metrics) = (run.plan, run.addr, &run.metrics);
    let publisher = match plan.feed {
        "chat" => Some(Publisher::connect(addr, plan.rate).await?),
        _ => None,
    };
    let start = server::stats(addr).await?;
    let own_cpu_before = own_cpu_seconds();
    let requests_before = metrics.requests.load(Relaxed);
    let io_before = metrics.io.snapshot();
    let started = Instant::now();
    if let Some(sending) = &run.sending {
        sending.go.cancel();
    }
    let acked = Arc::new(Mutex::new(Vec::new()));
    let publishing = {
        let (metrics, acked) = (metrics.clone(), acked.clone());
        let (rate, duration, rooms, size) =
            (plan.rate, plan.duration, plan.rooms, plan.message_size);
        tokio::spawn(async move {
            match publisher {
                Some(p) => p.run(rate, duration, rooms, size, metrics, acked).await,
                None => tokio::time::sleep(duration).await,
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
    let mut rss_peak = start.process.rss_bytes;
    let mut open_peak = start.connections.open;
    let mut died = false;
    let mut last = (Instant::now(), 0u64);
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    while !publishing.is_finished() {
        sample.tick().await;
        if !alive() {
            died = true;
            break;
        }
        match server::stats(addr).await {
            Ok(s) => {
                rss_peak = rss_peak.max(s.process.rss_bytes);
                open_peak = open_peak.max(s.connections.open);
            }
            Err(_) => {
                died = true;
                break;
            }
        }
        let delivered = metrics.delivered.load(Relaxed);
        let rate = (delivered - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
        last = (Instant::now(), delivered);
        run.progress.set_message(format!(
            "{connected}/{} connected · {rate:>9.0} events/s · {} errors",
            plan.clients,
            metrics.error_count()
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
        requests_before,
        io_before,
        rss_peak,
        open_peak,
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
    /// The window's length, drain included, and what the load tester did within it.
    window_s: f64,
    requests_in_window: u64,
    io_in_window: IoSnapshot,
    own_cpu: f64,
    /// The server's figures at the end of the window (none if it died).
    after_window: Option<Snapshot>,
}

/// Drain: wait until every client has every acknowledged message of its room, or until the
/// slowest transport had ample time to deliver. Closes the measured window.
async fn drain(run: &Run<'_>, window: &Window) -> anyhow::Result<Drained> {
    let (plan, addr, metrics, died) = (run.plan, run.addr, &run.metrics, window.died);
    let per_room = count_per_room(&window.acked, plan.rooms);
    let mut expected: u64 = (0..plan.clients).map(|i| per_room[i % plan.rooms]).sum();
    // `--feed draw`: every stroke the server published in the run, to every client. Read
    // after the senders' window (a send still in flight may add a stroke or two later; the
    // drain below waits for them, and the count is read again at the end).
    let mut published = 0;
    if let (Some(start), false) = (run.cursor.filter(|_| plan.feed == "draw"), died) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        published = server::draw_cursor(addr).await?.saturating_sub(start);
        expected = published * plan.clients as u64;
    }
    let drain_until = Instant::now() + plan.drain;
    while !died
        && (plan.feed == "chat" || plan.feed == "draw")
        && metrics
            .delivered
            .load(Relaxed)
            .saturating_sub(metrics.duplicates.load(Relaxed))
            < expected
        && Instant::now() < drain_until
    {
        run.progress.set_message(format!(
            "draining {}/{expected}",
            metrics.delivered.load(Relaxed)
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window_s = window.started.elapsed().as_secs_f64();
    let requests_in_window = metrics.requests.load(Relaxed) - window.requests_before;
    let io_in_window = metrics.io.snapshot().since(window.io_before);
    let own_cpu = own_cpu_seconds() - window.own_cpu_before;
    let after_window = if died {
        None
    } else {
        server::stats(addr).await.ok()
    };
    Ok(Drained {
        per_room,
        expected,
        published,
        window_s,
        requests_in_window,
        io_in_window,
        own_cpu,
        after_window,
    })
}

/// Stops the clients and collects them, then reads the server's figures once the requests
/// they sent just before stopping are in (none if it died).
async fn finish(
    run: &Run<'_>,
    window: &Window,
    tasks: Vec<JoinHandle<Client>>,
) -> (Vec<Client>, Option<Snapshot>) {
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
        server::stats(run.addr).await.ok()
    };
    run.progress.finish_and_clear();
    (finished, after)
}

/// Turns what was counted into the transport's result: loss per client against what its
/// room was sent, and every figure per event and per second.
fn tally(
    run: &Run<'_>,
    window: &Window,
    drained: &Drained,
    finished: &[Client],
    after: Option<&Snapshot>,
) -> TransportResult {
    let (plan, transport, metrics) = (run.plan, run.transport, &run.metrics);
    let (per_room, published) = (&drained.per_room, drained.published);
    // Loss: per client, the acknowledged messages of its room it never received.
    let acked_ids: HashMap<u64, usize> = window.acked.iter().copied().collect();
    let (mut received, mut lost) = (0u64, 0u64);
    for client in finished {
        let room = client.index % plan.rooms;
        let got = client
            .seen
            .iter()
            .filter(|id| acked_ids.get(id) == Some(&room))
            .count() as u64;
        received += got;
        lost += per_room[room] - got.min(per_room[room]);
    }
    // `--feed draw`: each client must have seen every stroke published after the cursor.
    if plan.feed == "draw" {
        received = finished.iter().map(|c| c.seen.len() as u64).sum();
        lost = finished
            .iter()
            .map(|c| published.saturating_sub(c.seen.len() as u64))
            .sum();
    }
    let (events_expected, events_received) = match plan.feed {
        "chat" | "draw" => (drained.expected, received),
        // The clock is a state feed: ticks a client polls past are skipped by design. Its
        // "expected" is what the clients together saw, so `lost` stays 0 and meaningless.
        _ => {
            let got: u64 = finished.iter().map(|c| c.seen.len() as u64).sum();
            (got, got)
        }
    };
    let lost = if plan.feed == "chat" || plan.feed == "draw" {
        lost
    } else {
        0
    };

    let figures = |s: Option<&Snapshot>| {
        s.map(|s| s.transports[transport].clone())
            .unwrap_or_default()
    };
    let server_cpu_s = drained
        .after_window
        .as_ref()
        .map(|a| {
            (a.process.cpu_user_s + a.process.cpu_system_s)
                - (window.start.process.cpu_user_s + window.start.process.cpu_system_s)
        })
        .unwrap_or(0.0);
    let mut result = transport_result(Counted {
        transport,
        plan,
        metrics,
        window_s: drained.window_s,
        io_in_window: drained.io_in_window,
        requests_in_window: drained.requests_in_window,
        events_expected,
        events_received,
        lost,
        server_requests: figures(after)
            .requests
            .saturating_sub(run.before.transports[transport].requests),
        server_cpu_s,
        server_rss_peak_bytes: window.rss_peak,
        open_connections_peak: window.open_peak,
        loadtest_cpu_s: drained.own_cpu,
    });
    result.faults = run.faults.as_ref().map(|state| {
        let unrecovered = finished.iter().filter(|c| c.awaiting_recovery()).count();
        state.result(&plan.faults, unrecovered as u64)
    });
    result.draw = run
        .sending
        .as_ref()
        .map(|s| DrawCost::of(s, transport, published));
    result
}

/// What one transport's run counted, whatever server it ran against (pushpoll, or a peer
/// such as nchan): [`transport_result`] turns it into the figures per event and per second.
pub(crate) struct Counted<'a> {
    pub transport: &'a str,
    pub plan: &'a Plan,
    pub metrics: &'a Metrics,
    pub window_s: f64,
    pub io_in_window: IoSnapshot,
    pub requests_in_window: u64,
    pub events_expected: u64,
    pub events_received: u64,
    pub lost: u64,
    pub server_requests: u64,
    pub server_cpu_s: f64,
    pub server_rss_peak_bytes: u64,
    pub open_connections_peak: i64,
    pub loadtest_cpu_s: f64,
}

/// The one place a transport's result is computed from its counts, for pushpoll and peer
/// runs alike (faults and draw costs are pushpoll's, added by its caller).
pub(crate) fn transport_result(c: Counted<'_>) -> TransportResult {
    let metrics = c.metrics;
    let (window_s, io_in_window) = (c.window_s, c.io_in_window);
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
        lost: c.lost,
        duplicates: metrics.duplicates.load(Relaxed),
        requests: metrics.requests.load(Relaxed),
        requests_per_s: c.requests_in_window as f64 / window_s.max(1e-9),
        server_requests: c.server_requests,
        latency_us: summarize(&metrics.merged()),
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
        draw: None,
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
pub fn own_cpu_seconds() -> f64 {
    let p = pushpoll::stats::Process::now();
    p.cpu_user_s + p.cpu_system_s
}
