//! A checkpoint store in a local directory: one record per partition, replaced atomically.
//!
//! Layout: `<root>/<source>/source.json` and `<root>/<source>/tables/<table>.json` (and
//! `<table>.schema.json` for column types recorded ahead of the data), where `<table>` is the table
//! id with every byte outside `[A-Za-z0-9._-]` percent-encoded. A commit writes a temporary file
//! ([`crate::files`]), fsyncs it, renames it over the record and fsyncs the directory, so a crash
//! leaves either the old or the new record, never a torn one; loading removes what such a crash
//! left behind.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::Utc;

use super::{record, CheckpointError, CheckpointStore, ResumeState};
use crate::files::{is_temp_name, remove_leftovers, TempFile};
use crate::model::{Checkpoint, Partition};

/// Checkpoints in a local directory.
#[derive(Clone, Debug)]
pub struct LocalCheckpointStore {
    root: PathBuf,
}

impl LocalCheckpointStore {
    /// A store rooted at `root` (created on first commit).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn record_path(&self, source: &str, partition: &Partition) -> PathBuf {
        let dir = self.root.join(encode_name(source));
        match partition {
            Partition::Source => dir.join("source.json"),
            Partition::Table(t) => dir
                .join("tables")
                .join(format!("{}.json", encode_name(&t.to_string()))),
            Partition::TableSchema(t) => dir
                .join("tables")
                .join(format!("{}.schema.json", encode_name(&t.to_string()))),
        }
    }

    fn load_blocking(&self, source: &str) -> Result<ResumeState, CheckpointError> {
        let mut resume = ResumeState::empty();
        let dir = self.root.join(encode_name(source));
        let mut files = vec![dir.join("source.json")];
        let tables = dir.join("tables");
        // Commits interrupted by a crash: the records they were replacing are intact.
        for folder in [&dir, &tables] {
            remove_leftovers(folder).map_err(|e| io("removing leftovers in", folder, e))?;
        }
        match fs::read_dir(&tables) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| io("listing", &tables, source))?;
                    let path = entry.path();
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.ends_with(".json") && !is_temp_name(&name) {
                        files.push(path);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("listing", &tables, e)),
        }
        for path in files {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("reading", &path, e)),
            };
            let (owner, partition, stored) = record::decode(&path, &bytes)?;
            if owner != source {
                return Err(CheckpointError::Corrupt {
                    path,
                    message: format!("it belongs to source `{owner}`, found under `{source}`"),
                });
            }
            resume.insert(partition, stored);
        }
        Ok(resume)
    }

    fn commit_blocking(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), CheckpointError> {
        let now = Utc::now();
        for (partition, state) in checkpoint.entries() {
            let path = self.record_path(source, partition);
            let bytes = record::encode(source, partition, state, now);
            write_atomically(&path, &bytes)?;
        }
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for LocalCheckpointStore {
    async fn load(&self, source: &str) -> Result<ResumeState, CheckpointError> {
        let store = self.clone();
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || store.load_blocking(&source))
            .await
            .map_err(|e| CheckpointError::Other(Box::new(e)))?
    }

    async fn commit(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if checkpoint.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        let source = source.to_owned();
        let checkpoint = checkpoint.clone();
        tokio::task::spawn_blocking(move || store.commit_blocking(&source, &checkpoint))
            .await
            .map_err(|e| CheckpointError::Other(Box::new(e)))?
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let temp = TempFile::new(dir);
    let tmp = temp.path();
    let mut file = File::create(tmp).map_err(|e| io("creating", tmp, e))?;
    file.write_all(bytes).map_err(|e| io("writing", tmp, e))?;
    file.sync_all().map_err(|e| io("syncing", tmp, e))?;
    crate::files::crash_point("checkpoint-store-write");
    fs::rename(tmp, path).map_err(|e| io("renaming into place", path, e))?;
    // The rename is durable only once the directory entry is.
    if let Ok(d) = File::open(dir) {
        d.sync_all().map_err(|e| io("syncing", dir, e))?;
    }
    Ok(())
}

fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckpointState, TableId};

    fn state(v: serde_json::Value) -> CheckpointState {
        CheckpointState::from_json(&v).unwrap()
    }

    #[tokio::test]
    async fn commits_survive_a_new_store_and_later_commits_win() {
        let dir = tempfile::tempdir().unwrap();
        let t = TableId::with_schema("shop", "orders/2024");
        let store = LocalCheckpointStore::new(dir.path());
        store
            .commit(
                "atlas",
                &Checkpoint::source(state(serde_json::json!({"token": "a"}))),
            )
            .await
            .unwrap();
        store
            .commit(
                "atlas",
                &Checkpoint::table(t.clone(), state(serde_json::json!({"last_id": 5})))
                    .with(Partition::Source, state(serde_json::json!({"token": "b"}))),
            )
            .await
            .unwrap();
        let resume = LocalCheckpointStore::new(dir.path())
            .load("atlas")
            .await
            .unwrap();
        assert_eq!(
            resume.source(),
            Some(&state(serde_json::json!({"token": "b"})))
        );
        assert_eq!(
            resume.table(&t),
            Some(&state(serde_json::json!({"last_id": 5})))
        );
        assert!(store.load("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn binary_state_round_trips_as_base64() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalCheckpointStore::new(dir.path());
        let bin = CheckpointState::from_bytes(vec![0u8, 159, 146, 150]);
        store
            .commit("s", &Checkpoint::source(bin.clone()))
            .await
            .unwrap();
        let text = fs::read_to_string(dir.path().join("s/source.json")).unwrap();
        assert!(text.contains("\"state_base64\": \"AJ+Slg==\""), "{text}");
        assert_eq!(store.load("s").await.unwrap().source(), Some(&bin));
    }

    #[tokio::test]
    async fn corrupt_and_future_records_are_errors_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalCheckpointStore::new(dir.path());
        fs::create_dir_all(dir.path().join("s")).unwrap();
        let path = dir.path().join("s/source.json");

        fs::write(&path, b"{ not json").unwrap();
        let err = store.load("s").await.unwrap_err().to_string();
        assert!(
            err.contains("is not a valid mirror checkpoint (not JSON"),
            "{err}"
        );
        assert!(err.contains("will not guess where to resume"), "{err}");

        fs::write(
            &path,
            br#"{"format":"mirror-checkpoint","version":2,"source":"s"}"#,
        )
        .unwrap();
        let err = store.load("s").await.unwrap_err().to_string();
        assert!(err.contains("has format version 2"), "{err}");
        assert!(err.contains("reads only versions up to 1"), "{err}");
    }

    #[tokio::test]
    async fn leftover_temp_files_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalCheckpointStore::new(dir.path());
        let t = TableId::new("t");
        store
            .commit(
                "s",
                &Checkpoint::table(t.clone(), state(serde_json::json!(1))),
            )
            .await
            .unwrap();
        // An older build's temporary name, and one of a process that is gone.
        let old = dir.path().join("s/tables/t.json.tmp-1-2");
        fs::write(&old, b"half a reco").unwrap();
        let gone = dir.path().join("s/_mirror_tmp_w4294967295_0a1b");
        fs::write(&gone, b"half a reco").unwrap();
        let resume = store.load("s").await.unwrap();
        assert_eq!(resume.table(&t), Some(&state(serde_json::json!(1))));
        assert!(!old.exists());
        assert!(!gone.exists());
    }
}
