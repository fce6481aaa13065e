//! Who holds a lease, and whether that holder is provably gone.
//!
//! A lease records its holder's process so that a successor can tell a dead holder from a live
//! one without waiting for the lease to expire:
//! - `boot_id` (`/proc/sys/kernel/random/boot_id`), the pid namespace (the inode of
//!   `/proc/self/ns/pid`), the pid and the process's start time (field 22 of
//!   `/proc/<pid>/stat`, in clock ticks after boot): on the same boot and in the same pid
//!   namespace, a holder whose pid is gone, is a zombie, or now belongs to a process that started
//!   at another time, is gone;
//! - a lock file the holder keeps locked (`flock`) while it lives, named in the lease: the kernel
//!   drops the lock when the process dies, SIGKILL included. A successor that sees the same file
//!   (same machine, or the same container file system after a restart, where pid namespaces and
//!   often host names differ) and can lock it has proof the holder is gone. The file holds the
//!   holder's id, so a file of the same name elsewhere proves nothing.
//!
//! Anything else (another machine, a new container without the old file system) may still be
//! alive: the successor waits for the lease to expire.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a lease records about its holder's process. Every field is optional: a holder on a
/// system without `/proc` records what it can, and leases written before these fields existed
/// have none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRecord {
    /// The kernel's boot id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The pid namespace, as `/proc/self/ns/pid` names it (`pid:[4026531836]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// The process's start time, in clock ticks after boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// The file the holder keeps locked while it lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_file: Option<String>,
}

/// This process, as a lease records it.
pub(crate) fn this_process() -> ProcessRecord {
    ProcessRecord {
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        pid_namespace: std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        start_time: process_stat(std::process::id()).map(|s| s.start_time),
        lock_file: None,
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The fields of `/proc/<pid>/stat` a liveness check needs.
struct Stat {
    /// `Z` (zombie) and `X` (dead) mean the process has exited.
    state: char,
    start_time: u64,
}

fn process_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so fields are counted
    // from the last `)`. The start time is field 22, the 20th after comm.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether a lease's holder can still be writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Provably gone: the lease is free.
    Gone(String),
    /// Provably alive.
    Alive(String),
    /// Cannot be known from here: it may be alive elsewhere.
    Unknown,
}

/// What can be known from here about the holder whose process is `holder` with process id
/// `pid`, holding with `holder_id`.
pub(crate) fn liveness(holder: &ProcessRecord, pid: u32, holder_id: &str) -> Liveness {
    let me = this_process();
    let same_space = holder.boot_id.is_some()
        && holder.pid_namespace.is_some()
        && holder.boot_id == me.boot_id
        && holder.pid_namespace == me.pid_namespace;
    if same_space {
        match process_stat(pid) {
            None => return Liveness::Gone(format!("its process {pid} no longer exists")),
            Some(stat) if matches!(stat.state, 'Z' | 'X') => {
                return Liveness::Gone(format!("its process {pid} has exited"))
            }
            Some(stat) if holder.start_time.is_some_and(|t| t != stat.start_time) => {
                return Liveness::Gone(format!(
                    "its process {pid} has exited (the pid now belongs to another process)"
                ))
            }
            // The same pid and start time: the holder's process itself; in this very process a
            // writer that was dropped is gone, which the caller knows better.
            Some(_) if pid != std::process::id() => {
                return Liveness::Alive(format!("its process {pid} is running on this machine"))
            }
            Some(_) => {}
        }
    }
    if let Some(path) = &holder.lock_file {
        match probe_lock(Path::new(path), holder_id) {
            LockProbe::Unlocked => {
                return Liveness::Gone(format!("its lock file {path} is no longer locked"))
            }
            LockProbe::Locked => return Liveness::Alive(format!("its lock file {path} is locked")),
            LockProbe::NotHere => {}
        }
    }
    Liveness::Unknown
}

enum LockProbe {
    /// Nobody holds the lock: the holder is dead.
    Unlocked,
    /// Someone holds it.
    Locked,
    /// No such file here (another machine), or not the holder's.
    NotHere,
}

fn probe_lock(path: &Path, holder_id: &str) -> LockProbe {
    let Ok(mut file) = File::open(path) else {
        return LockProbe::NotHere;
    };
    let mut content = String::new();
    if file.read_to_string(&mut content).is_err() || content.trim() != holder_id {
        return LockProbe::NotHere;
    }
    match try_lock(&file) {
        // The file stays: whoever looks next (a successor after `mirror status` looked) needs
        // the same proof. Old ones are swept.
        Ok(true) => LockProbe::Unlocked,
        Ok(false) => LockProbe::Locked,
        Err(_) => LockProbe::NotHere,
    }
}

/// Takes an exclusive `flock` without waiting: `Ok(false)` if another open file holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` on a descriptor we own for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Err(std::io::Error::other("no flock on this platform"))
}

/// The lock file a holder keeps locked while it lives; removed when dropped.
#[derive(Debug)]
pub(crate) struct LockFile {
    path: PathBuf,
    _file: File,
}

impl LockFile {
    /// Creates and locks `<dir>/mirror-<holder_id>.lock` (the directory is created if needed).
    /// `None` when it cannot (a read-only file system): the lease then relies on the other
    /// proofs, and a successor elsewhere waits for the expiry.
    pub(crate) fn create(dir: &Path, holder_id: &str) -> Option<LockFile> {
        std::fs::create_dir_all(dir).ok()?;
        sweep(dir);
        let path = dir.join(format!("mirror-{holder_id}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .read(true)
            .open(&path)
            .ok()?;
        if !matches!(try_lock(&file), Ok(true)) || file.write_all(holder_id.as_bytes()).is_err() {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(LockFile { path, _file: file })
    }

    /// Where it is, as a lease records it.
    pub(crate) fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Lock files left by holders that died long ago (unlocked, untouched for a day) are removed;
/// recent ones stay, since a lease may still name them.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("mirror-") && name.ends_with(".lock")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old {
            if let Ok(file) = File::open(entry.path()) {
                if matches!(try_lock(&file), Ok(true)) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The default directory of lock files: `mirror-leases` in the system's temporary directory,
/// which survives a container restart (the container's file system is kept) but not its
/// replacement.
pub(crate) fn default_lock_dir() -> PathBuf {
    std::env::temp_dir().join("mirror-leases")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_gone() {
        let me = this_process();
        if me.boot_id.is_none() {
            return; // No /proc here.
        }
        assert!(me.start_time.is_some());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let record = ProcessRecord {
            start_time: process_stat(pid).map(|s| s.start_time),
            ..me.clone()
        };
        assert!(matches!(liveness(&record, pid, "x"), Liveness::Alive(_)));
        child.kill().unwrap();
        // Not reaped yet: a zombie is gone all the same.
        std::thread::sleep(Duration::from_millis(200));
        assert!(matches!(liveness(&record, pid, "x"), Liveness::Gone(_)));
        child.wait().unwrap();
        assert!(matches!(liveness(&record, pid, "x"), Liveness::Gone(_)));
        // Another boot, or another pid namespace: nothing can be known.
        let elsewhere = ProcessRecord {
            pid_namespace: Some("pid:[1]".into()),
            ..record
        };
        assert_eq!(liveness(&elsewhere, 1, "x"), Liveness::Unknown);
    }

    #[test]
    fn a_lock_file_proves_a_holder_alive_and_an_unlocked_one_gone() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockFile::create(dir.path(), "holder-1").unwrap();
        let record = ProcessRecord {
            lock_file: Some(lock.path()),
            ..ProcessRecord::default()
        };
        assert!(matches!(
            liveness(&record, 1, "holder-1"),
            Liveness::Alive(_)
        ));
        // A file of that name that is not this holder's proves nothing.
        assert_eq!(liveness(&record, 1, "holder-2"), Liveness::Unknown);
        // A clean stop removes the file: nothing to prove from here any more.
        drop(lock);
        assert_eq!(liveness(&record, 1, "holder-1"), Liveness::Unknown);
        // A killed holder leaves its file behind, unlocked (the kernel drops the lock).
        let path = dir.path().join("mirror-holder-1.lock");
        std::fs::write(&path, "holder-1").unwrap();
        assert!(matches!(
            liveness(&record, 1, "holder-1"),
            Liveness::Gone(_)
        ));
        // Looking proves nothing away: the next one to look finds the same.
        assert!(matches!(
            liveness(&record, 1, "holder-1"),
            Liveness::Gone(_)
        ));
    }
}
