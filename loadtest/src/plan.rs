//! The options, validated into what a run needs: every bad value is a one-line error here,
//! before any traffic.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pushpoll::config::parse_duration;
use pushpoll::names::FeedName;

use crate::cli::{TargetArgs, WorkloadArgs};
use crate::report::Workload;

#[derive(Debug, Clone)]
pub struct Plan {
    pub feed: FeedName,
    pub clients: usize,
    pub rate: f64,
    pub duration: Duration,
    pub ramp: Duration,
    pub poll_interval: Duration,
    pub rooms: usize,
    pub message_size: usize,
    /// `--feed draw`: strokes per second per client.
    pub send_rate: f64,
    /// `--datagrams`: WebTransport in datagram mode.
    pub datagrams: bool,
    /// How long to wait, after publishing, for the last deliveries.
    pub drain: Duration,
    /// The first `--url`: the publisher's node (and the only one a peer run takes).
    pub url: Option<String>,
    /// Every `--url`, in order: subscriber i goes to `urls[i % urls.len()]`.
    pub urls: Vec<String>,
    /// `--redis-pid`: the Redis process whose CPU time the run reports.
    pub redis_pid: Option<u32>,
    pub out: PathBuf,
    /// `--churn`/`--storm`/`--no-jitter` (set by [`Plan::with_faults`]).
    pub faults: crate::faults::FaultPlan,
}

/// More clients than this is a typo, not a load test on one machine.
pub const MAX_CLIENTS: u64 = 100_000;

/// More `--url`s than this is a typo: the nodes run on this machine (loopback only).
pub const MAX_NODES: usize = 64;

fn duration(flag: &str, value: &str) -> anyhow::Result<Duration> {
    parse_duration(value).map_err(|e| anyhow::anyhow!("--{flag} {value:?}: {e}"))
}

impl Plan {
    pub fn new(w: &WorkloadArgs, t: &TargetArgs) -> anyhow::Result<Plan> {
        let feed = w.feed.parse::<FeedName>()?;
        if !(w.send_rate > 0.0 && w.send_rate <= 100.0) {
            bail!(
                "--send-rate {} is out of range: use more than 0 and at most 100 strokes/s per client",
                w.send_rate
            );
        }
        if w.clients == 0 || w.clients > MAX_CLIENTS {
            bail!(
                "--clients {} is out of range: use 1 to {MAX_CLIENTS}",
                w.clients
            );
        }
        if !(w.rate > 0.0 && w.rate <= 10_000.0) {
            bail!(
                "--rate {} is out of range: use more than 0 and at most 10000 messages/s",
                w.rate
            );
        }
        if w.rooms == 0 || w.rooms > 1000 {
            bail!("--rooms {} is out of range: use 1 to 1000", w.rooms);
        }
        if !(1..=1900).contains(&w.message_size) {
            bail!(
                "--message-size {} is out of range: use 1 to 1900 bytes",
                w.message_size
            );
        }
        if w.datagrams && feed == FeedName::Chat {
            bail!(
                "--datagrams with --feed chat: the server refuses the chat in datagram mode (a message lost unseen is what the chat promises never happens); use --feed clock or draw"
            );
        }
        let duration_ = duration("duration", &w.duration)?;
        if duration_ > Duration::from_secs(3600) {
            bail!("--duration {} is longer than an hour", w.duration);
        }
        let ramp = duration("ramp", &w.ramp)?;
        // 0 makes short polling closed-loop: ask again as soon as the answer is in (a
        // throughput test of the generator and the server, not a realistic client).
        let poll_interval = match w.poll_interval.as_str() {
            "0" | "0s" | "0ms" => Duration::ZERO,
            other => duration("poll-interval", other)?,
        };
        if t.url.len() > MAX_NODES {
            bail!(
                "--url given {} times: at most {MAX_NODES} nodes",
                t.url.len()
            );
        }
        for url in &t.url {
            crate::server::parse_url(url)?;
        }
        // The canvas is each node's own (the chat is what a cluster shares), so draw clients
        // on several nodes would not see one feed.
        if t.url.len() > 1 && feed == FeedName::Draw {
            bail!("--feed draw with several --url: the canvas is per node; use chat or clock");
        }
        if let Some(pid) = t.redis_pid {
            crate::procfs::cpu_seconds(pid)
                .with_context(|| format!("--redis-pid {pid}: cannot read its CPU time"))?;
        }
        let name = format!(
            "{}-{}-{}c-{}r-{}",
            utc_date(),
            feed,
            w.clients,
            w.rate,
            w.duration
        );
        Ok(Plan {
            feed,
            clients: w.clients as usize,
            // The draw feed's publishers are the clients themselves: its rate is theirs together.
            rate: if feed == FeedName::Draw {
                w.send_rate * w.clients as f64
            } else {
                w.rate
            },
            duration: duration_,
            ramp,
            poll_interval,
            rooms: w.rooms as usize,
            message_size: w.message_size as usize,
            send_rate: w.send_rate,
            datagrams: w.datagrams,
            drain: (poll_interval * 3).max(Duration::from_secs(5)),
            url: t.url.first().cloned(),
            urls: t.url.clone(),
            redis_pid: t.redis_pid,
            out: t
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(name)),
            faults: crate::faults::FaultPlan {
                jitter: true,
                ..Default::default()
            },
        })
    }

    /// The plan with the fault options validated into it.
    pub fn with_faults(mut self, args: &crate::cli::FaultArgs) -> anyhow::Result<Plan> {
        self.faults = crate::faults::FaultPlan::new(args, self.clients, self.duration)?;
        // The injector breaks connections through one server's diagnostics.
        if self.urls.len() > 1 && self.faults.enabled() {
            bail!("--churn/--storm break connections through one server: give one --url");
        }
        Ok(self)
    }

    pub fn workload(&self) -> Workload {
        Workload {
            feed: self.feed.to_string(),
            clients: self.clients,
            rate: self.rate,
            duration_s: self.duration.as_secs_f64(),
            ramp_s: self.ramp.as_secs_f64(),
            poll_interval_ms: self.poll_interval.as_millis() as u64,
            rooms: self.rooms,
            message_size: self.message_size,
        }
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn utc_date() -> String {
    let ms = pushpoll::feed::clock::now_micros() / 1000;
    pushpoll::feed::clock::rfc3339_utc(ms - ms % 1000)[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> WorkloadArgs {
        WorkloadArgs {
            feed: "chat".into(),
            clients: 200,
            rate: 20.0,
            duration: "20s".into(),
            ramp: "2s".into(),
            poll_interval: "1s".into(),
            rooms: 1,
            message_size: 100,
            send_rate: 1.0,
            datagrams: false,
        }
    }

    fn target() -> TargetArgs {
        TargetArgs {
            url: Vec::new(),
            redis_pid: None,
            out: None,
        }
    }

    #[test]
    fn the_defaults_make_a_plan() {
        let plan = Plan::new(&workload(), &target()).unwrap();
        assert_eq!(plan.clients, 200);
        assert_eq!(plan.duration, Duration::from_secs(20));
        assert!(plan.out.starts_with("results"));
    }

    #[test]
    fn the_draw_feed_publishes_at_the_clients_rate_together() {
        let mut w = workload();
        w.feed = "draw".into();
        w.clients = 20;
        w.send_rate = 2.5;
        let plan = Plan::new(&w, &target()).unwrap();
        assert_eq!(
            (plan.feed, plan.send_rate, plan.rate),
            (FeedName::Draw, 2.5, 50.0)
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let bad = |f: fn(&mut WorkloadArgs)| {
            let mut w = workload();
            f(&mut w);
            Plan::new(&w, &target()).unwrap_err().to_string()
        };
        assert!(bad(|w| w.clients = 0).contains("--clients"));
        assert!(bad(|w| w.clients = 10_000_000).contains("--clients"));
        assert!(bad(|w| w.duration = "soon".into()).contains("--duration"));
        assert!(bad(|w| w.rate = 0.0).contains("--rate"));
        assert!(bad(|w| w.feed = "news".into()).contains("feed"));
        assert!(bad(|w| w.send_rate = 0.0).contains("--send-rate"));
        let remote = TargetArgs {
            url: vec!["http://192.168.1.1:80".into()],
            redis_pid: None,
            out: None,
        };
        assert!(
            Plan::new(&workload(), &remote)
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
    }
}
