//! Checkpoint stores: where a source's committed positions live between runs.
//!
//! A store keeps, per source and per [`Partition`], the last committed [`CheckpointState`] in a
//! documented, versioned JSON record ([`record`]). Commits are atomic per partition. A record that is
//! unreadable, or written by a newer format version, is an error: `mirror` never silently restarts
//! from scratch.

mod ledger;
mod local;
pub mod record;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{Checkpoint, CheckpointState, Partition, TableId};

pub use ledger::SchemaLedger;
pub use local::LocalCheckpointStore;

/// One partition's committed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredState {
    /// The state as the source wrote it.
    pub state: CheckpointState,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
}

/// Everything committed for one source: what it resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeState {
    entries: BTreeMap<Partition, StoredState>,
}

impl ResumeState {
    /// No committed state: a first run.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether nothing was committed yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The source-wide state.
    pub fn source(&self) -> Option<&CheckpointState> {
        self.entries.get(&Partition::Source).map(|s| &s.state)
    }

    /// One table's state.
    pub fn table(&self, table: &TableId) -> Option<&CheckpointState> {
        self.entries
            .get(&Partition::Table(table.clone()))
            .map(|s| &s.state)
    }

    /// Every table with state.
    pub fn tables(&self) -> impl Iterator<Item = (&TableId, &CheckpointState)> {
        self.entries.iter().filter_map(|(p, s)| match p {
            Partition::Table(t) => Some((t, &s.state)),
            _ => None,
        })
    }

    /// One table's column types as recorded ahead of its data ([`SchemaLedger`]).
    pub fn table_schema(&self, table: &TableId) -> Option<&CheckpointState> {
        self.entries
            .get(&Partition::TableSchema(table.clone()))
            .map(|s| &s.state)
    }

    /// Every table with column types recorded ahead of its data ([`SchemaLedger`]).
    pub fn table_schemas(&self) -> impl Iterator<Item = (&TableId, &CheckpointState)> {
        self.entries.iter().filter_map(|(p, s)| match p {
            Partition::TableSchema(t) => Some((t, &s.state)),
            _ => None,
        })
    }

    /// Every partition with its state and commit time.
    pub fn entries(&self) -> impl Iterator<Item = (&Partition, &StoredState)> {
        self.entries.iter()
    }

    /// Records a partition's state (stores use this while loading).
    pub fn insert(&mut self, partition: Partition, stored: StoredState) {
        self.entries.insert(partition, stored);
    }

    /// Applies a commit on top (what a store holds after committing `checkpoint`).
    pub fn apply(&mut self, checkpoint: &Checkpoint, at: DateTime<Utc>) {
        for (partition, state) in checkpoint.entries() {
            self.entries.insert(
                partition.clone(),
                StoredState {
                    state: state.clone(),
                    committed_at: at,
                },
            );
        }
    }
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The storage failed.
    #[error("checkpoint store: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record is not a valid checkpoint.
    #[error(
        "checkpoint store: {path} is not a valid mirror checkpoint ({message}); mirror will not \
         guess where to resume: restore the file from a backup, or delete it to re-sync that part \
         from scratch"
    )]
    Corrupt {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A record was written by a newer `mirror`.
    #[error(
        "checkpoint store: {path} has format version {found}, but this mirror {ours} reads only \
         versions up to {supported}; run the newer mirror that wrote it"
    )]
    FutureVersion {
        /// Where.
        path: PathBuf,
        /// The record's version.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
        /// This build's version.
        ours: &'static str,
    },
    /// A remote store failed (stores outside the core).
    #[error("checkpoint store: {0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// A remote store cannot be reached now (network, throttling); trying again can succeed.
    #[error("checkpoint store: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl CheckpointError {
    /// Whether trying again can succeed (the store is unreachable for now), as opposed to an
    /// error that waiting does not fix (a corrupt record, permission denied).
    pub fn is_transient(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            CheckpointError::Unavailable(_) => true,
            CheckpointError::Io { source, .. } => matches!(
                source.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::TimedOut
                    | K::Interrupted
            ),
            _ => false,
        }
    }
}

/// Where checkpoints are committed.
///
/// ```
/// # async fn demo() -> Result<(), mirror_core::checkpoint::CheckpointError> {
/// use mirror_core::checkpoint::{CheckpointStore, LocalCheckpointStore};
/// use mirror_core::model::{Checkpoint, CheckpointState};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LocalCheckpointStore::new(dir.path());
/// store.commit("gen", &Checkpoint::source(CheckpointState::from_json(&7).unwrap())).await?;
/// let resume = store.load("gen").await?;
/// assert_eq!(resume.source().unwrap().to_json::<i32>().unwrap(), 7);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// Everything committed for `source`; empty on a first run.
    async fn load(&self, source: &str) -> Result<ResumeState, CheckpointError>;

    /// Durably commits every partition of `checkpoint` (each partition atomically).
    async fn commit(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;

    /// Where the store is, for messages (`./mirror-state`, a URL, ...).
    fn location(&self) -> String;
}
