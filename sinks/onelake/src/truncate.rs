//! Emptying a table ([`mirror_core::ChangeBatch::truncate`]) the way Fabric understands it: the
//! table's folder is deleted (Fabric drops the table) and created again (a new table: a fresh
//! `_metadata.json`, files from `00000000000000000001.parquet` again).
//!
//! Open Mirroring has no "delete every row" marker, and deleting rows by key would need every key
//! the table ever had. Dropping the folder is the contract's own way to empty a table.
//!
//! The steps, for a table folder `F` (the writer first publishes, and acknowledges, every row of
//! the table buffered before the truncation):
//! 1. **intent**: copy `F`'s checkpoint records (`_mirror_checkpoint.<source>.json`) into
//!    `_mirror_truncate/F/`, then write `_mirror_truncate/F/intent.json` (table, key columns);
//! 2. **delete** `F` ([`LandingStore::delete_dir`]: gone in one step where the store allows);
//! 3. **rebuild** `F`: take the lease again, write `_metadata.json` and a fresh `_mirror_table.json`
//!    (no columns, `last_published` 0);
//! 4. put the copied checkpoint records back (create-only);
//! 5. delete `_mirror_truncate/F/`; only then is the truncation acknowledged.
//!
//! Crashes: an intent that is still there means the truncation was not acknowledged, so nothing
//! after it was written to `F`. [`recover`] (run when a writer opens the landing zone) therefore
//! redoes steps 2 to 5, whatever state `F` is in, and the engine sends the truncation again (its
//! checkpoint was not committed), which is harmless on an empty table. Between steps 2 and 4 the
//! table's checkpoint records exist only in the intent folder; [`crate::LandingZoneCheckpointStore`]
//! reads them from there, so a restart never loses a table's committed position. Commits of a
//! table's checkpoint wait while its folder is being truncated ([`lock_folder`]), so a commit can
//! neither be deleted with the folder nor be overwritten by an older copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use mirror_core::{Table, TableId};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::SinkError;
use crate::lease::{Holder, Lease};
use crate::naming::CHECKPOINT_PREFIX;
use crate::store::{join, LandingStore, PutMode, StoreError, StoreErrorKind};

/// Root folder of truncation intents.
pub const INTENT_DIR: &str = "_mirror_truncate";
/// The intent record inside `_mirror_truncate/<folder>/`.
pub const INTENT_FILE: &str = "intent.json";

/// What a truncation in progress must remember to be finished after a crash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Intent {
    /// Always `mirror-truncate`.
    pub format: String,
    /// Record version (1).
    pub version: u64,
    /// The table.
    pub table: TableId,
    /// Its folder.
    pub folder: String,
    /// Its key columns (for the rebuilt `_metadata.json`).
    pub key_columns: Vec<String>,
    /// When the truncation started.
    pub started_at: String,
}

/// `_mirror_truncate/<folder>` (`<schema>.schema/<name>` folders nest, as in the landing zone).
pub fn intent_dir(folder: &str) -> String {
    join(&[INTENT_DIR, folder])
}

/// The table folders with a truncation intent folder.
pub(crate) async fn intent_folders(store: &dyn LandingStore) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for dir in store.list(INTENT_DIR).await?.dirs {
        if dir.ends_with(".schema") {
            for table in store.list(&join(&[INTENT_DIR, &dir])).await?.dirs {
                out.push(join(&[&dir, &table]));
            }
        } else {
            out.push(dir);
        }
    }
    Ok(out)
}

/// Serialises work on one table folder of one landing zone within this process: a truncation
/// and the checkpoint commits of that table.
pub(crate) async fn lock_folder(
    store: &dyn LandingStore,
    folder: &str,
) -> tokio::sync::OwnedMutexGuard<()> {
    type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let key = format!("{}\n{folder}", store.location());
    let lock = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    lock.lock_owned().await
}

/// Reads the intent of `folder`, if a truncation of it is in progress.
async fn read_intent(store: &dyn LandingStore, dir: &str) -> Result<Option<Intent>, SinkError> {
    let path = join(&[dir, INTENT_FILE]);
    let Some(object) = store.get(&path).await? else {
        return Ok(None);
    };
    let intent: Intent =
        serde_json::from_slice(&object.bytes).map_err(|e| SinkError::BadStateFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
    if intent.version > 1 {
        return Err(SinkError::BadStateFile {
            path,
            message: format!(
                "truncation intent version {} is newer than this mirror reads",
                intent.version
            ),
        });
    }
    Ok(Some(intent))
}

/// Step 1: records the intent (unless a failed attempt already did) with copies of the folder's
/// checkpoint records.
async fn begin(store: &dyn LandingStore, folder: &str, table: &Table) -> Result<(), SinkError> {
    let dir = intent_dir(folder);
    if read_intent(store, &dir).await?.is_some() {
        // An earlier attempt got at least this far; the folder may be gone already, so its copies
        // are the ones to keep.
        return Ok(());
    }
    for (name, _) in store.list(folder).await?.files {
        if name.starts_with(CHECKPOINT_PREFIX) {
            if let Some(record) = store.get(&join(&[folder, &name])).await? {
                store
                    .put(&join(&[&dir, &name]), record.bytes, PutMode::Overwrite)
                    .await?;
            }
        }
    }
    let intent = Intent {
        format: "mirror-truncate".into(),
        version: 1,
        table: table.id.clone(),
        folder: folder.to_owned(),
        key_columns: table.key_columns.clone(),
        started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    let bytes = serde_json::to_vec_pretty(&intent).unwrap_or_default();
    store
        .put(
            &join(&[&dir, INTENT_FILE]),
            Bytes::from(bytes),
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

/// Steps 2 to 5 with the intent recorded. `rebuild` takes the lease and writes `_metadata.json`
/// and `_mirror_table.json` into the empty folder; its result is returned.
async fn finish<T, F, Fut>(
    store: &dyn LandingStore,
    folder: &str,
    rebuild: F,
) -> Result<T, SinkError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    let dir = intent_dir(folder);
    store.delete_dir(folder).await?;
    let rebuilt = rebuild().await?;
    for (name, _) in store.list(&dir).await?.files {
        if !name.starts_with(CHECKPOINT_PREFIX) {
            continue;
        }
        if let Some(record) = store.get(&join(&[&dir, &name])).await? {
            match store
                .put(&join(&[folder, &name]), record.bytes, PutMode::Create)
                .await
            {
                // Put back by an earlier attempt (commits wait for the folder lock meanwhile).
                Ok(_) => {}
                Err(e) if e.kind == StoreErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    store.delete_dir(&dir).await?;
    // `_mirror_truncate/<schema>.schema/` once its last table is done.
    if let Some((schema, _)) = folder.split_once('/') {
        let parent = join(&[INTENT_DIR, schema]);
        let left = store.list(&parent).await?;
        if left.files.is_empty() && left.dirs.is_empty() {
            store.delete_dir(&parent).await?;
        }
    }
    Ok(rebuilt)
}

/// Empties `folder` (the writer holds its lease and has published everything buffered for it).
/// `rebuild` recreates the folder's own files after the delete (see [`finish`]).
pub(crate) async fn truncate_folder<T, F, Fut>(
    store: &dyn LandingStore,
    folder: &str,
    table: &Table,
    rebuild: F,
) -> Result<T, SinkError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    let _guard = lock_folder(store, folder).await;
    begin(store, folder, table).await?;
    let rebuilt = finish(store, folder, rebuild).await?;
    info!(table = %table.id, folder, "table emptied: folder deleted and created again");
    Ok(rebuilt)
}

/// Finishes every truncation a crashed writer left in progress (see the module documentation).
pub(crate) async fn recover(
    store: &Arc<dyn LandingStore>,
    holder: &Holder,
    lease_ttl: Option<std::time::Duration>,
    metadata: &crate::metadata::MetadataOptions,
) -> Result<(), SinkError> {
    for folder in intent_folders(&**store).await? {
        let dir = intent_dir(&folder);
        let Some(intent) = read_intent(&**store, &dir).await? else {
            // The copies were being made; the folder was never touched.
            store.delete_dir(&dir).await?;
            continue;
        };
        let folder = intent.folder.clone();
        warn!(table = %intent.table, folder = %folder, "finishing the truncation an earlier run left in progress");
        let _guard = lock_folder(&**store, &folder).await;
        // Whoever else writes this folder must be gone before it is deleted.
        if let Some(ttl) = lease_ttl {
            Lease::acquire(&**store, &folder, holder, ttl).await?;
        }
        let table = Arc::new(Table::new(intent.table.clone(), intent.key_columns.clone()));
        let lease = finish(&**store, &folder, || async {
            let lease = match lease_ttl {
                Some(ttl) => Some(Lease::acquire(&**store, &folder, holder, ttl).await?),
                None => None,
            };
            crate::writer::rebuild_table_files(&**store, &folder, &table, metadata).await?;
            Ok::<_, SinkError>(lease)
        })
        .await?;
        if let Some(lease) = lease {
            lease.release(&**store).await;
        }
    }
    Ok(())
}
