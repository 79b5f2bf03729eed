//! Fault injection: `--churn RATE` breaks that fraction of the clients' connections per
//! second, `--storm AT` breaks all of them at once `AT` into the measured window. Both go
//! through the server's diagnostics kill (`POST /api/debug/kill`), so a break is what a
//! network failure looks like to the client: a stream or held long poll cut off mid-body, a
//! WebSocket gone without a close frame, a WebTransport session closed with QUIC's code 4
//! "killed" (which a browser reports as a network error). A short poll holds nothing between
//! its requests, so a kill finds nothing to break there, and the report says so (`breaks` 0).
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

mod backoff;
mod baseline;
mod charts;
mod inject;
mod state;
mod table;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::cli::FaultArgs;

pub use backoff::backoff;
pub use baseline::charge_baseline;
pub use charts::charts_of;
pub use inject::inject;
pub use state::FaultState;
pub use table::table;

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
