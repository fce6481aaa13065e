//! `[tables."<source table>"]`: per-table settings (target name and schema mapping).

use serde::Deserialize;

/// Settings of one source table, keyed in `mirror.toml` by the source's name for it (for MongoDB,
/// `"<database>.<collection>"`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableSettings {
    /// The target table, `<schema>.schema/<table>` or `<table>`.
    pub target: Option<String>,
}
