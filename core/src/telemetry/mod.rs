//! What `mirror` measures about itself, and what it concludes from it: whether it is ready and
//! healthy. No exporter and no HTTP: the binary serves these facts (Prometheus `/metrics`, the JSON
//! API, the status page); the core only defines and updates them.
//!
//! - [`Telemetry`] is one process's facts: the engine's state, one [`SourceTelemetry`] per source
//!   and one [`SinkTelemetry`] per sink, each with per-table facts ([`SourceTableTelemetry`],
//!   [`SinkTableTelemetry`]).
//! - Components get their handle through their build context (`SourceContext::telemetry`,
//!   `SinkContext::telemetry`) and report what only they know: a source its tables' phases,
//!   initial-sync progress, change events, stream positions and reachability; a sink what it
//!   published, how long it took, and its leases.
//! - The engine reports the rest: items emitted and committed (so lag and stalls are measured
//!   where commits happen), retries and errors of every component, and its own state.
//! - The engine also records what each sink's destination says about its tables (Fabric's
//!   replication status), with the positions committed when it was asked
//!   ([`Telemetry::record_destination`], [`DestinationSnapshot`]).
//! - [`Telemetry::readiness`] and [`Telemetry::health`] turn those facts into verdicts with
//!   reasons; [`Telemetry::report`] into a [`StatusReport`], the shape of the JSON API and of
//!   `mirror status --format json`.
//!
//! Everything is updated with atomics or short locks, so reporting costs the hot path next to
//! nothing and a reader never waits for a component.
//!
//! ```
//! use mirror_core::telemetry::{Telemetry, TablePhase};
//! use mirror_core::TableId;
//!
//! let telemetry = Telemetry::new();
//! let source = telemetry.source("atlas", "mongodb");
//! let orders = source.table(&TableId::with_schema("shop", "orders"));
//! orders.start_initial_sync(0, 1_000);
//! orders.add_copied(250);
//! assert_eq!(orders.phase(), Some(TablePhase::InitialSync));
//! assert_eq!(orders.initial_sync(), (250, 1_000));
//! // Not ready: the engine has not built anything yet.
//! assert!(!telemetry.readiness().ok);
//! ```

mod component;
mod destination;
mod histogram;
pub mod report;
mod sink;
mod source;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use component::{redact_message, ComponentStats, ErrorRecord, RetryReason};
pub use destination::DestinationSnapshot;
pub use histogram::{Histogram, HistogramSnapshot, PUBLISH_BUCKETS};
pub use report::{StateFacts, StatusReport};
pub use sink::{LeaseState, SinkTableTelemetry, SinkTelemetry};
pub use source::{EventKind, Position, SourceTableTelemetry, SourceTelemetry, TablePhase};

/// The default of [`Telemetry::set_stalled_after`]: how long work may wait without any commit
/// before the process counts as wedged.
pub const DEFAULT_STALLED_AFTER: Duration = Duration::from_secs(600);

/// Where the engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    /// Building components: connecting to sources, opening sinks.
    Starting,
    /// Every route runs.
    Running,
    /// A clean stop is under way (drain, flush, commit).
    Stopping,
    /// The run ended cleanly.
    Stopped,
    /// A route failed; the run ends with an error.
    Failed,
}

impl EngineState {
    /// The name used in metrics and the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::Starting => "starting",
            EngineState::Running => "running",
            EngineState::Stopping => "stopping",
            EngineState::Stopped => "stopped",
            EngineState::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => EngineState::Running,
            2 => EngineState::Stopping,
            3 => EngineState::Stopped,
            4 => EngineState::Failed,
            _ => EngineState::Starting,
        }
    }
}

/// A verdict (ready, healthy) with the reasons when it is negative.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// Ready, or healthy.
    pub ok: bool,
    /// Why not, one line each (empty when `ok`).
    pub reasons: Vec<String>,
}

/// Milliseconds on a monotonic clock shared by one process's telemetry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Inner {
    clock: Clock,
    started_unix_ms: u64,
    state: AtomicU8,
    failure: Mutex<Option<String>>,
    stalled_after_ms: AtomicU64,
    sources: RwLock<BTreeMap<String, Arc<SourceTelemetry>>>,
    sinks: RwLock<BTreeMap<String, Arc<SinkTelemetry>>>,
}

/// One process's facts (cheap to clone: every clone shares them).
#[derive(Clone, Debug)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Fresh facts: engine starting, no component yet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                clock: Clock::new(),
                started_unix_ms: unix_millis(),
                state: AtomicU8::new(0),
                failure: Mutex::new(None),
                stalled_after_ms: AtomicU64::new(DEFAULT_STALLED_AFTER.as_millis() as u64),
                sources: RwLock::default(),
                sinks: RwLock::default(),
            }),
        }
    }

    /// How long items may wait without any commit before [`Telemetry::health`] says the engine
    /// is wedged.
    pub fn set_stalled_after(&self, after: Duration) {
        self.inner
            .stalled_after_ms
            .store(after.as_millis() as u64, Ordering::Relaxed);
    }

    /// The facts of source `name` (declared on first use).
    pub fn source(&self, name: &str, type_name: &str) -> Arc<SourceTelemetry> {
        if let Some(s) = read(&self.inner.sources).get(name) {
            return s.clone();
        }
        write(&self.inner.sources)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(SourceTelemetry::new(name, type_name, self.inner.clock)))
            .clone()
    }

    /// The facts of sink `name` (declared on first use).
    pub fn sink(&self, name: &str, type_name: &str) -> Arc<SinkTelemetry> {
        if let Some(s) = read(&self.inner.sinks).get(name) {
            return s.clone();
        }
        write(&self.inner.sinks)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(SinkTelemetry::new(name, type_name)))
            .clone()
    }

    /// Every source, by name.
    pub fn sources(&self) -> Vec<Arc<SourceTelemetry>> {
        read(&self.inner.sources).values().cloned().collect()
    }

    /// Every sink, by name.
    pub fn sinks(&self) -> Vec<Arc<SinkTelemetry>> {
        read(&self.inner.sinks).values().cloned().collect()
    }

    /// The engine's state now (engine).
    pub fn set_state(&self, state: EngineState) {
        let current = self.state();
        // A failure is final for the run; a clean stop does not hide it.
        if current == EngineState::Failed {
            return;
        }
        self.inner.state.store(state as u8, Ordering::Relaxed);
    }

    /// The engine's state.
    pub fn state(&self) -> EngineState {
        EngineState::from_u8(self.inner.state.load(Ordering::Relaxed))
    }

    /// A route failed for good (engine): `message` says which and why.
    pub fn fail(&self, message: &str) {
        let mut failure = lock(&self.inner.failure);
        if failure.is_none() {
            *failure = Some(redact_message(message));
        }
        self.inner
            .state
            .store(EngineState::Failed as u8, Ordering::Relaxed);
    }

    /// Why the run failed, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.inner.failure).clone()
    }

    /// When this process's telemetry started (Unix milliseconds).
    pub fn started_unix_ms(&self) -> u64 {
        self.inner.started_unix_ms
    }

    /// Time since it started.
    pub fn uptime(&self) -> Duration {
        Duration::from_millis(self.inner.clock.now_ms())
    }

    /// Ready when the engine runs, every source is built and reaches its server, and every
    /// sink has opened its destination and waits for no table's lease.
    pub fn readiness(&self) -> Verdict {
        let mut reasons = Vec::new();
        match self.state() {
            EngineState::Running => {}
            EngineState::Failed => reasons.push(format!(
                "a route failed: {}",
                self.failure().unwrap_or_default()
            )),
            state => reasons.push(format!("engine {}", state.as_str())),
        }
        for source in self.sources() {
            if !source.is_built() {
                match source.reachability() {
                    Err(Some(why)) => reasons.push(format!(
                        "source `{}`: not connected yet, trying again: {why}",
                        source.name()
                    )),
                    _ => reasons.push(format!("source `{}`: connecting", source.name())),
                }
            } else if let Err(why) = source.reachability() {
                reasons.push(format!(
                    "source `{}`: cannot reach its server{}",
                    source.name(),
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
        }
        for sink in self.sinks() {
            if !sink.is_opened() {
                match sink.open_failure() {
                    Some(why) => reasons.push(format!(
                        "sink `{}`: cannot open its destination yet, trying again: {why}",
                        sink.name()
                    )),
                    None => {
                        reasons.push(format!("sink `{}`: opening its destination", sink.name()))
                    }
                }
            }
            for table in sink.tables() {
                if table.lease() == LeaseState::Waiting {
                    reasons.push(format!(
                        "sink `{}`: waiting for the lease of table {}: {}",
                        sink.name(),
                        table.id(),
                        table
                            .lease_wait_reason()
                            .unwrap_or_else(|| "another writer holds it".into())
                    ));
                }
            }
        }
        Verdict {
            ok: reasons.is_empty(),
            reasons,
        }
    }

    /// Healthy unless a route failed for good, or some source's items have waited longer than
    /// the stall limit without any commit (work pending, no progress: wedged). Idle is healthy.
    pub fn health(&self) -> Verdict {
        let mut reasons = Vec::new();
        if self.state() == EngineState::Failed {
            reasons.push(format!(
                "a route failed: {}",
                self.failure().unwrap_or_default()
            ));
        }
        let limit = self.inner.stalled_after_ms.load(Ordering::Relaxed);
        for source in self.sources() {
            let pending = source.pending_items();
            let still = source.millis_without_progress();
            if pending > 0 && still > limit {
                reasons.push(format!(
                    "source `{}`: {pending} items wait to be committed and nothing was committed \
                     for {} (limit {})",
                    source.name(),
                    humantime::format_duration(Duration::from_secs(still / 1000)),
                    humantime::format_duration(Duration::from_millis(limit)),
                ));
            }
        }
        Verdict {
            ok: reasons.is_empty(),
            reasons,
        }
    }

    /// Everything, as the JSON API shows it.
    pub fn report(&self) -> StatusReport {
        report::live(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableId;

    #[test]
    fn ready_once_everything_is_built_and_reachable() {
        let t = Telemetry::new();
        let source = t.source("s", "x");
        let sink = t.sink("k", "y");
        assert!(!t.readiness().ok);
        source.set_built();
        sink.set_opened();
        assert_eq!(t.readiness().reasons, vec!["engine starting".to_string()]);
        t.set_state(EngineState::Running);
        assert!(t.readiness().ok, "{:?}", t.readiness());
        source.set_unreachable("connection refused");
        assert_eq!(
            t.readiness().reasons,
            vec!["source `s`: cannot reach its server: connection refused".to_string()]
        );
        source.set_reachable();
        sink.table(&TableId::new("a"))
            .set_lease(LeaseState::Waiting);
        assert!(!t.readiness().ok);
    }

    #[test]
    fn pending_work_without_commits_is_a_stall_and_a_failure_is_final() {
        let t = Telemetry::new();
        t.set_stalled_after(Duration::ZERO);
        let source = t.source("s", "x");
        assert!(t.health().ok, "idle is healthy");
        source.emitted(1);
        std::thread::sleep(Duration::from_millis(5));
        let health = t.health();
        assert!(!health.ok);
        assert!(health.reasons[0].contains("1 items wait"), "{health:?}");
        source.committed(1, []);
        assert!(t.health().ok);
        t.fail("sink `k` failed: denied");
        t.set_state(EngineState::Stopped);
        assert_eq!(t.state(), EngineState::Failed);
        assert!(!t.health().ok);
    }
}
