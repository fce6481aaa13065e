//! What a published data file says about itself, read from its Parquet footer alone (two ranged
//! reads, never the whole file): which writer made it, how many rows it holds, and, for files
//! `mirror` wrote, how many rows the table's files hold up to and including it.
//!
//! That last count (key `mirror.rows_through` in the footer's key-value metadata) is what lets
//! end-to-end status tell whether Fabric has applied everything: Fabric keeps a table's last file,
//! so the count of the newest file is always at hand, and it compares with the rows Fabric
//! reports as processed. It restarts at 0 when a table is emptied (a new folder).

use bytes::Bytes;
use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};

use crate::error::SinkError;
use crate::naming::{data_file_name, parse_data_file_name, PROCESSED_DIRS};
use crate::store::{join, LandingStore};

/// The footer key of [`DataFileInfo::rows_through`].
pub const ROWS_THROUGH_KEY: &str = "mirror.rows_through";

/// How much of a file's end is read first: most footers fit.
const TAIL: u64 = 64 * 1024;

/// A data file's footer facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFileInfo {
    /// The Parquet writer, e.g. `mirror 0.1.0` or `parquet-cpp-arrow version 17.0.0` (pandas).
    pub created_by: Option<String>,
    /// Rows in this file.
    pub rows: u64,
    /// Rows in the table's files up to and including this one (files `mirror` wrote).
    pub rows_through: Option<u64>,
}

impl DataFileInfo {
    /// Whether `mirror` wrote the file.
    pub fn written_by_mirror(&self) -> bool {
        self.created_by
            .as_deref()
            .is_some_and(|c| c.starts_with("mirror "))
    }
}

/// The footer metadata that records `rows_through`.
pub fn rows_through_metadata(rows_through: u64) -> Vec<KeyValue> {
    vec![KeyValue::new(
        ROWS_THROUGH_KEY.to_owned(),
        rows_through.to_string(),
    )]
}

fn bad(path: &str, message: impl Into<String>) -> SinkError {
    SinkError::BadStateFile {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads the footer facts of the data file at `path`; `None` if it does not exist.
pub async fn read_info(
    store: &dyn LandingStore,
    path: &str,
) -> Result<Option<DataFileInfo>, SinkError> {
    let Some(head) = store.head(path).await? else {
        return Ok(None);
    };
    let size = head.size;
    if size < 12 {
        return Err(bad(
            path,
            format!("{size} bytes is too short for a Parquet file"),
        ));
    }
    let start = size.saturating_sub(TAIL);
    let Some(mut tail) = store.get_range(path, start..size).await? else {
        return Ok(None);
    };
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(bad(path, "not a Parquet file (no PAR1 at its end)"));
    }
    let footer_len =
        u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]) as u64;
    if footer_len + 8 > size {
        return Err(bad(path, "the Parquet footer length exceeds the file"));
    }
    if footer_len + 8 > n as u64 {
        let from = size - 8 - footer_len;
        tail = match store.get_range(path, from..size).await? {
            Some(t) => t,
            None => return Ok(None),
        };
    }
    let n = tail.len();
    let footer: Bytes = tail.slice(n - 8 - footer_len as usize..n - 8);
    let meta = ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| bad(path, format!("unreadable Parquet footer: {e}")))?;
    let file = meta.file_metadata();
    let rows_through = file
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == ROWS_THROUGH_KEY))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| v.parse().ok());
    Ok(Some(DataFileInfo {
        created_by: file.created_by().map(str::to_owned),
        rows: file.num_rows().max(0) as u64,
        rows_through,
    }))
}

/// The numbers of a table folder's data files, in the folder and in Fabric's processed-files
/// folders, highest last, with the path of each.
pub async fn data_files(
    store: &dyn LandingStore,
    folder: &str,
) -> Result<Vec<(u64, String)>, SinkError> {
    let listing = store.list(folder).await?;
    let mut files: Vec<(u64, String)> = listing
        .files
        .iter()
        .filter_map(|(name, _)| parse_data_file_name(name).map(|n| (n, join(&[folder, name]))))
        .collect();
    for dir in PROCESSED_DIRS {
        if listing.dirs.iter().any(|d| d == dir) {
            for (name, _) in store.list(&join(&[folder, dir])).await?.files {
                if let Some(n) = parse_data_file_name(&name) {
                    files.push((n, join(&[folder, dir, &name])));
                }
            }
        }
    }
    files.sort();
    files.dedup_by_key(|f| f.0);
    Ok(files)
}

/// The newest data file of a folder: its number and footer facts.
pub async fn newest(
    store: &dyn LandingStore,
    folder: &str,
) -> Result<Option<(u64, DataFileInfo)>, SinkError> {
    let files = data_files(store, folder).await?;
    let Some((n, path)) = files.last() else {
        return Ok(None);
    };
    // Prefer the copy in the table folder (processed copies are removed after a while).
    let in_folder = join(&[folder, &data_file_name(*n)]);
    let path = if files.iter().any(|(m, p)| m == n && *p == in_folder) {
        in_folder
    } else {
        path.clone()
    };
    Ok(read_info(store, &path).await?.map(|info| (*n, info)))
}
