//! The learning rate at each step: linear warm-up from `lr / warmup` to `lr`, then constant
//! (the reference) or cosine decay to zero at the last step.

use serde::{Deserialize, Serialize};

/// What the learning rate does after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decay {
    /// Stays at its peak (the reference).
    Constant,
    /// Falls to zero on a cosine by the last step.
    Cosine,
}

/// The learning rate at each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Peak rate.
    pub lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// After warm-up.
    pub decay: Decay,
    /// The run's last step.
    pub total_steps: u64,
}

impl Schedule {
    /// The rate for step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_constant_or_cosine() {
        let mut s = Schedule {
            lr: 0.01,
            warmup_steps: 4,
            decay: Decay::Constant,
            total_steps: 12,
        };
        let lrs: Vec<f64> = (0..6).map(|i| s.lr(i)).collect();
        assert_eq!(lrs, [0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01]);
        s.decay = Decay::Cosine;
        assert!((s.lr(4) - 0.01).abs() < 1e-12);
        assert!((s.lr(8) - 0.005).abs() < 1e-12);
        assert!(s.lr(12).abs() < 1e-12);
        assert!(s.lr(100).abs() < 1e-12);
    }
}
