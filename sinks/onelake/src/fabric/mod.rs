//! Fabric's side of a landing zone: the REST API that creates, starts, stops and watches the
//! mirrored database the landing zone belongs to.
//!
//! - [`FabricClient`] ([`client`]): the calls, with throttling, token refresh and errors that name
//!   the workspace, item or role at fault; [`token`]: Entra tokens for the Fabric scope from the
//!   sink's own credential methods;
//! - [`FabricConfig`]: the sink's `fabric = { ... }` setting, and [`FabricTarget`], the mirrored
//!   database it designates (names resolved to ids once);
//! - [`status`]: end-to-end status, each landing-zone table next to what Fabric reports for it.
//!
//! ```toml
//! [sinks.fabric]
//! type = "onelake"
//! landing_zone = "https://onelake.dfs.fabric.microsoft.com/<workspace id>/<item id>/Files/LandingZone"
//! auth = { method = "client_secret", tenant_id = "...", client_id = "...", client_secret = "${AZURE_CLIENT_SECRET}" }
//! # Workspace and item default to the landing zone's; auth to the sink's.
//! fabric = { workspace = "Sales", item = "shop", drop_timeout = "10m", status_interval = "60s" }
//! ```

pub mod client;
pub mod error;
pub mod model;
pub mod status;
pub mod token;

use std::time::{Duration, Instant};

use serde::Deserialize;

pub use self::client::{FabricClient, FabricRetry, Grant, FABRIC_API};
pub use self::error::FabricError;
use self::model::{MirroredDatabase, MirroringStatus, TableMirroringStatus};
pub use self::token::{FabricCredential, FABRIC_SCOPE};
use crate::auth::AuthConfig;
use crate::location::{parse_location, Location};

fn default_drop_timeout() -> Duration {
    Duration::from_secs(600)
}

/// Fabric refreshes a mirrored database's table status about once a minute; asking more often
/// only spends the API's request budget.
fn default_status_interval() -> Duration {
    Duration::from_secs(60)
}

/// The sink's `fabric` table: which mirrored database the landing zone belongs to.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FabricConfig {
    /// Workspace id or name; default: the landing zone URL's workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Mirrored database id or name; default: the landing zone URL's item.
    #[serde(default)]
    pub item: Option<String>,
    /// API root; default `https://api.fabric.microsoft.com/v1`.
    #[serde(default)]
    pub api: Option<String>,
    /// Credential for the Fabric API; default: the sink's `auth`.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// How long a table reset waits for Fabric to drop the table.
    #[serde(default = "default_drop_timeout", with = "humantime_serde")]
    pub drop_timeout: Duration,
    /// How often `mirror run` asks Fabric for its replication status (served at `/api/status`,
    /// `/metrics` and on the status page).
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub status_interval: Duration,
}

/// The workspace and item segments of a OneLake landing zone URL, without an item name's
/// `.MirroredDatabase` / `.MountedRelationalDatabase` type suffix.
///
/// ```
/// use mirror_onelake::fabric::landing_zone_item;
/// assert_eq!(
///     landing_zone_item("https://onelake.dfs.fabric.microsoft.com/Sales/shop.MirroredDatabase/Files/LandingZone"),
///     Some(("Sales".to_owned(), "shop".to_owned()))
/// );
/// assert_eq!(landing_zone_item("./lz"), None);
/// ```
pub fn landing_zone_item(landing_zone: &str) -> Option<(String, String)> {
    let Ok(Location::Azure(a)) = parse_location(landing_zone) else {
        return None;
    };
    if !a.onelake {
        return None;
    }
    let item = a.prefix.split('/').next()?.to_owned();
    let item = [".MirroredDatabase", ".MountedRelationalDatabase"]
        .iter()
        .find_map(|suffix| item.strip_suffix(suffix).map(str::to_owned))
        .unwrap_or(item);
    Some((a.container, item))
}

/// The Fabric table a landing-zone folder becomes: `(schema, name)`, the schema of a
/// `<schema>.schema/<name>` folder or `default_schema`.
pub fn fabric_table(folder: &str, default_schema: &str) -> (String, String) {
    match folder.split_once(".schema/") {
        Some((schema, name)) => (schema.to_owned(), name.to_owned()),
        None => (default_schema.to_owned(), folder.to_owned()),
    }
}

/// Whether Fabric's `entry` is the table of `folder`.
pub fn is_table_of(entry: &TableMirroringStatus, folder: &str, default_schema: &str) -> bool {
    let (schema, name) = fabric_table(folder, default_schema);
    entry.source_table_name.as_deref() == Some(name.as_str())
        && entry
            .source_schema_name
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(&schema))
}

struct Resolved {
    workspace: String,
    workspace_name: String,
    item: MirroredDatabase,
}

/// A mirrored database as configured (ids or names), resolved on first use.
#[derive(Debug)]
pub struct FabricTarget {
    client: FabricClient,
    workspace: String,
    item: String,
    drop_timeout: Duration,
    resolved: tokio::sync::OnceCell<Resolved>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("workspace", &self.workspace)
            .field("item", &self.item.id)
            .finish()
    }
}

impl FabricTarget {
    /// The item `item` of workspace `workspace` (ids or names).
    pub fn new(client: FabricClient, workspace: &str, item: &str) -> Self {
        Self {
            client,
            workspace: workspace.to_owned(),
            item: item.to_owned(),
            drop_timeout: default_drop_timeout(),
            resolved: tokio::sync::OnceCell::new(),
        }
    }

    /// The target of a sink's `fabric` setting for `landing_zone`.
    pub fn from_config(
        config: &FabricConfig,
        landing_zone: &str,
        sink_auth: &AuthConfig,
    ) -> Result<Self, FabricError> {
        let derived = landing_zone_item(landing_zone);
        let (Some(workspace), Some(item)) = (
            config
                .workspace
                .clone()
                .or_else(|| derived.as_ref().map(|d| d.0.clone())),
            config.item.clone().or_else(|| derived.map(|d| d.1)),
        ) else {
            return Err(FabricError::Config(
                "fabric: set `workspace` and `item` (they can only be taken from a OneLake \
                 landing_zone URL)"
                    .into(),
            ));
        };
        let auth = config.auth.as_ref().unwrap_or(sink_auth);
        let client = FabricClient::new(config.api.as_deref(), auth)?;
        let mut target = Self::new(client, &workspace, &item);
        target.drop_timeout = config.drop_timeout;
        Ok(target)
    }

    /// The client.
    pub fn client(&self) -> &FabricClient {
        &self.client
    }

    async fn resolved(&self) -> Result<&Resolved, FabricError> {
        self.resolved
            .get_or_try_init(|| async {
                let ws = self.client.workspace(&self.workspace).await?;
                let item = self.client.mirrored_database(&ws.id, &self.item).await?;
                Ok(Resolved {
                    workspace: ws.id,
                    workspace_name: ws.display_name,
                    item,
                })
            })
            .await
    }

    /// `(workspace id, item id)`.
    pub async fn ids(&self) -> Result<(String, String), FabricError> {
        let r = self.resolved().await?;
        Ok((r.workspace.clone(), r.item.id.clone()))
    }

    /// `mirrored database `shop` (<id>) in workspace `Sales` (<id>)`.
    pub async fn describe(&self) -> Result<String, FabricError> {
        let r = self.resolved().await?;
        Ok(format!(
            "mirrored database `{}` ({}) in workspace `{}` ({})",
            r.item.display_name, r.item.id, r.workspace_name, r.workspace
        ))
    }

    /// The item's default schema (`dbo` unless its definition sets another).
    pub async fn default_schema(&self) -> Result<String, FabricError> {
        let r = self.resolved().await?;
        Ok(r.item
            .properties
            .as_ref()
            .and_then(|p| p.default_schema.clone())
            .unwrap_or_else(|| "dbo".into()))
    }

    /// `getMirroringStatus`.
    pub async fn status(&self) -> Result<MirroringStatus, FabricError> {
        let (ws, item) = self.ids().await?;
        self.client.mirroring_status(&ws, &item).await
    }

    /// `getTablesMirroringStatus`.
    pub async fn tables(&self) -> Result<Vec<TableMirroringStatus>, FabricError> {
        let (ws, item) = self.ids().await?;
        self.client.tables_mirroring_status(&ws, &item).await
    }

    /// Waits until Fabric no longer lists the table of `folder` (its folder was deleted).
    pub async fn wait_until_dropped(&self, folder: &str) -> Result<(), FabricError> {
        let schema = self.default_schema().await?;
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let tables = self.tables().await?;
            let Some(entry) = tables.iter().find(|t| is_table_of(t, folder, &schema)) else {
                return Ok(());
            };
            if started.elapsed() >= self.drop_timeout {
                return Err(FabricError::Timeout {
                    what: format!("wait for Fabric to drop the table of folder `{folder}`"),
                    waited: started.elapsed(),
                    state: format!(
                        "still listed as {} (is mirroring running? `mirror fabric status`)",
                        entry.status
                    ),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}
