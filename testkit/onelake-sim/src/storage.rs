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
use crate::lease::{self, Lease, LeaseAnswer, LeaseRequest};

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
    /// When the path was created (kept by renames and rewrites of its content).
    pub created: DateTime<Utc>,
    /// The other stored HTTP headers: `cache-control`, `content-encoding`, `content-language`,
    /// `content-disposition` (set by `x-ms-*` request headers of Path - Create / Flush and Blob
    /// writes, returned on reads).
    pub http_headers: BTreeMap<String, String>,
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
    /// An error with its status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Preconditions of a request ("Specifying conditional headers for Blob service operations").
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<DateTime<Utc>>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<DateTime<Utc>>,
    /// `x-ms-lease-id`: the lease the caller holds on the target.
    pub lease_id: Option<String>,
}

fn not_met() -> SimError {
    SimError::new(
        412,
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
}

impl Conditions {
    /// Only `If-None-Match: *`: create, never overwrite.
    pub fn create_only() -> Self {
        Self {
            if_none_match: Some("*".into()),
            ..Self::default()
        }
    }

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
                return Err(not_met());
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
                    return Err(not_met());
                }
            }
        }
        // HTTP dates have whole seconds: compare at that precision.
        if let (Some(since), Some(f)) = (self.if_modified_since, existing) {
            if f.last_modified.timestamp() <= since.timestamp() {
                return Err(not_met());
            }
        }
        if let (Some(since), Some(f)) = (self.if_unmodified_since, existing) {
            if f.last_modified.timestamp() > since.timestamp() {
                return Err(not_met());
            }
        }
        Ok(())
    }

    /// Whether a read of `f` is answered 304 Not Modified (`If-None-Match` matching, or
    /// `If-Modified-Since` not passed), the read form of these headers.
    pub fn not_modified(&self, f: &StoredFile) -> bool {
        if let Some(none) = &self.if_none_match {
            return none == "*" || strip(none) == strip(&f.etag);
        }
        self.if_modified_since
            .is_some_and(|since| f.last_modified.timestamp() <= since.timestamp())
    }

    /// The read form of `If-Match` / `If-Unmodified-Since`: 412 when they do not hold.
    pub fn check_read(&self, f: &StoredFile) -> Result<(), SimError> {
        if let Some(m) = &self.if_match {
            if m != "*" && strip(m) != strip(&f.etag) {
                return Err(not_met());
            }
        }
        if let Some(since) = self.if_unmodified_since {
            if f.last_modified.timestamp() > since.timestamp() {
                return Err(not_met());
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
    /// Each directory's ETag and times.
    dir_meta: HashMap<String, DirMeta>,
    blocks: HashMap<String, HashMap<String, Bytes>>,
    appends: HashMap<String, BTreeMap<u64, Bytes>>,
    leases: HashMap<String, Lease>,
    counter: u64,
    operations: u64,
}

/// A directory's ETag, times and properties.
#[derive(Clone, Debug)]
pub struct DirMeta {
    /// Version tag.
    pub etag: String,
    /// Creation time (also its last modification: the simulator does not track directory
    /// changes).
    pub created: DateTime<Utc>,
    /// `x-ms-properties` / `x-ms-meta-*`.
    pub metadata: BTreeMap<String, String>,
}

/// What a write stores besides the content: metadata (`x-ms-meta-*`, or `x-ms-properties` on
/// DFS), the content type and the other content headers.
#[derive(Clone, Debug, Default)]
pub struct WriteProps {
    /// Metadata; `None` keeps what the path has.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Content type; `None` keeps it (or `application/octet-stream` for a new file).
    pub content_type: Option<String>,
    /// `cache-control`, `content-encoding`, `content-language`, `content-disposition`.
    pub http_headers: BTreeMap<String, String>,
}

impl WriteProps {
    /// A Blob write's: the metadata and the content type given (`application/octet-stream`
    /// without one), no other headers.
    pub fn blob(metadata: BTreeMap<String, String>, content_type: Option<String>) -> Self {
        Self {
            metadata: Some(metadata),
            content_type: Some(content_type.unwrap_or_else(|| "application/octet-stream".into())),
            http_headers: BTreeMap::new(),
        }
    }
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

fn path_not_found() -> SimError {
    SimError::new(404, "PathNotFound", "The specified path does not exist.")
}

fn is_directory_conflict() -> SimError {
    // "PathConflict": the path exists with another resource type (ADLS Gen2 error codes).
    SimError::new(
        409,
        "PathConflict",
        "The specified path, or an element of the path, exists and its resource type is invalid for this operation.",
    )
}

impl Storage {
    /// An empty account.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn etag(state: &mut State) -> String {
        state.counter += 1;
        format!("\"0x8DC{:012X}\"", state.counter)
    }

    /// A new version of the file at `path` (created at `created`, or now).
    fn version(
        state: &mut State,
        data: Bytes,
        previous: Option<&StoredFile>,
        props: WriteProps,
    ) -> StoredFile {
        let now = Utc::now();
        let mut http_headers = previous.map(|p| p.http_headers.clone()).unwrap_or_default();
        http_headers.extend(props.http_headers);
        StoredFile {
            data,
            etag: Self::etag(state),
            last_modified: now,
            metadata: props
                .metadata
                .or_else(|| previous.map(|p| p.metadata.clone()))
                .unwrap_or_default(),
            content_type: props
                .content_type
                .or_else(|| previous.map(|p| p.content_type.clone()))
                .unwrap_or_else(|| "application/octet-stream".into()),
            created: previous.map(|p| p.created).unwrap_or(now),
            http_headers,
        }
    }

    fn insert_dir(state: &mut State, dir: &str) {
        if state.dirs.insert(dir.to_owned()) {
            state.counter += 1;
            let id = state.counter;
            state.dir_ids.insert(dir.to_owned(), id);
            let etag = Self::etag(state);
            state.dir_meta.insert(
                dir.to_owned(),
                DirMeta {
                    etag,
                    created: Utc::now(),
                    metadata: BTreeMap::new(),
                },
            );
        }
    }

    fn remove_dir(state: &mut State, dir: &str) {
        state.dirs.remove(dir);
        state.dir_ids.remove(dir);
        state.dir_meta.remove(dir);
    }

    /// The identity of the directory at `path` (new each time it is created), or `None`.
    pub fn dir_id(&self, path: &str) -> Option<u64> {
        self.lock().dir_ids.get(path).copied()
    }

    /// The directory at `path`: its ETag, creation time and properties.
    pub fn dir_meta(&self, path: &str) -> Option<DirMeta> {
        self.lock().dir_meta.get(path).cloned()
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

    /// An append or a flush needs an existing file (not a directory) and, if it is leased, the
    /// lease.
    fn check_existing_file(s: &State, path: &str, conditions: &Conditions) -> Result<(), SimError> {
        if s.dirs.contains(path) {
            return Err(is_directory_conflict());
        }
        if !s.files.contains_key(path) {
            return Err(path_not_found());
        }
        Self::check_lease(s, path, conditions)
    }

    fn check_lease(state: &State, path: &str, conditions: &Conditions) -> Result<(), SimError> {
        lease::check_write(
            state.leases.get(path),
            conditions.lease_id.as_deref(),
            Utc::now(),
        )
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

    /// The lease on `path`, if one was ever taken and not released.
    pub fn lease(&self, path: &str) -> Option<Lease> {
        self.lock().leases.get(path).cloned()
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
        self.write_blob(
            path,
            data,
            conditions,
            WriteProps::blob(metadata, content_type),
        )
    }

    /// Blob `Put Blob` with every stored property.
    pub fn write_blob(
        &self,
        path: &str,
        data: Bytes,
        conditions: &Conditions,
        props: WriteProps,
    ) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        if s.dirs.contains(path) {
            return Err(is_directory_conflict());
        }
        conditions.check(s.files.get(path), "BlobAlreadyExists")?;
        Self::check_lease(&s, path, conditions)?;
        // A Put Blob replaces the blob: its metadata and headers are what this request says.
        let created = s.files.get(path).map(|f| f.created);
        let mut file = Self::version(&mut s, data, None, props);
        if let Some(c) = created {
            file.created = c;
        }
        Self::add_parents(&mut s, path);
        s.files.insert(path.to_owned(), file.clone());
        s.blocks.remove(path);
        s.appends.remove(path);
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
        self.commit_blocks(
            path,
            ids,
            conditions,
            WriteProps::blob(metadata, content_type),
        )
    }

    /// `Put Block List` with every stored property.
    pub fn commit_blocks(
        &self,
        path: &str,
        ids: &[String],
        conditions: &Conditions,
        props: WriteProps,
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
        self.write_blob(path, Bytes::from(data), conditions, props)
    }

    /// Blob `Set Blob Metadata` / DFS `Path - Update` `setProperties`: replaces the metadata (and
    /// the content headers given) of a file or directory, keeping its content.
    pub fn set_properties(
        &self,
        path: &str,
        conditions: &Conditions,
        props: WriteProps,
    ) -> Result<String, SimError> {
        let mut s = self.lock();
        if let Some(existing) = s.files.get(path).cloned() {
            conditions.check(Some(&existing), "PathAlreadyExists")?;
            Self::check_lease(&s, path, conditions)?;
            let file = Self::version(&mut s, existing.data.clone(), Some(&existing), props);
            let etag = file.etag.clone();
            s.files.insert(path.to_owned(), file);
            s.operations += 1;
            return Ok(etag);
        }
        if s.dirs.contains(path) {
            let etag = Self::etag(&mut s);
            if let Some(meta) = s.dir_meta.get_mut(path) {
                if let Some(m) = props.metadata {
                    meta.metadata = m;
                }
                meta.etag = etag.clone();
            }
            s.operations += 1;
            return Ok(etag);
        }
        Err(path_not_found())
    }

    /// DFS `Path - Create` of a file (empty, content arrives by append and flush).
    pub fn create_file(&self, path: &str, conditions: &Conditions) -> Result<StoredFile, SimError> {
        self.create_file_with(path, conditions, WriteProps::default())
    }

    /// DFS `Path - Create` of a file with its properties (`x-ms-properties`, `x-ms-content-*`).
    /// Over an existing file it starts a new, empty version (the default "overwrite").
    pub fn create_file_with(
        &self,
        path: &str,
        conditions: &Conditions,
        props: WriteProps,
    ) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        if s.dirs.contains(path) {
            return Err(is_directory_conflict());
        }
        conditions.check(s.files.get(path), "PathAlreadyExists")?;
        Self::check_lease(&s, path, conditions)?;
        let created = s.files.get(path).map(|f| f.created);
        let mut file = Self::version(&mut s, Bytes::new(), None, props);
        if let Some(c) = created {
            file.created = c;
        }
        Self::add_parents(&mut s, path);
        s.files.insert(path.to_owned(), file.clone());
        s.appends.remove(path);
        s.operations += 1;
        Ok(file)
    }

    /// DFS `Path - Create` of a directory.
    pub fn create_dir(&self, path: &str, conditions: &Conditions) -> Result<(), SimError> {
        self.create_dir_with(path, conditions, None).map(|_| ())
    }

    /// DFS `Path - Create` of a directory with `x-ms-properties`; returns its ETag.
    pub fn create_dir_with(
        &self,
        path: &str,
        conditions: &Conditions,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Result<String, SimError> {
        let mut s = self.lock();
        if s.files.contains_key(path) {
            return Err(is_directory_conflict());
        }
        if conditions.if_none_match.as_deref() == Some("*") && s.dirs.contains(path) {
            return Err(SimError::new(
                409,
                "PathAlreadyExists",
                "The specified path already exists.",
            ));
        }
        if conditions.if_match.is_some() && !s.dirs.contains(path) {
            return Err(not_met());
        }
        Self::add_parents(&mut s, path);
        Self::insert_dir(&mut s, path);
        let etag = Self::etag(&mut s);
        if let Some(meta) = s.dir_meta.get_mut(path) {
            meta.etag = etag.clone();
            if let Some(m) = metadata {
                meta.metadata = m;
            }
        }
        s.operations += 1;
        Ok(etag)
    }

    /// DFS `Path - Update` `action=append`: stores data at `position`, uncommitted. Appends may
    /// arrive in any order ("This parameter allows the caller to upload data in parallel"); their
    /// contiguity is checked at flush.
    pub fn append(&self, path: &str, position: u64, data: &[u8]) -> Result<(), SimError> {
        self.append_with(path, position, data, &Conditions::default())
    }

    /// `append` with the lease the caller holds.
    pub fn append_with(
        &self,
        path: &str,
        position: u64,
        data: &[u8],
        conditions: &Conditions,
    ) -> Result<(), SimError> {
        let mut s = self.lock();
        Self::check_existing_file(&s, path, conditions)?;
        s.appends
            .entry(path.to_owned())
            .or_default()
            .insert(position, Bytes::copy_from_slice(data));
        s.operations += 1;
        Ok(())
    }

    /// `append` and `flush` in one request (`action=append&flush=true`, Path - Update since
    /// x-ms-version 2020-06-12): the data at `position` and everything uploaded before it become
    /// the file's content, which then ends at `position + data.len()`.
    pub fn append_and_flush(
        &self,
        path: &str,
        position: u64,
        data: &[u8],
        conditions: &Conditions,
    ) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        Self::check_existing_file(&s, path, conditions)?;
        let end = position + data.len() as u64;
        let mut chunks = s.appends.remove(path).unwrap_or_default();
        chunks.insert(position, Bytes::copy_from_slice(data));
        Self::commit(
            &mut s,
            path,
            end,
            chunks,
            false,
            conditions,
            WriteProps::default(),
        )
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
        self.flush_with(path, position, false, conditions, WriteProps::default())
    }

    /// `flush` with `retainUncommittedData` and the content headers to store
    /// (`x-ms-content-type`, ...).
    pub fn flush_with(
        &self,
        path: &str,
        position: u64,
        retain_uncommitted: bool,
        conditions: &Conditions,
        props: WriteProps,
    ) -> Result<StoredFile, SimError> {
        let mut s = self.lock();
        Self::check_existing_file(&s, path, conditions)?;
        let chunks = s.appends.remove(path).unwrap_or_default();
        Self::commit(
            &mut s,
            path,
            position,
            chunks,
            retain_uncommitted,
            conditions,
            props,
        )
    }

    fn commit(
        s: &mut State,
        path: &str,
        position: u64,
        mut chunks: BTreeMap<u64, Bytes>,
        retain_uncommitted: bool,
        conditions: &Conditions,
        props: WriteProps,
    ) -> Result<StoredFile, SimError> {
        let Some(existing) = s.files.get(path).cloned() else {
            return Err(path_not_found());
        };
        if let Err(e) = conditions.check(Some(&existing), "PathAlreadyExists") {
            s.appends.insert(path.to_owned(), chunks);
            return Err(e);
        }
        let mut data = existing.data.to_vec();
        let invalid = SimError::new(
            400,
            "InvalidFlushPosition",
            "The uploaded data is not contiguous or the position query parameter value is not equal to the length of the file after appending the uploaded data.",
        );
        let mut used = Vec::new();
        while (data.len() as u64) < position {
            let at = data.len() as u64;
            let Some(chunk) = chunks.get(&at) else {
                s.appends.insert(path.to_owned(), chunks);
                return Err(invalid);
            };
            data.extend_from_slice(chunk);
            used.push(at);
        }
        if data.len() as u64 != position {
            s.appends.insert(path.to_owned(), chunks);
            return Err(invalid);
        }
        for at in used {
            chunks.remove(&at);
        }
        // "retainUncommittedData": data after the flush position stays for a later flush.
        if retain_uncommitted {
            chunks.retain(|at, _| *at >= position);
            if !chunks.is_empty() {
                s.appends.insert(path.to_owned(), chunks);
            }
        }
        let file = Self::version(s, Bytes::from(data), Some(&existing), props);
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
        self.rename_with(source, dest, conditions, &Conditions::default())
    }

    /// `rename` with the source's conditions (`x-ms-source-if-*`, `x-ms-source-lease-id`).
    ///
    /// On a hierarchical namespace the destination's parent directory must exist (404
    /// `RenameDestinationParentPathNotFound`, an error code of the ADLS Gen2 API, e.g. in Hadoop's
    /// `AzureServiceErrorCode`), a directory cannot move below itself (409
    /// `InvalidRenameSourcePath`) and a file cannot replace a directory (409 `PathConflict`).
    pub fn rename_with(
        &self,
        source: &str,
        dest: &str,
        conditions: &Conditions,
        source_conditions: &Conditions,
    ) -> Result<(), SimError> {
        let mut s = self.lock();
        let source_missing = || {
            SimError::new(
                404,
                "SourcePathNotFound",
                "The source path for a rename operation does not exist.",
            )
        };
        if !s.dirs.contains(source) && !s.files.contains_key(source) {
            return Err(source_missing());
        }
        if let Some(p) = parent(dest) {
            if p.contains('/') && !s.dirs.contains(p) {
                return Err(SimError::new(
                    404,
                    "RenameDestinationParentPathNotFound",
                    "The parent directory of the destination path does not exist.",
                ));
            }
        }
        if s.dirs.contains(source) {
            if dest == source || dest.starts_with(&format!("{source}/")) {
                return Err(SimError::new(
                    409,
                    "InvalidRenameSourcePath",
                    "The source directory cannot be the same as the destination directory, nor can the destination be a subdirectory of the source directory.",
                ));
            }
            if s.files.contains_key(dest) {
                return Err(SimError::new(
                    409,
                    "InvalidSourceOrDestinationResourceType",
                    "The source and destination resource type must be identical.",
                ));
            }
            if conditions.if_none_match.as_deref() == Some("*") && s.dirs.contains(dest) {
                return Err(SimError::new(
                    409,
                    "PathAlreadyExists",
                    "The specified path already exists.",
                ));
            }
            // Directory rename: move every path below it.
            let prefix = format!("{source}/");
            let files: Vec<String> = s
                .files
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for k in files {
                if let Some(f) = s.files.remove(&k) {
                    let moved = format!("{dest}/{}", &k[prefix.len()..]);
                    if let Some(l) = s.leases.remove(&k) {
                        s.leases.insert(moved.clone(), l);
                    }
                    s.files.insert(moved, f);
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
            return Err(source_missing());
        };
        if let Err(mut e) = source_conditions.check(Some(&file), "PathAlreadyExists") {
            if e.code == "ConditionNotMet" {
                e.code = "SourceConditionNotMet";
                e.message =
                    "The source condition specified using HTTP conditional header(s) is not met."
                        .into();
            }
            return Err(e);
        }
        lease::check_write(
            s.leases.get(source),
            source_conditions.lease_id.as_deref(),
            Utc::now(),
        )?;
        if s.dirs.contains(dest) {
            return Err(is_directory_conflict());
        }
        conditions.check(s.files.get(dest), "PathAlreadyExists")?;
        Self::check_lease(&s, dest, conditions)?;
        s.files.remove(source);
        s.appends.remove(source);
        s.leases.remove(source);
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
            Self::check_lease(&s, path, conditions)?;
            s.files.remove(path);
            s.appends.remove(path);
            s.leases.remove(path);
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
            s.leases.retain(|k, _| !k.starts_with(&prefix));
            s.dirs.retain(|d| !d.starts_with(&prefix) && d != path);
            s.dir_ids
                .retain(|d, _| !d.starts_with(&prefix) && d != path);
            s.dir_meta
                .retain(|d, _| !d.starts_with(&prefix) && d != path);
            s.operations += 1;
            return Ok(());
        }
        Err(path_not_found())
    }

    /// Applies a lease request (`Path - Lease` / `Lease Blob`) to the file at `path`.
    pub fn lease_request(
        &self,
        path: &str,
        request: &LeaseRequest,
        conditions: &Conditions,
    ) -> Result<(LeaseAnswer, StoredFile), SimError> {
        let mut s = self.lock();
        let Some(file) = s.files.get(path).cloned() else {
            return Err(path_not_found());
        };
        conditions.check(Some(&file), "PathAlreadyExists")?;
        let mut slot = s.leases.remove(path);
        let answer = lease::apply(&mut slot, request, Utc::now());
        if let Some(l) = slot {
            s.leases.insert(path.to_owned(), l);
        }
        Ok((answer?, file))
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
        let create_only = Conditions::create_only();
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
