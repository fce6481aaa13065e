//! Example runtime plugin: a sink writing each table to a JSON Lines file.
//!
//! ```toml
//! [plugins]
//! load = ["target/release/libmirror_plugin_jsonl_sink.so"]
//!
//! [sinks.files]
//! type = "jsonl"
//! inputs = ["gen"]
//! dir = "./jsonl-out"
//! ```
//!
//! Each line is `{"op": "upsert", "row": {...}}`. A batch is acknowledged once its lines are written
//! and fsynced (on flush, or every `batches_per_flush` batches).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};

use mirror_plugin_sdk::{export_plugin, op, Batch, PluginError, SinkPlugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    dir: PathBuf,
    #[serde(default = "default_batches")]
    batches_per_flush: usize,
}

fn default_batches() -> usize {
    16
}

struct JsonlSink {
    config: Config,
    files: HashMap<String, BufWriter<File>>,
    written: Vec<u64>,
    durable: Vec<u64>,
}

impl SinkPlugin for JsonlSink {
    fn create(config: &str) -> Result<Self, PluginError> {
        let config: Config = toml::from_str(config).map_err(PluginError::permanent)?;
        std::fs::create_dir_all(&config.dir).map_err(|e| {
            PluginError::permanent(format!("cannot create {}: {e}", config.dir.display()))
        })?;
        Ok(Self {
            config,
            files: HashMap::new(),
            written: Vec::new(),
            durable: Vec::new(),
        })
    }

    fn write(&mut self, batch: Batch, id: u64) -> Result<(), PluginError> {
        let file_name = format!("{}.jsonl", batch.table.replace('/', "__"));
        let file = match self.files.get_mut(&file_name) {
            Some(f) => f,
            None => {
                let path = self.config.dir.join(&file_name);
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| PluginError::transient(format!("open {}: {e}", path.display())))?;
                self.files.entry(file_name).or_insert(BufWriter::new(f))
            }
        };
        // arrow's JSON writer renders the rows; pair each with its operation.
        let rows = utc_as_offset(&batch.rows)?;
        let mut rendered = Vec::new();
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut rendered);
            writer.write(&rows).map_err(PluginError::permanent)?;
            writer.finish().map_err(PluginError::permanent)?;
        }
        let lines = rendered.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        for (row, marker) in lines.zip(&batch.ops) {
            let name = match *marker {
                op::INSERT => "insert",
                op::UPDATE => "update",
                op::DELETE => "delete",
                _ => "upsert",
            };
            file.write_all(b"{\"op\":\"")
                .map_err(PluginError::transient)?;
            file.write_all(name.as_bytes())
                .map_err(PluginError::transient)?;
            file.write_all(b"\",\"row\":")
                .map_err(PluginError::transient)?;
            file.write_all(row).map_err(PluginError::transient)?;
            file.write_all(b"}\n").map_err(PluginError::transient)?;
        }
        self.written.push(id);
        if self.written.len() >= self.config.batches_per_flush {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        for file in self.files.values_mut() {
            file.flush().map_err(PluginError::transient)?;
            file.get_ref().sync_data().map_err(PluginError::transient)?;
        }
        self.durable.append(&mut self.written);
        Ok(())
    }

    fn take_acks(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.durable)
    }
}

/// Relabels `UTC` timestamps as `+00:00` (the same instant): arrow's JSON writer resolves named
/// time zones only with its optional tz database, which this small plugin does without.
fn utc_as_offset(rows: &RecordBatch) -> Result<RecordBatch, PluginError> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
        match field.data_type() {
            DataType::Timestamp(unit, Some(tz)) if tz.as_ref() == "UTC" => {
                let to = DataType::Timestamp(*unit, Some("+00:00".into()));
                columns.push(arrow::compute::cast(column, &to).map_err(PluginError::permanent)?);
                fields.push(Field::new(field.name(), to, field.is_nullable()));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(PluginError::permanent)
}

export_plugin! {
    sinks: [("jsonl", "writes each table to a JSON Lines file", JsonlSink)],
}
