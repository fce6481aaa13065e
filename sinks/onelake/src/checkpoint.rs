//! A checkpoint store inside the landing zone, so a new host resumes where the old one stopped.
//!
//! Records use the core's versioned JSON format ([`mirror_core::checkpoint::record`]) and live in
//! `_`-prefixed files, which Fabric ignores:
//! - a table's state: `<table folder>/_mirror_checkpoint.<source>.json` — next to the table's data,
//!   so dropping the table folder (which drops the table in Fabric) also forgets its position;
//! - source-wide state: `_mirror_state/<source>/source.json` at the landing-zone root;
//! - a table's column types recorded ahead of its data ([`mirror_core::checkpoint::SchemaLedger`]):
//!   `<table folder>/_mirror_checkpoint.<source>.schema.json`;
//! - a table's state committed before its folder exists (no `_metadata.json` yet, e.g. an empty
//!   collection): `_mirror_state/<source>/tables/<folder, '/' as '%2F'>.json`, so that no folder
//!   without `_metadata.json` is created; its column types likewise in `_mirror_state/<source>/schemas/`.
//!   When both exist, the later commit wins.
//!
//! While a table is being emptied ([`crate::truncate`]) its folder is deleted and created again;
//! its records are copied to `_mirror_truncate/<folder>/` first and read from there too, and its
//! commits wait until the folder is back.
//!
//! Each record is one whole-object write (a Blob `Put Blob`, or a local rename), so a commit leaves
//! the old or the new record, never a torn one. An unreadable record, or one written by a newer
//! format, is an error: the sink never silently restarts a table from scratch.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use mirror_core::checkpoint::{record, CheckpointError, CheckpointStore, ResumeState};
use mirror_core::model::{Checkpoint, Partition};

use crate::naming::{
    checkpoint_file_name, schema_record_name, table_folder, METADATA_FILE, STATE_DIR,
};
use crate::store::{join, LandingStore, PutMode, StoreError};

/// Checkpoints kept in a landing zone.
#[derive(Debug)]
pub struct LandingZoneCheckpointStore {
    store: Arc<dyn LandingStore>,
    /// Table folders known to hold `_metadata.json` (they never lose it while we run).
    known_folders: Mutex<HashSet<String>>,
}

fn other(e: StoreError) -> CheckpointError {
    if e.is_transient() {
        CheckpointError::Unavailable(Box::new(e))
    } else {
        CheckpointError::Other(Box::new(e))
    }
}

impl LandingZoneCheckpointStore {
    /// A store over `store`.
    pub fn new(store: Arc<dyn LandingStore>) -> Self {
        Self {
            store,
            known_folders: Mutex::new(HashSet::new()),
        }
    }

    fn source_record(source: &str) -> String {
        join(&[STATE_DIR, source, "source.json"])
    }

    /// Where a table partition's record goes while its folder does not exist yet.
    fn orphan_record(source: &str, kind: &str, folder: &str) -> String {
        join(&[
            STATE_DIR,
            source,
            kind,
            &format!("{}.json", folder.replace('/', "%2F")),
        ])
    }

    async fn write_record(
        &self,
        source: &str,
        partition: &Partition,
        state: &mirror_core::model::CheckpointState,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), CheckpointError> {
        // Not while the table's folder is being deleted and created again.
        let _guard = match partition.table() {
            Some(t) => {
                let folder = table_folder(t).map_err(|e| CheckpointError::Other(Box::new(e)))?;
                Some(crate::truncate::lock_folder(&*self.store, &folder).await)
            }
            None => None,
        };
        let path = self.record_path(source, partition).await?;
        let bytes = record::encode(source, partition, state, now);
        self.store
            .put(&path, Bytes::from(bytes), PutMode::Overwrite)
            .await
            .map_err(other)?;
        Ok(())
    }

    /// Where `partition`'s record goes.
    async fn record_path(
        &self,
        source: &str,
        partition: &Partition,
    ) -> Result<String, CheckpointError> {
        let (table, file, orphans) = match partition {
            Partition::Source => return Ok(Self::source_record(source)),
            Partition::Table(t) => (t, checkpoint_file_name(source), "tables"),
            Partition::TableSchema(t) => (t, schema_record_name(source), "schemas"),
        };
        let folder = table_folder(table).map_err(|e| CheckpointError::Other(Box::new(e)))?;
        Ok(if self.folder_is_table(&folder).await? {
            join(&[&folder, &file])
        } else {
            Self::orphan_record(source, orphans, &folder)
        })
    }

    async fn folder_is_table(&self, folder: &str) -> Result<bool, CheckpointError> {
        if self
            .known_folders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(folder)
        {
            return Ok(true);
        }
        let present = self
            .store
            .head(&join(&[folder, METADATA_FILE]))
            .await
            .map_err(other)?
            .is_some();
        if present {
            self.known_folders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(folder.to_owned());
        }
        Ok(present)
    }

    /// Reads the records at `paths` (16 at a time) into `resume`; a later commit wins.
    async fn read_all(
        &self,
        source: &str,
        paths: Vec<String>,
        resume: &mut ResumeState,
    ) -> Result<(), CheckpointError> {
        use futures::StreamExt;
        let store = &self.store;
        let mut fetched = futures::stream::iter(paths)
            .map(|path| async move { (store.get(&path).await, path) })
            .buffered(16);
        while let Some((object, path)) = fetched.next().await {
            let Some(object) = object.map_err(other)? else {
                continue;
            };
            let shown = PathBuf::from(format!("{}/{path}", self.store.location()));
            let (owner, partition, stored) = record::decode(&shown, &object.bytes)?;
            if owner != source {
                return Err(CheckpointError::Corrupt {
                    path: shown,
                    message: format!("it belongs to source `{owner}`, found under `{source}`"),
                });
            }
            let newer = resume
                .entries()
                .find(|(p, _)| **p == partition)
                .is_none_or(|(_, s)| s.committed_at <= stored.committed_at);
            if newer {
                resume.insert(partition, stored);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for LandingZoneCheckpointStore {
    async fn load(&self, source: &str) -> Result<ResumeState, CheckpointError> {
        let mut paths = vec![Self::source_record(source)];
        for kind in ["tables", "schemas"] {
            let orphans = self
                .store
                .list(&join(&[STATE_DIR, source, kind]))
                .await
                .map_err(other)?;
            for (name, _) in orphans.files {
                if name.ends_with(".json") {
                    paths.push(join(&[STATE_DIR, source, kind, &name]));
                }
            }
        }
        let files = [checkpoint_file_name(source), schema_record_name(source)];
        for folder in crate::store::table_folders(&*self.store)
            .await
            .map_err(other)?
        {
            paths.extend(files.iter().map(|file| join(&[&folder, file])));
        }
        // Copies kept by a truncation in progress (the folder may be gone or half rebuilt).
        for folder in crate::truncate::intent_folders(&*self.store)
            .await
            .map_err(other)?
        {
            let dir = crate::truncate::intent_dir(&folder);
            paths.extend(files.iter().map(|file| join(&[&dir, file])));
        }
        let mut resume = ResumeState::empty();
        self.read_all(source, paths, &mut resume).await?;
        Ok(resume)
    }

    async fn commit(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let now = Utc::now();
        // Partitions are independent records: written side by side.
        let writes: Vec<_> = checkpoint
            .entries()
            .map(|(partition, state)| self.write_record(source, partition, state, now))
            .collect();
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    fn location(&self) -> String {
        format!("{} (in the landing zone)", self.store.location())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;
    use mirror_core::model::CheckpointState;
    use mirror_core::TableId;

    fn state(v: serde_json::Value) -> CheckpointState {
        CheckpointState::from_json(&v).unwrap()
    }

    #[tokio::test]
    async fn table_state_lives_in_the_table_folder_and_survives_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn LandingStore> = Arc::new(LocalStore::new(dir.path()));
        let t = TableId::with_schema("shop", "orders");
        let early = TableId::new("empty");
        local
            .put(
                "shop.schema/orders/_metadata.json",
                Bytes::from_static(b"{}"),
                PutMode::Create,
            )
            .await
            .unwrap();
        let store = LandingZoneCheckpointStore::new(local.clone());
        store
            .commit(
                "atlas",
                &Checkpoint::source(state(serde_json::json!({"token": 1})))
                    .with(
                        Partition::Table(t.clone()),
                        state(serde_json::json!({"last": 5})),
                    )
                    .with(
                        Partition::Table(early.clone()),
                        state(serde_json::json!({"done": true})),
                    ),
            )
            .await
            .unwrap();
        assert!(dir
            .path()
            .join("shop.schema/orders/_mirror_checkpoint.atlas.json")
            .exists());
        assert!(dir.path().join("_mirror_state/atlas/source.json").exists());
        assert!(
            !dir.path().join("empty").exists(),
            "no folder without _metadata.json"
        );

        let resume = LandingZoneCheckpointStore::new(local)
            .load("atlas")
            .await
            .unwrap();
        assert_eq!(
            resume.source(),
            Some(&state(serde_json::json!({"token": 1})))
        );
        assert_eq!(
            resume.table(&t),
            Some(&state(serde_json::json!({"last": 5})))
        );
        assert_eq!(
            resume.table(&early),
            Some(&state(serde_json::json!({"done": true})))
        );
        assert!(store.load("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_corrupt_record_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn LandingStore> = Arc::new(LocalStore::new(dir.path()));
        local
            .put(
                "t/_mirror_checkpoint.s.json",
                Bytes::from_static(b"{ nope"),
                PutMode::Create,
            )
            .await
            .unwrap();
        let err = LandingZoneCheckpointStore::new(local)
            .load("s")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("is not a valid mirror checkpoint"),
            "{err}"
        );
    }
}
