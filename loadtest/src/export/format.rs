//! Numbers and the workload as people read them, shared by the tables and the charts.

pub(crate) use crate::chart::num;
use crate::report::Workload;

pub(super) const MIB: f64 = 1024.0 * 1024.0;
pub(super) const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A finite number with a fixed count of decimals, `n/a` otherwise.
pub(super) fn fixed(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "n/a".to_owned()
    }
}

/// Microseconds as milliseconds with one decimal.
pub(super) fn ms(us: u64) -> String {
    fixed(us as f64 / 1000.0, 1)
}

/// `a / b`, or NaN when `b` is 0.
pub(super) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// "200 clients, 20 msg/s, 20 s" (with the feed first unless it is the default chat feed).
pub(super) fn workload_short(w: &Workload) -> String {
    let feed = if w.feed == "chat" {
        String::new()
    } else {
        format!("{} feed, ", w.feed)
    };
    format!(
        "{feed}{} clients, {} msg/s, {} s",
        w.clients,
        num(w.rate),
        num(w.duration_s)
    )
}

/// The whole workload in one sentence, for `summary.md`.
pub(super) fn workload_line(w: &Workload) -> String {
    format!(
        "{} feed, {} clients, {} msg/s for {} s after a {} s ramp, short-poll interval {} ms, \
         {} room{}, {}-byte messages",
        w.feed,
        w.clients,
        num(w.rate),
        num(w.duration_s),
        num(w.ramp_s),
        w.poll_interval_ms,
        w.rooms,
        if w.rooms == 1 { "" } else { "s" },
        w.message_size
    )
}
