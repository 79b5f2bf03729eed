//! Command-line options, as typed; [`crate::plan`] validates them into a plan.

use clap::{Args, Parser, Subcommand};

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
        /// poll, longpoll, iframe, sse or ws.
        #[arg(long)]
        transport: String,
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Measure the five transports one after another on the same workload.
    Compare {
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// clock or chat.
    #[arg(long, default_value = "chat")]
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
}

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A running server (loopback only); without it loadtest starts pushpoll itself.
    #[arg(long)]
    pub url: Option<String>,
    /// Where the results go (default `results/<UTC date>-<workload>/`).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}
