//! The engine: runs the configured graph as tasks joined by bounded channels.
//!
//! Per source: a task pulls items from the source and sends each batch to every consumer (transforms
//! or sinks), registering it with the source's ordered [finalizer](finalizer). Transforms and sinks run
//! in their own tasks, reading from a bounded channel, so a slow sink slows the source and memory stays
//! flat. Sinks acknowledge batches once durable; the finalizer commits the source's checkpoints in
//! order, only for acknowledged batches.
//!
//! Errors: transient errors from `Source::next`, `Sink::write`/`flush` and checkpoint commits are
//! retried with capped exponential backoff and jitter; a permanent error (or a retry budget spent)
//! stops the whole graph cleanly (sources stop, what is in flight drains, only delivered batches are
//! committed) and `run` returns the error. SIGINT/SIGTERM, wired to [`Engine::shutdown_token`] by the
//! binary, start the same clean stop; it must finish within `engine.shutdown_timeout`, after which the
//! remaining tasks are aborted (nothing unacknowledged is ever committed, so this loses nothing).

mod ack;
mod destination;
mod finalizer;
mod retry;
mod start;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::checkpoint::{CheckpointError, CheckpointStore, LocalCheckpointStore, SchemaLedger};
use crate::component::{
    BuildError, Sink, SinkContext, Source, SourceContext, SourceDescriptor, SourceItem, Transform,
    TransformContext,
};
use crate::config::{MirrorConfig, RetrySettings};
use crate::error::ComponentError;
use crate::model::ChangeBatch;
use crate::telemetry::{EngineState, SinkTelemetry, SourceTelemetry, Telemetry};

pub use ack::Ack;
use finalizer::{Finalizer, FinalizerMsg, FinalizerStats};
use retry::Backoff;
use start::{StartFailure, Starter};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A component could not be built (bad settings, authentication or permissions).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A component's server could not be reached before `engine.start_timeout` passed.
    #[error(
        "{component} could not be started within engine.start_timeout ({} over {attempts} \
         attempts): {error}",
        humantime::format_duration(Duration::from_secs(waited.as_secs()))
    )]
    StartTimeout {
        /// `source <name>` or `sink <name>`.
        component: String,
        /// Attempts made.
        attempts: u32,
        /// How long it tried.
        waited: Duration,
        /// The last error.
        error: String,
    },
    /// A source's committed state could not be read.
    #[error("source `{source_name}`: cannot load its checkpoints: {error}")]
    LoadCheckpoint {
        /// The source.
        source_name: String,
        /// Why.
        error: CheckpointError,
    },
    /// A component failed with a permanent error.
    #[error("{kind} `{component}` failed: {}", error.chain())]
    Component {
        /// `source`, `transform` or `sink`.
        kind: &'static str,
        /// Its name.
        component: String,
        /// Its error.
        error: ComponentError,
    },
    /// A component kept failing with transient errors until `engine.retry.give_up_after`.
    #[error("{kind} `{component}` still failing after {attempts} attempts, giving up: {}", error.chain())]
    GaveUp {
        /// `source`, `transform` or `sink`.
        kind: &'static str,
        /// Its name.
        component: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: ComponentError,
    },
    /// A component panicked (a bug in it).
    #[error("{kind} `{component}` panicked: {message}")]
    Panicked {
        /// `source`, `transform` or `sink`.
        kind: &'static str,
        /// Its name.
        component: String,
        /// The panic message.
        message: String,
    },
    /// A batch was dropped by a sink or transform without being acknowledged.
    #[error(
        "source `{source_name}`: batch {seq} was dropped before every sink acknowledged it; \
         nothing after it is committed"
    )]
    Undelivered {
        /// The source.
        source_name: String,
        /// The batch's position in the source's output.
        seq: u64,
    },
    /// Committing a checkpoint failed.
    #[error("source `{source_name}`: cannot commit its checkpoint: {error}")]
    Checkpoint {
        /// The source.
        source_name: String,
        /// Why.
        error: CheckpointError,
    },
    /// The clean stop did not finish in time; remaining tasks were aborted.
    #[error(
        "shutdown did not finish within {timeout:?}; stopped anyway (batches not yet acknowledged \
         will be sent again on the next run)"
    )]
    ShutdownTimeout {
        /// `engine.shutdown_timeout`.
        timeout: Duration,
    },
}

/// Errors reported by tasks; the first one stops the graph.
#[derive(Clone)]
pub(crate) struct Failures {
    errors: Arc<Mutex<Vec<EngineError>>>,
    stop: CancellationToken,
    telemetry: Telemetry,
}

impl Failures {
    pub fn report(&self, err: EngineError) {
        error!("{err}");
        // A batch dropped while stopping is the consequence of the stop, not a failure.
        if !(matches!(err, EngineError::Undelivered { .. }) && self.stop.is_cancelled()) {
            self.telemetry.fail(&err.to_string());
        }
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(err);
        self.stop.cancel();
    }

    /// The root cause: a dropped batch is usually the consequence of another failure (a sink
    /// that panicked drops what it held), so any other error is reported first.
    fn take_first(&self) -> Option<EngineError> {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let root = errors
            .iter()
            .position(|e| !matches!(e, EngineError::Undelivered { .. }))
            .unwrap_or(0);
        if errors.is_empty() {
            None
        } else {
            Some(errors.remove(root))
        }
    }
}

/// How a run ended, with counts.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// True if it stopped because of a shutdown request rather than because every source finished.
    pub interrupted: bool,
    /// Per source: what it emitted and what was committed.
    pub sources: BTreeMap<String, SourceReport>,
    /// Per sink: batches and rows it acknowledged.
    pub sinks: BTreeMap<String, SinkReport>,
}

/// Counts for one source.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// Batches emitted.
    pub batches: u64,
    /// Rows emitted.
    pub rows: u64,
    /// Items (batches and checkpoint-only items) whose checkpoint is committed.
    pub committed_items: u64,
}

/// Counts for one sink.
#[derive(Debug, Clone, Default)]
pub struct SinkReport {
    /// Batches written.
    pub batches: u64,
    /// Rows written.
    pub rows: u64,
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.interrupted {
            "stopped"
        } else {
            "finished"
        };
        write!(f, "{how}:")?;
        for (name, s) in &self.sources {
            write!(
                f,
                " source {name}: {} rows in {} batches, {} committed;",
                s.rows, s.batches, s.committed_items
            )?;
        }
        for (name, s) in &self.sinks {
            write!(f, " sink {name}: {} rows written;", s.rows)?;
        }
        Ok(())
    }
}

/// A batch in flight with its acknowledgement and the source it comes from.
struct Envelope {
    batch: ChangeBatch,
    ack: Ack,
    origin: Arc<str>,
}

/// Where a node sends its batches.
struct Outputs {
    senders: Vec<mpsc::Sender<Envelope>>,
}

impl Outputs {
    /// Sends to every consumer; false if a consumer is gone or `stop` fired while waiting.
    async fn send(
        &self,
        batch: ChangeBatch,
        ack: Ack,
        origin: &Arc<str>,
        stop: Option<&CancellationToken>,
    ) -> bool {
        // Fork every ack before the first send so the batch cannot count as delivered early.
        let mut acks: Vec<Ack> = (1..self.senders.len()).map(|_| ack.fork()).collect();
        acks.push(ack);
        for (sender, ack) in self.senders.iter().zip(acks) {
            let envelope = Envelope {
                batch: batch.clone(),
                ack,
                origin: origin.clone(),
            };
            let sent = match stop {
                Some(stop) => tokio::select! {
                    biased;
                    r = sender.send(envelope) => r.is_ok(),
                    _ = stop.cancelled() => false,
                },
                None => sender.send(envelope).await.is_ok(),
            };
            if !sent {
                return false;
            }
        }
        true
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
}

/// Runs a configuration.
///
/// ```no_run
/// # async fn demo(config: mirror_core::config::MirrorConfig) -> Result<(), mirror_core::engine::EngineError> {
/// let engine = mirror_core::engine::Engine::new(config);
/// let stop = engine.shutdown_token();
/// tokio::spawn(async move {
///     tokio::signal::ctrl_c().await.ok();
///     stop.cancel();
/// });
/// let report = engine.run().await?;
/// # Ok(()) }
/// ```
pub struct Engine {
    config: MirrorConfig,
    store: Option<Arc<dyn CheckpointStore>>,
    shutdown: CancellationToken,
    telemetry: Telemetry,
}

impl Engine {
    /// An engine for `config`, with checkpoints in `[state] path`.
    pub fn new(config: MirrorConfig) -> Self {
        Self {
            config,
            store: None,
            shutdown: CancellationToken::new(),
            telemetry: Telemetry::new(),
        }
    }

    /// Reports into `telemetry` (shared with whoever serves it) instead of facts of its own.
    /// The configured components are declared at once, so readiness names them from the start.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self.declare_components();
        self
    }

    fn declare_components(&self) {
        for spec in &self.config.sources {
            self.telemetry.source(&spec.name, &spec.type_name);
        }
        for spec in &self.config.sinks {
            self.telemetry.sink(&spec.name, &spec.type_name);
        }
    }

    /// What this engine reports about its run.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Uses `store` for checkpoints instead of `[state]`.
    pub fn with_checkpoint_store(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Cancel it to stop the run cleanly.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The checkpoint store this engine uses: the one given, else `[state] path`, else the one sink
    /// that keeps state with its data, else `./mirror-state`.
    pub fn checkpoint_store(&self) -> Result<Arc<dyn CheckpointStore>, EngineError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        resolve_checkpoint_store(&self.config)
    }

    /// Builds every component and runs until all sources finish, a component fails, or shutdown.
    pub async fn run(self) -> Result<RunReport, EngineError> {
        let telemetry = self.telemetry.clone();
        telemetry.set_state(EngineState::Starting);
        self.declare_components();
        let result = self.run_graph().await;
        match &result {
            Ok(_) => telemetry.set_state(EngineState::Stopped),
            Err(e) => telemetry.fail(&e.to_string()),
        }
        result
    }

    async fn run_graph(self) -> Result<RunReport, EngineError> {
        let telemetry = self.telemetry.clone();
        let store = self.checkpoint_store()?;
        info!(location = %store.location(), "checkpoint store");
        let config = self.config;
        let stop = self.shutdown.child_token();
        let failures = Failures {
            errors: Arc::default(),
            stop: stop.clone(),
            telemetry: telemetry.clone(),
        };
        let capacity = config.engine.channel_capacity.max(1);
        let retry = config.engine.retry.clone();
        let tables = Arc::new(config.tables.clone());

        // One channel per consumer; every input of it holds a sender.
        let mut inboxes: BTreeMap<String, (mpsc::Sender<Envelope>, mpsc::Receiver<Envelope>)> =
            BTreeMap::new();
        for name in config
            .transforms
            .iter()
            .map(|t| &t.name)
            .chain(config.sinks.iter().map(|s| &s.name))
        {
            inboxes.insert(name.clone(), mpsc::channel(capacity));
        }
        let mut outputs: BTreeMap<String, Vec<mpsc::Sender<Envelope>>> = BTreeMap::new();
        for (consumer, inputs) in config
            .transforms
            .iter()
            .map(|t| (&t.name, &t.inputs))
            .chain(config.sinks.iter().map(|s| (&s.name, &s.inputs)))
        {
            for input in inputs {
                outputs
                    .entry(input.clone())
                    .or_default()
                    .push(inboxes[consumer].0.clone());
            }
        }

        // Build everything before starting anything, so a bad component fails fast; a server
        // that cannot be reached yet is tried again until `engine.start_timeout`.
        let starter = Starter::new(&retry, config.engine.start_timeout, &stop);
        let mut built_sources: Vec<(String, Box<dyn Source>)> = Vec::new();
        for spec in &config.sources {
            let source_telemetry = telemetry.source(&spec.name, &spec.type_name);
            let what = format!("source `{}`", spec.name);
            let unreachable = |attempt: u32, e: &dyn fmt::Display| {
                source_telemetry.set_unreachable(format!("attempt {attempt}: {e}"))
            };
            let resume = starter
                .run(
                    &what,
                    || store.load(&spec.name),
                    CheckpointError::is_transient,
                    |n, e| unreachable(n, e),
                )
                .await
                .map_err(|failure| match failure {
                    StartFailure::Permanent(error) => Some(EngineError::LoadCheckpoint {
                        source_name: spec.name.clone(),
                        error,
                    }),
                    other => start_failure(&what, other),
                });
            let resume = match resume {
                Ok(resume) => resume,
                Err(Some(e)) => return Err(e),
                Err(None) => return Ok(stopped_at_start()),
            };
            if resume.is_empty() {
                info!(source = %spec.name, "no checkpoint: starting from the beginning");
            } else {
                info!(source = %spec.name, partitions = resume.entries().count(), "resuming from checkpoint");
            }
            let built = starter
                .run(
                    &what,
                    || {
                        spec.config.build(SourceContext {
                            name: spec.name.clone(),
                            resume: resume.clone(),
                            tables: tables.clone(),
                            shutdown: stop.clone(),
                            schemas: Some(SchemaLedger::new(store.clone(), spec.name.clone())),
                            telemetry: source_telemetry.clone(),
                        })
                    },
                    BuildError::is_transient,
                    |n, e| unreachable(n, e),
                )
                .await;
            let source = match built {
                Ok(source) => source,
                Err(failure) => return build_failed(&what, failure, &source_telemetry.stats),
            };
            source_telemetry.set_built();
            built_sources.push((spec.name.clone(), source));
        }
        // Which sources reach which sink, and what they reported, for the sinks' context.
        let mut sink_sources: BTreeMap<String, Vec<SourceDescriptor>> = BTreeMap::new();
        for route in config.routes() {
            let (Some(first), Some(last)) = (route.first(), route.last()) else {
                continue;
            };
            let Some(source) = config.sources.iter().find(|s| &s.name == first) else {
                continue;
            };
            let entry = sink_sources.entry(last.clone()).or_default();
            if !entry.iter().any(|d| d.name == source.name) {
                let system = built_sources
                    .iter()
                    .find(|(name, _)| name == &source.name)
                    .map(|(_, built)| built.system())
                    .unwrap_or_default();
                entry.push(SourceDescriptor {
                    name: source.name.clone(),
                    type_name: source.type_name.clone(),
                    system,
                });
            }
        }

        let mut built_transforms: Vec<(String, Box<dyn Transform>)> = Vec::new();
        for spec in &config.transforms {
            let transform = spec
                .config
                .build(TransformContext {
                    name: spec.name.clone(),
                })
                .await?;
            built_transforms.push((spec.name.clone(), transform));
        }
        let mut built_sinks: Vec<(String, Box<dyn Sink>)> = Vec::new();
        for spec in &config.sinks {
            let sink_telemetry = telemetry.sink(&spec.name, &spec.type_name);
            let sources = sink_sources.remove(&spec.name).unwrap_or_default();
            let what = format!("sink `{}`", spec.name);
            let built = starter
                .run(
                    &what,
                    || {
                        spec.config.build(SinkContext {
                            name: spec.name.clone(),
                            sources: sources.clone(),
                            shutdown: stop.clone(),
                            telemetry: sink_telemetry.clone(),
                        })
                    },
                    BuildError::is_transient,
                    |n, e| sink_telemetry.set_open_failure(&format!("attempt {n}: {e}")),
                )
                .await;
            let sink = match built {
                Ok(sink) => sink,
                Err(failure) => return build_failed(&what, failure, &sink_telemetry.stats),
            };
            sink_telemetry.set_opened();
            built_sinks.push((spec.name.clone(), sink));
        }

        let mut tasks = JoinSet::new();
        let mut task_names: BTreeMap<tokio::task::Id, (&'static str, String)> = BTreeMap::new();
        let mut source_counters = BTreeMap::new();
        let mut finalizer_stats = BTreeMap::new();
        for (name, source) in built_sources {
            let (fin_tx, fin_rx) = mpsc::unbounded_channel();
            let stats = Arc::new(FinalizerStats::default());
            finalizer_stats.insert(name.clone(), stats.clone());
            let source_telemetry = telemetry.source(&name, "");
            let finalizer = Finalizer {
                telemetry: source_telemetry.clone(),
                source: name.clone(),
                store: store.clone(),
                retry: retry.clone(),
                shutdown: stop.clone(),
                failures: failures.clone(),
                stats,
            };
            let handle = tasks.spawn(finalizer.run(fin_rx));
            task_names.insert(handle.id(), ("finalizer", name.clone()));
            let counters = Arc::new(Counters::default());
            source_counters.insert(name.clone(), counters.clone());
            let out = Outputs {
                senders: outputs.remove(&name).unwrap_or_default(),
            };
            let task = run_source(
                name.clone(),
                source,
                out,
                fin_tx,
                stop.clone(),
                retry.clone(),
                failures.clone(),
                counters,
                source_telemetry,
            );
            let handle = tasks.spawn(task);
            task_names.insert(handle.id(), ("source", name));
        }
        for (name, transform) in built_transforms {
            let (_, inbox) = inboxes.remove(&name).expect("every transform has an inbox");
            let out = Outputs {
                senders: outputs.remove(&name).unwrap_or_default(),
            };
            let handle = tasks.spawn(run_transform(
                name.clone(),
                transform,
                inbox,
                out,
                failures.clone(),
            ));
            task_names.insert(handle.id(), ("transform", name));
        }
        let mut sink_counters = BTreeMap::new();
        for (name, sink) in built_sinks {
            let (_, inbox) = inboxes.remove(&name).expect("every sink has an inbox");
            let counters = Arc::new(Counters::default());
            sink_counters.insert(name.clone(), counters.clone());
            let handle = tasks.spawn(run_sink(
                name.clone(),
                sink,
                inbox,
                retry.clone(),
                failures.clone(),
                counters,
                telemetry.sink(&name, ""),
            ));
            task_names.insert(handle.id(), ("sink", name));
        }
        drop(outputs);
        telemetry.set_state(EngineState::Running);
        let _destinations = destination::watch_destinations(
            config.sinks.iter().map(|s| (s.name.as_str(), &s.config)),
            &telemetry,
            &stop,
        );

        let timeout = config.engine.shutdown_timeout;
        let mut timed_out = false;
        loop {
            let joined = if stop.is_cancelled() {
                match tokio::time::timeout(timeout, tasks.join_next_with_id()).await {
                    Ok(j) => j,
                    Err(_) => {
                        timed_out = true;
                        warn!(
                            ?timeout,
                            remaining = tasks.len(),
                            "shutdown timed out; aborting remaining tasks"
                        );
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        break;
                    }
                }
            } else {
                tokio::select! {
                    j = tasks.join_next_with_id() => j,
                    _ = stop.cancelled() => {
                        telemetry.set_state(EngineState::Stopping);
                        info!(?timeout, "stopping: draining in-flight batches and committing checkpoints");
                        continue;
                    }
                }
            };
            match joined {
                None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let (kind, component) = task_names
                        .get(&e.id())
                        .cloned()
                        .unwrap_or(("task", String::new()));
                    if e.is_panic() {
                        let payload = e.into_panic();
                        let message = payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_owned());
                        failures.report(EngineError::Panicked {
                            kind,
                            component,
                            message,
                        });
                    }
                }
            }
        }

        if let Some(err) = failures.take_first() {
            return Err(err);
        }
        if timed_out {
            return Err(EngineError::ShutdownTimeout { timeout });
        }
        let mut report = RunReport {
            interrupted: self.shutdown.is_cancelled(),
            ..RunReport::default()
        };
        for (name, c) in source_counters {
            let committed = finalizer_stats
                .get(&name)
                .map_or(0, |s| s.committed_items.load(Ordering::Relaxed));
            report.sources.insert(
                name,
                SourceReport {
                    batches: c.batches.load(Ordering::Relaxed),
                    rows: c.rows.load(Ordering::Relaxed),
                    committed_items: committed,
                },
            );
        }
        for (name, c) in sink_counters {
            report.sinks.insert(
                name,
                SinkReport {
                    batches: c.batches.load(Ordering::Relaxed),
                    rows: c.rows.load(Ordering::Relaxed),
                },
            );
        }
        Ok(report)
    }
}

/// The error of a start that timed out, or `None` for one that was stopped (a permanent
/// failure is the caller's to word).
fn start_failure<E: fmt::Display>(what: &str, failure: StartFailure<E>) -> Option<EngineError> {
    match failure {
        StartFailure::Stopped => None,
        StartFailure::Permanent(error) => Some(EngineError::StartTimeout {
            component: what.to_owned(),
            attempts: 1,
            waited: Duration::ZERO,
            error: error.to_string(),
        }),
        StartFailure::TimedOut {
            error,
            attempts,
            waited,
        } => Some(EngineError::StartTimeout {
            component: what.to_owned(),
            attempts,
            waited,
            error: error.to_string(),
        }),
    }
}

/// How a run ends when `what` could not be built: its error (recorded in `stats`), or a clean
/// stop when the run was stopped meanwhile.
fn build_failed(
    what: &str,
    failure: StartFailure<BuildError>,
    stats: &crate::telemetry::ComponentStats,
) -> Result<RunReport, EngineError> {
    if let StartFailure::Permanent(e) | StartFailure::TimedOut { error: e, .. } = &failure {
        stats.error(crate::ErrorKind::Permanent, &e.to_string());
    }
    match failure {
        StartFailure::Permanent(e) => Err(EngineError::Build(e)),
        other => start_failure(what, other).map_or(Ok(stopped_at_start()), Err),
    }
}

/// The report of a run stopped before it started (SIGTERM while waiting for a server).
fn stopped_at_start() -> RunReport {
    info!("stopped before every component was started");
    RunReport {
        interrupted: true,
        ..RunReport::default()
    }
}

/// The checkpoint store `config` asks for (see [`crate::config::StateSettings`]).
pub fn resolve_checkpoint_store(
    config: &MirrorConfig,
) -> Result<Arc<dyn CheckpointStore>, EngineError> {
    if let Some(path) = &config.state.path {
        return Ok(Arc::new(LocalCheckpointStore::new(path.clone())));
    }
    let mut offered = Vec::new();
    for sink in &config.sinks {
        if let Some(store) = sink.config.checkpoint_store()? {
            offered.push(store);
        }
    }
    if offered.len() == 1 {
        return Ok(offered.remove(0));
    }
    Ok(Arc::new(LocalCheckpointStore::new(
        crate::config::DEFAULT_STATE_DIR,
    )))
}

#[allow(clippy::too_many_arguments)]
async fn run_source(
    name: String,
    mut source: Box<dyn Source>,
    outputs: Outputs,
    finalizer: mpsc::UnboundedSender<FinalizerMsg>,
    stop: CancellationToken,
    retry: RetrySettings,
    failures: Failures,
    counters: Arc<Counters>,
    telemetry: Arc<SourceTelemetry>,
) {
    let origin: Arc<str> = Arc::from(name.as_str());
    let mut seq = 0u64;
    loop {
        let mut backoff = Backoff::new(&retry);
        let item = loop {
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => None,
                r = source.next() => Some(r),
            };
            match next {
                None => break None,
                Some(Ok(item)) => break Some(item),
                Some(Err(e)) if e.is_transient() => match backoff.next_delay() {
                    Some(delay) => {
                        telemetry
                            .stats
                            .error(crate::ErrorKind::Transient, &e.chain());
                        telemetry
                            .stats
                            .retry(crate::telemetry::RetryReason::Transient);
                        warn!(source = %name, error = %e.chain(), retry_in = ?delay, "transient error; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stop.cancelled() => break None,
                        }
                    }
                    None => {
                        telemetry
                            .stats
                            .error(crate::ErrorKind::Permanent, &e.chain());
                        failures.report(EngineError::GaveUp {
                            kind: "source",
                            component: name.clone(),
                            attempts: backoff.attempts,
                            error: e,
                        });
                        break None;
                    }
                },
                Some(Err(e)) => {
                    telemetry
                        .stats
                        .error(crate::ErrorKind::Permanent, &e.chain());
                    failures.report(EngineError::Component {
                        kind: "source",
                        component: name.clone(),
                        error: e,
                    });
                    break None;
                }
            }
        };
        let item = match item {
            Some(Some(item)) => item,
            Some(None) => {
                info!(source = %name, "source finished");
                break;
            }
            None => break,
        };
        seq += 1;
        telemetry.emitted(seq);
        match item {
            SourceItem::Checkpoint(checkpoint) => {
                let _ = finalizer.send(FinalizerMsg::Emitted {
                    seq,
                    checkpoint,
                    delivered: true,
                });
            }
            SourceItem::Batch(batch) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .rows
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                let _ = finalizer.send(FinalizerMsg::Emitted {
                    seq,
                    checkpoint: batch.checkpoint().clone(),
                    delivered: false,
                });
                let ack = Ack::new(seq, finalizer.clone());
                if !outputs.send(batch, ack, &origin, Some(&stop)).await {
                    break;
                }
            }
        }
    }
    if let Err(error) = source.close().await {
        failures.report(EngineError::Component {
            kind: "source",
            component: name.clone(),
            error,
        });
    }
    debug!(source = %name, "source task done");
}

async fn run_transform(
    name: String,
    mut transform: Box<dyn Transform>,
    mut inbox: mpsc::Receiver<Envelope>,
    outputs: Outputs,
    failures: Failures,
) {
    while let Some(Envelope { batch, ack, origin }) = inbox.recv().await {
        // A truncation has no rows to transform; it must reach the sinks as it is.
        let result = if batch.truncates() {
            Ok(batch)
        } else {
            transform.apply(batch).await
        };
        match result {
            Ok(batch) => {
                if !outputs.send(batch, ack, &origin, None).await {
                    break;
                }
            }
            Err(error) => {
                failures.report(EngineError::Component {
                    kind: "transform",
                    component: name.clone(),
                    error,
                });
                break;
            }
        }
    }
}

async fn run_sink(
    name: String,
    mut sink: Box<dyn Sink>,
    mut inbox: mpsc::Receiver<Envelope>,
    retry: RetrySettings,
    failures: Failures,
    counters: Arc<Counters>,
    telemetry: Arc<SinkTelemetry>,
) {
    // Tables whose source is known to the telemetry (so sink-side facts name their source).
    let mut linked = std::collections::HashSet::new();
    loop {
        let deadline = sink.flush_deadline();
        let result = tokio::select! {
            msg = inbox.recv() => match msg {
                Some(Envelope { batch, ack, origin }) => {
                    if !linked.contains(&batch.table().id) {
                        telemetry.table(&batch.table().id).set_source(&origin);
                        linked.insert(batch.table().id.clone());
                    }
                    counters.batches.fetch_add(1, Ordering::Relaxed);
                    counters.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    sink.write(batch, ack).await
                }
                None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => sink.on_deadline().await,
        };
        if !settle(&name, &mut *sink, result, &retry, &failures, &telemetry).await {
            return;
        }
    }
    let result = sink.close().await;
    settle(&name, &mut *sink, result, &retry, &failures, &telemetry).await;
    debug!(sink = %name, "sink task done");
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Handles a sink call's result: retries `flush` after transient errors. False if the sink failed.
async fn settle(
    name: &str,
    sink: &mut dyn Sink,
    mut result: Result<(), ComponentError>,
    retry: &RetrySettings,
    failures: &Failures,
    telemetry: &SinkTelemetry,
) -> bool {
    let mut backoff = Backoff::new(retry);
    loop {
        match result {
            Ok(()) => return true,
            Err(e) if e.is_transient() => match backoff.next_delay() {
                Some(delay) => {
                    telemetry
                        .stats
                        .error(crate::ErrorKind::Transient, &e.chain());
                    telemetry
                        .stats
                        .retry(crate::telemetry::RetryReason::Transient);
                    warn!(sink = %name, error = %e.chain(), retry_in = ?delay, "transient error; retrying");
                    tokio::time::sleep(delay).await;
                    result = sink.flush().await;
                }
                None => {
                    telemetry
                        .stats
                        .error(crate::ErrorKind::Permanent, &e.chain());
                    failures.report(EngineError::GaveUp {
                        kind: "sink",
                        component: name.to_owned(),
                        attempts: backoff.attempts,
                        error: e,
                    });
                    return false;
                }
            },
            Err(error) => {
                telemetry
                    .stats
                    .error(crate::ErrorKind::Permanent, &error.chain());
                failures.report(EngineError::Component {
                    kind: "sink",
                    component: name.to_owned(),
                    error,
                });
                return false;
            }
        }
    }
}
