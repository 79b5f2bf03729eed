//! The faults table printed after a faulted run.

use crate::report::Summary;

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
