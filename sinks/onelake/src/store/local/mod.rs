//! A landing zone in a local directory (`./landing-zone` or `file:///...`).
//!
//! Every write goes to a temporary file that is fsynced and then moved into place, so readers never
//! see a partial file. Temporary names start with `_mirror_tmp_` (Fabric ignores them) and name their
//! writer's process, so that [`LandingStore::remove_leftovers`] can delete, at start, those a crash
//! left behind ([`mirror_core::files`]). Create-only writes and [`LandingStore::rename_no_replace`] use a hard link,
//! which fails if the target exists: two processes can never overwrite each other's data file.
//! ETags come from the file's identity and last change (inode, size, modification time), as web
//! servers derive them: every write moves a new file into place, so every write changes the ETag,
//! and reading one costs a `stat`, not a pass over a data file of tens of MB (hashing the content
//! of every published file cost ~8% of the sink's time). `If-Match` writes are compare-then-replace,
//! not atomic against a concurrent writer on the same machine. Large files are written with direct
//! I/O, past the page cache (`direct.rs`).

mod direct;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use mirror_core::files::{crash_point, TempFile};

use super::{LandingStore, Listing, Object, ObjectInfo, PutMode, StoreError, StoreErrorKind};

/// A landing zone rooted at a local directory.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The landing zone at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, rel: &str) -> PathBuf {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            p.push(part);
        }
        p
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Permanent, "local", "", e.to_string()))?
    }

    fn write_temp(&self, dir: &Path, bytes: &[u8]) -> io::Result<TempFile> {
        fs::create_dir_all(dir)?;
        let temp = TempFile::new(dir);
        direct::create_and_write(temp.path(), bytes)?.sync_all()?;
        Ok(temp)
    }

    /// The folders where this store's own writes may have left temporary files: the root, every
    /// table folder, and the `_mirror_*` state folders with everything below them.
    fn folders_with_writes(&self) -> io::Result<Vec<PathBuf>> {
        fn subdirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
            let mut out = Vec::new();
            match fs::read_dir(dir) {
                Ok(entries) => {
                    for entry in entries {
                        let entry = entry?;
                        if entry.file_type()?.is_dir() {
                            out.push((
                                entry.file_name().to_string_lossy().into_owned(),
                                entry.path(),
                            ));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            Ok(out)
        }
        fn tree(dir: PathBuf, out: &mut Vec<PathBuf>) -> io::Result<()> {
            for (_, sub) in subdirs(&dir)? {
                tree(sub, out)?;
            }
            out.push(dir);
            Ok(())
        }
        let mut out = vec![self.root.clone()];
        for (name, dir) in subdirs(&self.root)? {
            if name == TRASH_DIR {
                // Folders on their way out: whole leftovers, not folders to look into.
                out.push(dir);
            } else if name.starts_with("_mirror") {
                tree(dir, &mut out)?;
            } else if !name.starts_with('_') {
                // A table folder, or a schema folder holding table folders.
                for (sub, table) in subdirs(&dir)? {
                    if !sub.starts_with('_') {
                        out.push(table);
                    }
                }
                out.push(dir);
            }
        }
        Ok(out)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The ETag of a file with this metadata (see the module's documentation).
fn file_etag(meta: &fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    format!("\"{inode:x}-{:x}-{modified:x}\"", meta.len())
}

/// The ETag of the file at `path`, `None` if there is none.
fn etag_of(path: &Path) -> io::Result<Option<String>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(file_etag(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn io_error(op: &'static str, path: &str, e: io::Error) -> StoreError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => StoreErrorKind::AlreadyExists,
        io::ErrorKind::PermissionDenied => StoreErrorKind::Forbidden,
        _ => StoreErrorKind::Permanent,
    };
    StoreError::new(kind, op, path, e.to_string())
}

#[async_trait]
impl LandingStore for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn root_exists(&self) -> Result<bool, StoreError> {
        Ok(self.root.is_dir())
    }

    async fn get(&self, path: &str) -> Result<Option<Object>, StoreError> {
        let rel = path.to_owned();
        self.blocking(move |s| {
            let read = || -> io::Result<Object> {
                let mut file = File::open(s.path(&rel))?;
                // The metadata of the handle read: the ETag is that of the bytes returned.
                let meta = file.metadata()?;
                let mut bytes = Vec::with_capacity(meta.len() as usize);
                io::Read::read_to_end(&mut file, &mut bytes)?;
                Ok(Object {
                    etag: file_etag(&meta),
                    bytes: Bytes::from(bytes),
                })
            };
            match read() {
                Ok(object) => Ok(Some(object)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error("get", &rel, e)),
            }
        })
        .await
    }

    async fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Bytes>, StoreError> {
        let rel = path.to_owned();
        self.blocking(move |s| {
            let read = || -> io::Result<Bytes> {
                let mut file = File::open(s.path(&rel))?;
                let len = file.metadata()?.len();
                let (start, end) = (range.start.min(len), range.end.min(len));
                io::Seek::seek(&mut file, io::SeekFrom::Start(start))?;
                let mut bytes = vec![0; (end - start) as usize];
                io::Read::read_exact(&mut file, &mut bytes)?;
                Ok(Bytes::from(bytes))
            };
            match read() {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error("get_range", &rel, e)),
            }
        })
        .await
    }

    async fn head(&self, path: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let rel = path.to_owned();
        self.blocking(move |s| match fs::metadata(s.path(&rel)) {
            Ok(meta) => Ok(Some(ObjectInfo {
                size: meta.len(),
                etag: file_etag(&meta),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("head", &rel, e)),
        })
        .await
    }

    async fn list(&self, dir: &str) -> Result<Listing, StoreError> {
        let rel = dir.to_owned();
        self.blocking(move |s| {
            let mut listing = Listing::default();
            let entries = match fs::read_dir(s.path(&rel)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
                Err(e) => return Err(io_error("list", &rel, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_error("list", &rel, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // This process's writes in progress are not there yet.
                if mirror_core::files::is_in_flight(&entry.path()) {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| io_error("list", &rel, e))?;
                if meta.is_dir() {
                    listing.dirs.push(name);
                } else {
                    listing.files.push((name, meta.len()));
                }
            }
            listing.files.sort();
            listing.dirs.sort();
            Ok(listing)
        })
        .await
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<String, StoreError> {
        let rel = path.to_owned();
        self.blocking(move |s| {
            let target = s.path(&rel);
            let dir = target.parent().unwrap_or(&s.root).to_owned();
            if let PutMode::IfMatch(expected) = &mode {
                let current = etag_of(&target).map_err(|e| io_error("put", &rel, e))?;
                if current.as_deref() != Some(expected.as_str()) {
                    return Err(StoreError::new(
                        StoreErrorKind::Precondition,
                        "put",
                        &rel,
                        "the object changed since it was read",
                    ));
                }
            }
            let temp = s
                .write_temp(&dir, &bytes)
                .map_err(|e| io_error("put", &rel, e))?;
            crash_point("local-store-put");
            let placed = match mode {
                PutMode::Create => fs::hard_link(temp.path(), &target),
                PutMode::Overwrite | PutMode::IfMatch(_) => fs::rename(temp.path(), &target),
            };
            drop(temp);
            placed.map_err(|e| io_error("put", &rel, e))?;
            sync_dir(&dir);
            etag_of(&target)
                .map_err(|e| io_error("put", &rel, e))?
                .ok_or_else(|| {
                    StoreError::new(StoreErrorKind::Transient, "put", &rel, "the file vanished")
                })
        })
        .await
    }

    async fn rename_no_replace(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.blocking(move |s| {
            let (src, dst) = (s.path(&from), s.path(&to));
            if let Some(dir) = dst.parent() {
                fs::create_dir_all(dir).map_err(|e| io_error("rename", &to, e))?;
            }
            // A hard link refuses an existing target; the source is removed once the target exists.
            fs::hard_link(&src, &dst).map_err(|e| io_error("rename", &to, e))?;
            crash_point("local-store-rename");
            fs::remove_file(&src).map_err(|e| io_error("rename", &from, e))?;
            if let Some(dir) = dst.parent() {
                sync_dir(dir);
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        let rel = path.to_owned();
        self.blocking(move |s| match fs::remove_file(s.path(&rel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &rel, e)),
        })
        .await
    }

    async fn remove_leftovers(&self) -> Result<usize, StoreError> {
        self.blocking(|s| {
            let fail = |e: io::Error| io_error("remove_leftovers", "", e);
            let mut removed = 0;
            for dir in s.folders_with_writes().map_err(fail)? {
                removed += mirror_core::files::remove_leftovers(&dir).map_err(fail)?;
            }
            if removed > 0 {
                tracing::info!(removed, landing_zone = %s.root.display(), "removed temporary files left by a crash");
            }
            Ok(removed)
        })
        .await
    }

    async fn delete_dir(&self, dir: &str) -> Result<(), StoreError> {
        let rel = dir.to_owned();
        self.blocking(move |s| {
            let path = s.path(&rel);
            if rel.trim_matches('/').is_empty() {
                return Err(StoreError::new(
                    StoreErrorKind::Permanent,
                    "delete_dir",
                    &rel,
                    "refusing to delete the landing zone itself",
                ));
            }
            // One rename takes the folder away at once (readers see it whole or gone); the removal
            // of what it held follows out of sight, in a `_` folder Fabric ignores.
            let trash = s.root.join(TRASH_DIR);
            fs::create_dir_all(&trash).map_err(|e| io_error("delete_dir", &rel, e))?;
            let moving = TempFile::new(&trash);
            let moved = moving.path().to_owned();
            match fs::rename(&path, &moved) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error("delete_dir", &rel, e)),
            }
            if let Some(parent) = path.parent() {
                sync_dir(parent);
            }
            crash_point("local-store-delete-dir");
            fs::remove_dir_all(&moved).map_err(|e| io_error("delete_dir", TRASH_DIR, e))?;
            drop(moving);
            // Whatever an earlier crash left in the trash goes too (best effort; deletes in
            // progress are kept).
            let _ = mirror_core::files::remove_leftovers(&trash);
            let _ = fs::remove_dir(&trash);
            Ok(())
        })
        .await
    }
}

/// Where [`LocalStore::delete_dir`] moves a folder before removing it.
const TRASH_DIR: &str = "_mirror_trash";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leftovers_of_a_dead_writer_are_removed_everywhere_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path());
        // No process has this id: what a killed writer left, in every kind of folder.
        let gone = "_mirror_tmp_w4294967295_";
        let left = [
            format!("{gone}0a"),
            format!("_mirror_state/src/{gone}0b"),
            format!("_mirror_state/src/tables/{gone}0c"),
            format!("_mirror_truncate/t/{gone}0d"),
            format!("t/{gone}00000000000000000002_0e.parquet"),
            format!("sales.schema/orders/{gone}0f"),
            format!("_mirror_trash/{gone}10/00000000000000000001.parquet"),
        ];
        let kept = [
            "_partnerEvents.json",
            "t/00000000000000000001.parquet",
            "t/_metadata.json",
            "sales.schema/orders/_mirror_checkpoint.src.json",
            // A publication in progress of a writer that is not this store's to judge.
            "t/_mirror_tmp_00000000000000000003_11.parquet",
        ];
        for f in left.iter().map(String::as_str).chain(kept) {
            let path = s.path(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        assert_eq!(s.remove_leftovers().await.unwrap(), left.len());
        for f in &left {
            assert!(!s.path(f).exists(), "{f} is left");
        }
        for f in kept {
            assert!(s.path(f).exists(), "{f} was removed");
        }
        assert_eq!(s.remove_leftovers().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn create_only_and_rename_refuse_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path());
        s.put("t/a", Bytes::from_static(b"1"), PutMode::Create)
            .await
            .unwrap();
        let err = s
            .put("t/a", Bytes::from_static(b"2"), PutMode::Create)
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
        s.put("t/_tmp", Bytes::from_static(b"3"), PutMode::Overwrite)
            .await
            .unwrap();
        let err = s.rename_no_replace("t/_tmp", "t/a").await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
        assert_eq!(&s.get("t/a").await.unwrap().unwrap().bytes[..], b"1");
        s.rename_no_replace("t/_tmp", "t/b").await.unwrap();
        assert!(s.get("t/_tmp").await.unwrap().is_none());
        let err = s.rename_no_replace("t/_tmp", "t/c").await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::NotFound);
        let listing = s.list("t").await.unwrap();
        assert_eq!(listing.files, vec![("a".into(), 1), ("b".into(), 1)]);
    }

    #[tokio::test]
    async fn if_match_detects_a_concurrent_change() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path());
        let v1 = s
            .put("l", Bytes::from_static(b"one"), PutMode::Create)
            .await
            .unwrap();
        let v2 = s
            .put(
                "l",
                Bytes::from_static(b"two"),
                PutMode::IfMatch(v1.clone()),
            )
            .await
            .unwrap();
        let err = s
            .put("l", Bytes::from_static(b"three"), PutMode::IfMatch(v1))
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Precondition);
        assert_eq!(s.head("l").await.unwrap().unwrap().etag, v2);
    }
}
