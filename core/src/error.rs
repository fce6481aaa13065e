//! The error a component returns to the engine, classified as transient (retry) or permanent (stop).
//!
//! Components keep their own `thiserror` error types and convert at the boundary, choosing the
//! [`ErrorKind`]. The engine retries transient errors with capped exponential backoff and stops the
//! route on permanent ones; it never guesses from the message.

use std::error::Error as StdError;
use std::fmt;

/// Whether retrying the same call can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing condition (network, throttling, a busy server): the engine retries with backoff.
    Transient,
    /// Retrying cannot help (bad config, permission denied, corrupt state): the route stops.
    Permanent,
}

/// An error crossing from a component into the engine.
///
/// ```
/// use mirror_core::{ComponentError, ErrorKind};
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "upload timed out");
/// let err = ComponentError::transient(io);
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// assert_eq!(err.to_string(), "upload timed out");
/// ```
pub struct ComponentError {
    kind: ErrorKind,
    inner: Box<dyn StdError + Send + Sync>,
}

impl ComponentError {
    /// An error that may go away if the call is retried.
    pub fn transient(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            inner: err.into(),
        }
    }

    /// An error that retrying cannot fix.
    pub fn permanent(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            inner: err.into(),
        }
    }

    /// Whether the engine retries it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the engine retries it.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// The component's own error.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// The message with every cause, `outer: cause: root cause`.
    pub fn chain(&self) -> String {
        let mut out = self.inner.to_string();
        let mut cause = self.inner.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = c.source();
        }
        out
    }
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentError")
            .field("kind", &self.kind)
            .field("error", &self.chain())
            .finish()
    }
}

impl StdError for ComponentError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}
