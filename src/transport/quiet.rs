//! The heartbeat's timer: due once nothing went out for `--keepalive`.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// When a connection has been quiet for its period. A send only notes the time
/// ([`Quiet::sent`]); the timer is moved when it fires early, at most once a period, rather
/// than on every event (moving a timer takes the timer wheel's lock).
pub struct Quiet {
    timer: Interval,
    every: Duration,
    last: Instant,
}

impl Quiet {
    /// Quiet from now, due after `every`.
    pub fn new(every: Duration) -> Quiet {
        let now = Instant::now();
        let mut timer = tokio::time::interval_at(now + every, every);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Quiet {
            timer,
            every,
            last: now,
        }
    }

    /// Something went out now.
    pub fn sent(&mut self) {
        self.last = Instant::now();
    }

    /// Waits until nothing went out for the period. Cancel-safe.
    pub async fn due(&mut self) {
        loop {
            self.timer.tick().await;
            let due = self.last + self.every;
            if Instant::now() >= due {
                self.last = Instant::now();
                return;
            }
            self.timer.reset_at(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn due_after_a_quiet_period_only() {
        let every = Duration::from_secs(15);
        let start = Instant::now();
        let mut quiet = Quiet::new(every);
        quiet.due().await;
        assert_eq!(start.elapsed(), every);
        // A send 5 s into the next period pushes the heartbeat to 15 s after it.
        tokio::time::sleep(Duration::from_secs(5)).await;
        quiet.sent();
        quiet.due().await;
        assert_eq!(start.elapsed(), every + Duration::from_secs(5) + every);
        // Sends every 10 s keep it from ever being due.
        let mut quiet = Quiet::new(every);
        for _ in 0..12 {
            tokio::select! {
                () = quiet.due() => panic!("due {:?} after a send", every),
                () = tokio::time::sleep(Duration::from_secs(10)) => quiet.sent(),
            }
        }
    }
}
