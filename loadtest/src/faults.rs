//! Fault injection: `--churn RATE` breaks that fraction of the clients' connections per
//! second, `--storm AT` breaks all of them at once `AT` into the measured window. Both go
//! through the server's diagnostics kill (`POST /api/debug/kill`), so a break is what a
//! network failure looks like to the client: a stream or held long poll cut off mid-body, a
//! WebSocket gone without a close frame. A short poll holds nothing between its requests, so
//! a kill finds nothing to break there, and the report says so (`breaks` 0).
//!
//! Each client carries its own diagnostics tag (`lt-` + 128 random bits in hex + `-` + its
//! index), so one kill breaks one client. The server keeps at most 256 tags (docs/API.md,
//! Limits); a faulted run is therefore limited to [`MAX_FAULT_CLIENTS`] clients, so no tag is
//! forgotten (and a kill silently lost) in the middle of a run.
//!
//! Definitions, as reported:
//! - *break time*: taken just before the kill request is sent;
//! - `reconnect_us`: from the break to the client's new connection answering (response head,
//!   or the WebSocket upgrade);
//! - `recovery_us`: from the break to the next feed event delivered to that client (a new id,
//!   so a replayed one counts: resuming from the cursor is the recovery);
//! - `recovery_requests`: requests the client sent between seeing its connection fail and
//!   that next event (failed attempts included);
//! - `extra_requests`, `extra_bytes_in`/`_out`: this run minus a baseline run of the same
//!   workload without breaks (`--baseline DIR`, made with `--churn 0`, which tags the
//!   clients the same way but breaks nothing), when one is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use pushpoll::feed::clock::now_micros;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::cli::FaultArgs;
use crate::net::{Http, IoCounters, body};
use crate::report::{FaultResult, Percentiles, StormRate, Summary, TransportResult};

/// The most clients a faulted run may have: one diagnostics tag each, below the server's
/// 256 tags so that a page open on the same server still has room.
pub const MAX_FAULT_CLIENTS: usize = 200;

/// Requests are counted in buckets this wide, for the storm's request rate.
const BUCKET: Duration = Duration::from_millis(10);
/// The bucket array covers this much time from the start of the run (then stops counting).
const BUCKETS: usize = 60_000;
/// The storm's timeline in the report: this long before the storm and after it.
const TIMELINE_BEFORE: Duration = Duration::from_millis(500);
const TIMELINE_AFTER: Duration = Duration::from_millis(3000);
/// The longest a churn or storm kill request may take before it counts as failed.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// The end of the measured window without breaks: a client broken after the last published
/// event would have no next event to recover to.
const QUIET_END: Duration = Duration::from_secs(1);
/// How many connections send a storm's kills at once.
const STORM_SENDERS: usize = 8;

/// The fault options, validated.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Fraction of the clients broken per second.
    pub churn: Option<f64>,
    /// When, into the measured window, every client is broken.
    pub storm: Option<Duration>,
    /// Backoff with full jitter (the default), or the plain exponential schedule.
    pub jitter: bool,
    /// A run without breaks to charge recovery's extra requests and bytes against.
    pub baseline: Option<PathBuf>,
}

impl FaultPlan {
    pub fn new(args: &FaultArgs, clients: usize, duration: Duration) -> anyhow::Result<FaultPlan> {
        if let Some(rate) = args.churn
            && !(0.0..=1.0).contains(&rate)
        {
            bail!("--churn {rate} is out of range: use a fraction from 0 to 1 (per second)");
        }
        let storm = match &args.storm {
            None => None,
            Some(at) => {
                let at = pushpoll::config::parse_duration(at)
                    .map_err(|e| anyhow::anyhow!("--storm {at:?}: {e}"))?;
                if at + QUIET_END > duration {
                    bail!(
                        "--storm {at:?} must leave {QUIET_END:?} of the measured window ({duration:?}) after it, for the recovery"
                    );
                }
                Some(at)
            }
        };
        let plan = FaultPlan {
            churn: args.churn,
            storm,
            jitter: !args.no_jitter,
            baseline: args.baseline.clone(),
        };
        if plan.enabled() && clients > MAX_FAULT_CLIENTS {
            bail!(
                "--churn/--storm give each client a diagnostics tag, and the server keeps 256: use at most {MAX_FAULT_CLIENTS} clients"
            );
        }
        if plan.baseline.is_some() && !plan.enabled() {
            bail!("--baseline only means something with --churn or --storm");
        }
        Ok(plan)
    }

    /// Whether the clients are tagged and a fault injector runs.
    pub fn enabled(&self) -> bool {
        self.churn.is_some() || self.storm.is_some()
    }
}

/// 16 bytes from the OS, as 32 hex digits.
fn random_hex() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the diagnostics tags")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the clients and the injector of one faulted run share.
pub struct FaultState {
    run_id: String,
    origin: Instant,
    /// Per client: when its connection was broken on purpose (µs, wall clock), 0 if not.
    broken_at: Vec<AtomicU64>,
    /// Requests sent per [`BUCKET`] since `origin`.
    buckets: Vec<AtomicU64>,
    /// The bucket the storm fired in, plus one (0: no storm yet).
    storm_bucket: AtomicU64,
    /// How long sending all the storm's kills took, µs: the breaks are spread over it.
    storm_kills_us: AtomicU64,
    kills_sent: AtomicU64,
    kill_failures: AtomicU64,
    /// Connections the server said it dropped.
    breaks: AtomicU64,
    /// Breaks the clients saw (their session ended while marked broken).
    breaks_seen: AtomicU64,
    recovery_requests: AtomicU64,
    reconnect: Mutex<Histogram<u64>>,
    recovery: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|e| unreachable!("valid bounds: {e}"))
}

impl FaultState {
    pub fn new(clients: usize) -> anyhow::Result<Arc<FaultState>> {
        Ok(Arc::new(FaultState {
            run_id: random_hex()?,
            origin: Instant::now(),
            broken_at: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            storm_bucket: AtomicU64::new(0),
            storm_kills_us: AtomicU64::new(0),
            kills_sent: AtomicU64::new(0),
            kill_failures: AtomicU64::new(0),
            breaks: AtomicU64::new(0),
            breaks_seen: AtomicU64::new(0),
            recovery_requests: AtomicU64::new(0),
            reconnect: Mutex::new(histogram()),
            recovery: Mutex::new(histogram()),
        }))
    }

    /// Client `index`'s diagnostics tag: 22–64 characters of `[A-Za-z0-9_-]`, 128 random
    /// bits (the run's) and the index.
    pub fn tag(&self, index: usize) -> String {
        format!("lt-{}-{index}", self.run_id)
    }

    /// Counts one request in the rate timeline.
    pub fn requested(&self, awaiting_recovery: bool) {
        let i = (self.origin.elapsed().as_nanos() / BUCKET.as_nanos()) as usize;
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        if awaiting_recovery {
            self.recovery_requests.fetch_add(1, Relaxed);
        }
    }

    /// Called when client `index`'s session ended: the break time if it was broken on
    /// purpose (and the mark is taken: the next break is a new one).
    pub fn take_break(&self, index: usize) -> Option<u64> {
        let at = self.broken_at.get(index)?.swap(0, Relaxed);
        if at == 0 {
            return None;
        }
        self.breaks_seen.fetch_add(1, Relaxed);
        Some(at)
    }

    pub fn reconnected(&self, broken_at: u64) {
        let mut h = self.reconnect.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(now_micros().saturating_sub(broken_at).max(1));
    }

    pub fn recovered(&self, broken_at: u64) {
        let mut h = self.recovery.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(now_micros().saturating_sub(broken_at).max(1));
    }

    fn busy(&self, index: usize) -> bool {
        self.broken_at[index].load(Relaxed) != 0
    }
}

/// Sends the kills while the window lasts: churn every 100 ms, the storm once at its time.
/// Churn stops [`QUIET_END`] before the end of the window (`duration`), so that every
/// broken client has events to recover to; `stop` ends it early.
pub async fn inject(
    state: Arc<FaultState>,
    plan: FaultPlan,
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    stop: CancellationToken,
) {
    let io = Arc::new(IoCounters::default());
    let Ok(mut http) = Http::connect(addr, &io).await else {
        state.kill_failures.fetch_add(1, Relaxed);
        return;
    };
    let start = Instant::now();
    let mut storm = plan.storm.map(|at| start + at);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut credit = 0.0f64;
    // xorshift: which client a churn break picks; only needs to be spread, not secret.
    let mut rng = u64::from_str_radix(&state.run_id[..16], 16).unwrap_or(1) | 1;
    loop {
        let next = match storm {
            Some(at) => tokio::time::Instant::from_std(at),
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next), if storm.is_some() => {
                storm = None;
                storm_now(&state, addr, clients).await;
                continue;
            }
            _ = tick.tick() => {}
        }
        let Some(rate) = plan.churn else { continue };
        if start.elapsed() + QUIET_END > duration {
            continue;
        }
        credit += rate * clients as f64 * 0.1;
        while credit >= 1.0 {
            credit -= 1.0;
            // A client still recovering from its last break is left alone (try a few).
            let mut pick = None;
            for _ in 0..8 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng % clients as u64) as usize;
                if !state.busy(i) {
                    pick = Some(i);
                    break;
                }
            }
            let Some(i) = pick else { continue };
            if kill(&state, &mut http, i).await.is_err() {
                state.kill_failures.fetch_add(1, Relaxed);
                match Http::connect(addr, &io).await {
                    Ok(fresh) => http = fresh,
                    Err(_) => return,
                }
            }
        }
    }
}

/// Breaks every client at once: all marked first, then the kills sent over
/// [`STORM_SENDERS`] connections in parallel (a few ms for 200).
async fn storm_now(state: &Arc<FaultState>, addr: SocketAddr, clients: usize) {
    let bucket = state.origin.elapsed().as_nanos() / BUCKET.as_nanos();
    state.storm_bucket.store(bucket as u64 + 1, Relaxed);
    let mut senders = Vec::new();
    for s in 0..STORM_SENDERS {
        let state = state.clone();
        senders.push(tokio::spawn(async move {
            let io = Arc::new(IoCounters::default());
            let Ok(mut http) = Http::connect(addr, &io).await else {
                state.kill_failures.fetch_add(1, Relaxed);
                return;
            };
            for i in (s..clients).step_by(STORM_SENDERS) {
                if kill(&state, &mut http, i).await.is_err() {
                    state.kill_failures.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    for sender in senders {
        let _ = sender.await;
    }
    state
        .storm_kills_us
        .store(started.elapsed().as_micros() as u64, Relaxed);
}

#[derive(Deserialize)]
struct Killed {
    killed: u64,
}

/// Marks client `i` broken, then asks the server to drop its connections. The mark comes
/// first so the client, seeing its connection fail, knows it was on purpose; if the server
/// had nothing open for the tag (a short poll between requests, a long poll between its
/// answer and the next ask) the mark is taken back.
async fn kill(state: &FaultState, http: &mut Http, i: usize) -> anyhow::Result<()> {
    let at = now_micros();
    state.broken_at[i].store(at, Relaxed);
    state.kills_sent.fetch_add(1, Relaxed);
    let request = serde_json::to_vec(&serde_json::json!({ "tag": state.tag(i) }))?;
    let answer = tokio::time::timeout(KILL_TIMEOUT, async {
        let response = http
            .send(
                hyper::Method::POST,
                "/api/debug/kill",
                None,
                Some(Bytes::from(request)),
            )
            .await?;
        // Only success or failure matters here (a failed kill is counted), so the check is
        // this one line rather than the clients' `expect_status`, which faults must not import.
        anyhow::ensure!(
            response.status() == hyper::StatusCode::OK,
            "kill answered {}",
            response.status()
        );
        let killed: Killed = serde_json::from_slice(&body(response).await?)?;
        anyhow::Ok(killed.killed)
    })
    .await;
    let killed = match answer {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            let _ = state.broken_at[i].compare_exchange(at, 0, Relaxed, Relaxed);
            return Err(e);
        }
        Err(_) => {
            let _ = state.broken_at[i].compare_exchange(at, 0, Relaxed, Relaxed);
            bail!("kill timed out");
        }
    };
    state.breaks.fetch_add(killed, Relaxed);
    if killed == 0 {
        let _ = state.broken_at[i].compare_exchange(at, 0, Relaxed, Relaxed);
    }
    Ok(())
}

fn percentiles(h: &Mutex<Histogram<u64>>) -> Percentiles {
    let h = h.lock().unwrap_or_else(|p| p.into_inner());
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
    }
}

impl FaultState {
    /// The figures, once the clients have finished (`unrecovered` counted by the runner).
    pub fn result(&self, plan: &FaultPlan, unrecovered: u64) -> FaultResult {
        let storm = match self.storm_bucket.load(Relaxed) {
            0 => None,
            b => {
                let at = (b - 1) as usize;
                let per = |d: Duration| (d.as_nanos() / BUCKET.as_nanos()) as usize;
                let from = at.saturating_sub(per(TIMELINE_BEFORE));
                let to = (at + per(TIMELINE_AFTER)).min(BUCKETS);
                let timeline: Vec<u64> = self.buckets[from..to]
                    .iter()
                    .map(|b| b.load(Relaxed))
                    .collect();
                let after = &timeline[at - from..];
                let before = &timeline[..at - from];
                StormRate {
                    peak_per_100ms: after.chunks(10).map(|c| c.iter().sum()).max().unwrap_or(0),
                    peak_per_10ms: after.iter().copied().max().unwrap_or(0),
                    before_per_100ms: before.iter().sum::<u64>() as f64
                        / (before.len().max(1) as f64 / 10.0),
                    kills_ms: self.storm_kills_us.load(Relaxed) as f64 / 1000.0,
                    timeline_10ms: timeline,
                }
                .into()
            }
        };
        FaultResult {
            churn: plan.churn,
            storm_at_s: plan.storm.map(|d| d.as_secs_f64()),
            jitter: plan.jitter,
            kills_sent: self.kills_sent.load(Relaxed),
            kill_failures: self.kill_failures.load(Relaxed),
            breaks: self.breaks.load(Relaxed),
            breaks_seen: self.breaks_seen.load(Relaxed),
            reconnect_us: percentiles(&self.reconnect),
            recovery_us: percentiles(&self.recovery),
            unrecovered,
            recovery_requests: self.recovery_requests.load(Relaxed),
            storm,
            extra_requests: None,
            extra_bytes_in: None,
            extra_bytes_out: None,
        }
    }
}

/// Charges `result` against the same transport in the baseline run at `dir`.
pub fn charge_baseline(dir: &Path, result: &mut TransportResult) -> anyhow::Result<()> {
    let path = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let base: Summary =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(b) = base
        .results
        .iter()
        .find(|b| b.transport == result.transport)
    else {
        bail!("{} has no {} result", path.display(), result.transport);
    };
    if let Some(f) = result.faults.as_mut() {
        f.extra_requests = Some(result.requests as i64 - b.requests as i64);
        f.extra_bytes_in = Some(result.bytes_in as i64 - b.bytes_in as i64);
        f.extra_bytes_out = Some(result.bytes_out as i64 - b.bytes_out as i64);
    }
    Ok(())
}

/// The faults table printed after a faulted run (Markdown, so it pastes into a README).
pub fn table(summary: &Summary) -> Option<String> {
    let rows: Vec<_> = summary
        .results
        .iter()
        .filter_map(|r| r.faults.as_ref().map(|f| (r, f)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let ms = |us: u64| format!("{:.0}", us as f64 / 1000.0);
    let opt = |v: Option<i64>| v.map_or_else(|| "—".to_string(), |v| v.to_string());
    let mut out = String::from(
        "| transport | breaks | reconnect p50/p99 ms | recovery p50/p99/max ms | lost | duplicates | unrecovered | recovery requests | extra requests | extra bytes in/out | storm: peak req/100 ms (steady) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (r, f) in rows {
        let storm = f.storm.as_ref().map_or_else(
            || "—".to_string(),
            |s| {
                format!(
                    "{} ({:.0}); {} per 10 ms; kills took {:.0} ms",
                    s.peak_per_100ms, s.before_per_100ms, s.peak_per_10ms, s.kills_ms
                )
            },
        );
        out.push_str(&format!(
            "| {} | {} | {}/{} | {}/{}/{} | {} | {} | {} | {} | {} | {}/{} | {} |\n",
            r.transport,
            f.breaks,
            ms(f.reconnect_us.p50),
            ms(f.reconnect_us.p99),
            ms(f.recovery_us.p50),
            ms(f.recovery_us.p99),
            ms(f.recovery_us.max),
            r.lost,
            r.duplicates,
            f.unrecovered,
            f.recovery_requests,
            opt(f.extra_requests),
            opt(f.extra_bytes_in),
            opt(f.extra_bytes_out),
            storm,
        ));
    }
    Some(out)
}

/// Full-jitter exponential backoff: the delay before reconnect attempt `attempt` (0-based)
/// is uniform in `[0, min(cap, base·2^attempt)]` with jitter, that upper bound without.
/// Without jitter, clients broken together retry together, every time.
pub fn backoff(attempt: u32, jitter: bool, rng: &mut u64) -> Duration {
    const BASE: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(2);
    let ceiling = BASE.saturating_mul(1u32 << attempt.min(10)).min(CAP);
    if !jitter {
        return ceiling;
    }
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    ceiling.mul_f64((*rng >> 11) as f64 / (1u64 << 53) as f64)
}

// ---------------------------------------------------------------------------------------------
// Charts (plotters' SVG backend, as in `export`)

fn read_summary(dir: &Path) -> anyhow::Result<Summary> {
    let path = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `loadtest fault-chart`: the churn run's recovery times per transport, or the storm's
/// request rate with and without jitter, into one SVG file.
pub fn chart(args: &crate::cli::FaultChartArgs) -> anyhow::Result<()> {
    let svg = match (&args.churn, &args.storm, &args.storm_no_jitter) {
        (Some(churn), None, None) => recovery_chart(&read_summary(churn)?)?,
        (None, Some(a), Some(b)) => storm_chart(&read_summary(a)?, &read_summary(b)?)?,
        _ => bail!("give either --churn DIR, or --storm DIR and --storm-no-jitter DIR"),
    };
    crate::export::write_atomic(&args.out, svg.as_bytes())?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}

/// Bars: reconnect p50, recovery p50 and p99 per transport that had breaks, in ms.
fn recovery_chart(summary: &Summary) -> anyhow::Result<String> {
    use plotters::prelude::*;
    let rows: Vec<(&str, [f64; 3])> = summary
        .results
        .iter()
        .filter_map(|r| {
            let f = r.faults.as_ref()?;
            Some((
                r.transport.as_str(),
                [
                    f.reconnect_us.p50 as f64 / 1000.0,
                    f.recovery_us.p50 as f64 / 1000.0,
                    f.recovery_us.p99 as f64 / 1000.0,
                ],
            ))
        })
        .collect();
    let top = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.15;
    let w = &summary.workload;
    let churn = summary
        .results
        .iter()
        .find_map(|r| r.faults.as_ref()?.churn)
        .unwrap_or(0.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Time to recover from a break, churn {churn}/s ({} {} clients, {} msg/s)",
                    w.clients, w.feed, w.rate
                ),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..rows.len().max(1) as f64, 0f64..top)
            .map_err(plot_err)?;
        let names: Vec<String> = rows.iter().map(|(n, _)| n.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("milliseconds from the break")
            .draw()
            .map_err(plot_err)?;
        let series = [
            ("reconnect p50", RGBColor(120, 170, 90)),
            ("recovery p50", RGBColor(66, 114, 196)),
            ("recovery p99", RGBColor(196, 61, 61)),
        ];
        for (j, (name, color)) in series.into_iter().enumerate() {
            let x0 = |i: usize| i as f64 + 0.15 + j as f64 * 0.23;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
                    Rectangle::new([(x0(i), 0.0), (x0(i) + 0.2, v[j])], color.filled())
                }))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// One panel per transport: requests per 10 ms around the storm, with and without jitter.
fn storm_chart(jitter: &Summary, plain: &Summary) -> anyhow::Result<String> {
    use plotters::prelude::*;
    let timeline = |s: &Summary, t: &str| -> Vec<u64> {
        s.results
            .iter()
            .find(|r| r.transport == t)
            .and_then(|r| r.faults.as_ref()?.storm.as_ref())
            .map(|s| s.timeline_10ms.clone())
            .unwrap_or_default()
    };
    let transports: Vec<String> = jitter
        .results
        .iter()
        .filter(|r| r.faults.as_ref().is_some_and(|f| f.breaks > 0))
        .map(|r| r.transport.clone())
        .collect();
    let before_ms = TIMELINE_BEFORE.as_millis() as f64;
    let after_ms = TIMELINE_AFTER.as_millis() as f64;
    let mut svg = String::new();
    {
        let height = 120 + 220 * transports.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let w = &jitter.workload;
        let (title, panels) = root.split_vertically(60);
        title
            .titled(
                &format!(
                    "Reconnect storm: requests per 10 ms after breaking all {} clients at once",
                    w.clients
                ),
                ("sans-serif", 20),
            )
            .map_err(plot_err)?;
        let areas = panels.split_evenly((transports.len().max(1), 1));
        for (t, area) in transports.iter().zip(areas.iter()) {
            let (a, b) = (timeline(jitter, t), timeline(plain, t));
            let top = a.iter().chain(b.iter()).copied().max().unwrap_or(1).max(1) as f64 * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption(t, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(-before_ms..after_ms, 0f64..top)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("ms from the storm")
                .y_desc("requests / 10 ms")
                .draw()
                .map_err(plot_err)?;
            for (data, name, color) in [
                (&b, "no jitter", RGBColor(196, 61, 61)),
                (&a, "full jitter", RGBColor(66, 114, 196)),
            ] {
                chart
                    .draw_series(LineSeries::new(
                        data.iter()
                            .enumerate()
                            .map(|(i, n)| (i as f64 * 10.0 - before_ms, *n as f64)),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_err)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_jitter_spreads_below_it() {
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        let plain: Vec<_> = (0..6).map(|a| backoff(a, false, &mut rng)).collect();
        assert_eq!(plain[0], Duration::from_millis(100));
        assert_eq!(plain[1], Duration::from_millis(200));
        assert_eq!(plain[4], Duration::from_millis(1600));
        assert_eq!(plain[5], Duration::from_secs(2));
        let jittered: Vec<_> = (0..1000).map(|_| backoff(0, true, &mut rng)).collect();
        assert!(jittered.iter().all(|d| *d <= Duration::from_millis(100)));
        let low = jittered
            .iter()
            .filter(|d| **d < Duration::from_millis(50))
            .count();
        assert!((400..=600).contains(&low), "{low} of 1000 below half");
    }

    #[test]
    fn tags_are_what_the_server_accepts() {
        let state = FaultState::new(3).unwrap();
        for i in [0, 199] {
            let tag = state.tag(i);
            assert!(pushpoll::diag::parse_tag(&tag).is_ok(), "{tag}");
        }
        assert_ne!(FaultState::new(1).unwrap().tag(0), state.tag(0));
    }

    #[test]
    fn a_storm_bucket_gives_the_peak_and_the_steady_rate_before() {
        let state = FaultState::new(1).unwrap();
        for (i, n) in [(100usize, 2u64), (140, 5), (149, 1), (160, 30), (161, 3)] {
            state.buckets[i].store(n, Relaxed);
        }
        state.storm_bucket.store(151, Relaxed);
        let r = state.result(&FaultPlan::default(), 0);
        let s = r.storm.unwrap();
        assert_eq!(s.peak_per_10ms, 30);
        assert_eq!(s.peak_per_100ms, 33);
        assert!((s.before_per_100ms - 8.0 / 5.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.timeline_10ms.len(), 350);
    }
}
