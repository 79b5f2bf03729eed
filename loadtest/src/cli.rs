//! Command-line options, as typed: a leaf that imports nothing of ours. `plan` validates
//! them into a plan (the plan depends on the options, never the other way).

use clap::{Args, Parser, Subcommand};
use pushpoll::names::Transport;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Runs the same workload over each pushpoll transport and measures what it costs."
)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure one transport.
    Run {
        /// The transport to measure, by its name in the server's URLs (an unknown name is
        /// refused with the list of known ones).
        #[arg(long, value_parser = str::parse::<Transport>)]
        transport: Transport,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Measure every transport one after another on the same workload.
    Compare {
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Mixed traffic for a long time against a running server (every transport on both
    /// feeds, chat senders, reconnects, a few hostile clients), sampled at intervals
    /// (`scripts/soak.sh` starts the server and runs this).
    Soak(SoakArgs),
    /// Draw every chart under each DIR again from the data beside it (a run's, a soak's or a
    /// side-by-side report's summary.json; the runs of a churn or a storm), with the code the
    /// runs draw with. --check writes nothing and fails, naming each chart that differs.
    Charts(ChartsArgs),
    /// The side-by-side report of scripts/bench-peers.sh: reads DIR's runs and wrk outputs,
    /// writes DIR/table.md, summary.json, summary.csv and the charts.
    #[command(name = "side-by-side", visible_alias = "peers")]
    SideBySide(SideBySideArgs),
    /// CPU per received WebSocket message of the load tester's own client, fastwebsockets
    /// and tokio-tungstenite, against a pushpoll server it starts (`scripts/bench-wsclient.sh`).
    WsClients(WsClientsArgs),
}

/// What `run` and `compare` share: the workload, the server, the faults, the target.
#[derive(Debug, Clone, Args)]
pub struct MeasureArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub faults: FaultArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// The running server (loopback only), e.g. http://127.0.0.1:3000.
    #[arg(long)]
    pub url: String,
    /// How long the soak runs.
    #[arg(long, default_value = "600s")]
    pub duration: String,
    /// How often RSS, open connections and the last window's p99 are recorded.
    #[arg(long, default_value = "60s")]
    pub sample_every: String,
    /// Subscribers per transport and feed (so 10 groups); a quarter of them drop their
    /// connection every 10-30 s and resume from their cursor.
    #[arg(long, default_value_t = 30)]
    pub clients: u64,
    /// Chat messages published per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Chat rooms; chat subscriber i follows room i mod N.
    #[arg(long, default_value_t = 4)]
    pub rooms: u64,
    /// The RSS growth after warm-up that still counts as flat, in percent.
    #[arg(long, default_value_t = 10.0)]
    pub rss_tolerance: f64,
    /// Where the samples, chart and README go.
    #[arg(long, default_value = "results/soak")]
    pub out: std::path::PathBuf,
    /// Leave the hostile clients out (to tell their effect from the normal traffic's).
    #[arg(long)]
    pub no_hostile: bool,
    /// How the soak was started, for the README (scripts/soak.sh passes its command).
    #[arg(long)]
    pub invoked_as: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// The feed the subscribers follow.
    #[arg(long, default_value = "chat", value_parser = feed_names())]
    pub feed: String,
    /// Subscribers.
    #[arg(long, default_value_t = 200)]
    pub clients: u64,
    /// Chat messages published per second, by a separate publisher.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// How long the publisher publishes (the measured window, before the drain).
    #[arg(long, default_value = "20s")]
    pub duration: String,
    /// How long connecting all clients is spread over.
    #[arg(long, default_value = "2s")]
    pub ramp: String,
    /// Short polling's interval; 0 polls again as soon as each answer is in (closed loop).
    #[arg(long, default_value = "1s")]
    pub poll_interval: String,
    /// Chat rooms; client i follows room i mod N.
    #[arg(long, default_value_t = 1)]
    pub rooms: u64,
    /// Bytes of text per chat message.
    #[arg(long, default_value_t = 100)]
    pub message_size: u64,
    /// `--feed draw`: strokes each client sends per second (one stroke of 16 points per
    /// send) over its transport's upstream: frames on its socket, or `POST /api/draw`.
    #[arg(long, default_value_t = 1.0)]
    pub send_rate: f64,
    /// WebTransport sessions in datagram mode (`--feed clock` or `draw`): each event one
    /// datagram, which QUIC does not resend; the events missing are reported as datagram
    /// loss, apart from `lost`. The other transports are unchanged.
    #[arg(long)]
    pub datagrams: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A running server (loopback only); without it loadtest starts pushpoll itself.
    /// Repeatable: several nodes of one cluster (`--url A --url B`); subscriber i connects to
    /// the (i mod N)-th, the publisher to the first, and the results gain a row per node.
    #[arg(long)]
    pub url: Vec<String>,
    /// The pid of the Redis server behind the nodes: its CPU time over the measured window
    /// (utime + stime from /proc/PID/stat) is reported as its own column.
    #[arg(long, value_name = "PID")]
    pub redis_pid: Option<u32>,
    /// Where the results go (default `results/<UTC date>-<workload>/`).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Fault injection (see `faults`): breaks through the server's diagnostics kill.
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// Break this fraction of the clients' connections per second (e.g. 0.05); 0 tags the
    /// clients as a faulted run does but breaks nothing (a baseline).
    #[arg(long)]
    pub churn: Option<f64>,
    /// Break every client's connection at once, this long into the measured window.
    #[arg(long)]
    pub storm: Option<String>,
    /// Reconnect on the plain exponential schedule (100 ms doubling to 2 s) without jitter.
    #[arg(long)]
    pub no_jitter: bool,
    /// A run of the same workload without breaks (`--churn 0`): recovery's extra requests
    /// and bytes are charged against it.
    #[arg(long)]
    pub baseline: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ChartsArgs {
    /// Write nothing: fail, naming each chart that differs from what its data draws, is
    /// missing, or is drawn by no data.
    #[arg(long)]
    pub check: bool,
    /// Results directories, each with every directory below it.
    #[arg(default_value = "results")]
    pub dirs: Vec<std::path::PathBuf>,
}

/// Which server is measured: pushpoll, or nchan, which it is compared with (see `nchan`).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// pushpoll, or nchan: a running nginx + Nchan (scripts/nchan.sh, peers/nchan.conf),
    /// which needs --url. nchan has no forever-frame (iframe) subscriber, chooses its own
    /// message ids (TIME:SEQ), sends no gap signal and keeps messages in memory only:
    /// docs/NCHAN.md says what that changes in the figures.
    #[arg(long, default_value = "pushpoll")]
    pub peer: String,
}

#[derive(Debug, Clone, Args)]
pub struct SideBySideArgs {
    /// The directory scripts/bench-peers.sh wrote (runs/LABEL/TRANSPORT-N/, wrk/LABEL/).
    pub dir: std::path::PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct WsClientsArgs {
    /// Subscribers of each client kind, all on one chat room.
    #[arg(long, default_value_t = 500)]
    pub connections: u64,
    /// Chat messages published per second; at most 45, so the publisher's sessions (one per
    /// 1.5 msg/s) sign in within the server's 30 logins a minute.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Each message's text, in bytes.
    #[arg(long, default_value_t = 100)]
    pub message_size: usize,
    /// How long each phase publishes.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Phases per client kind, taken in turns.
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
    /// Where summary.json goes.
    #[arg(long, default_value = "results/wsclient")]
    pub out: std::path::PathBuf,
}

/// `--feed`'s values: the server's feed names, so `--help` lists them from `names.rs`.
fn feed_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(pushpoll::names::FeedName::ALL.map(|f| f.as_str()))
}
