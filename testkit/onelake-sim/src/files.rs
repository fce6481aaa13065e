//! What the replicator needs from a landing zone: list a folder, read a file, move a file aside.
//!
//! Two implementations: [`LocalDir`] (a landing zone on the local disk, as `mirror` writes it with a
//! local store) and the simulator's in-memory storage ([`crate::storage::LandingZoneView`]).

use std::io;
use std::path::{Path, PathBuf};

/// One entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// The name inside the folder (no slashes).
    pub name: String,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// Size in bytes (0 for folders).
    pub size: u64,
}

/// Read access to a landing zone, with the one write Fabric does: moving processed files aside.
///
/// Paths are relative to the landing zone, `/`-separated: `""` is the root, `"orders"` a table
/// folder, `"sales.schema/orders/00000000000000000001.parquet"` a file.
pub trait LandingFiles: Send + Sync {
    /// The entries directly in `dir`; empty if it does not exist.
    fn list(&self, dir: &str) -> io::Result<Vec<FileEntry>>;
    /// The content of a file; `None` if it does not exist.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// Moves a file, creating the target's folder.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// The identity of the folder `dir` (Fabric watches a folder's ETag): it changes when the folder
    /// is deleted and created again. `None` if the folder does not exist or the store has none.
    fn folder_id(&self, dir: &str) -> io::Result<Option<String>> {
        let _ = dir;
        Ok(None)
    }
}

/// A landing zone in a local directory.
#[derive(Clone, Debug)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// The landing zone rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            p.push(part);
        }
        p
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl LandingFiles for LocalDir {
    fn list(&self, dir: &str) -> io::Result<Vec<FileEntry>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(self.path(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            // A writer may delete an entry between the listing and this look at it.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(FileEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir: meta.is_dir(),
                size: if meta.is_dir() { 0 } else { meta.len() },
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(path)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let to = self.path(to);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(self.path(from), to)
    }

    /// Inode and birth time: a directory created again gets a new birth time even if the file
    /// system reuses the inode number.
    fn folder_id(&self, dir: &str) -> io::Result<Option<String>> {
        let meta = match std::fs::metadata(self.path(dir)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0u64;
        Ok(Some(format!("{inode}-{born}")))
    }
}
