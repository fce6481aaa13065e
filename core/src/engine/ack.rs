//! Acknowledgements: how a sink tells the engine a batch is durable.
//!
//! Every batch a source emits gets one [`Ack`] per sink that will receive it (fan-out forks it). When
//! the last fork is acknowledged, the source's finalizer learns the batch is delivered. A fork dropped
//! without [`Ack::acknowledge`] (a sink that failed, or a crash) marks the batch as not delivered, so
//! its checkpoint, and every later one of that source, is never committed in this run.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::finalizer::FinalizerMsg;

struct AckInner {
    seq: u64,
    pending: AtomicUsize,
    dropped: AtomicBool,
    finalizer: UnboundedSender<FinalizerMsg>,
}

impl AckInner {
    fn resolve(&self, delivered: bool) {
        if !delivered {
            self.dropped.store(true, Ordering::SeqCst);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let delivered = !self.dropped.load(Ordering::SeqCst);
            // The finalizer is gone only when the run is over; nothing is left to tell.
            let _ = self.finalizer.send(FinalizerMsg::Resolved {
                seq: self.seq,
                delivered,
            });
        }
    }
}

/// The right to declare one batch durable at one sink.
///
/// Call [`Ack::acknowledge`] once the batch's rows are durably written; dropping it instead means the
/// batch was not written.
#[must_use = "a batch is committed only once its Ack is acknowledged"]
pub struct Ack {
    inner: Option<Arc<AckInner>>,
}

impl Ack {
    pub(crate) fn new(seq: u64, finalizer: UnboundedSender<FinalizerMsg>) -> Self {
        Self {
            inner: Some(Arc::new(AckInner {
                seq,
                pending: AtomicUsize::new(1),
                dropped: AtomicBool::new(false),
                finalizer,
            })),
        }
    }

    /// An ack that reports to no one, for using a sink outside the engine (tests, libraries).
    pub fn detached() -> Self {
        Self { inner: None }
    }

    /// Another ack for the same batch: the batch counts as delivered once both are acknowledged.
    pub(crate) fn fork(&self) -> Self {
        if let Some(inner) = &self.inner {
            inner.pending.fetch_add(1, Ordering::AcqRel);
        }
        Self {
            inner: self.inner.clone(),
        }
    }

    /// Declares the batch durable at this sink.
    pub fn acknowledge(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.resolve(true);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.resolve(false);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => write!(f, "Ack(batch {})", inner.seq),
            None => f.write_str("Ack(detached)"),
        }
    }
}
