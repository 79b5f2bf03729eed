//! The clock feed: one `tick` event every `--tick-ms`, aligned to the wall clock, so that
//! a tick's id is the Unix time of the tick in milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::{Event, EventBody, Feed, Retention, WireEvent};
use crate::names::FeedName;

/// A state feed: only the latest tick is kept, and subscribers that fall more than a few
/// ticks behind skip to the newest one.
pub fn feed() -> Feed {
    Feed::new(
        FeedName::Clock,
        Retention::Latest,
        super::Limits::new(1, 16),
        None,
    )
}

/// Publishes a tick now (so there is always a latest one), then one on every multiple of
/// `every` of the wall clock, until `shutdown` fires.
pub async fn run(feed: Feed, every: Duration, shutdown: CancellationToken) {
    let every_ms = every.as_millis().max(1) as u64;
    loop {
        let now = now_micros();
        let id = (now / 1000).max(feed.latest_id().map_or(0, |last| last + 1));
        if let Err(err) = feed.publish(tick(id, now)) {
            tracing::warn!(%err, "clock tick refused");
        }
        // Sleep to the next wall-clock boundary, computed afresh each time so the ticker
        // never drifts and a late wake-up does not shift every later tick.
        let now_ms = now_micros() / 1000;
        let wait = every_ms - now_ms % every_ms;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

fn tick(id: u64, ts: u64) -> std::sync::Arc<Event> {
    Event::new(&WireEvent {
        id,
        ts,
        body: EventBody::Tick {
            time: rfc3339_utc(id),
        },
    })
}

/// What the test-only `--test-clock-offset-ms` adds to this process's wall clock, in µs.
/// Process-wide because the clock is: the one server of the binary sets it at start.
static TEST_OFFSET_MICROS: AtomicI64 = AtomicI64::new(0);

/// Shifts every later [`now_micros`] by `ms` (the test-only `--test-clock-offset-ms`): a server
/// whose clock disagrees with its clients', as on another machine, for the skewed-clock test.
pub fn set_test_offset_ms(ms: i64) {
    TEST_OFFSET_MICROS.store(ms.saturating_mul(1000), Ordering::Relaxed);
}

/// Microseconds since the Unix epoch, the unit of every event's `ts`: the server's only reading
/// of the wall clock (event stamps, the clock's ticks, `GET /api/time`, session activity), so
/// that the test-only offset moves all of them together.
pub fn now_micros() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    wall.saturating_add_signed(TEST_OFFSET_MICROS.load(Ordering::Relaxed))
}

/// `2026-11-22T02:47:48Z`, with `.mmm` milliseconds when they are not zero.
pub fn rfc3339_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's well-known `civil_from_days` algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_315_668_000), "2026-11-22T02:47:48Z");
        assert_eq!(rfc3339_utc(951_782_400_250), "2000-02-29T00:00:00.250Z");
        assert_eq!(rfc3339_utc(4_107_542_399_000), "2100-02-28T23:59:59Z");
    }

    #[tokio::test]
    async fn ticks_have_increasing_ids_and_stop_on_shutdown() {
        let feed = feed();
        let token = CancellationToken::new();
        let mut sub = feed.subscribe(
            Some(0),
            super::super::Start::Next,
            0,
            Default::default(),
            token.clone(),
        );
        let task = tokio::spawn(run(feed.clone(), Duration::from_millis(20), token.clone()));
        let a = sub.next().await.unwrap();
        let b = sub.next().await.unwrap();
        assert!(b.id > a.id);
        assert_eq!(a.kind, "tick");
        token.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }
}
