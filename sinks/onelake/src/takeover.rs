//! Taking over a table folder that another writer made, above all the MongoDB_Fabric_Mirroring
//! Python app (`mongodb-partners/MongoDB_Fabric_Mirroring`), before the writer opens it.
//!
//! A folder is foreign when it holds the app's `_`-prefixed state files (pickles such as
//! `_resume_token.pkl` and `_last_id.pkl`, and `_internal_schema.pkl`, `_conversion_log.txt`; see
//! [`APP_STATE_FILES`]), or when it has data files but no `_mirror_table.json` and its newest
//! file was not written by `mirror` (the Parquet footer's `created_by`). Such state is never read
//! (a pickle can run code when loaded), and the foreign sequence is never continued: its rows
//! may hold NULLs where a value's type changed and miss replace events, and files of two writers
//! in one table cannot be told apart any more.
//!
//! With [`TakeoverPolicy::Refuse`] (the default) the writer stops with [`SinkError::ForeignTable`],
//! which explains why and how to proceed. With [`TakeoverPolicy::Reset`] the table is reset the
//! way Fabric documents for one table ("Open mirroring best practices": delete the folder, wait
//! until the table has disappeared, recreate the folder): the folder is deleted, and when a
//! Fabric item is configured the writer waits until Fabric no longer lists the table; the writer
//! then creates the folder afresh, and the source copies the collection into it (it has no
//! checkpoint for a table `mirror` never wrote).

use std::sync::Arc;

use serde::Deserialize;
use tracing::{info, warn};

use crate::datafile;
use crate::error::SinkError;
use crate::fabric::FabricTarget;
use crate::naming::{data_file_name, TABLE_STATE_FILE};
use crate::store::LandingStore;

/// The state files the Python app keeps in each table folder (its `constants.py`).
pub const APP_STATE_FILES: &[&str] = &[
    "_init_sync_status.pkl",
    "_last_created_parquet.pkl",
    "_last_id.pkl",
    "_max_id.pkl",
    "_resume_token.pkl",
    "_resume_token.pkl.bak",
    "_internal_schema.pkl",
    "_column_renaming.pkl",
    "_conversion_log.txt",
    "_incremental_change_cache.parquet",
];

/// What the writer does with a foreign table folder (`takeover` on the sink).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TakeoverPolicy {
    /// Stop with an explanation.
    #[default]
    Refuse,
    /// Delete the folder, wait until Fabric has dropped the table, write a new one.
    Reset,
}

/// The takeover settings of a writer.
#[derive(Clone, Debug, Default)]
pub struct Takeover {
    /// What to do.
    pub policy: TakeoverPolicy,
    /// The mirrored database to wait on after deleting a folder.
    pub fabric: Option<Arc<FabricTarget>>,
}

/// Why a folder is foreign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// Who wrote it, with the evidence.
    pub writer: String,
    /// The newest data file number, if any.
    pub last_file: Option<u64>,
}

fn is_app_state(name: &str) -> bool {
    APP_STATE_FILES.contains(&name)
        || (name.starts_with('_') && (name.ends_with(".pkl") || name.ends_with(".pkl.bak")))
}

/// Whether `folder` was made by another writer.
pub async fn inspect(store: &dyn LandingStore, folder: &str) -> Result<Option<Foreign>, SinkError> {
    let listing = store.list(folder).await?;
    let mut pickles: Vec<&str> = listing
        .files
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| is_app_state(n))
        .collect();
    pickles.sort_unstable();
    let ours = listing.files.iter().any(|(n, _)| n == TABLE_STATE_FILE);
    let newest = match datafile::newest(store, folder).await {
        Ok(n) => n,
        Err(SinkError::BadStateFile { message, .. }) if !ours => {
            return Ok(Some(Foreign {
                writer: format!("another writer (its newest data file is unreadable: {message})"),
                last_file: None,
            }))
        }
        Err(e) => return Err(e),
    };
    let last_file = newest.as_ref().map(|(n, _)| *n);
    if !pickles.is_empty() {
        return Ok(Some(Foreign {
            writer: format!(
                "the MongoDB_Fabric_Mirroring Python app (its state files {})",
                pickles.join(", ")
            ),
            last_file,
        }));
    }
    match newest {
        Some((n, info)) if !ours && !info.written_by_mirror() => {
            Ok(Some(Foreign {
                writer: format!(
                "another writer ({} was written by `{}`, and the folder has no {TABLE_STATE_FILE})",
                data_file_name(n),
                info.created_by.as_deref().unwrap_or("an unnamed Parquet writer")
            ),
                last_file,
            }))
        }
        _ => Ok(None),
    }
}

/// Makes `folder` safe to open: nothing to do for a folder `mirror` wrote (or a new one); for a
/// foreign folder, refuses or resets as `takeover` says.
pub async fn prepare(
    store: &dyn LandingStore,
    folder: &str,
    table: &str,
    takeover: &Takeover,
) -> Result<(), SinkError> {
    let Some(foreign) = inspect(store, folder).await? else {
        return Ok(());
    };
    if takeover.policy == TakeoverPolicy::Refuse {
        return Err(SinkError::ForeignTable {
            folder: folder.to_owned(),
            table: table.to_owned(),
            writer: foreign.writer,
        });
    }
    warn!(
        folder, table, writer = %foreign.writer, last_file = ?foreign.last_file,
        "takeover = \"reset\": deleting the foreign table folder (Fabric drops the table), then copying the collection afresh"
    );
    store.delete_dir(folder).await?;
    if let Some(fabric) = &takeover.fabric {
        info!(folder, "waiting until Fabric has dropped the table");
        fabric
            .wait_until_dropped(folder)
            .await
            .map_err(SinkError::Fabric)?;
    }
    info!(folder, table, "foreign table reset; writing it anew");
    Ok(())
}
