//! The AWS SDK waiter, as the anchors wait (aws-actions' ECS deploy action:
//! `waitUntilServicesStable`, `waitUntilDeploymentSuccessful`): smithy's `runPolling` checks
//! at once, then before attempt k sleeps a delay drawn uniformly from
//! [`min`, `min` × 2^(k-1)] (`exponentialBackoffWithJitter`), `max` once past the attempt
//! ceiling. The jitter comes from a seeded generator, so a run is repeatable.

// Seconds and counts as f64 and back, far inside their precision.
#![allow(
    dead_code,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

/// A small deterministic generator (xorshift64*), for the waiter's jitter.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The waiter against a state reached at `end` seconds: (seconds from `end` to the check
/// that sees it, checks made).
pub fn waiter(end: f64, min: f64, max: f64, rng: &mut Rng) -> (f64, u32) {
    let ceiling = (max / min).log2() + 1.0;
    let mut t = 0.0;
    let mut calls = 1;
    let mut attempt = 1.0_f64;
    if end <= 0.0 {
        return (0.0, calls);
    }
    loop {
        let delay = if attempt > ceiling {
            max
        } else {
            let upper = min * 2f64.powf(attempt - 1.0);
            min + (upper - min) * rng.next()
        };
        t += delay;
        calls += 1;
        if t >= end {
            return (t - end, calls);
        }
        attempt += 1.0;
    }
}
