//! The Fabric REST API's request and response shapes this client uses, as Microsoft's OpenAPI
//! definitions (`fabric-rest-api-specs`: `mirroredDatabase/definitions.json`,
//! `common/definitions.json`, `platform/definitions/platform.json`) name them. Status values are
//! kept as strings: the specification says more may be added over time.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `ErrorResponse`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// A stable identifier of the error condition.
    #[serde(default)]
    pub error_code: String,
    /// A human-readable description (not to be parsed).
    #[serde(default)]
    pub message: String,
    /// The request id, for Microsoft support.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// A workspace (`Workspace`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Its id (a GUID).
    pub id: String,
    /// Its name.
    pub display_name: String,
}

/// A mirrored database (`MirroredDatabase`: an `Item` with `properties`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MirroredDatabase {
    /// Its id (a GUID).
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub display_name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// The workspace it is in.
    #[serde(default)]
    pub workspace_id: String,
    /// Type-specific properties (absent in some answers, e.g. a long-running create's result).
    #[serde(default)]
    pub properties: Option<MirroredDatabaseProperties>,
}

/// `MirroredDatabaseProperties`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MirroredDatabaseProperties {
    /// The OneLake path of the item's `Tables` directory.
    #[serde(default)]
    pub one_lake_tables_path: Option<String>,
    /// The default schema, when the definition sets one.
    #[serde(default)]
    pub default_schema: Option<String>,
}

impl MirroredDatabase {
    /// The open mirroring landing zone: the `Files/LandingZone` sibling of `oneLakeTablesPath`.
    ///
    /// ```
    /// use mirror_onelake::fabric::model::{MirroredDatabase, MirroredDatabaseProperties};
    /// let item = MirroredDatabase {
    ///     id: "i".into(), display_name: "db".into(), description: String::new(), workspace_id: "w".into(),
    ///     properties: Some(MirroredDatabaseProperties {
    ///         one_lake_tables_path: Some("https://onelake.dfs.fabric.microsoft.com/w/i/Tables".into()),
    ///         default_schema: None,
    ///     }),
    /// };
    /// assert_eq!(item.landing_zone().unwrap(), "https://onelake.dfs.fabric.microsoft.com/w/i/Files/LandingZone");
    /// ```
    pub fn landing_zone(&self) -> Option<String> {
        let tables = self.properties.as_ref()?.one_lake_tables_path.as_deref()?;
        let tables = tables.trim_end_matches('/');
        let item_root = tables.strip_suffix("/Tables").unwrap_or(tables);
        Some(format!("{item_root}/Files/LandingZone"))
    }
}

/// `MirroringStatusResponse`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MirroringStatus {
    /// Initializing, Initialized, Starting, Running, Stopping, Stopped (more may come).
    pub status: String,
    /// Set when mirroring has an error.
    #[serde(default)]
    pub error: Option<ErrorResponse>,
}

/// `TableMirroringMetrics`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableMetrics {
    /// Bytes processed for the table.
    #[serde(default)]
    pub processed_bytes: u64,
    /// Rows processed for the table.
    #[serde(default)]
    pub processed_rows: u64,
    /// When the table was last processed (UTC, `YYYY-MM-DDTHH:mm:ssZ`).
    #[serde(default)]
    pub last_sync_date_time: Option<String>,
}

impl TableMetrics {
    /// `lastSyncDateTime` as a time.
    pub fn last_sync(&self) -> Option<DateTime<Utc>> {
        let text = self.last_sync_date_time.as_deref()?;
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// `TableMirroringStatusResponse`: one table as Fabric sees it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableMirroringStatus {
    /// The table's schema.
    #[serde(default)]
    pub source_schema_name: Option<String>,
    /// The table's name.
    #[serde(default)]
    pub source_table_name: Option<String>,
    /// Initialized, Snapshotting, Replicating, Reseeding, Stopped, Failed (more may come).
    pub status: String,
    /// What was processed.
    #[serde(default)]
    pub metrics: Option<TableMetrics>,
    /// Set when the table has an error.
    #[serde(default)]
    pub error: Option<ErrorResponse>,
}

/// A principal of a role assignment (`Principal`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// Its object id.
    pub id: String,
    /// User, ServicePrincipal, Group, ServicePrincipalProfile.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `WorkspaceRoleAssignment`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Its id.
    pub id: String,
    /// Who.
    pub principal: Principal,
    /// Admin, Member, Contributor, Viewer.
    pub role: String,
}

/// `OperationState` of a long-running operation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// NotStarted, Running, Succeeded, Failed, Undefined.
    pub status: String,
    /// Set when it failed.
    #[serde(default)]
    pub error: Option<ErrorResponse>,
    /// Progress.
    #[serde(default)]
    pub percent_complete: Option<i64>,
}

/// A page of a paged list (`PaginatedResponse`): items under `value` (lists) or `data`
/// (`getTablesMirroringStatus`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new", alias = "data")]
    pub value: Vec<T>,
    #[serde(default)]
    pub continuation_token: Option<String>,
    #[serde(default)]
    pub continuation_uri: Option<String>,
}

/// The open mirroring item definition: one `mirroring.json` part with source `GenericMirror` and
/// a Delta `MountedRelationalDatabase` target ("Mirrored database item definition" and "Open
/// mirroring" in the Fabric documentation).
pub fn open_mirroring_definition(default_schema: &str) -> Value {
    let document = json!({
        "properties": {
            "source": {"type": "GenericMirror", "typeProperties": {}},
            "target": {
                "type": "MountedRelationalDatabase",
                "typeProperties": {"defaultSchema": default_schema, "format": "Delta"}
            }
        }
    });
    let payload = base64::engine::general_purpose::STANDARD.encode(document.to_string());
    json!({
        "parts": [{"path": "mirroring.json", "payload": payload, "payloadType": "InlineBase64"}]
    })
}
