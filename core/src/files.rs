//! Local files replaced whole: temporary names, and the leftovers a crash leaves behind.
//!
//! Stores on a local filesystem (the checkpoint store in `[state] path`, a landing zone in a local
//! directory) write a file under a temporary name in its folder, fsync it, then move it into
//! place, so that readers never see half a file. A process killed between the two steps leaves the
//! temporary file behind. Such names start with `_mirror_tmp_`, so that anything reading a landing
//! zone as Fabric does ignores them (Fabric ignores `_`-prefixed names), and carry the writer's
//! process id: `_mirror_tmp_w<pid>_<random>` ([`temp_name`]; a sink's files on their way to
//! publication are named so too).
//!
//! [`remove_leftovers`] deletes, at start, the temporary files of writers that are gone: those of
//! a process id that no longer runs, those of this process id from before this process started
//! (a container restarted with the same pid), and any older than a day (a writer on another host
//! sharing the folder, whose process id means nothing here). A temporary file this process is
//! writing is never touched: [`TempFile`] registers it while it exists.
//!
//! ```
//! use mirror_core::files::{is_temp_name, remove_leftovers, TempFile, TEMP_PREFIX};
//! let dir = tempfile::tempdir().unwrap();
//! let temp = TempFile::new(dir.path());
//! std::fs::write(temp.path(), b"being written").unwrap();
//! assert!(is_temp_name(&temp.path().file_name().unwrap().to_string_lossy()));
//! // What a process that is gone left (no process id is that high).
//! let left = dir.path().join(format!("{TEMP_PREFIX}w4294967295_0a1b"));
//! std::fs::write(&left, b"half a reco").unwrap();
//! assert_eq!(remove_leftovers(dir.path()).unwrap(), 1);
//! assert!(!left.exists() && temp.path().exists());
//! ```

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Prefix of every temporary file name.
pub const TEMP_PREFIX: &str = "_mirror_tmp_";

/// Temporary files of writers on other hosts are taken for leftovers after this long.
const FOREIGN_AGE: Duration = Duration::from_secs(24 * 3600);

fn in_flight() -> &'static Mutex<HashSet<PathBuf>> {
    static IN_FLIGHT: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    IN_FLIGHT.get_or_init(Default::default)
}

/// A temporary file name in a folder, reserved for one write of this process. Dropping it removes
/// the file if it is still there (a failed write, or a hard link that left the name behind).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

/// A temporary name of this process for `what` (a unique suffix): `_mirror_tmp_w<pid>_<what>`.
pub fn temp_name(what: &str) -> String {
    started();
    format!("{TEMP_PREFIX}w{}_{what}", std::process::id())
}

/// When this process first wrote or looked for temporary files (at its start).
fn started() -> SystemTime {
    static STARTED: OnceLock<SystemTime> = OnceLock::new();
    *STARTED.get_or_init(SystemTime::now)
}

impl TempFile {
    /// A fresh temporary name in `dir` (nothing is created yet).
    pub fn new(dir: &Path) -> Self {
        let path = dir.join(temp_name(&format!("{:016x}", rand::random::<u64>())));
        in_flight()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone());
        Self { path }
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        in_flight()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
    }
}

/// Whether `name` is a temporary name of these stores (or of the builds before them, which named
/// them `.mirror-write-<id>` and `<record>.json.tmp-<pid>-<n>`).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && writer_pid(name).is_some()
        || name.starts_with(".mirror-write-")
        || name.contains(".json.tmp-")
}

/// Whether the temporary file at `path` is being written by this process.
pub fn is_in_flight(path: &Path) -> bool {
    in_flight()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(path)
}

/// The process id in a temporary name `_mirror_tmp_w<pid>_<what>`.
fn writer_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_prefix('w')?;
    let (pid, what) = rest.split_once('_')?;
    (!what.is_empty()).then(|| pid.parse().ok()).flatten()
}

/// Whether the process `pid` runs on this host (unknown outside Linux: assumed running).
fn is_running(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    // `/proc/<id>` also answers for a thread id; a process is a thread group led by itself.
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .is_none_or(|tgid| tgid.trim() == pid.to_string()),
        Err(_) => false,
    }
}

/// Whether the temporary file `name` at `path` is left over by a writer that is gone (see the
/// module docs).
fn is_leftover(name: &str, path: &Path) -> bool {
    if is_in_flight(path) {
        return false;
    }
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let old = || {
        modified
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > FOREIGN_AGE)
    };
    let before_we_started = || modified.is_some_and(|t| t < started());
    match writer_pid(name) {
        Some(pid) if pid == std::process::id() => before_we_started(),
        Some(pid) => !is_running(pid) || old(),
        // The older builds' names carry no usable owner; only older builds wrote them.
        None => is_temp_name(name),
    }
}

/// Deletes the leftover temporary files (or folders) directly in `dir` (see the module docs);
/// returns how many. A missing folder has none.
pub fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    started();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if is_temp_name(&name) && is_leftover(&name, &path) {
            let removal = if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removal {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// A place where a crash test may end the process abruptly, as `kill -9` would (no destructor,
/// no flush): with the `crash-points` feature, `MIRROR_CRASH_AT=<name>:<n>` aborts the process
/// the `n`-th time it reaches the crash point `name`. Without the feature (every release build)
/// this does nothing.
#[inline]
pub fn crash_point(name: &str) {
    #[cfg(feature = "crash-points")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static WANTED: OnceLock<Option<(String, u64)>> = OnceLock::new();
        static SEEN: AtomicU64 = AtomicU64::new(0);
        let wanted = WANTED.get_or_init(|| {
            let value = std::env::var("MIRROR_CRASH_AT").ok()?;
            let (point, n) = value.rsplit_once(':')?;
            Some((point.to_owned(), n.parse().ok()?))
        });
        if let Some((point, n)) = wanted {
            if point == name && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n {
                eprintln!("crash point {name} reached ({n}): aborting");
                std::process::abort();
            }
        }
    }
    #[cfg(not(feature = "crash-points"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn leftovers_of_dead_writers_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str| {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        };
        // pid 1 runs on every Linux host; a pid above the kernel's limit never does.
        write(&format!("{TEMP_PREFIX}w1_00ff"));
        write(&format!("{TEMP_PREFIX}w4294967295_00ff"));
        // This process's own, from before it started (a container restarted with the same pid).
        let own = dir
            .path()
            .join(format!("{TEMP_PREFIX}w{}_00ff", std::process::id()));
        std::fs::write(&own, b"x").unwrap();
        let before = started() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&own)
            .unwrap()
            .set_modified(before)
            .unwrap();
        // A sink's publication in progress, of a process that is gone.
        write(&format!(
            "{TEMP_PREFIX}w4294967295_00000000000000000003_ab.parquet"
        ));
        write(".mirror-write-0123abcd");
        write("source.json.tmp-1-2");
        // Not temporary files of ours: publish temps and data.
        write(&format!("{TEMP_PREFIX}00000000000000000003.parquet"));
        write("_metadata.json");
        let live = TempFile::new(dir.path());
        std::fs::write(live.path(), b"being written").unwrap();
        assert_eq!(remove_leftovers(dir.path()).unwrap(), 5);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = vec![
            format!("{TEMP_PREFIX}00000000000000000003.parquet"),
            format!("{TEMP_PREFIX}w1_00ff"),
            "_metadata.json".to_owned(),
            live.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        drop(live);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            expected.len() - 1
        );
    }
}
