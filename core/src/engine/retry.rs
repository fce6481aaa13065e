//! Capped exponential backoff with jitter for transient errors.
//!
//! The delays come from `backon` (a maintained crate; no reason to hand-roll jitter); this module adds
//! the engine's policy: log every retry, give up after `give_up_after` if set.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use crate::config::RetrySettings;

/// The delays before successive retries of one failing call.
pub(crate) struct Backoff {
    delays: ExponentialBackoff,
    started: Instant,
    give_up_after: Option<Duration>,
    pub attempts: u32,
}

impl Backoff {
    pub fn new(settings: &RetrySettings) -> Self {
        let delays = ExponentialBuilder::default()
            .with_min_delay(settings.initial_backoff)
            .with_max_delay(settings.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        Self {
            delays,
            started: Instant::now(),
            give_up_after: settings.give_up_after,
            attempts: 0,
        }
    }

    /// The delay before the next attempt, or `None` once the retry budget is spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.attempts += 1;
        let delay = self.delays.next()?;
        match self.give_up_after {
            Some(limit) if self.started.elapsed() + delay > limit => None,
            _ => Some(delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_cap_and_the_budget_ends_retries() {
        let settings = RetrySettings {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(80),
            give_up_after: None,
        };
        let mut b = Backoff::new(&settings);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay().unwrap()).collect();
        // Jitter adds up to one more delay's worth; the base never exceeds the cap.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(160)),
            "{delays:?}"
        );
        assert!(delays[0] >= Duration::from_millis(10));
        assert!(delays[6] >= Duration::from_millis(80), "{delays:?}");

        let mut limited = Backoff::new(&RetrySettings {
            give_up_after: Some(Duration::from_millis(1)),
            ..settings
        });
        assert_eq!(limited.next_delay(), None);
    }
}
