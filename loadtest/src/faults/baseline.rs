//! A faulted run charged against a run of the same workload without breaks.

use std::path::Path;

use anyhow::bail;

use crate::report::{Summary, TransportResult};

/// Charges `result` against the same transport in the baseline run at `dir`.
pub fn charge_baseline(dir: &Path, result: &mut TransportResult) -> anyhow::Result<()> {
    let base = Summary::read(dir)?;
    let Some(b) = base
        .results
        .iter()
        .find(|b| b.transport == result.transport)
    else {
        bail!(
            "{}/summary.json has no {} result",
            dir.display(),
            result.transport
        );
    };
    if let Some(f) = result.faults.as_mut() {
        f.extra_requests = Some(result.requests as i64 - b.requests as i64);
        f.extra_bytes_in = Some(result.bytes_in as i64 - b.bytes_in as i64);
        f.extra_bytes_out = Some(result.bytes_out as i64 - b.bytes_out as i64);
    }
    Ok(())
}
