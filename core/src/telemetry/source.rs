//! What a source reports: per table its phase, initial-sync progress and change events; per
//! source whether its server is reachable and the stream positions its items reach.
//!
//! Positions make replication lag measurable without the core knowing what a position is: a
//! source stages the position (a time and a text) that the item it is about to return reaches,
//! the engine seals staged positions with the item's number, and the finalizer makes them the
//! committed positions once that item is committed. Lag is then "now minus the time of the
//! committed position".

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::component::ComponentStats;
use super::{lock, read, unix_millis, write, Clock};
use crate::model::TableId;

/// Where a table is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TablePhase {
    /// Copying what the source already holds (change events are applied alongside).
    InitialSync,
    /// The copy is complete; only changes remain.
    Streaming,
}

impl TablePhase {
    /// Every phase, in order.
    pub const ALL: [TablePhase; 2] = [TablePhase::InitialSync, TablePhase::Streaming];

    /// The name used in metrics and the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            TablePhase::InitialSync => "initial_sync",
            TablePhase::Streaming => "streaming",
        }
    }
}

/// The kind of a change event a source received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A new row.
    Insert,
    /// Some fields of a row changed.
    Update,
    /// A row replaced whole.
    Replace,
    /// A row removed.
    Delete,
}

impl EventKind {
    /// Every kind, in order.
    pub const ALL: [EventKind; 4] = [
        EventKind::Insert,
        EventKind::Update,
        EventKind::Replace,
        EventKind::Delete,
    ];

    /// The name used in metrics and the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Insert => "insert",
            EventKind::Update => "update",
            EventKind::Replace => "replace",
            EventKind::Delete => "delete",
        }
    }
}

/// A point in a source's change stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// When the change at this position happened at the source (MongoDB: the cluster time).
    pub time: SystemTime,
    /// How a person reads it, e.g. `cluster time 1700000000.5`. Never secret.
    pub text: String,
}

/// Positions by stream, as staged for one item.
type StreamPositions = Vec<(String, Position)>;

/// One source's facts.
#[derive(Debug)]
pub struct SourceTelemetry {
    name: String,
    type_name: String,
    clock: Clock,
    /// Built by the engine (its server answered at least once).
    built: AtomicBool,
    /// Whether the source can reach its server now.
    reachable: AtomicBool,
    unreachable_reason: Mutex<Option<String>>,
    /// Items returned by `next` (numbered from 1, as the engine numbers them).
    emitted: AtomicU64,
    /// Items committed.
    committed: AtomicU64,
    /// When the commit count last moved, or work appeared after idling (clock millis).
    progress_at: AtomicU64,
    /// When the last commit happened (Unix millis; 0: never in this process).
    committed_at: AtomicU64,
    staged: Mutex<StreamPositions>,
    sealed: Mutex<VecDeque<(u64, StreamPositions)>>,
    committed_positions: Mutex<BTreeMap<String, Position>>,
    tables: RwLock<BTreeMap<TableId, Arc<SourceTableTelemetry>>>,
    /// Retries, errors, the last error.
    pub stats: ComponentStats,
}

impl SourceTelemetry {
    pub(super) fn new(name: &str, type_name: &str, clock: Clock) -> Self {
        Self {
            name: name.to_owned(),
            type_name: type_name.to_owned(),
            clock,
            built: AtomicBool::new(false),
            reachable: AtomicBool::new(false),
            unreachable_reason: Mutex::new(None),
            emitted: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            progress_at: AtomicU64::new(clock.now_ms()),
            committed_at: AtomicU64::new(0),
            staged: Mutex::default(),
            sealed: Mutex::default(),
            committed_positions: Mutex::default(),
            tables: RwLock::default(),
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

    /// The telemetry of one of the source's tables, created on first use.
    pub fn table(&self, id: &TableId) -> Arc<SourceTableTelemetry> {
        if let Some(t) = read(&self.tables).get(id) {
            return t.clone();
        }
        write(&self.tables)
            .entry(id.clone())
            .or_insert_with(|| Arc::new(SourceTableTelemetry::new(id.clone())))
            .clone()
    }

    /// Every table reported so far.
    pub fn tables(&self) -> Vec<Arc<SourceTableTelemetry>> {
        read(&self.tables).values().cloned().collect()
    }

    /// The server can be reached again (or for the first time).
    pub fn set_reachable(&self) {
        self.reachable.store(true, Ordering::Relaxed);
        *lock(&self.unreachable_reason) = None;
    }

    /// The server cannot be reached; `reason` says what failed (no secrets).
    pub fn set_unreachable(&self, reason: impl Into<String>) {
        self.reachable.store(false, Ordering::Relaxed);
        *lock(&self.unreachable_reason) = Some(super::redact_message(&reason.into()));
    }

    /// Whether the server can be reached, and if not why.
    pub fn reachability(&self) -> Result<(), Option<String>> {
        if self.reachable.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(lock(&self.unreachable_reason).clone())
        }
    }

    /// Marks the source built (engine).
    pub fn set_built(&self) {
        self.built.store(true, Ordering::Relaxed);
        self.set_reachable();
    }

    /// Whether the engine built it.
    pub fn is_built(&self) -> bool {
        self.built.load(Ordering::Relaxed)
    }

    /// The item about to be returned from `next` reaches `position` in `stream` (a database, a
    /// shard, a partition: whatever the source follows separately).
    pub fn stage_position(&self, stream: &str, position: Position) {
        let mut staged = lock(&self.staged);
        match staged.iter_mut().find(|(s, _)| s == stream) {
            Some(entry) => entry.1 = position,
            None => staged.push((stream.to_owned(), position)),
        }
    }

    /// Item `seq` was returned (engine): it carries what was staged since the last item.
    pub fn emitted(&self, seq: u64) {
        let previous = self.emitted.swap(seq, Ordering::Relaxed);
        if previous == self.committed.load(Ordering::Relaxed) {
            // Work after idling: the progress clock starts now, not at the last commit.
            self.progress_at
                .store(self.clock.now_ms(), Ordering::Relaxed);
        }
        let staged = std::mem::take(&mut *lock(&self.staged));
        if !staged.is_empty() {
            lock(&self.sealed).push_back((seq, staged));
        }
    }

    /// Every item up to `seq` is committed (finalizer); `tables` are the table partitions the
    /// commit wrote.
    pub fn committed<'a>(&self, seq: u64, tables: impl IntoIterator<Item = &'a TableId>) {
        self.committed.store(seq, Ordering::Relaxed);
        self.progress_at
            .store(self.clock.now_ms(), Ordering::Relaxed);
        let now = unix_millis();
        self.committed_at.store(now, Ordering::Relaxed);
        {
            let mut sealed = lock(&self.sealed);
            let mut positions = lock(&self.committed_positions);
            while sealed.front().is_some_and(|(s, _)| *s <= seq) {
                if let Some((_, staged)) = sealed.pop_front() {
                    positions.extend(staged);
                }
            }
        }
        for id in tables {
            self.table(id).committed_at.store(now, Ordering::Relaxed);
        }
    }

    /// Items returned and not committed yet.
    pub fn pending_items(&self) -> u64 {
        self.emitted
            .load(Ordering::Relaxed)
            .saturating_sub(self.committed.load(Ordering::Relaxed))
    }

    /// Items committed in this process.
    pub fn committed_items(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Milliseconds since the commit count last moved (or since work appeared after idling).
    pub fn millis_without_progress(&self) -> u64 {
        self.clock
            .now_ms()
            .saturating_sub(self.progress_at.load(Ordering::Relaxed))
    }

    /// When the last commit happened (Unix milliseconds), if one did in this process.
    pub fn committed_at_unix_ms(&self) -> Option<u64> {
        Some(self.committed_at.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The committed position of `stream`.
    pub fn committed_position(&self, stream: &str) -> Option<Position> {
        lock(&self.committed_positions).get(stream).cloned()
    }

    /// Every committed position, by stream.
    pub fn committed_positions(&self) -> BTreeMap<String, Position> {
        lock(&self.committed_positions).clone()
    }
}

/// One table's facts, as its source reports them.
#[derive(Debug)]
pub struct SourceTableTelemetry {
    id: TableId,
    phase: AtomicU8,
    stream: Mutex<Option<String>>,
    events: [AtomicU64; 4],
    copied: AtomicU64,
    estimated: AtomicU64,
    /// Documents copied when the copy started in this process, and when (Unix millis).
    sync_baseline: Mutex<Option<(u64, u64)>>,
    committed_at: AtomicU64,
}

const PHASE_UNKNOWN: u8 = 0;

impl SourceTableTelemetry {
    fn new(id: TableId) -> Self {
        Self {
            id,
            phase: AtomicU8::new(PHASE_UNKNOWN),
            stream: Mutex::new(None),
            events: Default::default(),
            copied: AtomicU64::new(0),
            estimated: AtomicU64::new(0),
            sync_baseline: Mutex::new(None),
            committed_at: AtomicU64::new(0),
        }
    }

    /// The table.
    pub fn id(&self) -> &TableId {
        &self.id
    }

    /// The table's phase now.
    pub fn set_phase(&self, phase: TablePhase) {
        self.phase.store(phase as u8 + 1, Ordering::Relaxed);
    }

    /// The phase, if the source reported one.
    pub fn phase(&self) -> Option<TablePhase> {
        match self.phase.load(Ordering::Relaxed) {
            PHASE_UNKNOWN => None,
            n => TablePhase::ALL.get(usize::from(n - 1)).copied(),
        }
    }

    /// The stream whose position this table follows (see [`SourceTelemetry::stage_position`]).
    pub fn set_stream(&self, stream: &str) {
        *lock(&self.stream) = Some(stream.to_owned());
    }

    /// The stream this table follows.
    pub fn stream(&self) -> Option<String> {
        lock(&self.stream).clone()
    }

    /// `n` more change events of `kind` received.
    pub fn add_events(&self, kind: EventKind, n: u64) {
        self.events[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Change events of `kind` received in this process.
    pub fn events(&self, kind: EventKind) -> u64 {
        self.events[kind as usize].load(Ordering::Relaxed)
    }

    /// An initial sync starts (or resumes) with `copied` of about `estimated` documents; it
    /// also sets the phase.
    pub fn start_initial_sync(&self, copied: u64, estimated: u64) {
        self.set_phase(TablePhase::InitialSync);
        self.copied.store(copied, Ordering::Relaxed);
        self.estimated.store(estimated, Ordering::Relaxed);
        *lock(&self.sync_baseline) = Some((copied, unix_millis()));
    }

    /// `n` more documents copied by the initial sync.
    pub fn add_copied(&self, n: u64) {
        self.copied.fetch_add(n, Ordering::Relaxed);
    }

    /// Documents copied and the collection's estimated size.
    pub fn initial_sync(&self) -> (u64, u64) {
        (
            self.copied.load(Ordering::Relaxed),
            self.estimated.load(Ordering::Relaxed),
        )
    }

    /// Documents per second copied since the copy started in this process.
    pub fn copy_rate(&self) -> Option<f64> {
        let (copied0, since) = (*lock(&self.sync_baseline))?;
        let secs = unix_millis().saturating_sub(since) as f64 / 1000.0;
        let copied = self.copied.load(Ordering::Relaxed).saturating_sub(copied0);
        (secs >= 1.0).then(|| copied as f64 / secs)
    }

    /// When a commit last wrote this table's checkpoint (Unix milliseconds).
    pub fn committed_at_unix_ms(&self) -> Option<u64> {
        Some(self.committed_at.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Position {
        Position {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            text: secs.to_string(),
        }
    }

    #[test]
    fn positions_become_committed_only_with_their_item() {
        let s = SourceTelemetry::new("s", "t", Clock::new());
        s.stage_position("db", at(10));
        s.emitted(1);
        s.stage_position("db", at(20));
        s.emitted(2);
        assert_eq!(s.committed_position("db"), None);
        s.committed(1, []);
        assert_eq!(s.committed_position("db"), Some(at(10)));
        assert_eq!(s.pending_items(), 1);
        s.committed(2, []);
        assert_eq!(s.committed_position("db"), Some(at(20)));
        assert_eq!(s.pending_items(), 0);
    }
}
