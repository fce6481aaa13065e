//! The schema ledger: a table's column types made durable *ahead* of the data that first uses them.
//!
//! Checkpoints are committed in source order, once every sink has acknowledged the batches before
//! them. Column types cannot wait for that: once a file holding a column is published, its
//! destination has seen the column's type, and a restart must never pick another (Fabric stops a
//! table whose column changes type). Waiting for a commit before every batch that adds a column
//! would cost a sink flush per new column. But a table's columns only grow and never change type,
//! so recording them early is never wrong: a source restarted after a crash adopts the recorded
//! types, which agree with everything published and merely fix those of columns that were not
//! published yet.
//!
//! A source records a table's column state with [`SchemaLedger::record`] before it hands on the
//! first batch that uses a new column (for a new table: as soon as it inferred the first types).
//! The store keeps it as the table's [`Partition::TableSchema`], next to (not inside) the ordered
//! checkpoints, and a restarted source finds it in [`ResumeState::table_schema`](super::ResumeState::table_schema).
//!
//! ```
//! # async fn demo() -> Result<(), mirror_core::checkpoint::CheckpointError> {
//! use std::sync::Arc;
//! use mirror_core::checkpoint::{CheckpointStore, LocalCheckpointStore, SchemaLedger};
//! use mirror_core::model::CheckpointState;
//! use mirror_core::TableId;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(LocalCheckpointStore::new(dir.path()));
//! let ledger = SchemaLedger::new(store.clone(), "atlas");
//! let orders = TableId::new("orders");
//! let columns = CheckpointState::from_json(&serde_json::json!({"columns": ["total"]})).unwrap();
//! ledger.record([(orders.clone(), columns.clone())]).await?;
//! // Durable at once: no batch had to be acknowledged first.
//! assert_eq!(store.load("atlas").await?.table_schema(&orders), Some(&columns));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use super::{CheckpointError, CheckpointStore};
use crate::model::{Checkpoint, CheckpointState, Partition, TableId};

/// Where a source records its tables' column types ahead of its data. See the module docs.
#[derive(Clone)]
pub struct SchemaLedger {
    store: Arc<dyn CheckpointStore>,
    source: String,
}

impl fmt::Debug for SchemaLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaLedger")
            .field("source", &self.source)
            .field("store", &self.store.location())
            .finish()
    }
}

impl SchemaLedger {
    /// The ledger of `source` in `store` (the store its checkpoints are committed to).
    pub fn new(store: Arc<dyn CheckpointStore>, source: impl Into<String>) -> Self {
        Self {
            store,
            source: source.into(),
        }
    }

    /// Durably records the column state of each table, replacing what was recorded before. A
    /// state must only ever grow: the ledger keeps the last one written.
    pub async fn record(
        &self,
        tables: impl IntoIterator<Item = (TableId, CheckpointState)>,
    ) -> Result<(), CheckpointError> {
        let checkpoint = tables
            .into_iter()
            .fold(Checkpoint::none(), |cp, (table, state)| {
                cp.with(Partition::TableSchema(table), state)
            });
        self.store.commit(&self.source, &checkpoint).await
    }
}
