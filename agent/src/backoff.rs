//! Reconnect delays: exponential backoff with jitter, so a fleet that lost its relay at the same
//! moment does not come back at the same moment.
//!
//! Delay `n` (from 0) is drawn uniformly from `[d/2, d]` with `d = min(base · 2ⁿ, max)` ("equal
//! jitter"): never less than half the exponential step, so the backoff still backs off.

use std::time::Duration;

use rand::Rng;

/// First reconnect delay (before jitter). Small, so a relay restart costs agents well under 5 s.
pub const RECONNECT_BASE: Duration = Duration::from_millis(250);

/// Longest reconnect delay.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A reconnect schedule.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(RECONNECT_BASE, RECONNECT_MAX)
    }
}

impl Backoff {
    /// A schedule starting at `base` and capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(rng.r#gen::<f64>())
    }

    /// Starts over (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_exponentially_within_jitter_bounds_and_caps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut steps = Vec::new();
        for n in 0..10u32 {
            let d = b.next_delay(&mut rng);
            let step = (Duration::from_millis(100) * 2u32.pow(n)).min(Duration::from_secs(2));
            assert!(
                d >= step / 2 && d <= step,
                "delay {n}: {d:?} not in [{:?}, {step:?}]",
                step / 2
            );
            steps.push(d);
        }
        assert!(
            steps[9] >= Duration::from_secs(1),
            "capped step still backs off"
        );
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: std::collections::HashSet<_> = (0..50)
            .map(|_| Backoff::default().next_delay(&mut rng))
            .collect();
        assert!(
            delays.len() > 40,
            "50 agents drew only {} distinct delays",
            delays.len()
        );
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut b = Backoff::default();
        for _ in 0..200 {
            assert!(b.next_delay(&mut rng) <= RECONNECT_MAX);
        }
    }
}
