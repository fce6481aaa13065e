//! The ordered finalizer: commits a source's checkpoints in source order, only for delivered batches.
//!
//! Sinks acknowledge batches in any order (tables flush at different times). The finalizer keeps the
//! source's items in emission order and commits the merged checkpoint of the longest prefix whose
//! items are all delivered. A batch that was not delivered blocks every later commit of the source for
//! the rest of the run: after a restart the source resumes from before it, so nothing is lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::retry::Backoff;
use super::{EngineError, Failures};
use crate::checkpoint::CheckpointStore;
use crate::config::RetrySettings;
use crate::model::{Checkpoint, Partition};
use crate::telemetry::{RetryReason, SourceTelemetry};

/// What the finalizer hears about.
pub(crate) enum FinalizerMsg {
    /// The source emitted item `seq` with this checkpoint; `delivered` for checkpoint-only items.
    Emitted {
        seq: u64,
        checkpoint: Checkpoint,
        delivered: bool,
    },
    /// Every sink acknowledged item `seq` (`delivered`), or some sink dropped it.
    Resolved { seq: u64, delivered: bool },
}

struct Slot {
    seq: u64,
    checkpoint: Checkpoint,
    delivered: Option<bool>,
}

/// Counters a finalizer keeps, read for the run report and status.
#[derive(Debug, Default)]
pub(crate) struct FinalizerStats {
    pub committed_items: AtomicU64,
    pub commits: AtomicU64,
}

pub(crate) struct Finalizer {
    pub source: String,
    /// Where commits are reported (lag and stalls are measured from them).
    pub telemetry: Arc<SourceTelemetry>,
    pub store: Arc<dyn CheckpointStore>,
    pub retry: RetrySettings,
    pub shutdown: CancellationToken,
    pub failures: Failures,
    pub stats: Arc<FinalizerStats>,
}

impl Finalizer {
    /// Runs until every sender (the source task and every outstanding ack) is gone.
    pub async fn run(self, mut rx: UnboundedReceiver<FinalizerMsg>) {
        let mut slots: VecDeque<Slot> = VecDeque::new();
        let mut blocked = false;
        while let Some(msg) = rx.recv().await {
            self.apply(&mut slots, msg);
            while let Ok(msg) = rx.try_recv() {
                self.apply(&mut slots, msg);
            }
            if blocked {
                continue;
            }
            let mut merged = Checkpoint::none();
            let mut advanced = 0u64;
            let mut last_seq = None;
            while let Some(front) = slots.front() {
                match front.delivered {
                    Some(true) => {
                        let slot = slots.pop_front().expect("front exists");
                        merged.merge(slot.checkpoint);
                        advanced += 1;
                        last_seq = Some(slot.seq);
                    }
                    Some(false) => {
                        blocked = true;
                        let seq = front.seq;
                        if !self.shutdown.is_cancelled() {
                            self.failures.report(EngineError::Undelivered {
                                source_name: self.source.clone(),
                                seq,
                            });
                        }
                        debug!(source = %self.source, seq, "batch not delivered; later checkpoints stay uncommitted");
                        break;
                    }
                    None => break,
                }
            }
            if !merged.is_empty() && !self.commit(&merged).await {
                blocked = true;
                continue;
            }
            self.stats
                .committed_items
                .fetch_add(advanced, Ordering::Relaxed);
            if let Some(seq) = last_seq {
                self.telemetry.committed(
                    seq,
                    merged.entries().filter_map(|(p, _)| match p {
                        Partition::Table(id) => Some(id),
                        _ => None,
                    }),
                );
            }
        }
    }

    fn apply(&self, slots: &mut VecDeque<Slot>, msg: FinalizerMsg) {
        match msg {
            FinalizerMsg::Emitted {
                seq,
                checkpoint,
                delivered,
            } => slots.push_back(Slot {
                seq,
                checkpoint,
                delivered: delivered.then_some(true),
            }),
            FinalizerMsg::Resolved { seq, delivered } => {
                // Slots are in seq order and the source registers before it sends, so this is a
                // lookup in a short, sorted queue.
                if let Ok(i) = slots.binary_search_by_key(&seq, |s| s.seq) {
                    slots[i].delivered = Some(delivered);
                }
            }
        }
    }

    /// Commits with retries; false if it gave up (the route has failed).
    async fn commit(&self, checkpoint: &Checkpoint) -> bool {
        let mut backoff = Backoff::new(&self.retry);
        loop {
            match self.store.commit(&self.source, checkpoint).await {
                Ok(()) => {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(err) => match backoff.next_delay() {
                    Some(delay) if !self.shutdown.is_cancelled() => {
                        self.telemetry
                            .stats
                            .error(crate::ErrorKind::Transient, &err.to_string());
                        self.telemetry.stats.retry(RetryReason::Transient);
                        warn!(source = %self.source, error = %err, retry_in = ?delay, "checkpoint commit failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    _ => {
                        self.failures.report(EngineError::Checkpoint {
                            source_name: self.source.clone(),
                            error: err,
                        });
                        return false;
                    }
                },
            }
        }
    }
}
