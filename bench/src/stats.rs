//! Percentiles of a latency sample.

/// min / p50 / p90 / p99 / p99.9 of a sample, in nanoseconds.
pub struct Summary {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
}

impl Summary {
    /// Sorts `v` and reads off the percentiles (nearest rank).
    pub fn of(mut v: Vec<u64>) -> Self {
        assert!(!v.is_empty(), "no samples");
        v.sort_unstable();
        let at = |q: f64| v[(((v.len() as f64) * q).ceil() as usize).clamp(1, v.len()) - 1];
        Self { min: v[0], p50: at(0.50), p90: at(0.90), p99: at(0.99), p999: at(0.999) }
    }

    /// One table row.
    pub fn print(&self, label: &str) {
        println!(
            "{label:<36} {:>6} {:>8} {:>8} {:>8} {:>8}",
            self.min, self.p50, self.p90, self.p99, self.p999
        );
    }
}
