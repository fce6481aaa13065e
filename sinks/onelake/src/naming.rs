//! Names in the landing zone: table folders, data files and the sink's own `_`-prefixed files.
//!
//! # Table folders
//! A table `schema.schema/name` (or `name`) is written to the folder `<schema>.schema/<name>/` (or
//! `<name>/`), with each of `schema` and `name` mapped to a name that is safe in OneLake paths and
//! that Fabric does not ignore:
//!
//! | in the source name | in the folder name | why |
//! |---|---|---|
//! | `/ \ : * ? " < > \| # %` and control characters | `_` | path separators, characters ADLS/OneLake or URLs reject |
//! | a leading `_` | `x_` | Fabric ignores names that start with `_` |
//! | leading or trailing spaces, trailing `.` | `_` | rejected or silently trimmed by ADLS |
//! | a table name (without schema) ending in `.schema` | `_schema` | it would read as a schema folder |
//!
//! Every other character (letters of any script, digits, `-`, `.`, spaces inside) is kept. Names
//! longer than 255 bytes after mapping, empty names and `.`/`..` are refused. The mapping is not
//! one-to-one (`a/b` and `a:b` both become `a_b`): two tables that map to the same folder are an
//! error ([`check_collisions`], also run by the sink whenever it meets a new table), never a silent
//! merge of two tables.
//!
//! # Files
//! Data files are `00000000000000000001.parquet`, `00000000000000000002.parquet`, ... (20 digits).
//! The sink's own files start with `_`, which Fabric ignores; see [`TABLE_STATE_FILE`] and friends.

use std::collections::BTreeMap;

use mirror_core::TableId;

/// Fabric's per-table metadata file.
pub const METADATA_FILE: &str = "_metadata.json";
/// Fabric's database-level partner file, at the landing-zone root.
pub const PARTNER_EVENTS_FILE: &str = "_partnerEvents.json";
/// The sink's per-table state: column types, row-marker mode, last published number.
pub const TABLE_STATE_FILE: &str = "_mirror_table.json";
/// The single-writer lease of a table.
pub const LEASE_FILE: &str = "_mirror_lease.json";
/// Prefix of files being uploaded before the rename that publishes them, and of a local store's
/// temporary files ([`mirror_core::files`]).
pub const TEMP_PREFIX: &str = mirror_core::files::TEMP_PREFIX;
/// Prefix of per-table checkpoint records: `_mirror_checkpoint.<source>.json`.
pub const CHECKPOINT_PREFIX: &str = "_mirror_checkpoint.";
/// Root folder for checkpoint records that belong to no table folder (source-wide state).
pub const STATE_DIR: &str = "_mirror_state";
/// Folders where Fabric moves processed files (the last file stays in the table folder).
pub const PROCESSED_DIRS: &[&str] = &["_ProcessedFiles", "_FilesReadyToDelete"];

/// Longest folder name segment ADLS Gen2 accepts.
const MAX_SEGMENT_BYTES: usize = 255;

/// Why a table cannot be given a folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// Empty, `.` or `..`.
    #[error("table `{table}`: `{segment}` cannot be a folder name in the landing zone")]
    Invalid {
        /// The table.
        table: String,
        /// The offending part.
        segment: String,
    },
    /// Longer than ADLS accepts.
    #[error("table `{table}`: `{segment}` is longer than {MAX_SEGMENT_BYTES} bytes")]
    TooLong {
        /// The table.
        table: String,
        /// The offending part.
        segment: String,
    },
    /// Two tables map to one folder.
    #[error(
        "tables `{first}` and `{second}` would both be written to the landing-zone folder \
         `{folder}`; rename one of them (`[tables.\"...\"] target = ...`)"
    )]
    Collision {
        /// One table.
        first: String,
        /// The other.
        second: String,
        /// The folder both map to.
        folder: String,
    },
}

/// The folder of `table`, relative to the landing zone: `orders` or `sales.schema/orders`.
///
/// ```
/// use mirror_core::TableId;
/// use mirror_onelake::naming::table_folder;
/// assert_eq!(table_folder(&TableId::with_schema("sales", "orders")).unwrap(), "sales.schema/orders");
/// assert_eq!(table_folder(&TableId::new("_audit/2024")).unwrap(), "x_audit_2024");
/// ```
pub fn table_folder(table: &TableId) -> Result<String, NamingError> {
    let shown = table.to_string();
    let mut name = safe_segment(&shown, table.name())?;
    match table.schema() {
        Some(schema) => {
            let schema = safe_segment(&shown, schema)?;
            Ok(format!("{schema}.schema/{name}"))
        }
        None => {
            if let Some(stem) = name.strip_suffix(".schema") {
                name = format!("{stem}_schema");
            }
            Ok(name)
        }
    }
}

fn safe_segment(table: &str, raw: &str) -> Result<String, NamingError> {
    if raw.is_empty() || raw == "." || raw == ".." {
        return Err(NamingError::Invalid {
            table: table.to_owned(),
            segment: raw.to_owned(),
        });
    }
    let mut out: String = raw
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '#' | '%' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    if out.starts_with('_') {
        out.insert(0, 'x');
    }
    let trimmed_start = out.len() - out.trim_start_matches(' ').len();
    let kept_end = out.trim_end_matches([' ', '.']).len();
    if trimmed_start > 0 || kept_end < out.len() {
        let (head, rest) = out.split_at(trimmed_start);
        let (mid, tail) = rest.split_at(kept_end.saturating_sub(trimmed_start));
        out = format!("{}{mid}{}", "_".repeat(head.len()), "_".repeat(tail.len()));
    }
    if out.len() > MAX_SEGMENT_BYTES {
        return Err(NamingError::TooLong {
            table: table.to_owned(),
            segment: raw.to_owned(),
        });
    }
    Ok(out)
}

/// Checks that no two of `tables` share a folder.
///
/// ```
/// use mirror_core::TableId;
/// use mirror_onelake::naming::check_collisions;
/// let err = check_collisions([&TableId::new("a/b"), &TableId::new("a:b")]).unwrap_err();
/// assert!(err.to_string().contains("`a_b`"));
/// ```
pub fn check_collisions<'a>(
    tables: impl IntoIterator<Item = &'a TableId>,
) -> Result<BTreeMap<String, TableId>, NamingError> {
    let mut folders: BTreeMap<String, TableId> = BTreeMap::new();
    for table in tables {
        let folder = table_folder(table)?;
        if let Some(other) = folders.get(&folder) {
            if other != table {
                return Err(NamingError::Collision {
                    first: other.to_string(),
                    second: table.to_string(),
                    folder,
                });
            }
        }
        folders.insert(folder, table.clone());
    }
    Ok(folders)
}

/// The data file name of sequence number `n`: 20 digits and `.parquet`.
pub fn data_file_name(n: u64) -> String {
    format!("{n:020}.parquet")
}

/// The sequence number of a data file name, if it is one.
pub fn parse_data_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".parquet")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checkpoint record of `source` inside a table folder.
pub fn checkpoint_file_name(source: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{source}.json")
}

/// The record of a table's column types written ahead of its data by `source`:
/// `_mirror_checkpoint.<source>.schema.json` (component names hold no `.`, so it cannot be taken
/// for another source's checkpoint).
pub fn schema_record_name(source: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{source}.schema.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_safe_and_readable() {
        let cases = [
            (TableId::new("orders"), "orders"),
            (
                TableId::with_schema("sales", "orders"),
                "sales.schema/orders",
            ),
            (TableId::new("_secret"), "x_secret"),
            (TableId::with_schema("_s", "_t"), "x_s.schema/x_t"),
            (
                TableId::new("a/b\\c:d*e?f\"g<h>i|j#k%l"),
                "a_b_c_d_e_f_g_h_i_j_k_l",
            ),
            (TableId::new("tab\tle\n"), "tab_le_"),
            (TableId::new(" padded. "), "_padded__"),
            (TableId::new("naïve 表"), "naïve 表"),
            (TableId::new("x.schema"), "x_schema"),
            (TableId::with_schema("s", "x.schema"), "s.schema/x.schema"),
        ];
        for (table, folder) in cases {
            assert_eq!(table_folder(&table).unwrap(), folder, "{table}");
        }
        assert!(table_folder(&TableId::new("..")).is_err());
        assert!(table_folder(&TableId::new("a".repeat(256))).is_err());
    }

    #[test]
    fn collisions_are_errors() {
        let a = TableId::new("a?b");
        let b = TableId::new("a#b");
        let err = check_collisions([&a, &b]).unwrap_err();
        assert_eq!(
            err,
            NamingError::Collision {
                first: "a?b".into(),
                second: "a#b".into(),
                folder: "a_b".into()
            }
        );
        assert!(check_collisions([&a, &a, &TableId::new("c")]).is_ok());
    }

    #[test]
    fn data_file_names_have_twenty_digits() {
        assert_eq!(data_file_name(1), "00000000000000000001.parquet");
        assert_eq!(
            parse_data_file_name("00000000000000000042.parquet"),
            Some(42)
        );
        assert_eq!(parse_data_file_name("0000000000000000042.parquet"), None);
        assert_eq!(
            parse_data_file_name("_mirror_tmp_00000000000000000042.parquet"),
            None
        );
        assert_eq!(
            parse_data_file_name(&data_file_name(u64::MAX / 2)),
            Some(u64::MAX / 2)
        );
    }
}
