//! The single-writer lease of a table: `<table>/_mirror_lease.json`.
//!
//! A writer creates the lease file create-only before it touches a table and renews it (an
//! `If-Match` rewrite) while it writes; a second writer finds a live lease and refuses to write,
//! naming the holder. A lease is free when:
//! - its `expires_at` has passed (the holder stopped renewing), or
//! - its holder is provably gone: same host, and the process id is no longer running (or, within
//!   one process, the writer that held it was dropped) — so a restart on the same machine does not
//!   wait for the expiry.
//!
//! A lease held by a writer of the same name on the same host but another process id (a restarted
//! container sees its old process id taken by someone else) is waited for until it expires; any
//! other live lease is refused at once with [`LeaseError::Held`].
//!
//! Taking over a lease is an `If-Match` write on the version that was read, so of two writers that
//! race for an expired lease exactly one wins. A writer that finds its lease rewritten by someone
//! else stops ([`LeaseError::Lost`]).
//!
//! ```json
//! { "format": "mirror-lease", "version": 1, "holder_id": "6f1c...", "host": "vm-1", "pid": 4242,
//!   "writer": "fabric", "acquired_at": "...", "renewed_at": "...", "expires_at": "..." }
//! ```

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::naming::LEASE_FILE;
use crate::store::{join, LandingStore, PutMode, StoreError, StoreErrorKind};

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
}

fn live_holders() -> &'static Mutex<HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

impl Holder {
    /// A new writer identity named `writer` (the sink's name) in this process.
    pub fn new(writer: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        live_holders()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        Self {
            id,
            host: host_name(),
            pid: std::process::id(),
            writer: writer.to_owned(),
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

/// Whether the holder of `record` is provably gone.
fn holder_is_gone(record: &LeaseRecord, me: &Holder) -> bool {
    if record.host != me.host {
        return false;
    }
    if record.pid == me.pid {
        return !live_holders()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&record.holder_id);
    }
    cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{}", record.pid)).exists()
}

/// How long to wait for a lease held by a writer with our name on our host (`None`: do not wait).
fn previous_incarnation_wait(record: &LeaseRecord, me: &Holder, ttl: Duration) -> Option<Duration> {
    if record.host != me.host || record.writer != me.writer || record.pid == me.pid {
        return None;
    }
    let expires = DateTime::parse_from_rfc3339(&record.expires_at)
        .ok()?
        .with_timezone(&Utc);
    let wait = (expires - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    // A lease further out than its own time to live is not one we can outwait safely.
    (wait <= ttl).then_some(wait + Duration::from_millis(50))
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
        Self::acquire_observed(store, folder, me, ttl, || {}).await
    }

    /// [`Lease::acquire`], calling `on_wait` when it waits for another writer's lease to
    /// expire (the sink is not ready meanwhile).
    pub async fn acquire_observed(
        store: &dyn LandingStore,
        folder: &str,
        me: &Holder,
        ttl: Duration,
        on_wait: impl Fn(),
    ) -> Result<Lease, LeaseError> {
        let path = join(&[folder, LEASE_FILE]);
        let store_err = |source| LeaseError::Store {
            folder: folder.to_owned(),
            source,
        };
        let acquired_at = now_text(Utc::now());
        for _ in 0..3 {
            let record = record_for(me, ttl, &acquired_at);
            match store.put(&path, encode(&record), PutMode::Create).await {
                Ok(etag) => {
                    return Ok(Lease {
                        folder: folder.to_owned(),
                        etag,
                        ttl,
                        renewed: Instant::now(),
                        acquired_at,
                    })
                }
                Err(e) if e.kind == StoreErrorKind::AlreadyExists => {}
                Err(e) => return Err(store_err(e)),
            }
            let Some(existing) = store.get(&path).await.map_err(store_err)? else {
                continue; // Released meanwhile: try to create it again.
            };
            let free = match serde_json::from_slice::<LeaseRecord>(&existing.bytes) {
                Ok(current) => {
                    let expired = DateTime::parse_from_rfc3339(&current.expires_at)
                        .map(|t| t.with_timezone(&Utc) < Utc::now())
                        .unwrap_or(true);
                    if current.holder_id == me.id || expired || holder_is_gone(&current, me) {
                        true
                    } else if let Some(wait) = previous_incarnation_wait(&current, me, ttl) {
                        // Most likely this writer's own previous run on this machine (a restarted
                        // container gets a new process id namespace): wait for its lease to
                        // expire rather than fail the restart.
                        tracing::warn!(
                            folder, holder = %current.describe(), wait = ?wait,
                            "the table's lease is held by a writer of the same name on this host; \
                             waiting for it to expire"
                        );
                        on_wait();
                        tokio::time::sleep(wait).await;
                        continue;
                    } else {
                        return Err(LeaseError::Held {
                            folder: folder.to_owned(),
                            holder: current.describe(),
                            expires_at: current.expires_at,
                        });
                    }
                }
                // An unreadable lease protects nothing: take it over.
                Err(_) => true,
            };
            if free {
                match store
                    .put(&path, encode(&record), PutMode::IfMatch(existing.etag))
                    .await
                {
                    Ok(etag) => {
                        return Ok(Lease {
                            folder: folder.to_owned(),
                            etag,
                            ttl,
                            renewed: Instant::now(),
                            acquired_at,
                        })
                    }
                    // Someone else took it first: look again.
                    Err(e)
                        if matches!(
                            e.kind,
                            StoreErrorKind::Precondition | StoreErrorKind::NotFound
                        ) => {}
                    Err(e) => return Err(store_err(e)),
                }
            }
        }
        let holder = match store.get(&path).await.map_err(store_err)? {
            Some(o) => serde_json::from_slice::<LeaseRecord>(&o.bytes)
                .map(|r| r.describe())
                .unwrap_or_else(|_| "unknown".into()),
            None => "unknown".into(),
        };
        Err(LeaseError::Held {
            folder: folder.to_owned(),
            holder,
            expires_at: "unknown".into(),
        })
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
            acquired_at: now_text(now),
            renewed_at: now_text(now),
            expires_at: now_text(now + expires_in),
        })
    }

    #[tokio::test]
    async fn live_foreign_leases_are_refused_and_expired_ones_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let me = Holder::new("fabric");
        let ttl = Duration::from_secs(60);
        store
            .put(
                "t/_mirror_lease.json",
                foreign("elsewhere", 7, "fabric", chrono::Duration::seconds(30)),
                PutMode::Create,
            )
            .await
            .unwrap();
        let err = Lease::acquire(&store, "t", &me, ttl).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("writer `fabric` on host elsewhere pid 7"),
            "{err}"
        );
        store
            .put(
                "t/_mirror_lease.json",
                foreign("elsewhere", 7, "fabric", chrono::Duration::seconds(-1)),
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
    async fn a_lease_of_our_own_name_on_this_host_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let me = Holder::new("fabric");
        // Process 1 always runs: the holder looks alive, as after a container restart.
        let record = foreign(&me.host, 1, "fabric", chrono::Duration::milliseconds(300));
        store
            .put("t/_mirror_lease.json", record, PutMode::Create)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        Lease::acquire(&store, "t", &me, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
