//! What a sink reports: per table the rows, bytes and files it published, how long publishing
//! took, the last file, and the table's lease.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::component::ComponentStats;
use super::destination::DestinationSnapshot;
use super::histogram::{Histogram, PUBLISH_BUCKETS};
use super::{lock, read, unix_millis, write};
use crate::model::{RowOp, TableId};

/// A table's single-writer lease, as far as the sink knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Not held (not taken yet, released, lost, or the sink takes none).
    NotHeld,
    /// Waiting for another writer's lease to expire.
    Waiting,
    /// Held by this process.
    Held,
}

/// One sink's facts.
#[derive(Debug)]
pub struct SinkTelemetry {
    name: String,
    type_name: String,
    opened: AtomicBool,
    /// Why the destination could not be opened yet (the engine tries again).
    open_failure: Mutex<Option<String>>,
    tables: RwLock<BTreeMap<TableId, Arc<SinkTableTelemetry>>>,
    destination: Mutex<Option<Arc<DestinationSnapshot>>>,
    /// Retries, errors, the last error.
    pub stats: ComponentStats,
}

impl SinkTelemetry {
    pub(super) fn new(name: &str, type_name: &str) -> Self {
        Self {
            name: name.to_owned(),
            type_name: type_name.to_owned(),
            opened: AtomicBool::new(false),
            open_failure: Mutex::new(None),
            tables: RwLock::default(),
            destination: Mutex::new(None),
            stats: ComponentStats::default(),
        }
    }

    /// The component name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component type.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The destination is open (engine, once the sink is built).
    pub fn set_opened(&self) {
        *lock(&self.open_failure) = None;
        self.opened.store(true, Ordering::Relaxed);
    }

    /// Opening the destination failed for a reason that may pass; the engine tries again
    /// (engine).
    pub fn set_open_failure(&self, reason: &str) {
        *lock(&self.open_failure) = Some(super::redact_message(reason));
    }

    /// Why the destination is not open yet, if an attempt failed.
    pub fn open_failure(&self) -> Option<String> {
        lock(&self.open_failure).clone()
    }

    /// Whether the destination is open.
    pub fn is_opened(&self) -> bool {
        self.opened.load(Ordering::Relaxed)
    }

    /// The telemetry of one table, created on first use.
    pub fn table(&self, id: &TableId) -> Arc<SinkTableTelemetry> {
        if let Some(t) = read(&self.tables).get(id) {
            return t.clone();
        }
        write(&self.tables)
            .entry(id.clone())
            .or_insert_with(|| Arc::new(SinkTableTelemetry::new(id.clone())))
            .clone()
    }

    /// Every table reported so far.
    pub fn tables(&self) -> Vec<Arc<SinkTableTelemetry>> {
        read(&self.tables).values().cloned().collect()
    }

    /// The destination's latest answer (see [`super::Telemetry::record_destination`]).
    pub(super) fn set_destination(&self, snapshot: DestinationSnapshot) {
        *lock(&self.destination) = Some(Arc::new(snapshot));
    }

    /// What the destination said when last asked; `None` before the first answer, or when the
    /// sink has no destination.
    pub fn destination(&self) -> Option<Arc<DestinationSnapshot>> {
        lock(&self.destination).clone()
    }
}

/// One table's facts, as its sink reports them.
#[derive(Debug)]
pub struct SinkTableTelemetry {
    id: TableId,
    source: Mutex<Option<String>>,
    rows: [AtomicU64; 5],
    bytes: AtomicU64,
    files: AtomicU64,
    last_file: AtomicU64,
    last_file_at: AtomicU64,
    lease: AtomicU8,
    /// Why the lease is waited for (who holds it), while it is.
    lease_wait: Mutex<Option<String>>,
    publish: Histogram,
}

fn op_index(op: RowOp) -> usize {
    op as usize
}

impl SinkTableTelemetry {
    fn new(id: TableId) -> Self {
        Self {
            id,
            source: Mutex::new(None),
            rows: Default::default(),
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            last_file: AtomicU64::new(0),
            last_file_at: AtomicU64::new(0),
            lease: AtomicU8::new(LeaseState::NotHeld as u8),
            lease_wait: Mutex::new(None),
            publish: Histogram::new(PUBLISH_BUCKETS),
        }
    }

    /// The table.
    pub fn id(&self) -> &TableId {
        &self.id
    }

    /// The source whose batches fill this table (engine, from the batches it routes).
    pub fn set_source(&self, source: &str) {
        let mut current = lock(&self.source);
        if current.is_none() {
            *current = Some(source.to_owned());
        }
    }

    /// The source feeding this table, once a batch arrived.
    pub fn source(&self) -> Option<String> {
        lock(&self.source).clone()
    }

    /// A file was published: its number, its rows by operation, its size and how long the
    /// publish took.
    pub fn published(&self, file_number: u64, rows: &[(RowOp, u64)], bytes: u64, took: Duration) {
        for (op, n) in rows {
            self.rows[op_index(*op)].fetch_add(*n, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.files.fetch_add(1, Ordering::Relaxed);
        self.last_file.store(file_number, Ordering::Relaxed);
        self.last_file_at.store(unix_millis(), Ordering::Relaxed);
        self.publish.observe(took);
    }

    /// Rows published with `op`.
    pub fn rows(&self, op: RowOp) -> u64 {
        self.rows[op_index(op)].load(Ordering::Relaxed)
    }

    /// Rows published, every operation.
    pub fn rows_total(&self) -> u64 {
        self.rows.iter().map(|r| r.load(Ordering::Relaxed)).sum()
    }

    /// Bytes of files published.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Files published.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// The last file's number and when it was published (Unix milliseconds).
    pub fn last_file(&self) -> Option<(u64, u64)> {
        let at = self.last_file_at.load(Ordering::Relaxed);
        (at > 0).then(|| (self.last_file.load(Ordering::Relaxed), at))
    }

    /// The publish latencies.
    pub fn publish_latency(&self) -> &Histogram {
        &self.publish
    }

    /// The lease's state now.
    pub fn set_lease(&self, state: LeaseState) {
        if state != LeaseState::Waiting {
            *lock(&self.lease_wait) = None;
        }
        self.lease.store(state as u8, Ordering::Relaxed);
    }

    /// Waiting for the lease, because of `reason` (who holds it, and whether it may still be
    /// alive).
    pub fn set_lease_waiting(&self, reason: &str) {
        *lock(&self.lease_wait) = Some(super::redact_message(reason));
        self.lease
            .store(LeaseState::Waiting as u8, Ordering::Relaxed);
    }

    /// Why the lease is waited for, while it is.
    pub fn lease_wait_reason(&self) -> Option<String> {
        lock(&self.lease_wait).clone()
    }

    /// The lease's state.
    pub fn lease(&self) -> LeaseState {
        match self.lease.load(Ordering::Relaxed) {
            1 => LeaseState::Waiting,
            2 => LeaseState::Held,
            _ => LeaseState::NotHeld,
        }
    }
}
