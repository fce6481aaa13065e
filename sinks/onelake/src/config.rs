//! `[sinks.<name>] type = "onelake"`: the sink's configuration, which is also its factory.
//!
//! ```toml
//! [sinks.fabric]
//! type = "onelake"
//! inputs = ["atlas"]
//! landing_zone = "https://onelake.dfs.fabric.microsoft.com/<workspace>/<item>/Files/LandingZone"
//! auth = { method = "client_secret", tenant_id = "${AZURE_TENANT_ID}", client_id = "${AZURE_CLIENT_ID}", client_secret = "${AZURE_CLIENT_SECRET}" }
//! publish = "rename"              # or "put" (create-only Put Blob; the only choice on Azurite)
//! compression = "snappy"          # "zstd", "gzip", "none"
//! max_file_rows = 1000000
//! max_file_bytes = 67108864       # buffered Arrow bytes per file; the Parquet file is smaller
//! flush_interval = "1s"           # longest wait before a partial file is published
//! encode_concurrency = 2          # files encoded at once (default: one per core, at most 4)
//! marker_free_initial_load = false
//! upsert_default_row_marker = false
//! partner_name = "mirror"
//! source_version = "7.0"          # _partnerEvents.json; default: what the sources report
//! lease = { enabled = true, ttl = "60s" }   # lock_dir = "/var/lib/mirror" (see crate::lease)
//! takeover = "refuse"             # or "reset": a folder another writer made (the Python app) is reset
//! fabric = { workspace = "<id or name>", item = "<id or name>" }   # end-to-end status; defaults from landing_zone
//! request_timeout = "60s"
//! max_request_retries = 6
//! # endpoint = "http://127.0.0.1:10100"   # simulator or a private endpoint
//! # emulator = true                       # Azurite (Blob API only)
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use mirror_core::checkpoint::CheckpointStore;
use mirror_core::component::{BuildError, Sink, SinkConfig, SinkContext};
use mirror_core::telemetry::SinkTelemetry;
use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::checkpoint::LandingZoneCheckpointStore;
use crate::encode::Compression;
use crate::fabric::{FabricConfig, FabricTarget};
use crate::location::{open_store, parse_location, Location};
use crate::metadata::{MetadataOptions, PartnerInfo};
use crate::publish::PublishMode;
use crate::sink::OneLakeSink;
use crate::store::remote::{HttpRetry, RemoteOptions, RetryObserver};
use crate::store::LandingStore;
use crate::takeover::{Takeover, TakeoverPolicy};
use crate::writer::{LandingZoneWriter, WriterOptions};

/// The single-writer lease.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseConfig {
    /// Take a lease per table (default true).
    pub enabled: bool,
    /// How long a lease lasts without renewal.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Where this process keeps the lock file that proves to a successor on the same machine
    /// that it is gone after a crash (default: `mirror-leases` in the temporary directory). In
    /// Kubernetes, an `emptyDir` volume here lets a restarted container take over at once.
    pub lock_dir: Option<std::path::PathBuf>,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs(60),
            lock_dir: None,
        }
    }
}

fn default_max_file_rows() -> usize {
    1_000_000
}
fn default_max_file_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_partner_name() -> String {
    "mirror".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_request_retries() -> usize {
    6
}

/// The `onelake` sink's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneLakeSinkConfig {
    /// Where the landing zone is (see [`crate::location`]).
    pub landing_zone: String,
    /// How to authenticate (remote landing zones).
    #[serde(default)]
    pub auth: AuthConfig,
    /// How files are published.
    #[serde(default)]
    pub publish: PublishMode,
    /// Parquet compression.
    #[serde(default)]
    pub compression: Compression,
    /// Most rows per file.
    #[serde(default = "default_max_file_rows")]
    pub max_file_rows: usize,
    /// Most buffered Arrow bytes per file.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: usize,
    /// Longest time rows wait before their file is published.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Files encoded at the same time (default: one per core, at most 4).
    #[serde(default = "crate::writer::default_encode_concurrency")]
    pub encode_concurrency: usize,
    /// Marker-free files for a new table's initial load.
    #[serde(default)]
    pub marker_free_initial_load: bool,
    /// `isUpsertDefaultRowMarker` in `_metadata.json`.
    #[serde(default)]
    pub upsert_default_row_marker: bool,
    /// `partnerName` in `_partnerEvents.json`.
    #[serde(default = "default_partner_name")]
    pub partner_name: String,
    /// `sourceVersion` in `_partnerEvents.json`; by default the version the sources reported
    /// (MongoDB: the server's `buildInfo`).
    #[serde(default)]
    pub source_version: Option<String>,
    /// The single-writer lease.
    #[serde(default)]
    pub lease: LeaseConfig,
    /// Service root override (simulator, private endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Azurite (Blob API only).
    #[serde(default)]
    pub emulator: bool,
    /// Timeout of one storage request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of throttled or failed storage requests (the engine retries further).
    #[serde(default = "default_max_request_retries")]
    pub max_request_retries: usize,
    /// What to do with a table folder another writer made (the Python app).
    #[serde(default)]
    pub takeover: TakeoverPolicy,
    /// The Fabric mirrored database of the landing zone (end-to-end status, table resets).
    #[serde(default)]
    pub fabric: Option<FabricConfig>,
    #[serde(skip)]
    store: OnceLock<Arc<dyn LandingStore>>,
    #[serde(skip)]
    fabric_target: OnceLock<Arc<FabricTarget>>,
    /// The sink's telemetry once built; the store (made earlier, for the checkpoint store too)
    /// reports its HTTP retries into it.
    #[serde(skip)]
    telemetry: Arc<OnceLock<Arc<SinkTelemetry>>>,
}

mirror_core::register_sink!(
    "onelake",
    OneLakeSinkConfig,
    "Fabric Open Mirroring landing zone (OneLake, ADLS Gen2 or a local directory)",
    secrets = ["client_secret", "token", "account_key"]
);

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

impl OneLakeSinkConfig {
    /// A config for `landing_zone` with every default.
    pub fn new(landing_zone: impl Into<String>) -> Self {
        Self {
            landing_zone: landing_zone.into(),
            auth: AuthConfig::default(),
            publish: PublishMode::default(),
            compression: Compression::default(),
            max_file_rows: default_max_file_rows(),
            max_file_bytes: default_max_file_bytes(),
            flush_interval: default_flush_interval(),
            encode_concurrency: crate::writer::default_encode_concurrency(),
            marker_free_initial_load: false,
            upsert_default_row_marker: false,
            partner_name: default_partner_name(),
            source_version: None,
            lease: LeaseConfig::default(),
            endpoint: None,
            emulator: false,
            request_timeout: default_request_timeout(),
            max_request_retries: default_max_request_retries(),
            takeover: TakeoverPolicy::default(),
            fabric: None,
            store: OnceLock::new(),
            fabric_target: OnceLock::new(),
            telemetry: Arc::default(),
        }
    }

    /// Checks settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let location = parse_location(&self.landing_zone)?;
        if self.max_file_rows == 0 || self.max_file_bytes == 0 || self.encode_concurrency == 0 {
            return Err(
                "max_file_rows, max_file_bytes and encode_concurrency must be at least 1".into(),
            );
        }
        if self.flush_interval.is_zero() {
            return Err("flush_interval must be positive".into());
        }
        if self.emulator && self.publish == PublishMode::Rename {
            return Err(
                "the Azure Storage emulator (Azurite) has no DFS endpoint for the rename: set \
                 publish = \"put\""
                    .into(),
            );
        }
        if matches!(location, Location::Local(_)) && (self.endpoint.is_some() || self.emulator) {
            return Err("endpoint and emulator apply to remote landing zones only".into());
        }
        if self.lease.enabled && self.lease.ttl < Duration::from_secs(1) {
            return Err("lease.ttl must be at least 1s".into());
        }
        if let Some(fabric) = &self.fabric {
            let derived = crate::fabric::landing_zone_item(&self.landing_zone);
            if derived.is_none() && (fabric.workspace.is_none() || fabric.item.is_none()) {
                return Err(
                    "fabric: set `workspace` and `item` (they are taken from the landing zone \
                     only when it is a OneLake URL)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The Fabric mirrored database of `fabric` (built once; no request is made here).
    pub fn fabric_target(&self) -> Result<Option<Arc<FabricTarget>>, String> {
        let Some(config) = &self.fabric else {
            return Ok(None);
        };
        if let Some(target) = self.fabric_target.get() {
            return Ok(Some(target.clone()));
        }
        let target = FabricTarget::from_config(config, &self.landing_zone, &self.auth)
            .map_err(|e| e.to_string())?;
        Ok(Some(
            self.fabric_target.get_or_init(|| Arc::new(target)).clone(),
        ))
    }

    /// The landing zone's store (built once, shared by the sink and its checkpoint store).
    pub fn store(&self) -> Result<Arc<dyn LandingStore>, String> {
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        self.validate()?;
        let remote = RemoteOptions {
            endpoint: self.endpoint.clone(),
            use_emulator: self.emulator,
            request_timeout: self.request_timeout,
            retry: HttpRetry {
                max_retries: self.max_request_retries,
                ..HttpRetry::default()
            },
            token_source: None,
            on_retry: Some(RetryObserver::new({
                let telemetry = self.telemetry.clone();
                move |reason, what| {
                    if let Some(t) = telemetry.get() {
                        t.stats.retry(reason);
                        t.stats.error(mirror_core::ErrorKind::Transient, what);
                    }
                }
            })),
        };
        let store =
            open_store(&self.landing_zone, &self.auth, &remote).map_err(|e| e.to_string())?;
        Ok(self.store.get_or_init(|| store).clone())
    }

    /// Writer options for a sink named `name` fed by `sources`.
    pub fn writer_options(
        &self,
        name: &str,
        sources: &[mirror_core::component::SourceDescriptor],
    ) -> WriterOptions {
        let mut types: Vec<&str> = sources.iter().map(|s| s.type_name.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let mut additional = serde_json::Map::new();
        // Each source as it described itself: name, type, the version and details it reported.
        let described = sources.iter().map(|s| {
            let mut entry = serde_json::Map::new();
            entry.insert("name".into(), serde_json::json!(s.name));
            entry.insert("type".into(), serde_json::json!(s.type_name));
            if let Some(version) = &s.system.version {
                entry.insert("version".into(), serde_json::json!(version));
            }
            for (key, value) in &s.system.details {
                entry.entry(key.clone()).or_insert(serde_json::json!(value));
            }
            serde_json::Value::Object(entry)
        });
        additional.insert(
            "sources".into(),
            serde_json::Value::Array(described.collect()),
        );
        let mut versions: Vec<&str> = sources
            .iter()
            .filter_map(|s| s.system.version.as_deref())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        additional.insert("sink".into(), serde_json::json!(name));
        WriterOptions {
            name: name.to_owned(),
            publish: self.publish,
            compression: self.compression,
            max_file_rows: self.max_file_rows,
            max_file_bytes: self.max_file_bytes,
            flush_interval: self.flush_interval,
            encode_concurrency: self.encode_concurrency,
            marker_free_initial_load: self.marker_free_initial_load,
            metadata: MetadataOptions {
                upsert_default_row_marker: self.upsert_default_row_marker,
            },
            partner: PartnerInfo {
                partner_name: self.partner_name.clone(),
                source_type: if types.is_empty() {
                    "unknown".into()
                } else {
                    types.join(",")
                },
                // The configured version wins; else what the sources reported.
                source_version: match (&self.source_version, versions.is_empty()) {
                    (Some(v), _) => v.clone(),
                    (None, true) => "unknown".into(),
                    (None, false) => versions.join(","),
                },
                additional,
            },
            lease_ttl: self.lease.enabled.then_some(self.lease.ttl),
            lease_lock_dir: self.lease.lock_dir.clone(),
            takeover: Takeover {
                policy: self.takeover,
                fabric: None,
            },
        }
    }
}

#[async_trait]
impl SinkConfig for OneLakeSinkConfig {
    async fn build(&self, cx: SinkContext) -> Result<Box<dyn Sink>, BuildError> {
        let _ = self.telemetry.set(cx.telemetry.clone());
        let store = self.store().map_err(|m| BuildError::new(&cx.name, m))?;
        let mut options = self.writer_options(&cx.name, &cx.sources);
        options.takeover.fabric = self
            .fabric_target()
            .map_err(|m| BuildError::new(&cx.name, m))?;
        // An unreachable landing zone may come up (the engine tries again); refused credentials
        // or a missing permission do not.
        let writer = LandingZoneWriter::open(store, options)
            .await
            .map_err(|e| match e.is_transient() {
                true => BuildError::transient(&cx.name, e),
                false => BuildError::new(&cx.name, e),
            })?
            .with_telemetry(cx.telemetry)
            .stopping_on(cx.shutdown);
        Ok(Box::new(OneLakeSink::new(writer)))
    }

    fn checkpoint_store(&self) -> Result<Option<Arc<dyn CheckpointStore>>, BuildError> {
        let store = self.store().map_err(|m| BuildError::new("onelake", m))?;
        Ok(Some(Arc::new(LandingZoneCheckpointStore::new(store))))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn destination_status_interval(&self) -> Option<std::time::Duration> {
        self.fabric.as_ref().map(|f| f.status_interval)
    }

    async fn destination_status(
        &self,
    ) -> Result<
        Option<mirror_core::destination::DestinationReport>,
        mirror_core::destination::DestinationError,
    > {
        let fail = mirror_core::destination::DestinationError;
        let Some(target) = self.fabric_target().map_err(fail)? else {
            return Ok(None);
        };
        let store = self.store().map_err(fail)?;
        crate::fabric::status::report(&*store, &target)
            .await
            .map(Some)
            .map_err(|e| fail(e.to_string()))
    }

    async fn check(
        &self,
        cx: mirror_core::component::check::CheckContext,
    ) -> Vec<mirror_core::component::check::Check> {
        crate::check::check(self, &cx).await
    }

    async fn writers(&self) -> Result<Vec<String>, mirror_core::destination::DestinationError> {
        let fail = mirror_core::destination::DestinationError;
        let store = self.store().map_err(fail)?;
        crate::lease::describe_leases(&*store)
            .await
            .map_err(|e| fail(e.to_string()))
    }

    fn describe(&self) -> String {
        let location = self
            .store()
            .map(|s| s.location())
            .unwrap_or_else(|_| self.landing_zone.clone());
        format!(
            "{location}: publish {:?}, {:?}, files up to {} rows, flushed every {:?}",
            self.publish, self.compression, self.max_file_rows, self.flush_interval
        )
        .to_lowercase()
    }
}
