//! Example runtime plugin: a source reading a JSON Lines file, standing in for "another database"
//! that reuses mirror's sinks (e.g. the Open Mirroring sink).
//!
//! ```toml
//! [sources.legacy]
//! type = "jsonl_file"
//! path = "export.jsonl"
//! table = "legacy.schema/customers"
//! key = "id"
//! batch_size = 1000
//! ```
//!
//! Each line is a JSON object; `"_deleted": true` marks a delete of that key. The column types are
//! inferred once from the whole file (so they never change between batches). The checkpoint is the
//! number of lines consumed, so a restarted run continues after the last committed batch.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use mirror_plugin_sdk::{export_plugin, op, Batch, PluginError, SourcePlugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: PathBuf,
    table: String,
    key: String,
    #[serde(default = "default_batch")]
    batch_size: usize,
}

fn default_batch() -> usize {
    1000
}

struct JsonlSource {
    config: Config,
    schema: SchemaRef,
    lines: std::io::Lines<BufReader<File>>,
    consumed: u64,
}

impl SourcePlugin for JsonlSource {
    fn create(config: &str, resume: Option<&[u8]>) -> Result<Self, PluginError> {
        let config: Config = toml::from_str(config).map_err(PluginError::permanent)?;
        let open = || {
            File::open(&config.path).map_err(|e| {
                PluginError::permanent(format!("cannot open {}: {e}", config.path.display()))
            })
        };
        let mut file = open()?;
        let (inferred, _) = arrow::json::reader::infer_json_schema_from_seekable(
            &mut BufReader::new(&mut file),
            None,
        )
        .map_err(PluginError::permanent)?;
        let fields: Vec<_> = inferred
            .fields()
            .iter()
            .filter(|f| f.name() != "_deleted")
            .cloned()
            .collect();
        let schema = Arc::new(Schema::new(fields));
        if schema.column_with_name(&config.key).is_none() {
            return Err(PluginError::permanent(format!(
                "no line has the key field `{}`",
                config.key
            )));
        }
        let consumed: u64 = match resume {
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| PluginError::permanent("the checkpoint is not a line count"))?,
            None => 0,
        };
        file.seek(SeekFrom::Start(0))
            .map_err(PluginError::permanent)?;
        let mut lines = BufReader::new(file).lines();
        for _ in 0..consumed {
            lines.next();
        }
        Ok(Self {
            config,
            schema,
            lines,
            consumed,
        })
    }

    fn next(&mut self) -> Result<Option<Batch>, PluginError> {
        let mut text = Vec::new();
        let mut ops = Vec::new();
        while ops.len() < self.config.batch_size {
            let Some(line) = self.lines.next() else { break };
            let line = line.map_err(PluginError::transient)?;
            self.consumed += 1;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| PluginError::permanent(format!("line {}: {e}", self.consumed)))?;
            let deleted = value
                .get("_deleted")
                .and_then(|d| d.as_bool())
                .unwrap_or(false);
            ops.push(if deleted { op::DELETE } else { op::UPSERT });
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let mut reader = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(ops.len())
            .build(Cursor::new(text))
            .map_err(PluginError::permanent)?;
        let rows = reader
            .next()
            .transpose()
            .map_err(PluginError::permanent)?
            .ok_or_else(|| PluginError::permanent("no rows decoded"))?;
        Ok(Some(Batch {
            table: self.config.table.clone(),
            key_columns: vec![self.config.key.clone()],
            rows,
            ops,
            checkpoint: Some(self.consumed.to_string().into_bytes()),
        }))
    }
}

export_plugin! {
    sources: [("jsonl_file", "reads rows from a JSON Lines file", JsonlSource)],
}
