//! `[sources.<name>] type = "mongodb"`: what to mirror and how.
//!
//! ```toml
//! [sources.atlas]
//! type = "mongodb"
//! uri = "${MONGODB_URI}"               # any MongoDB URI, mongodb+srv:// included
//! databases = ["shop"]                 # or ["*"]: every database but admin, local, config
//! collections = ["*"]                  # names, "db.name", patterns ("orders_*"), "*" or "all"
//! exclude = ["audit_*"]
//! naming = "schema"                    # schema: <db>.schema/<coll> | flat: <coll> | prefixed: <db>_<coll>
//! read_preference = "secondary_preferred"   # for the initial sync
//! full_document = "update_lookup"      # update_lookup | when_available | required (post-images)
//! on_drop = "keep"                     # keep | truncate
//! on_history_lost = "resync"           # resync | fail
//! ```

use std::time::Duration;

use mirror_core::config::SecretUri;
use serde::Deserialize;

/// The MongoDB source's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSourceConfig {
    /// The connection URI (its password never reaches logs or errors).
    pub uri: SecretUri,
    /// Databases to mirror; `"*"` for all but `admin`, `local` and `config`.
    pub databases: Vec<String>,
    /// Collections: names, `<db>.<name>`, patterns with `*`, or `"*"`/`"all"`.
    #[serde(default = "all")]
    pub collections: Vec<String>,
    /// Collections left out (same forms).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Default target table names.
    #[serde(default)]
    pub naming: TableNaming,
    /// Read preference of the initial sync (change streams always read the primary).
    pub read_preference: Option<ReadPreferenceMode>,
    /// What updates carry.
    #[serde(default)]
    pub full_document: FullDocument,
    /// What a dropped (or renamed-away) collection does to its table.
    #[serde(default)]
    pub on_drop: DropPolicy,
    /// What happens when a stream's position is older than the oplog.
    #[serde(default)]
    pub on_history_lost: HistoryLostPolicy,
    /// Rows per batch of change events.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Documents per initial-sync page.
    #[serde(default = "default_page_size")]
    pub snapshot_page_size: usize,
    /// Parallel initial-sync readers per database.
    #[serde(default = "default_readers")]
    pub snapshot_readers: usize,
    /// How often new collections (and, with `databases = ["*"]`, new databases) are looked for.
    #[serde(default = "default_discovery", with = "humantime_serde")]
    pub discovery_interval: Duration,
    /// How long a change stream waits for events before reporting its position.
    #[serde(default = "default_max_await", with = "humantime_serde")]
    pub max_await: Duration,
    /// How long a batch of change events waits for more events once its first one arrived (as
    /// Kafka's `linger.ms`): one event at a time costs each stage a fixed amount per batch, so a
    /// few milliseconds here buy a lot of throughput under load; zero sends what is ready at once.
    #[serde(default = "default_batch_linger", with = "humantime_serde")]
    pub batch_linger: Duration,
    /// How often an idle stream's position is checkpointed.
    #[serde(default = "default_idle_checkpoint", with = "humantime_serde")]
    pub idle_checkpoint_interval: Duration,
    /// Progress bars for the initial sync: default when stderr is a terminal.
    pub progress: Option<bool>,
}

fn all() -> Vec<String> {
    vec!["*".to_owned()]
}
fn default_batch_size() -> usize {
    1000
}
fn default_page_size() -> usize {
    5000
}
fn default_readers() -> usize {
    4
}
fn default_discovery() -> Duration {
    Duration::from_secs(30)
}
fn default_max_await() -> Duration {
    Duration::from_millis(500)
}
fn default_batch_linger() -> Duration {
    Duration::from_millis(10)
}
fn default_idle_checkpoint() -> Duration {
    Duration::from_secs(5)
}

/// Default target names.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TableNaming {
    /// `<db>.schema/<coll>`: one Fabric schema per database.
    #[default]
    Schema,
    /// `<coll>`.
    Flat,
    /// `<db>_<coll>`.
    Prefixed,
}

/// Read preference modes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReadPreferenceMode {
    /// The primary only.
    Primary,
    /// The primary if available.
    PrimaryPreferred,
    /// Secondaries only.
    Secondary,
    /// Secondaries if available.
    SecondaryPreferred,
    /// The lowest latency member.
    Nearest,
}

/// How updates get the whole document.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FullDocument {
    /// The document as it is when the event is read (`fullDocument: "updateLookup"`).
    #[default]
    UpdateLookup,
    /// The post-image if the collection records them (`whenAvailable`), else nothing.
    WhenAvailable,
    /// The post-image, failing if the collection does not record them (`required`).
    Required,
}

impl FullDocument {
    /// The `fullDocument` option value.
    pub fn as_option(self) -> mongodb::options::FullDocumentType {
        use mongodb::options::FullDocumentType;
        match self {
            FullDocument::UpdateLookup => FullDocumentType::UpdateLookup,
            FullDocument::WhenAvailable => FullDocumentType::WhenAvailable,
            FullDocument::Required => FullDocumentType::Required,
        }
    }
}

/// What a dropped collection does to its table.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// The table keeps its rows (a recreated collection is copied into it again).
    #[default]
    Keep,
    /// The table is emptied, as the collection is.
    Truncate,
}

/// What happens when a change stream cannot resume (error 286, position older than the oplog).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HistoryLostPolicy {
    /// Empty the database's tables and copy them again.
    #[default]
    Resync,
    /// Stop with an error.
    Fail,
}

impl MongoSourceConfig {
    /// Settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.databases.is_empty() {
            return Err("`databases` is empty".into());
        }
        if self.collections.is_empty() {
            return Err("`collections` is empty (use [\"*\"] for all)".into());
        }
        if self.batch_size == 0 || self.snapshot_page_size == 0 || self.snapshot_readers == 0 {
            return Err(
                "batch_size, snapshot_page_size and snapshot_readers must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// Whether `db` is selected.
    pub fn wants_database(&self, db: &str) -> bool {
        if self.databases.iter().any(|d| d == db) {
            return true;
        }
        self.databases.iter().any(|d| d == "*") && !matches!(db, "admin" | "local" | "config")
    }

    /// Whether the collection `db.name` is selected (before looking at its kind).
    pub fn wants_collection(&self, db: &str, name: &str) -> bool {
        let matches = |pattern: &String| {
            let (pdb, pname) = match pattern.split_once('.') {
                Some((d, n)) if self.databases.iter().any(|x| x == d) || d == "*" => (d, n),
                _ => ("*", pattern.as_str()),
            };
            (pdb == "*" || pdb == db)
                && (pname == "all" || mirror_core::transforms::wildcard_match(pname, name))
        };
        !name.starts_with("system.")
            && self.collections.iter().any(matches)
            && !self.exclude.iter().any(matches)
    }

    /// Whether `db.name` was named explicitly (not only matched by a pattern).
    pub fn names_collection(&self, db: &str, name: &str) -> bool {
        self.collections
            .iter()
            .any(|c| c == name || *c == format!("{db}.{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> MongoSourceConfig {
        toml::from_str(&format!(
            "uri = \"mongodb://h\"\ndatabases = [\"shop\", \"crm\"]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn collection_selection() {
        let c = config(
            "collections = [\"orders\", \"crm.customers\", \"log_*\"]\nexclude = [\"log_debug\"]",
        );
        assert!(c.wants_collection("shop", "orders"));
        assert!(c.wants_collection("crm", "orders"));
        assert!(c.wants_collection("crm", "customers"));
        assert!(!c.wants_collection("shop", "customers"));
        assert!(c.wants_collection("shop", "log_2024"));
        assert!(!c.wants_collection("shop", "log_debug"));
        assert!(!c.wants_collection("shop", "system.views"));
        let all = config("collections = [\"all\"]");
        assert!(all.wants_collection("shop", "anything"));
        assert!(config("").wants_collection("crm", "x"));
        assert!(!config("").wants_database("admin"));
        let star: MongoSourceConfig =
            toml::from_str("uri = \"mongodb://h\"\ndatabases = [\"*\"]").unwrap();
        assert!(star.wants_database("shop") && !star.wants_database("local"));
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let c: MongoSourceConfig =
            toml::from_str("uri = \"mongodb://app:hunter2@h/?tls=true\"\ndatabases = [\"shop\"]")
                .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("mongodb://app:***@h/?tls=true"), "{debug}");
    }
}
