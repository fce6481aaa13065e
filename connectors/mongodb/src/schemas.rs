//! Column types that survive every crash: each table's columns, recorded ahead of its data.
//!
//! A table's column types are decided once (declared in `[tables]`, inferred from a sample when the
//! table is first seen, or from the first values of a new field) and must never change: Fabric
//! stops a table whose column changes type. A restarted source must therefore adopt the types of
//! everything that may have been published before a crash, even when its checkpoint was not
//! committed yet, instead of sampling again (a random sample of mixed-type fields can infer
//! another type each time).
//!
//! So a table's [`TableSchemaState`] is recorded in the core's schema ledger
//! ([`mirror_core::checkpoint::SchemaLedger`]) *before* the first batch holding a new column leaves
//! the source, including the types inferred before a table's first file. Columns only grow, so an
//! early record is never wrong. At start a table adopts the longest of the columns in its
//! checkpoint and in the ledger (one always extends the other), and a collection recreated under a
//! table that exists keeps the table's columns.

use std::collections::HashMap;
use std::sync::Mutex;

use mirror_core::checkpoint::{ResumeState, SchemaLedger};
use mirror_core::mapping::TableSchemaState;
use mirror_core::model::CheckpointState;
use mirror_core::TableId;

/// Why saved column types cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemasError {
    /// A ledger record is not a table schema state.
    #[error("the column types recorded for table {table} are unreadable: {message}")]
    Unreadable {
        /// The table.
        table: TableId,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint and the ledger disagree on a column (hand-edited or corrupt state).
    #[error(
        "table {table}: its checkpoint and its recorded column types disagree on column {index} \
         ({checkpoint} vs {ledger}); restore the state files from a backup, or reset the table \
         (delete its folder) to copy it afresh"
    )]
    Disagree {
        /// The table.
        table: TableId,
        /// The first column that differs (from 0).
        index: usize,
        /// The column in the checkpoint.
        checkpoint: String,
        /// The column in the ledger.
        ledger: String,
    },
}

/// The source's view of its tables' recorded column types, shared by its database workers.
#[derive(Debug)]
pub struct Schemas {
    ledger: Option<SchemaLedger>,
    /// The newest columns known durable per table: loaded at start, then as recorded.
    recorded: Mutex<HashMap<TableId, TableSchemaState>>,
}

impl Schemas {
    /// The columns recorded in `resume`, written from now on to `ledger` (`None`: nothing is
    /// committed, as outside the engine).
    pub fn load(resume: &ResumeState, ledger: Option<SchemaLedger>) -> Result<Self, SchemasError> {
        let mut recorded = HashMap::new();
        for (table, state) in resume.table_schemas() {
            let columns = state
                .to_json::<serde_json::Value>()
                .map_err(|e| e.to_string())
                .and_then(|v| TableSchemaState::from_json(v).map_err(|e| e.to_string()))
                .map_err(|message| SchemasError::Unreadable {
                    table: table.clone(),
                    message,
                })?;
            recorded.insert(table.clone(), columns);
        }
        Ok(Self {
            ledger,
            recorded: Mutex::new(recorded),
        })
    }

    /// The columns a table starts with: the longer of `checkpoint` (from its committed state) and
    /// what was recorded for it, which must agree where both have a column.
    pub fn adopt(
        &self,
        table: &TableId,
        checkpoint: Option<TableSchemaState>,
    ) -> Result<TableSchemaState, SchemasError> {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        let ledger = recorded.get(table);
        let adopted = match (checkpoint, ledger) {
            (None, None) => TableSchemaState::new(),
            (Some(c), None) => c,
            (None, Some(l)) => l.clone(),
            (Some(c), Some(l)) => {
                let (short, long) = if c.columns().len() <= l.columns().len() {
                    (&c, l)
                } else {
                    (l, &c)
                };
                if let Some(index) = short
                    .columns()
                    .iter()
                    .zip(long.columns())
                    .position(|(a, b)| a != b)
                {
                    let show = |s: &TableSchemaState| {
                        let col = &s.columns()[index];
                        format!("`{}` {}", col.name, col.ty)
                    };
                    return Err(SchemasError::Disagree {
                        table: table.clone(),
                        index,
                        checkpoint: show(&c),
                        ledger: show(l),
                    });
                }
                long.clone()
            }
        };
        // A checkpointed state is durable too: a new record is due only when columns are added.
        let known = recorded.entry(table.clone()).or_default();
        if adopted.columns().len() > known.columns().len() {
            *known = adopted.clone();
        }
        Ok(adopted)
    }

    /// Whether `columns` has columns that are not recorded yet for `table`.
    pub fn is_ahead(&self, table: &TableId, columns: &TableSchemaState) -> bool {
        let recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        let known = recorded.get(table).map_or(0, |s| s.columns().len());
        columns.columns().len() > known
    }

    /// Durably records each table's columns (a no-op without a ledger). Only once this returned
    /// may a batch holding the new columns be handed on.
    pub async fn record(
        &self,
        tables: Vec<(TableId, TableSchemaState)>,
    ) -> Result<(), mirror_core::checkpoint::CheckpointError> {
        if let Some(ledger) = &self.ledger {
            let states = tables.iter().map(|(table, columns)| {
                // Plain strings and lists: serialising them cannot fail.
                let state = CheckpointState::from_json(&columns.to_json())
                    .unwrap_or_else(|_| CheckpointState::from_bytes(Vec::new()));
                (table.clone(), state)
            });
            ledger.record(states.collect::<Vec<_>>()).await?;
        }
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        for (table, columns) in tables {
            recorded.insert(table, columns);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_core::mapping::ColumnType;

    fn columns(cols: &[(&str, ColumnType)]) -> TableSchemaState {
        let mut s = TableSchemaState::new();
        for (name, ty) in cols {
            s.add_column(vec![(*name).to_owned()], name, *ty);
        }
        s
    }

    #[tokio::test]
    async fn the_longer_of_checkpoint_and_ledger_wins_and_they_must_agree() {
        let t = TableId::new("t");
        let schemas = Schemas::load(&ResumeState::empty(), None).unwrap();
        let one = columns(&[("a", ColumnType::String)]);
        let two = columns(&[("a", ColumnType::String), ("b", ColumnType::Double)]);
        schemas
            .record(vec![(t.clone(), two.clone())])
            .await
            .unwrap();
        assert!(!schemas.is_ahead(&t, &two));
        // A checkpoint committed before the second column was recorded.
        assert_eq!(schemas.adopt(&t, Some(one)).unwrap(), two);
        let mut three = two.clone();
        three.add_column(vec!["c".into()], "c", ColumnType::Bool);
        assert!(schemas.is_ahead(&t, &three));
        assert_eq!(schemas.adopt(&t, Some(three.clone())).unwrap(), three);
        let other = columns(&[("a", ColumnType::Double)]);
        let err = schemas.adopt(&t, Some(other)).unwrap_err();
        assert!(err.to_string().contains("disagree on column 0"), "{err}");
    }
}
