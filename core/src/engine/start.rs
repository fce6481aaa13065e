//! Building components at start, when their servers may not be reachable yet.
//!
//! In Kubernetes or Container Apps the network, DNS or a private endpoint may come up seconds
//! after the container. A transient failure at start (a [`BuildError`] or checkpoint load that
//! says trying again can succeed) is tried again with the capped exponential backoff of
//! `engine.retry`, each attempt logged with the error and what to check, until
//! `engine.start_timeout` (default: until stopped). Meanwhile the component's telemetry says
//! why it is not ready. A permanent failure (authentication, permissions, invalid settings)
//! ends the start at once. A stop ends the waits between attempts, not an attempt under way.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::retry::Backoff;
use crate::config::RetrySettings;

/// Why a start attempt loop ended without a result.
pub(crate) enum StartFailure<E> {
    /// The engine was asked to stop meanwhile.
    Stopped,
    /// A failure waiting cannot fix.
    Permanent(E),
    /// Still failing when `engine.start_timeout` passed.
    TimedOut {
        /// The last error.
        error: E,
        /// Attempts made.
        attempts: u32,
        /// How long it tried.
        waited: Duration,
    },
}

/// Tries to start components until they succeed, fail for good, or the start times out.
pub(crate) struct Starter {
    retry: RetrySettings,
    timeout: Option<Duration>,
    stop: CancellationToken,
    started: Instant,
}

impl Starter {
    pub fn new(retry: &RetrySettings, timeout: Option<Duration>, stop: &CancellationToken) -> Self {
        Self {
            // The start has its own budget (`start_timeout`), not the run's `give_up_after`.
            retry: RetrySettings {
                give_up_after: None,
                ..retry.clone()
            },
            timeout,
            stop: stop.clone(),
            started: Instant::now(),
        }
    }

    /// Runs `attempt` until it succeeds. A failure for which `is_transient` holds is reported
    /// to `on_retry` (with the attempt number) and tried again after a backoff.
    pub async fn run<T, E, Fut>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Fut,
        is_transient: impl Fn(&E) -> bool,
        on_retry: impl Fn(u32, &E),
    ) -> Result<T, StartFailure<E>>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut backoff = Backoff::new(&self.retry);
        loop {
            // An attempt under way finishes even when a stop comes meanwhile (a start that
            // succeeds then stops cleanly, leaving what it found in order); only the waits
            // between attempts end at once.
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if is_transient(&e) => e,
                Err(e) => return Err(StartFailure::Permanent(e)),
            };
            if self.stop.is_cancelled() {
                return Err(StartFailure::Stopped);
            }
            let delay = backoff.next_delay().unwrap_or(self.retry.max_backoff);
            let elapsed = self.started.elapsed();
            if self.timeout.is_some_and(|t| elapsed + delay > t) {
                return Err(StartFailure::TimedOut {
                    error,
                    attempts: backoff.attempts,
                    waited: elapsed,
                });
            }
            on_retry(backoff.attempts, &error);
            warn!(
                component = what,
                attempt = backoff.attempts,
                retry_in = ?delay,
                error = %error,
                "cannot start yet; trying again (engine.start_timeout bounds the wait)"
            );
            tokio::select! {
                _ = self.stop.cancelled() => return Err(StartFailure::Stopped),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn settings() -> RetrySettings {
        RetrySettings {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            give_up_after: Some(Duration::ZERO),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_tried_again_and_permanent_ones_are_not() {
        let stop = CancellationToken::new();
        let starter = Starter::new(&settings(), None, &stop);
        let calls = AtomicU32::new(0);
        let retries = AtomicU32::new(0);
        let got = starter
            .run(
                "x",
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n < 3 {
                        Err("unreachable")
                    } else {
                        Ok(n)
                    }
                },
                |_| true,
                |_, _| {
                    retries.fetch_add(1, Ordering::SeqCst);
                },
            )
            .await;
        assert!(matches!(got, Ok(3)));
        assert_eq!(retries.load(Ordering::SeqCst), 3);

        let got: Result<(), _> = starter
            .run("x", || async { Err("denied") }, |_| false, |_, _| {})
            .await;
        assert!(matches!(got, Err(StartFailure::Permanent("denied"))));
    }

    #[tokio::test]
    async fn the_start_timeout_and_a_stop_end_the_attempts() {
        let stop = CancellationToken::new();
        let starter = Starter::new(&settings(), Some(Duration::from_millis(60)), &stop);
        let got: Result<(), _> = starter
            .run("x", || async { Err("unreachable") }, |_| true, |_, _| {})
            .await;
        match got {
            Err(StartFailure::TimedOut { attempts, .. }) => assert!(attempts >= 2),
            _ => panic!("expected a timeout"),
        }
        let starter = Starter::new(&settings(), None, &stop);
        stop.cancel();
        let got: Result<(), _> = starter
            .run("x", || async { Err("unreachable") }, |_| true, |_, _| {})
            .await;
        assert!(matches!(got, Err(StartFailure::Stopped)));
    }
}
