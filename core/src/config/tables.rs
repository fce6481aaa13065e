//! `[tables."<source table>"]`: per-table settings (target name and schema mapping).
//!
//! `[tables."*"]` holds defaults for every table: its mapping keys apply to each table, and a table's
//! own keys win (maps such as `types` and `rename` merge key by key, `exclude` lists add up,
//! `include` replaces). See [`crate::mapping`] for what each key does.
//!
//! ```toml
//! [tables."*"]
//! json = "relaxed"
//! flatten_depth = 1
//!
//! [tables."shop.orders"]
//! target = "sales.schema/orders"
//! types = { total = "decimal(18,2)", "customer.since" = "timestamp" }
//! rename = { "customer.name" = "customer" }
//! exclude = ["internal", "customer.password"]
//! json_fields = ["payload"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::mapping::{ColumnType, JsonFlavor, NameRule, SampleMethod};

/// The key of the defaults that apply to every table.
pub const ALL_TABLES: &str = "*";

/// Settings of one source table, keyed in `mirror.toml` by the source's name for it (for MongoDB,
/// `"<database>.<collection>"`), or `"*"` for defaults.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableSettings {
    /// The target table, `<schema>.schema/<table>` or `<table>`.
    pub target: Option<String>,
    /// Pinned column types by dotted field path, e.g. `{ total = "decimal(18,2)" }`.
    #[serde(default)]
    pub types: BTreeMap<String, ColumnType>,
    /// Column names by dotted field path, e.g. `{ "customer.name" = "customer" }`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Dotted field paths left out (with everything below them).
    pub exclude: Option<Vec<String>>,
    /// If set, only these dotted field paths (and what is below them) are kept; `_id` always is.
    pub include: Option<Vec<String>>,
    /// Sub-documents are flattened into `parent_child` columns down to this many levels; deeper
    /// ones are kept as JSON. `0` (the default) keeps every sub-document as JSON.
    pub flatten_depth: Option<u32>,
    /// Dotted field paths kept as JSON text whatever their values (same as pinning `"json"`).
    pub json_fields: Option<Vec<String>>,
    /// How sub-documents, arrays and JSON fields are written: `plain` (default), `relaxed` or
    /// `canonical` (MongoDB Extended JSON).
    pub json: Option<JsonFlavor>,
    /// How field names become column names: `sanitize` (default) or `strict`.
    pub column_names: Option<NameRule>,
    /// Documents read to infer column types before the first batch (default 1000; 0: none).
    pub sample_size: Option<usize>,
    /// Which documents: `random` (`$sample`, the default) or `first`.
    pub sample: Option<SampleMethod>,
}
