//! The single-writer lease of a table: `<table>/_mirror_lease.json`.
//!
//! A writer creates the lease file create-only before it touches a table and renews it (an
//! `If-Match` rewrite) while it writes; a clean stop deletes it. Another writer that finds a
//! lease takes it over at once when the lease is free:
//! - its `expires_at` has passed (the holder stopped renewing), or
//! - its holder is provably gone ([`holder`]): on this machine its process has exited (or its pid
//!   now belongs to another process), or the lock file it keeps locked while it lives is no
//!   longer locked (which also holds after a container restart with a new pid namespace and
//!   host name, where the container's file system is kept), or, within one process, the writer
//!   that held it was dropped.
//!
//! A live lease of a writer with the same name (the sink's name) whose holder may be alive (it
//! runs on this machine, or nothing can be proved from here: another machine, or a replaced
//! container) is waited for, as a standby: the lease is read again every few seconds and taken
//! over once its holder is gone, released or expired. Meanwhile the sink is not ready, and says
//! why ([`mirror_core::telemetry`]). A live lease of a writer with another name is refused at
//! once with [`LeaseError::Held`]: two sinks of different configurations would write one table.
//!
//! Taking over a lease is an `If-Match` write on the version that was read, so of two writers that
//! race for an expired lease exactly one wins. A writer that finds its lease rewritten by someone
//! else stops ([`LeaseError::Lost`]).
//!
//! ```json
//! { "format": "mirror-lease", "version": 1, "holder_id": "6f1c...", "host": "vm-1", "pid": 4242,
//!   "writer": "fabric", "process": { "boot_id": "...", "pid_namespace": "pid:[4026531836]",
//!   "start_time": 1234567, "lock_file": "/tmp/mirror-leases/mirror-6f1c....lock" },
//!   "acquired_at": "...", "renewed_at": "...", "expires_at": "..." }
//! ```

mod holder;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::naming::LEASE_FILE;
use crate::store::{join, LandingStore, PutMode, StoreError, StoreErrorKind};
use holder::{liveness, Liveness, LockFile, ProcessRecord};

pub(crate) use holder::default_lock_dir;

/// Why a table's lease could not be had or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another live writer holds it.
    #[error(
        "table folder `{folder}` is being written by another mirror ({holder}); its lease runs \
         until {expires_at}. Two writers would corrupt the table's file sequence: stop the other \
         one (or wait for its lease to expire if it crashed)"
    )]
    Held {
        /// The table folder.
        folder: String,
        /// Who holds it.
        holder: String,
        /// Until when.
        expires_at: String,
    },
    /// Someone else took the lease while this writer held it.
    #[error(
        "lost the lease of table folder `{folder}` to another writer ({holder}); stopped writing \
         to it"
    )]
    Lost {
        /// The table folder.
        folder: String,
        /// Who holds it now.
        holder: String,
    },
    /// The writer was asked to stop while it stood by for the lease (nothing was written).
    #[error(
        "stopped while standing by for the lease of table folder `{folder}`; nothing was written \
         to it"
    )]
    Stopped {
        /// The table folder.
        folder: String,
    },
    /// The lease file cannot be read or written.
    #[error("lease of `{folder}`: {source}")]
    Store {
        /// The table folder.
        folder: String,
        /// The store error.
        source: StoreError,
    },
}

impl LeaseError {
    /// Whether retrying can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LeaseError::Store { source, .. } if source.is_transient())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LeaseRecord {
    format: String,
    version: u64,
    holder_id: String,
    host: String,
    pid: u32,
    writer: String,
    /// The holder's process, for proofs that it is gone (absent in leases of older versions).
    #[serde(default)]
    process: ProcessRecord,
    acquired_at: String,
    renewed_at: String,
    expires_at: String,
}

impl LeaseRecord {
    fn describe(&self) -> String {
        format!(
            "writer `{}` on host {} pid {}",
            self.writer, self.host, self.pid
        )
    }
}

/// Who this process's writer is.
#[derive(Clone, Debug)]
pub struct Holder {
    id: String,
    host: String,
    pid: u32,
    writer: String,
    process: ProcessRecord,
    /// Locked while this writer lives; shared by the holder's clones.
    _lock: Option<Arc<LockFile>>,
}

fn live_holders() -> &'static Mutex<HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

impl Holder {
    /// A new writer identity named `writer` (the sink's name) in this process, with its lock
    /// file in the default directory (`mirror-leases` in the temporary directory).
    pub fn new(writer: &str) -> Self {
        Self::with_lock_dir(writer, &default_lock_dir())
    }

    /// [`Holder::new`], with its lock file in `lock_dir`: a directory that survives what should
    /// count as the same machine (a container's own file system survives its restarts; in
    /// Kubernetes, an `emptyDir` volume survives a container's restarts in its pod).
    pub fn with_lock_dir(writer: &str, lock_dir: &Path) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        live_holders()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        let lock = LockFile::create(lock_dir, &id);
        if lock.is_none() {
            tracing::debug!(dir = %lock_dir.display(), "no lease lock file: a successor on this machine waits for the lease to expire after a crash");
        }
        let mut process = holder::this_process();
        process.lock_file = lock.as_ref().map(LockFile::path);
        Self {
            id,
            host: host_name(),
            pid: std::process::id(),
            writer: writer.to_owned(),
            process,
            _lock: lock.map(Arc::new),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        live_holders()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

/// What can be known about the holder of `record` (not `me`).
fn holder_liveness(record: &LeaseRecord, me: &Holder) -> Liveness {
    let same_process = record.pid == me.pid
        && record.process.start_time.is_some()
        && record.process.start_time == me.process.start_time
        && record.process.boot_id == me.process.boot_id
        && record.process.pid_namespace == me.process.pid_namespace;
    if same_process {
        let live = live_holders()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&record.holder_id);
        return if live {
            Liveness::Alive("another writer of this process holds it".into())
        } else {
            Liveness::Gone("its writer in this process was closed".into())
        };
    }
    liveness(&record.process, record.pid, &record.holder_id)
}

/// Each table's lease, one line per table folder, for `mirror status`: who holds it, until when,
/// and what can be known from here about whether its holder still runs.
pub async fn describe_leases(store: &dyn LandingStore) -> Result<Vec<String>, StoreError> {
    let mut lines = Vec::new();
    for folder in crate::store::table_folders(store).await? {
        let Some(object) = store.get(&join(&[&folder, LEASE_FILE])).await? else {
            lines.push(format!(
                "{folder}: no lease (no writer, or it stopped cleanly)"
            ));
            continue;
        };
        let Ok(record) = serde_json::from_slice::<LeaseRecord>(&object.bytes) else {
            lines.push(format!(
                "{folder}: unreadable lease (the next writer takes it over)"
            ));
            continue;
        };
        let expired = DateTime::parse_from_rfc3339(&record.expires_at)
            .map(|t| t.with_timezone(&Utc) < Utc::now())
            .unwrap_or(true);
        let state = if expired {
            "expired: the next writer takes it over".to_owned()
        } else {
            match liveness(&record.process, record.pid, &record.holder_id) {
                Liveness::Gone(why) => format!("free: its holder is gone ({why})"),
                Liveness::Alive(why) => format!("held: {why}"),
                Liveness::Unknown => "held: its holder may be running on another machine (a \
                     standby there waits until it stops or the lease expires)"
                    .to_owned(),
            }
        };
        lines.push(format!(
            "{folder}: lease of {} until {}; {state}",
            record.describe(),
            record.expires_at
        ));
    }
    Ok(lines)
}

/// How often a standby reads a live lease again.
fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    folder: String,
    etag: String,
    ttl: Duration,
    renewed: Instant,
    acquired_at: String,
}

fn now_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn record_for(me: &Holder, ttl: Duration, acquired_at: &str) -> LeaseRecord {
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
    LeaseRecord {
        format: "mirror-lease".into(),
        version: 1,
        holder_id: me.id.clone(),
        host: me.host.clone(),
        pid: me.pid,
        writer: me.writer.clone(),
        process: me.process.clone(),
        acquired_at: acquired_at.to_owned(),
        renewed_at: now_text(now),
        expires_at: now_text(expires),
    }
}

fn encode(record: &LeaseRecord) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(record).unwrap_or_default())
}

impl Lease {
    /// Takes the lease of `folder` for `me`, or says who holds it.
    pub async fn acquire(
        store: &dyn LandingStore,
        folder: &str,
        me: &Holder,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        Self::acquire_observed(store, folder, me, ttl, &CancellationToken::new(), |_| {}).await
    }

    /// [`Lease::acquire`], calling `on_wait` with the reason while it waits, as a standby, for
    /// a writer of the same name that may still be running (the sink is not ready meanwhile).
    /// A standby holds nothing, so `stop` ends its wait at once, with [`LeaseError::Stopped`].
    pub async fn acquire_observed(
        store: &dyn LandingStore,
        folder: &str,
        me: &Holder,
        ttl: Duration,
        stop: &CancellationToken,
        on_wait: impl Fn(&str),
    ) -> Result<Lease, LeaseError> {
        let path = join(&[folder, LEASE_FILE]);
        let store_err = |source| LeaseError::Store {
            folder: folder.to_owned(),
            source,
        };
        let acquired_at = now_text(Utc::now());
        let lease = |etag| Lease {
            folder: folder.to_owned(),
            etag,
            ttl,
            renewed: Instant::now(),
            acquired_at: acquired_at.clone(),
        };
        let mut races = 0;
        // The holder last waited for, so that a standby logs once per holder.
        let mut waited_for: Option<String> = None;
        loop {
            let record = record_for(me, ttl, &acquired_at);
            match store.put(&path, encode(&record), PutMode::Create).await {
                Ok(etag) => return Ok(lease(etag)),
                Err(e) if e.kind == StoreErrorKind::AlreadyExists => {}
                Err(e) => return Err(store_err(e)),
            }
            let Some(existing) = store.get(&path).await.map_err(store_err)? else {
                continue; // Released meanwhile: try to create it again.
            };
            let current = match serde_json::from_slice::<LeaseRecord>(&existing.bytes) {
                Ok(current) => current,
                // An unreadable lease protects nothing: take it over.
                Err(_) => LeaseRecord {
                    holder_id: String::new(),
                    expires_at: String::new(),
                    ..record.clone()
                },
            };
            let expires = DateTime::parse_from_rfc3339(&current.expires_at)
                .map(|t| t.with_timezone(&Utc))
                .ok();
            let free = current.holder_id == me.id
                || current.holder_id.is_empty()
                || expires.is_none_or(|t| t < Utc::now());
            if !free {
                match holder_liveness(&current, me) {
                    Liveness::Gone(why) => {
                        tracing::info!(
                            folder, holder = %current.describe(), "taking over the table's lease: its holder is gone ({why})"
                        );
                    }
                    state if current.writer == me.writer => {
                        let why = match state {
                            Liveness::Alive(why) => format!("{why}, so it still writes"),
                            _ => "which may still be running elsewhere (nothing here proves it \
                                  stopped)"
                                .to_owned(),
                        };
                        let reason = format!(
                            "held by {}, {why}; taking over when it stops or its lease expires \
                             (at {})",
                            current.describe(),
                            current.expires_at
                        );
                        if waited_for.as_deref() != Some(current.holder_id.as_str()) {
                            tracing::warn!(folder, "standing by: the table's lease is {reason}");
                            waited_for = Some(current.holder_id.clone());
                        }
                        on_wait(&reason);
                        let until_expiry = expires
                            .and_then(|t| (t - Utc::now()).to_std().ok())
                            .unwrap_or_default()
                            + Duration::from_millis(50);
                        tokio::select! {
                            _ = tokio::time::sleep(poll_interval(ttl).min(until_expiry)) => continue,
                            _ = stop.cancelled() => {
                                return Err(LeaseError::Stopped {
                                    folder: folder.to_owned(),
                                })
                            }
                        }
                    }
                    _ => {
                        return Err(LeaseError::Held {
                            folder: folder.to_owned(),
                            holder: current.describe(),
                            expires_at: current.expires_at,
                        });
                    }
                }
            }
            match store
                .put(&path, encode(&record), PutMode::IfMatch(existing.etag))
                .await
            {
                Ok(etag) => return Ok(lease(etag)),
                // Someone else took it first: look again.
                Err(e)
                    if matches!(
                        e.kind,
                        StoreErrorKind::Precondition | StoreErrorKind::NotFound
                    ) =>
                {
                    races += 1;
                    if races >= 3 {
                        return Err(LeaseError::Held {
                            folder: folder.to_owned(),
                            holder: "another writer that took it at the same time".into(),
                            expires_at: "unknown".into(),
                        });
                    }
                }
                Err(e) => return Err(store_err(e)),
            }
        }
    }

    /// When the lease should next be renewed (a third of its time to live after the last renewal).
    pub fn renew_due(&self) -> Instant {
        self.renewed + self.ttl / 3
    }

    /// Renews the lease if it is due.
    pub async fn renew_if_due(
        &mut self,
        store: &dyn LandingStore,
        me: &Holder,
    ) -> Result<(), LeaseError> {
        if Instant::now() < self.renew_due() {
            return Ok(());
        }
        self.renew(store, me).await
    }

    /// Renews the lease now.
    pub async fn renew(&mut self, store: &dyn LandingStore, me: &Holder) -> Result<(), LeaseError> {
        let path = join(&[&self.folder, LEASE_FILE]);
        let record = record_for(me, self.ttl, &self.acquired_at);
        match store
            .put(&path, encode(&record), PutMode::IfMatch(self.etag.clone()))
            .await
        {
            Ok(etag) => {
                self.etag = etag;
                self.renewed = Instant::now();
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind,
                    StoreErrorKind::Precondition | StoreErrorKind::NotFound
                ) =>
            {
                let current = store.get(&path).await.ok().flatten();
                let record = current
                    .as_ref()
                    .and_then(|o| serde_json::from_slice::<LeaseRecord>(&o.bytes).ok());
                if let (Some(object), Some(record)) = (&current, &record) {
                    if record.holder_id == me.id {
                        // An earlier renewal whose answer was lost: the lease is still ours.
                        self.etag = object.etag.clone();
                        self.renewed = Instant::now();
                        return Ok(());
                    }
                }
                let holder = match (&current, &record) {
                    (_, Some(r)) => r.describe(),
                    (Some(_), None) => "unknown".into(),
                    (None, _) => "nobody".into(),
                };
                Err(LeaseError::Lost {
                    folder: self.folder.clone(),
                    holder,
                })
            }
            Err(source) => Err(LeaseError::Store {
                folder: self.folder.clone(),
                source,
            }),
        }
    }

    /// Gives the lease up (best effort: an expired lease frees itself anyway).
    pub async fn release(self, store: &dyn LandingStore) {
        let path = join(&[&self.folder, LEASE_FILE]);
        if let Ok(Some(current)) = store.get(&path).await {
            if current.etag == self.etag {
                let _ = store.delete(&path).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    fn foreign(host: &str, pid: u32, writer: &str, expires_in: chrono::Duration) -> Bytes {
        let now = Utc::now();
        encode(&LeaseRecord {
            format: "mirror-lease".into(),
            version: 1,
            holder_id: "someone-else".into(),
            host: host.into(),
            pid,
            writer: writer.into(),
            process: ProcessRecord::default(),
            acquired_at: now_text(now),
            renewed_at: now_text(now),
            expires_at: now_text(now + expires_in),
        })
    }

    #[tokio::test]
    async fn live_leases_of_other_writers_are_refused_and_expired_ones_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let me = Holder::with_lock_dir("fabric", dir.path());
        let ttl = Duration::from_secs(60);
        store
            .put(
                "t/_mirror_lease.json",
                foreign("elsewhere", 7, "other", chrono::Duration::seconds(30)),
                PutMode::Create,
            )
            .await
            .unwrap();
        let err = Lease::acquire(&store, "t", &me, ttl).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("writer `other` on host elsewhere pid 7"),
            "{err}"
        );
        store
            .put(
                "t/_mirror_lease.json",
                foreign("elsewhere", 7, "other", chrono::Duration::seconds(-1)),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        let mut lease = Lease::acquire(&store, "t", &me, ttl).await.unwrap();
        lease.renew(&store, &me).await.unwrap();
        // Someone takes it: the next renewal says so.
        store
            .put(
                "t/_mirror_lease.json",
                foreign("elsewhere", 7, "fabric", chrono::Duration::seconds(30)),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
        let err = lease.renew(&store, &me).await.unwrap_err();
        assert!(matches!(err, LeaseError::Lost { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_live_lease_of_our_own_name_is_waited_for_as_a_standby() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let me = Holder::with_lock_dir("fabric", dir.path());
        // Nothing proves this holder gone (another machine): wait for its expiry.
        let record = foreign(
            "elsewhere",
            1,
            "fabric",
            chrono::Duration::milliseconds(600),
        );
        store
            .put("t/_mirror_lease.json", record, PutMode::Create)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let reasons = Mutex::new(Vec::new());
        let stop = CancellationToken::new();
        Lease::acquire_observed(&store, "t", &me, Duration::from_secs(60), &stop, |why| {
            reasons.lock().unwrap().push(why.to_owned())
        })
        .await
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(550));
        let reasons = reasons.into_inner().unwrap();
        assert!(
            reasons[0].contains("held by writer `fabric` on host elsewhere pid 1, which may still be running elsewhere"),
            "{reasons:?}"
        );
    }

    #[tokio::test]
    async fn a_stop_ends_a_standbys_wait_at_once_and_leaves_the_lease_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let record = foreign("elsewhere", 1, "fabric", chrono::Duration::seconds(60));
        store
            .put("t/_mirror_lease.json", record.clone(), PutMode::Create)
            .await
            .unwrap();
        let me = Holder::with_lock_dir("fabric", dir.path());
        let stop = CancellationToken::new();
        let waiting =
            Lease::acquire_observed(&store, "t", &me, Duration::from_secs(60), &stop, |_| {
                stop.cancel()
            });
        let err = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the stop ended the wait")
            .unwrap_err();
        assert!(matches!(err, LeaseError::Stopped { .. }), "{err}");
        assert!(!err.is_transient());
        let kept = store.get("t/_mirror_lease.json").await.unwrap().unwrap();
        assert_eq!(kept.bytes, record, "the holder's lease was touched");
    }

    #[tokio::test]
    async fn a_dropped_writer_of_this_process_frees_its_leases_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let ttl = Duration::from_secs(60);
        let first = Holder::with_lock_dir("fabric", dir.path());
        let _lease = Lease::acquire(&store, "t", &first, ttl).await.unwrap();
        let second = Holder::with_lock_dir("fabric", dir.path());
        // Alive: the second waits (standby); give up after a moment.
        let waiting = tokio::time::timeout(
            Duration::from_millis(500),
            Lease::acquire(&store, "t", &second, ttl),
        )
        .await;
        assert!(waiting.is_err(), "took a live writer's lease");
        drop(first);
        let started = std::time::Instant::now();
        Lease::acquire(&store, "t", &second, ttl).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
