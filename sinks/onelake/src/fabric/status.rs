//! End-to-end status of a landing zone: each table folder, what the sink published into it, and
//! what Fabric reports for the table (its status, processed rows and bytes, last sync, error),
//! as a [`DestinationReport`].
//!
//! What the sink published is read from the landing zone itself: `_mirror_table.json` names the
//! table, and the newest data file's footer counts the rows published through it
//! ([`crate::datafile`]). Fabric's processed rows equal that count exactly when every published
//! file is applied, which is what [`mirror_core::destination::destination_lag`] needs to date the
//! Delta table. A table Fabric marks Failed comes with what to do about it.

use mirror_core::destination::{DestinationReport, DestinationTable};

use super::model::TableMirroringStatus;
use super::{is_table_of, FabricTarget};
use crate::datafile;
use crate::error::SinkError;
use crate::naming::TABLE_STATE_FILE;
use crate::state::TableState;
use crate::store::{join, table_folders, LandingStore};

/// How to rebuild a table of `folder` from scratch.
fn reset_steps(folder: &str) -> String {
    format!(
        "reset the table: stop mirror, delete the landing-zone folder `{folder}` (Fabric drops \
         the table), wait until `mirror status` no longer shows it in Fabric, and start mirror: \
         it copies the collection again (with `[state] path` set, also delete the table's \
         checkpoint there)"
    )
}

/// What to do about a table Fabric marked Failed.
pub fn advice(folder: &str, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("type") && (lower.contains("chang") || lower.contains("incompatible")) {
        format!(
            "Fabric stops a table whose column changes type. mirror never changes a column's \
             type: it pins each column's type in `{folder}/{TABLE_STATE_FILE}` and writes values \
             that do not fit to `_mirror_overflow` as JSON (docs/type-mapping.md), so the change \
             came from another writer of this folder or from a changed `types` mapping in \
             mirror.toml. Undo that cause, then {}",
            reset_steps(folder)
        )
    } else {
        format!(
            "Fabric's message says what failed; once the cause is fixed, {}",
            reset_steps(folder)
        )
    }
}

fn fill_from_fabric(row: &mut DestinationTable, entry: &TableMirroringStatus) {
    row.state = Some(entry.status.clone());
    if let Some(m) = &entry.metrics {
        row.applied_rows = Some(m.processed_rows);
        row.applied_bytes = Some(m.processed_bytes);
        row.last_applied = m.last_sync();
    }
    row.failed = entry.status == "Failed";
    if let Some(e) = &entry.error {
        row.error = Some(if e.error_code.is_empty() {
            e.message.clone()
        } else {
            format!("{}: {}", e.error_code, e.message)
        });
    }
    if row.failed {
        row.advice = Some(advice(
            &row.location,
            row.error.as_deref().unwrap_or_default(),
        ));
    }
}

/// The end-to-end report of the landing zone in `store`, which belongs to `target`.
pub async fn report(
    store: &dyn LandingStore,
    target: &FabricTarget,
) -> Result<DestinationReport, SinkError> {
    let destination = target.describe().await?;
    let status = target.status().await?;
    let schema = target.default_schema().await?;
    let fabric_tables = target.tables().await?;
    let mut listed = vec![false; fabric_tables.len()];
    let mut tables = Vec::new();
    for folder in table_folders(store).await? {
        let state = match store.get(&join(&[&folder, TABLE_STATE_FILE])).await? {
            Some(o) => TableState::decode(&o.bytes).ok(),
            None => None,
        };
        // An unreadable newest file leaves the count unknown; it does not hide the table.
        let newest = datafile::newest(store, &folder).await.ok().flatten();
        let mut row = DestinationTable {
            table: state.map(|s| s.table),
            location: folder.clone(),
            last_file: newest.as_ref().map(|(n, _)| *n),
            written_rows: match &newest {
                Some((_, info)) => info.rows_through,
                None => Some(0),
            },
            ..Default::default()
        };
        if let Some(i) = fabric_tables
            .iter()
            .position(|t| is_table_of(t, &folder, &schema))
        {
            listed[i] = true;
            fill_from_fabric(&mut row, &fabric_tables[i]);
        }
        tables.push(row);
    }
    // Tables Fabric still lists without a folder (being dropped, or written elsewhere).
    for (entry, _) in fabric_tables
        .iter()
        .zip(&listed)
        .filter(|(_, seen)| !**seen)
    {
        let name = entry.source_table_name.clone().unwrap_or_default();
        let location = match entry.source_schema_name.as_deref() {
            Some(s) if !s.eq_ignore_ascii_case(&schema) => format!("{s}.schema/{name}"),
            _ => name,
        };
        let mut row = DestinationTable {
            location,
            ..Default::default()
        };
        fill_from_fabric(&mut row, entry);
        tables.push(row);
    }
    Ok(DestinationReport {
        destination: format!("Fabric {destination}"),
        state: Some(status.status),
        error: status
            .error
            .map(|e| format!("{}: {}", e.error_code, e.message)),
        tables,
    })
}
