//! Timing helpers: medians of repeated runs and percentiles.

use std::time::{Duration, Instant};

/// Runs `work` a tenth of `runs` (at least 20) times to warm up, then `runs` times, and
/// returns the median duration of one run in µs.
pub async fn median_of(
    runs: usize,
    mut work: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    for _ in 0..(runs / 10).max(20) {
        work().await?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        work().await?;
        samples.push(start.elapsed());
    }
    Ok(micros(percentile(&mut samples, 50.0)))
}

/// The `p`th percentile of `samples` (nearest rank), which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// A duration in µs.
pub fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(percentile(&mut samples, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&mut samples, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&mut samples, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&mut [], 99.0), Duration::ZERO);
    }
}
