//! The sink's error type and how it maps to the engine's transient/permanent split.

use mirror_core::ComponentError;

use crate::encode::EncodeError;
use crate::lease::LeaseError;
use crate::naming::NamingError;
use crate::schema::SchemaError;
use crate::store::{StoreError, StoreErrorKind};

/// Anything that stops the sink from publishing a file.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A storage operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A batch does not fit its table (type change, unsupported type).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A table has no valid folder, or two tables share one.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// Parquet encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Another writer holds the table, or this one lost it.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A data file number this sink was publishing holds someone else's file.
    #[error(
        "{path} was published by another writer while this sink was publishing it; is a second \
         mirror (or another tool) writing to this table? Nothing was overwritten; stop the other \
         writer, then restart"
    )]
    Conflict {
        /// The data file.
        path: String,
    },
    /// `_metadata.json` declares other key columns.
    #[error(
        "{path} declares keyColumns {existing:?}, but table `{table}` is keyed by {wanted:?}; \
         Fabric never allows key columns to change: drop the table folder to rebuild the table, or \
         keep the old key"
    )]
    KeyChange {
        /// The metadata file.
        path: String,
        /// The table.
        table: String,
        /// Keys in the file.
        existing: Vec<String>,
        /// Keys declared now.
        wanted: Vec<String>,
    },
    /// A file the sink keeps (`_mirror_table.json`, `_metadata.json`) cannot be understood.
    #[error("{path} is not readable ({message}); the sink will not guess: fix or remove the file")]
    BadStateFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A table folder was written by another writer (the Python app, another tool).
    #[error(
        "landing-zone folder `{folder}` (table `{table}`) was written by {writer}; mirror will not \
         write into it: its rows may hold NULLs where a value's type changed and lack replace \
         events, and continuing its file sequence would mix two writers' rows in one table. Stop \
         the other writer, then either set `takeover = \"reset\"` on this sink (mirror deletes \
         the folder, waits until Fabric has dropped the table, and copies the collection afresh) \
         or give the table another name (`[tables.\"<db>.<collection>\"] target = ...`); see \
         docs/migrating.md"
    )]
    ForeignTable {
        /// The folder.
        folder: String,
        /// The table meant for it.
        table: String,
        /// Who wrote it, with the evidence.
        writer: String,
    },
    /// A Fabric REST call failed.
    #[error(transparent)]
    Fabric(#[from] crate::fabric::FabricError),
    /// A batch is malformed (op count, missing key column).
    #[error(transparent)]
    Batch(#[from] mirror_core::model::BatchError),
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// A background task failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl SinkError {
    /// Whether retrying (after a backoff) can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Store(e) => e.kind == StoreErrorKind::Transient,
            SinkError::Lease(e) => e.is_transient(),
            SinkError::Fabric(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl From<SinkError> for ComponentError {
    fn from(e: SinkError) -> Self {
        if e.is_transient() {
            ComponentError::transient(e)
        } else {
            ComponentError::permanent(e)
        }
    }
}
