//! Where a landing zone lives: the few storage operations the sink needs, over a local directory or
//! OneLake / ADLS Gen2.
//!
//! Paths are relative to the landing zone and `/`-separated (`orders/_metadata.json`). The operations
//! are chosen so that every Open Mirroring rule can be kept on every store:
//! - [`LandingStore::put`] with [`PutMode::Create`] makes an object appear whole or not at all and
//!   never replaces one (Blob `Put Blob` with `If-None-Match: *`);
//! - [`LandingStore::rename_no_replace`] publishes a temp file under its final name and refuses to
//!   overwrite (DFS `Path - Create` with `x-ms-rename-source` and `If-None-Match: *`);
//! - [`PutMode::IfMatch`] replaces an object only if nobody changed it since it was read (leases);
//! - [`LandingStore::delete_dir`] removes a whole table folder in one step where the store can
//!   (truncation: Fabric drops the table when its folder goes).

mod local;
pub mod remote;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStore;

/// How [`LandingStore::put`] treats an existing object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Replace it (the new content appears atomically).
    Overwrite,
    /// Fail with [`StoreErrorKind::AlreadyExists`] if it exists.
    Create,
    /// Replace it only if its ETag is still this one, else [`StoreErrorKind::Precondition`].
    IfMatch(String),
}

/// An object's content and version.
#[derive(Clone, Debug)]
pub struct Object {
    /// The content.
    pub bytes: Bytes,
    /// Its version, for [`PutMode::IfMatch`].
    pub etag: String,
}

/// An object's size and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Its version.
    pub etag: String,
}

/// The entries directly inside a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Files: name (no folder) and size.
    pub files: Vec<(String, u64)>,
    /// Sub-folders, by name.
    pub dirs: Vec<String>,
}

/// What kind of failure a store operation had; decides retry and verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The object (or the rename source) does not exist.
    NotFound,
    /// A create-only write or rename found the target present.
    AlreadyExists,
    /// An `If-Match` write found another version.
    Precondition,
    /// A passing failure (throttling, 5xx, timeout, connection reset); the operation may or may not
    /// have taken effect.
    Transient,
    /// The credential was rejected (401) even after a fresh token.
    Unauthenticated,
    /// Permission denied (403) or the landing zone does not exist (404 on the container).
    Forbidden,
    /// Anything else retrying cannot fix (bad request, local I/O error).
    Permanent,
}

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub struct StoreError {
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// The operation, e.g. `rename`.
    pub op: &'static str,
    /// The path it was about.
    pub path: String,
    /// What happened, with a hint where there is one.
    pub message: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path, self.message)
    }
}

impl StoreError {
    /// An error of `kind`.
    pub fn new(
        kind: StoreErrorKind,
        op: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            op,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == StoreErrorKind::Transient
    }
}

/// The storage operations of a landing zone.
#[async_trait]
pub trait LandingStore: Send + Sync + fmt::Debug {
    /// The landing zone's location for messages (a path or URL, never a secret).
    fn location(&self) -> String;

    /// The object at `path`, or `None`.
    async fn get(&self, path: &str) -> Result<Option<Object>, StoreError>;

    /// Size and version of the object at `path`, or `None`.
    async fn head(&self, path: &str) -> Result<Option<ObjectInfo>, StoreError>;

    /// Bytes `range` of the object at `path`, or `None` if it does not exist. The range must lie
    /// within the object (as [`LandingStore::head`] reports its size). The default reads the whole
    /// object; stores override it with a ranged read.
    async fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get(path).await?.map(|o| {
            let end = (range.end as usize).min(o.bytes.len());
            o.bytes.slice((range.start as usize).min(end)..end)
        }))
    }

    /// The files and folders directly inside `dir` (`""` is the landing-zone root); empty if the
    /// folder does not exist.
    async fn list(&self, dir: &str) -> Result<Listing, StoreError>;

    /// Writes `bytes` at `path`, atomically; returns the new ETag.
    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<String, StoreError>;

    /// Moves `from` to `to` atomically, failing with [`StoreErrorKind::AlreadyExists`] if `to`
    /// exists and [`StoreErrorKind::NotFound`] if `from` does not.
    async fn rename_no_replace(&self, from: &str, to: &str) -> Result<(), StoreError>;

    /// Deletes the file at `path`; deleting a missing file succeeds.
    async fn delete(&self, path: &str) -> Result<(), StoreError>;

    /// Whether the landing zone's own folder exists (`mirror check --connect`); an error when it
    /// cannot be asked (credentials, network). The default: listing its root works.
    async fn root_exists(&self) -> Result<bool, StoreError> {
        self.list("").await.map(|_| true)
    }

    /// Obtains a credential now (`mirror check --connect`) and says what it is, never its
    /// value; `None` for a store that needs none.
    async fn credential(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Deletes what a crash of an earlier writer left behind in the store's own machinery (the
    /// temporary files of a local store's writes, see [`mirror_core::files`]); returns how many.
    /// Stores whose writes are atomic requests have none (the default). Called at start; files
    /// being written by live writers are kept.
    async fn remove_leftovers(&self) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// Deletes the folder `dir` and everything below it; deleting a missing folder succeeds.
    ///
    /// The folder should vanish in one step, so that nobody (Fabric) sees it half deleted: a local
    /// store moves it out of the way with one rename first; DFS deletes a directory recursively in
    /// one request on a hierarchical namespace. Callers must still be ready for a crash in the
    /// middle (a store may have to delete file by file).
    async fn delete_dir(&self, dir: &str) -> Result<(), StoreError>;
}

/// The landing zone's table folders: `<table>` and `<schema>.schema/<table>`, skipping `_`-prefixed
/// names as Fabric does.
pub async fn table_folders(store: &dyn LandingStore) -> Result<Vec<String>, StoreError> {
    let mut folders = Vec::new();
    for dir in store.list("").await?.dirs {
        if dir.starts_with('_') {
            continue;
        }
        if dir.ends_with(".schema") {
            for table in store.list(&dir).await?.dirs {
                if !table.starts_with('_') {
                    folders.push(join(&[&dir, &table]));
                }
            }
        } else {
            folders.push(dir);
        }
    }
    Ok(folders)
}

/// Joins landing-zone path parts with `/`, skipping empty ones.
pub fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}
