//! How a broken client waits before it reconnects.

use std::time::Duration;

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
}
