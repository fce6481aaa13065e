//! The simulator's storage model: a hierarchical-namespace account (like OneLake and ADLS Gen2
//! with HNS) holding files with ETags, explicit and implicit directories, uncommitted blocks (Blob
//! `Put Block`) and uncommitted appends (DFS `append` before `flush`).
//!
//! Semantics follow Microsoft's REST documentation:
//! - conditional headers ("Specifying conditional headers for Blob service operations",
//!   learn.microsoft.com/rest/api/storageservices/specifying-conditional-headers-for-blob-service-operations):
//!   `If-Match` fails with 412 `ConditionNotMet`; `If-None-Match: *` on a write fails when the
//!   target exists — 409 `BlobAlreadyExists` for Blob writes (error codes table of the Blob service)
//!   and 409 `PathAlreadyExists` for DFS creates and renames ("Path - Create",
//!   learn.microsoft.com/rest/api/storageservices/datalakestoragegen2/path/create: "To fail if the
//!   destination already exists, use a conditional request with If-None-Match: \"*\"");
//! - a DFS rename is atomic and moves the source (404 `SourcePathNotFound` when it is missing);
//! - a DFS file is created empty, grows by `append` at exact positions and its content becomes
//!   visible only at `flush` (Path - Update);
//! - `Put Block List` commits uncommitted blocks in the listed order.
//!
//! Paths are full paths below the service root: `<container>/<path>`, for OneLake
//! `<workspace>/<item>/Files/...`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::files::{FileEntry, LandingFiles};

/// A stored file.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// Committed content.
    pub data: Bytes,
    /// Version tag, changes on every write.
    pub etag: String,
    /// Last write time.
    pub last_modified: DateTime<Utc>,
    /// `x-ms-meta-*` metadata.
    pub metadata: BTreeMap<String, String>,
    /// Content type.
    pub content_type: String,
}

/// An error with the status and error code the real service returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    /// HTTP status.
    pub status: u16,
    /// `x-ms-error-code`.
    pub code: &'static str,
    /// Human message.
    pub message: String,
}

impl SimError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Write preconditions.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
}

impl Conditions {
    fn check(
        &self,
        existing: Option<&StoredFile>,
        exists_code: &'static str,
    ) -> Result<(), SimError> {
        if let Some(expected) = &self.if_match {
            let ok = match existing {
                Some(f) => expected == "*" || strip(expected) == strip(&f.etag),
                None => false,
            };
            if !ok {
                return Err(match existing {
                    None if expected != "*" => SimError::new(
                        412,
                        "ConditionNotMet",
                        "The condition specified using HTTP conditional header(s) is not met.",
                    ),
                    _ => SimError::new(
                        412,
                        "ConditionNotMet",
                        "The condition specified using HTTP conditional header(s) is not met.",
                    ),
                });
            }
        }
        if let Some(none) = &self.if_none_match {
            if let Some(f) = existing {
                if none == "*" {
                    return Err(SimError::new(
                        409,
                        exists_code,
                        "The specified path already exists.",
                    ));
                }
                if strip(none) == strip(&f.etag) {
                    return Err(SimError::new(
                        412,
                        "ConditionNotMet",
                        "The condition specified using HTTP conditional header(s) is not met.",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn strip(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, StoredFile>,
    dirs: BTreeSet<String>,
    /// When each directory was created (a counter value): its identity, which a directory deleted
    /// and created again does not keep (Fabric sees a new ETag).
    dir_ids: HashMap<String, u64>,
    blocks: HashMap<String, HashMap<String, Bytes>>,
    appends: HashMap<String, BTreeMap<u64, Bytes>>,
    counter: u64,
    operations: u64,
}

/// The in-memory account. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Storage {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Storage")
            .field("files", &s.files.len())
            .finish()
    }
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

impl Storage {
    /// An empty account.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_file(
        state: &mut State,
        data: Bytes,
        metadata: BTreeMap<String, String>,
        content_type: String,
    ) -> StoredFile {
        state.counter += 1;
        StoredFile {
            data,
            etag: format!("\"0x8DC{:012X}\"", state.counter),
            last_modified: Utc::now(),
            metadata,
            content_type,
        }
    }

    fn insert_dir(state: &mut State, dir: &str) {
        if state.dirs.insert(dir.to_owned()) {
            state.counter += 1;
            let id = state.counter;
            state.dir_ids.insert(dir.to_owned(), id);
        }
    }

    fn remove_dir(state: &mut State, dir: &str) {
        state.dirs.remove(dir);
        state.dir_ids.remove(dir);
    }

    /// The identity of the directory at `path` (new each time it is created), or `None`.
    pub fn dir_id(&self, path: &str) -> Option<u64> {
        self.lock().dir_ids.get(path).copied()
    }

    fn add_parents(state: &mut State, path: &str) {
        let mut p = parent(path);
        while let Some(dir) = p {
            if !dir.contains('/') {
                break; // the container itself
            }
            Self::insert_dir(state, dir);
            p = parent(dir);
        }
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<StoredFile> {
        self.lock().files.get(path).cloned()
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        let s = self.lock();
        s.dirs.contains(path)
    }

    /// Number of mutating operations so far.
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// Blob `Put Blob` (and `Put Block List` once blocks are assembled).
    pub fn put_blob(
        &self,
        path: &str,
        data: Bytes,
        conditions: &Conditions,
        metadata: BTreeMap<String, String>,
        content_type: Option<String>,
    ) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        if s.dirs.contains(path) {
            return Err(SimError::new(
                409,
                "PathConflict",
                "The specified path is a directory.",
            ));
        }
        conditions.check(s.files.get(path), "BlobAlreadyExists")?;
        let file = Self::new_file(
            &mut s,
            data,
            metadata,
            content_type.unwrap_or_else(|| "application/octet-stream".into()),
        );
        Self::add_parents(&mut s, path);
        s.files.insert(path.to_owned(), file.clone());
        s.blocks.remove(path);
        s.operations += 1;
        Ok(file)
    }

    /// Blob `Put Block`.
    pub fn put_block(&self, path: &str, id: &str, data: Bytes) {
        let mut s = self.lock();
        s.blocks
            .entry(path.to_owned())
            .or_default()
            .insert(id.to_owned(), data);
        s.operations += 1;
    }

    /// Blob `Put Block List`: commits the listed blocks (uncommitted, or from the current blob when
    /// listed as committed and the blob was built from blocks, which the simulator does not track:
    /// committed ids are refused).
    pub fn put_block_list(
        &self,
        path: &str,
        ids: &[String],
        conditions: &Conditions,
        metadata: BTreeMap<String, String>,
        content_type: Option<String>,
    ) -> Result<StoredFile, SimError> {
        let data = {
            let s = self.lock();
            let blocks = s.blocks.get(path);
            let mut data = Vec::new();
            for id in ids {
                match blocks.and_then(|b| b.get(id)) {
                    Some(b) => data.extend_from_slice(b),
                    None => {
                        return Err(SimError::new(
                            400,
                            "InvalidBlockList",
                            "The specified block list is invalid.",
                        ))
                    }
                }
            }
            data
        };
        self.put_blob(path, Bytes::from(data), conditions, metadata, content_type)
    }

    /// DFS `Path - Create` of a file (empty, content arrives by append and flush).
    pub fn create_file(&self, path: &str, conditions: &Conditions) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        if s.dirs.contains(path) {
            return Err(SimError::new(
                409,
                "PathConflict",
                "The specified path is a directory.",
            ));
        }
        conditions.check(s.files.get(path), "PathAlreadyExists")?;
        let file = Self::new_file(
            &mut s,
            Bytes::new(),
            BTreeMap::new(),
            "application/octet-stream".into(),
        );
        Self::add_parents(&mut s, path);
        s.files.insert(path.to_owned(), file.clone());
        s.appends.remove(path);
        s.operations += 1;
        Ok(file)
    }

    /// DFS `Path - Create` of a directory.
    pub fn create_dir(&self, path: &str, conditions: &Conditions) -> Result<(), SimError> {
        let mut s = self.lock();
        if s.files.contains_key(path) {
            return Err(SimError::new(
                409,
                "PathConflict",
                "The specified path is a file.",
            ));
        }
        if conditions.if_none_match.as_deref() == Some("*") && s.dirs.contains(path) {
            return Err(SimError::new(
                409,
                "PathAlreadyExists",
                "The specified path already exists.",
            ));
        }
        Self::add_parents(&mut s, path);
        Self::insert_dir(&mut s, path);
        s.operations += 1;
        Ok(())
    }

    /// DFS `Path - Update` `action=append`: stores data at `position`, uncommitted. Appends may
    /// arrive in any order ("This parameter allows the caller to upload data in parallel"); their
    /// contiguity is checked at flush.
    pub fn append(&self, path: &str, position: u64, data: &[u8]) -> Result<(), SimError> {
        let mut s = self.lock();
        if !s.files.contains_key(path) {
            return Err(SimError::new(
                404,
                "PathNotFound",
                "The specified path does not exist.",
            ));
        }
        s.appends
            .entry(path.to_owned())
            .or_default()
            .insert(position, Bytes::copy_from_slice(data));
        s.operations += 1;
        Ok(())
    }

    /// DFS `Path - Update` `action=flush`: commits the uncommitted data, which must be contiguous
    /// from the end of the file up to `position`, the new length ("the position parameter must be
    /// specified and equal to the length of the file after all data has been written").
    pub fn flush(
        &self,
        path: &str,
        position: u64,
        conditions: &Conditions,
    ) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        let Some(existing) = s.files.get(path).cloned() else {
            return Err(SimError::new(
                404,
                "PathNotFound",
                "The specified path does not exist.",
            ));
        };
        conditions.check(Some(&existing), "PathAlreadyExists")?;
        let chunks = s.appends.remove(path).unwrap_or_default();
        let mut data = existing.data.to_vec();
        let invalid = || {
            SimError::new(
                400,
                "InvalidFlushPosition",
                "The uploaded data is not contiguous or the position query parameter value is not equal to the length of the file after appending the uploaded data.",
            )
        };
        while (data.len() as u64) < position {
            let Some(chunk) = chunks.get(&(data.len() as u64)) else {
                return Err(invalid());
            };
            data.extend_from_slice(chunk);
        }
        if data.len() as u64 != position {
            return Err(invalid());
        }
        let file = Self::new_file(
            &mut s,
            Bytes::from(data),
            existing.metadata,
            existing.content_type,
        );
        s.files.insert(path.to_owned(), file.clone());
        s.operations += 1;
        Ok(file)
    }

    /// DFS rename: `Path - Create` with `x-ms-rename-source`; `conditions` apply to the destination.
    pub fn rename(
        &self,
        source: &str,
        dest: &str,
        conditions: &Conditions,
    ) -> Result<(), SimError> {
        let mut s = self.lock();
        if s.dirs.contains(source) {
            // Directory rename: move every path below it.
            if conditions.if_none_match.as_deref() == Some("*")
                && (s.dirs.contains(dest) || s.files.contains_key(dest))
            {
                return Err(SimError::new(
                    409,
                    "PathAlreadyExists",
                    "The specified path already exists.",
                ));
            }
            let prefix = format!("{source}/");
            let files: Vec<String> = s
                .files
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for k in files {
                if let Some(f) = s.files.remove(&k) {
                    s.files.insert(format!("{dest}/{}", &k[prefix.len()..]), f);
                }
            }
            let dirs: Vec<String> = s
                .dirs
                .iter()
                .filter(|k| k.starts_with(&prefix) || *k == source)
                .cloned()
                .collect();
            for k in dirs {
                Self::remove_dir(&mut s, &k);
                let moved = if k == source {
                    dest.to_owned()
                } else {
                    format!("{dest}/{}", &k[prefix.len()..])
                };
                Self::insert_dir(&mut s, &moved);
            }
            Self::add_parents(&mut s, dest);
            s.operations += 1;
            return Ok(());
        }
        let Some(file) = s.files.get(source).cloned() else {
            return Err(SimError::new(
                404,
                "SourcePathNotFound",
                "The source path for a rename operation does not exist.",
            ));
        };
        if s.dirs.contains(dest) {
            return Err(SimError::new(
                409,
                "PathConflict",
                "The destination path is a directory.",
            ));
        }
        conditions.check(s.files.get(dest), "PathAlreadyExists")?;
        s.files.remove(source);
        s.appends.remove(source);
        Self::add_parents(&mut s, dest);
        s.files.insert(dest.to_owned(), file);
        s.operations += 1;
        Ok(())
    }

    /// Blob `Delete Blob` / DFS `Path - Delete`.
    pub fn delete(
        &self,
        path: &str,
        recursive: bool,
        conditions: &Conditions,
    ) -> Result<(), SimError> {
        let mut s = self.lock();
        if let Some(f) = s.files.get(path) {
            conditions.check(Some(f), "PathAlreadyExists")?;
            s.files.remove(path);
            s.operations += 1;
            return Ok(());
        }
        if s.dirs.contains(path) {
            let prefix = format!("{path}/");
            let has_children = s.files.keys().any(|k| k.starts_with(&prefix))
                || s.dirs.iter().any(|d| d.starts_with(&prefix));
            if has_children && !recursive {
                return Err(SimError::new(409, "DirectoryNotEmpty", "The recursive query parameter value must be true to delete a non-empty directory."));
            }
            s.files.retain(|k, _| !k.starts_with(&prefix));
            s.dirs.retain(|d| !d.starts_with(&prefix) && d != path);
            s.dir_ids
                .retain(|d, _| !d.starts_with(&prefix) && d != path);
            s.operations += 1;
            return Ok(());
        }
        Err(SimError::new(
            404,
            "PathNotFound",
            "The specified path does not exist.",
        ))
    }

    /// Entries directly below `dir` (a full path without trailing slash).
    pub fn list_dir(&self, dir: &str) -> (Vec<(String, StoredFile)>, Vec<String>) {
        let s = self.lock();
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut files = Vec::new();
        let mut dirs = BTreeSet::new();
        for (k, f) in s.files.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                None => files.push((rest.to_owned(), f.clone())),
                Some((d, _)) => {
                    dirs.insert(d.to_owned());
                }
            }
        }
        for d in s.dirs.range(prefix.clone()..) {
            let Some(rest) = d.strip_prefix(&prefix) else {
                break;
            };
            let name = rest.split('/').next().unwrap_or(rest);
            if !name.is_empty() {
                dirs.insert(name.to_owned());
            }
        }
        (files, dirs.into_iter().collect())
    }

    /// Every path (files and directories) below `prefix` (full path prefix, no slash logic).
    pub fn list_prefix(&self, prefix: &str) -> (Vec<(String, StoredFile)>, Vec<String>) {
        let s = self.lock();
        let files = s
            .files
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect();
        let dirs = s
            .dirs
            .range(prefix.to_owned()..)
            .take_while(|d| d.starts_with(prefix))
            .cloned()
            .collect();
        (files, dirs)
    }

    /// A view of the landing zone at `root` (e.g. `ws/item/Files/LandingZone`) for the replicator.
    pub fn landing_zone(&self, root: &str) -> LandingZoneView {
        LandingZoneView {
            storage: self.clone(),
            root: root.trim_matches('/').to_owned(),
        }
    }
}

/// A landing zone inside the simulator's storage, as [`LandingFiles`].
#[derive(Clone, Debug)]
pub struct LandingZoneView {
    storage: Storage,
    root: String,
}

impl LandingZoneView {
    fn full(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{rel}", self.root)
        }
    }
}

impl LandingFiles for LandingZoneView {
    fn list(&self, dir: &str) -> std::io::Result<Vec<FileEntry>> {
        let (files, dirs) = self.storage.list_dir(&self.full(dir));
        let mut out: Vec<FileEntry> = dirs
            .into_iter()
            .map(|name| FileEntry {
                name,
                is_dir: true,
                size: 0,
            })
            .collect();
        out.extend(files.into_iter().map(|(name, f)| FileEntry {
            name,
            is_dir: false,
            size: f.data.len() as u64,
        }));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, path: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.storage.get(&self.full(path)).map(|f| f.data.to_vec()))
    }

    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.storage
            .rename(&self.full(from), &self.full(to), &Conditions::default())
            .map_err(|e| match e.status {
                404 => std::io::Error::new(std::io::ErrorKind::NotFound, e.message),
                _ => std::io::Error::other(e.message),
            })
    }

    fn folder_id(&self, dir: &str) -> std::io::Result<Option<String>> {
        Ok(self
            .storage
            .dir_id(&self.full(dir))
            .map(|id| id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_refuses_to_overwrite_with_if_none_match() {
        let s = Storage::new();
        let none = Conditions::default();
        s.put_blob(
            "ws/a/_tmp",
            Bytes::from_static(b"x"),
            &none,
            BTreeMap::new(),
            None,
        )
        .unwrap();
        s.put_blob(
            "ws/a/f",
            Bytes::from_static(b"y"),
            &none,
            BTreeMap::new(),
            None,
        )
        .unwrap();
        let create_only = Conditions {
            if_match: None,
            if_none_match: Some("*".into()),
        };
        let err = s.rename("ws/a/_tmp", "ws/a/f", &create_only).unwrap_err();
        assert_eq!((err.status, err.code), (409, "PathAlreadyExists"));
        s.rename("ws/a/_tmp", "ws/a/g", &create_only).unwrap();
        let err = s.rename("ws/a/_tmp", "ws/a/h", &create_only).unwrap_err();
        assert_eq!((err.status, err.code), (404, "SourcePathNotFound"));
        assert_eq!(&s.get("ws/a/g").unwrap().data[..], b"x");
    }

    #[test]
    fn dfs_create_append_flush_makes_content_visible_at_flush() {
        let s = Storage::new();
        s.create_file("ws/t/f", &Conditions::default()).unwrap();
        // Out of order, as parallel uploads do.
        s.append("ws/t/f", 3, b"de").unwrap();
        s.append("ws/t/f", 0, b"abc").unwrap();
        assert!(s.get("ws/t/f").unwrap().data.is_empty());
        assert_eq!(
            s.flush("ws/t/f", 4, &Conditions::default())
                .unwrap_err()
                .status,
            400
        );
        s.append("ws/t/f", 3, b"de").unwrap();
        s.append("ws/t/f", 0, b"abc").unwrap();
        s.flush("ws/t/f", 5, &Conditions::default()).unwrap();
        assert_eq!(&s.get("ws/t/f").unwrap().data[..], b"abcde");
        let (files, dirs) = s.list_dir("ws");
        assert!(files.is_empty());
        assert_eq!(dirs, vec!["t".to_owned()]);
    }
}
