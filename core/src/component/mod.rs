//! The three component kinds and their factories.
//!
//! A component is configured by its own TOML table in `mirror.toml` and built by the config struct
//! itself (the config struct is the factory, as in Vector). Config structs register under their `type`
//! name with [`inventory`] (see [`registry`]), so linking a crate into a `mirror` build is all it takes
//! to make its components available.
//!
//! Contracts the engine relies on:
//! - [`Source::next`] may be called again after it returned a transient error; the source then carries
//!   on from where it was (it must not skip what the failed call would have returned).
//! - A [`Sink`] owns a batch once [`Sink::write`] is called, even if it returns an error. It calls
//!   [`Ack::acknowledge`] only once the batch's rows are durable at the destination. After a transient
//!   error from `write` or `flush`, it still holds every unacknowledged batch, and the engine retries
//!   [`Sink::flush`] until it succeeds.
//! - A [`Transform`] maps one batch to one batch (possibly with zero rows), keeping rows and operations
//!   aligned; the checkpoint passes through unchanged.

pub mod check;
pub mod registry;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{ResumeState, SchemaLedger};
use crate::config::TableSettings;
use crate::engine::Ack;
use crate::error::ComponentError;
use crate::model::{ChangeBatch, Checkpoint};
use crate::telemetry::{SinkTelemetry, SourceTelemetry, StateFacts, Telemetry};

pub use registry::{
    sink_types, source_types, transform_types, SinkRegistration, SourceRegistration,
    TransformRegistration,
};

/// What a source produces next.
#[derive(Debug)]
pub enum SourceItem {
    /// Rows to deliver; its checkpoint is committed once every sink acknowledged it (and every
    /// earlier item of this source).
    Batch(ChangeBatch),
    /// A position to commit once every earlier item is delivered, with no rows of its own (for
    /// example a change stream's high-water mark while nothing changes).
    Checkpoint(Checkpoint),
}

/// Produces changes, in order, resumable from a committed checkpoint.
#[async_trait]
pub trait Source: Send {
    /// The next item, waiting if there is none yet; `Ok(None)` once a finite source is exhausted.
    async fn next(&mut self) -> Result<Option<SourceItem>, ComponentError>;

    /// Releases connections; called once, after the last `next`.
    async fn close(&mut self) -> Result<(), ComponentError> {
        Ok(())
    }

    /// What the source learnt about the system it reads while it was built (its version, the
    /// kind of deployment). The engine hands it to the sinks the source feeds.
    fn system(&self) -> SourceSystem {
        SourceSystem::default()
    }
}

/// Changes batches between a source and the sinks (filter, rename, mask, ...).
#[async_trait]
pub trait Transform: Send {
    /// The batch to pass on instead of `batch`.
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError>;
}

/// Writes batches durably and acknowledges each once it is.
#[async_trait]
pub trait Sink: Send {
    /// Takes a batch; may buffer it. `ack` must be acknowledged once the rows are durable.
    async fn write(&mut self, batch: ChangeBatch, ack: Ack) -> Result<(), ComponentError>;

    /// Makes every buffered batch durable and acknowledges it.
    async fn flush(&mut self) -> Result<(), ComponentError>;

    /// When the engine should call [`Sink::flush`] even if no new batch arrives (time-based
    /// flushing keeps latency low under light load). `None`: no deadline.
    fn flush_deadline(&self) -> Option<Instant> {
        None
    }

    /// Called when [`Sink::flush_deadline`] passes. A sink that writes in the background may
    /// start writing what is due and acknowledge what has become durable since, without waiting
    /// for the writes it started (acknowledging them on a later call), so that batches arriving
    /// meanwhile are not held up. Defaults to [`Sink::flush`].
    async fn on_deadline(&mut self) -> Result<(), ComponentError> {
        self.flush().await
    }

    /// Flushes and releases resources; called once at the end of a run.
    async fn close(&mut self) -> Result<(), ComponentError> {
        self.flush().await
    }
}

/// Why a component could not be built from its configuration.
///
/// A transient one (its server cannot be reached yet: network, DNS, a private endpoint coming
/// up) makes the engine try again with backoff until `engine.start_timeout`; a permanent one
/// (bad settings, authentication failed, permission denied) stops the start at once.
///
/// ```
/// use mirror_core::component::BuildError;
/// let e = BuildError::transient("atlas", "cannot reach db.example.net: connection refused");
/// assert!(e.is_transient());
/// assert!(!BuildError::new("atlas", "authentication failed").is_transient());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct BuildError {
    /// The component's name in `mirror.toml`.
    pub component: String,
    /// What is wrong and what to check.
    pub message: String,
    /// Whether trying again later can succeed.
    pub kind: crate::ErrorKind,
}

impl BuildError {
    /// A build error for the component `name` that trying again cannot fix.
    pub fn new(component: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            component: component.into(),
            message: message.to_string(),
            kind: crate::ErrorKind::Permanent,
        }
    }

    /// A build error for the component `name` that may pass (a server not reachable yet).
    pub fn transient(component: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            kind: crate::ErrorKind::Transient,
            ..Self::new(component, message)
        }
    }

    /// A build error of `kind`, from a component's error (its message with every cause).
    pub fn from_component(component: impl Into<String>, error: &ComponentError) -> Self {
        Self {
            kind: error.kind(),
            ..Self::new(component, error.chain())
        }
    }

    /// Whether the engine tries again.
    pub fn is_transient(&self) -> bool {
        self.kind == crate::ErrorKind::Transient
    }
}

/// A source's identity, handed to the sinks it feeds (e.g. for Open Mirroring's
/// `_partnerEvents.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceDescriptor {
    /// The component name, `atlas` in `[sources.atlas]`.
    pub name: String,
    /// The `type`, e.g. `mongodb`.
    pub type_name: String,
    /// What the built source reported about the system it reads ([`Source::system`]).
    pub system: SourceSystem,
}

/// What a source knows about the system it reads, for sinks that record it (Open Mirroring's
/// `_partnerEvents.json` names the source system and its version).
///
/// ```
/// use mirror_core::component::SourceSystem;
///
/// let system = SourceSystem::default()
///     .with_version("7.0.12")
///     .with_detail("deployment", "replica set rs0");
/// assert_eq!(system.version.as_deref(), Some("7.0.12"));
/// assert_eq!(system.details["deployment"], "replica set rs0");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceSystem {
    /// The source system's version, e.g. MongoDB's `7.0.12`; `None` if unknown.
    pub version: Option<String>,
    /// Other facts worth recording (deployment kind, databases read, ...). Never credentials:
    /// sinks may write them where anyone with access to the data can read them.
    pub details: BTreeMap<String, String>,
}

impl SourceSystem {
    /// With `version` as the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// With one more detail.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }
}

/// What a source is built with.
#[derive(Clone, Debug)]
pub struct SourceContext {
    /// The component name.
    pub name: String,
    /// Its last committed state.
    pub resume: ResumeState,
    /// Per-table settings from `[tables]` (mapping, target names).
    pub tables: Arc<BTreeMap<String, TableSettings>>,
    /// Cancelled when the engine shuts down; sources with background tasks stop them on it.
    pub shutdown: CancellationToken,
    /// Where the source records its tables' column types before it hands on the first batch
    /// that uses them (see [`SchemaLedger`]): in the checkpoint store, outside the ordered
    /// commits. `None` outside the engine, where nothing is committed.
    pub schemas: Option<SchemaLedger>,
    /// Where the source reports what only it knows: its tables' phases and initial-sync
    /// progress, change events received, the stream positions its items reach, and whether its
    /// server is reachable (see [`crate::telemetry`]).
    pub telemetry: Arc<SourceTelemetry>,
}

impl SourceContext {
    /// A context for a source used outside the engine (tests, embedding): nothing is ever reported
    /// committed.
    pub fn standalone(name: impl Into<String>, resume: ResumeState) -> Self {
        let name = name.into();
        Self {
            telemetry: Telemetry::new().source(&name, ""),
            name,
            resume,
            tables: Arc::default(),
            shutdown: CancellationToken::new(),
            schemas: None,
        }
    }
}

/// What a transform is built with.
#[derive(Clone, Debug)]
pub struct TransformContext {
    /// The component name.
    pub name: String,
}

/// What a sink is built with.
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// The component name.
    pub name: String,
    /// The sources whose batches reach this sink.
    pub sources: Vec<SourceDescriptor>,
    /// Cancelled when the engine shuts down.
    pub shutdown: CancellationToken,
    /// Where the sink reports what it published, how long that took, and its leases (see
    /// [`crate::telemetry`]).
    pub telemetry: Arc<SinkTelemetry>,
}

impl SinkContext {
    /// A context for a sink used outside the engine (tests, embedding), fed by no known source.
    pub fn standalone(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            telemetry: Telemetry::new().sink(&name, ""),
            name,
            sources: Vec::new(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// A source's configuration, which builds the source.
#[async_trait]
pub trait SourceConfig: fmt::Debug + Send + Sync {
    /// Builds the source, resuming from `cx.resume`.
    async fn build(&self, cx: SourceContext) -> Result<Box<dyn Source>, BuildError>;

    /// One line for `mirror check`, e.g. `3 tables, 10000 rows`.
    fn describe(&self) -> String {
        String::new()
    }

    /// Human-readable position of a partition's state, for `mirror status`. The default shows the
    /// state as stored.
    fn describe_state(&self, state: &crate::model::CheckpointState) -> String {
        format!("{state:?}")
    }

    /// The source time up to which every change of `table` is committed in `resume`: `None` while
    /// the table is still being copied, or when the source keeps no time. It dates what a
    /// destination that applied everything holds ([`crate::destination::destination_lag`]).
    fn position_time(
        &self,
        resume: &ResumeState,
        table: &crate::model::TableId,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let _ = (resume, table);
        None
    }

    /// What a partition's state says in structured form (phase, progress, positions), for
    /// `mirror status --format json`. The default says nothing.
    fn state_facts(&self, state: &crate::model::CheckpointState) -> StateFacts {
        let _ = state;
        StateFacts::default()
    }

    /// Connects to the source's system and says whether `mirror run` can read from it, one
    /// [`check::Check`] per question, for `mirror check --connect`. Reads only. The default
    /// checks nothing.
    async fn check(&self, cx: check::CheckContext) -> Vec<check::Check> {
        let _ = cx;
        Vec::new()
    }
}

/// A transform's configuration, which builds the transform.
#[async_trait]
pub trait TransformConfig: fmt::Debug + Send + Sync {
    /// Builds the transform.
    async fn build(&self, cx: TransformContext) -> Result<Box<dyn Transform>, BuildError>;

    /// One line for `mirror check`.
    fn describe(&self) -> String {
        String::new()
    }
}

/// A sink's configuration, which builds the sink.
#[async_trait]
pub trait SinkConfig: fmt::Debug + Send + Sync {
    /// Builds the sink.
    async fn build(&self, cx: SinkContext) -> Result<Box<dyn Sink>, BuildError>;

    /// A checkpoint store kept with this sink's data, if it has one. When `[state] path` is unset
    /// and exactly one sink offers a store, the engine keeps every source's checkpoints there.
    fn checkpoint_store(
        &self,
    ) -> Result<Option<std::sync::Arc<dyn crate::checkpoint::CheckpointStore>>, BuildError> {
        Ok(None)
    }

    /// One line for `mirror check`, e.g. the landing zone URL.
    fn describe(&self) -> String {
        String::new()
    }

    /// The concrete configuration, for tools that know the sink's type (`mirror fabric` reads the
    /// `onelake` sink's Fabric settings this way). `None` by default.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// How often a running engine asks [`SinkConfig::destination_status`] (`None`, the default:
    /// never, as for a sink without such a destination). The answers reach the telemetry
    /// ([`crate::telemetry::Telemetry::record_destination`]), and so `/api/status` and `/metrics`.
    fn destination_status_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Opens the sink's destination and says whether `mirror run` can write to it, one
    /// [`check::Check`] per question, for `mirror check --connect`. Writes to no table (a probe
    /// of its own, removed again, at most). The default checks nothing.
    async fn check(&self, cx: check::CheckContext) -> Vec<check::Check> {
        let _ = cx;
        Vec::new()
    }

    /// Who writes the sink's destination, one line per table, for `mirror status` (the Open
    /// Mirroring sink: each table's lease holder, and whether it still runs). Empty by default.
    async fn writers(&self) -> Result<Vec<String>, crate::destination::DestinationError> {
        Ok(Vec::new())
    }

    /// What the sink's destination reports about the tables it was sent (`None`: the sink has no
    /// such destination, or none is configured). See [`crate::destination`].
    async fn destination_status(
        &self,
    ) -> Result<Option<crate::destination::DestinationReport>, crate::destination::DestinationError>
    {
        Ok(None)
    }
}
