//! What every component reports alike: retries by reason, errors by kind, the last error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::ErrorKind;

/// Why a call was retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RetryReason {
    /// The service asked to slow down (HTTP 429, MongoDB's rate limits).
    Throttled,
    /// The service answered that it cannot serve now (HTTP 5xx such as 503).
    Unavailable,
    /// No answer in time.
    Timeout,
    /// The connection failed or was lost.
    Network,
    /// A transient error the engine retried, of no finer kind.
    Transient,
}

impl RetryReason {
    /// Every reason, in a stable order.
    pub const ALL: [RetryReason; 5] = [
        RetryReason::Throttled,
        RetryReason::Unavailable,
        RetryReason::Timeout,
        RetryReason::Network,
        RetryReason::Transient,
    ];

    /// The name used in metrics and the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Throttled => "throttled",
            RetryReason::Unavailable => "unavailable",
            RetryReason::Timeout => "timeout",
            RetryReason::Network => "network",
            RetryReason::Transient => "transient",
        }
    }
}

/// An error as reported: what, how bad, and when (Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The message with its causes, secrets removed.
    pub message: String,
    /// Transient (retried) or permanent.
    pub kind: ErrorKind,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Retries, errors and the last error of one component.
#[derive(Debug, Default)]
pub struct ComponentStats {
    retries: [AtomicU64; 5],
    errors: [AtomicU64; 2],
    last_error: Mutex<Option<ErrorRecord>>,
}

impl ComponentStats {
    /// One more retry for `reason`.
    pub fn retry(&self, reason: RetryReason) {
        self.retries[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Retries so far for `reason`.
    pub fn retries(&self, reason: RetryReason) -> u64 {
        self.retries[reason as usize].load(Ordering::Relaxed)
    }

    /// One more error of `kind`; it becomes the last error. The message passes through
    /// [`redact_message`] first.
    pub fn error(&self, kind: ErrorKind, message: &str) {
        let index = match kind {
            ErrorKind::Transient => 0,
            ErrorKind::Permanent => 1,
        };
        self.errors[index].fetch_add(1, Ordering::Relaxed);
        let record = ErrorRecord {
            message: redact_message(message),
            kind,
            at_unix_ms: super::unix_millis(),
        };
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(record);
    }

    /// Errors so far of `kind`.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        let index = match kind {
            ErrorKind::Transient => 0,
            ErrorKind::Permanent => 1,
        };
        self.errors[index].load(Ordering::Relaxed)
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<ErrorRecord> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A message safe to show on a page or in metrics: URIs lose their passwords, query parameters
/// that carry credentials (SAS signatures, tokens) their values, and every secret value the
/// configuration holds is replaced ([`crate::config::scrub`]).
///
/// Components already keep secrets out of their errors; this is the second line of defence
/// for what the API shows to anyone who can reach it.
///
/// ```
/// use mirror_core::telemetry::redact_message;
/// assert_eq!(
///     redact_message("cannot reach mongodb://app:hunter2@db:27017/?x=1"),
///     "cannot reach mongodb://app:***@db:27017/?x=1"
/// );
/// assert_eq!(
///     redact_message("GET https://acct.blob.core.windows.net/c/f?sv=2020&sig=abc%2F&se=1 failed"),
///     "GET https://acct.blob.core.windows.net/c/f?sv=2020&sig=***&se=1 failed"
/// );
/// ```
pub fn redact_message(message: &str) -> String {
    crate::config::scrub(message).into_owned()
}
