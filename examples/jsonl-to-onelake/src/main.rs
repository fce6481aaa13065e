//! Feeds a Fabric Open Mirroring landing zone from a JSON Lines export of any database, with
//! `mirror-onelake` as a library (no engine, no MongoDB).
//!
//! ```text
//! cargo run -p jsonl-to-onelake -- examples/jsonl-to-onelake/people.jsonl ./landing-zone \
//!     --table crm.schema/people --key id
//! cargo run -p onelake-sim -- replicate ./landing-zone --rows
//! ```
//!
//! Each line is one row, an object. `_op` (optional) says what the row does: `insert`, `update`,
//! `upsert` (the default) or `delete` (only the key is needed). Column types are inferred from the
//! whole file: integers, floats (integers and floats mixed), booleans, strings; nested objects and
//! arrays become JSON strings, as Open Mirroring requires. A landing-zone URL
//! (`https://onelake.dfs.fabric.microsoft.com/<workspace>/<item>/Files/LandingZone`) works too, with
//! credentials from the `AZURE_*` environment variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use clap::Parser;
use mirror_core::{RowOp, Table, TableId};
use mirror_onelake::{LandingZoneWriter, SinkError, WriterOptions};
use serde_json::{Map, Value};

#[derive(Parser, Debug)]
#[command(about = "Write a JSON Lines file into an Open Mirroring landing zone")]
struct Args {
    /// The JSON Lines file.
    input: std::path::PathBuf,
    /// The landing zone: a directory or a OneLake / ADLS URL.
    landing_zone: String,
    /// The target table, `<schema>.schema/<table>` or `<table>`.
    #[arg(long)]
    table: String,
    /// Key columns (repeat for a composite key).
    #[arg(long = "key", required = true)]
    keys: Vec<String>,
    /// Rows per batch.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
}

/// The Arrow type of one column, inferred over every row.
fn infer(values: &[&Value]) -> DataType {
    let mut ty: Option<DataType> = None;
    for v in values {
        let t = match v {
            Value::Null => continue,
            Value::Bool(_) => DataType::Boolean,
            Value::Number(n) if n.is_i64() => DataType::Int64,
            Value::Number(_) => DataType::Float64,
            _ => DataType::Utf8,
        };
        ty = Some(match (ty, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(DataType::Int64), DataType::Float64)
            | (Some(DataType::Float64), DataType::Int64) => DataType::Float64,
            _ => DataType::Utf8,
        });
    }
    ty.unwrap_or(DataType::Utf8)
}

fn column(ty: &DataType, values: &[&Value]) -> ArrayRef {
    match ty {
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            values.iter().for_each(|v| b.append_option(v.as_bool()));
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            values.iter().for_each(|v| b.append_option(v.as_i64()));
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::new();
            values.iter().for_each(|v| b.append_option(v.as_f64()));
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::String(s) => b.append_value(s),
                    other => b.append_value(other.to_string()),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// One input row and what it does.
pub type InputRow = (RowOp, Map<String, Value>);

/// Parses the file into rows and operations.
pub fn read_rows(text: &str) -> Result<Vec<InputRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let Value::Object(mut object) =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?
        else {
            return Err(format!("line {}: not a JSON object", n + 1));
        };
        let op = match object.remove("_op").as_ref().and_then(Value::as_str) {
            None | Some("upsert") => RowOp::Upsert,
            Some("insert") => RowOp::Insert,
            Some("update") => RowOp::Update,
            Some("delete") => RowOp::Delete,
            Some(other) => return Err(format!("line {}: unknown _op `{other}`", n + 1)),
        };
        rows.push((op, object));
    }
    Ok(rows)
}

/// Writes `rows` into `writer` as `table`, `batch_rows` at a time.
pub async fn write_all(
    writer: &mut LandingZoneWriter,
    table: &Arc<Table>,
    rows: &[InputRow],
    batch_rows: usize,
) -> Result<(), SinkError> {
    // One type per column for the whole file: Fabric refuses a column that changes type.
    let mut names: Vec<String> = Vec::new();
    for (_, row) in rows {
        for k in row.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let null = Value::Null;
    let types: BTreeMap<&String, DataType> = names
        .iter()
        .map(|name| {
            let values: Vec<&Value> = rows
                .iter()
                .map(|(_, r)| r.get(name).unwrap_or(&null))
                .collect();
            (name, infer(&values))
        })
        .collect();
    for chunk in rows.chunks(batch_rows.max(1)) {
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(n, types[n].clone(), true))
            .collect();
        let columns: Vec<ArrayRef> = names
            .iter()
            .map(|n| {
                let values: Vec<&Value> = chunk
                    .iter()
                    .map(|(_, r)| r.get(n).unwrap_or(&null))
                    .collect();
                column(&types[n], &values)
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| SinkError::Config(e.to_string()))?;
        let ops = chunk.iter().map(|(op, _)| *op).collect();
        writer.write_rows(table, batch, ops).await?;
    }
    writer.flush().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.input)?;
    let rows = read_rows(&text)?;
    let id: TableId = args.table.parse()?;
    let table = Arc::new(Table::new(id, args.keys.clone()));
    let options = WriterOptions {
        name: "jsonl-to-onelake".into(),
        partner: mirror_onelake::metadata::PartnerInfo {
            source_type: "jsonl".into(),
            ..Default::default()
        },
        ..WriterOptions::default()
    };
    let mut writer = LandingZoneWriter::open_location(&args.landing_zone, options).await?;
    write_all(&mut writer, &table, &rows, args.batch_rows).await?;
    writer.close().await?;
    let stats = writer.stats();
    println!(
        "wrote {} rows in {} file(s), {} bytes, into {} ({})",
        stats.rows,
        stats.files,
        stats.bytes,
        args.landing_zone,
        mirror_onelake::naming::table_folder(&table.id)?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use onelake_sim::{LocalDir, Replicator, TableStatus, Value as Cell};

    #[tokio::test]
    async fn the_sample_file_replicates_as_expected() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../people.jsonl");
        let rows = read_rows(text).unwrap();
        let table = Arc::new(Table::new("crm.schema/people".parse().unwrap(), ["id"]));
        let location = dir.path().display().to_string();
        let mut writer = LandingZoneWriter::open_location(&location, WriterOptions::default())
            .await
            .unwrap();
        write_all(&mut writer, &table, &rows, 3).await.unwrap();
        writer.close().await.unwrap();

        let mut replicator = Replicator::new(Arc::new(LocalDir::new(dir.path())));
        replicator.scan().unwrap();
        let people = replicator.table("crm.schema/people").unwrap();
        assert_eq!(people.status, TableStatus::Replicating);
        let ids: Vec<Cell> = people.rows().iter().map(|r| r["id"].clone()).collect();
        assert_eq!(
            ids,
            [Cell::Int(1), Cell::Int(2), Cell::Int(3), Cell::Int(5)]
        );
        let grace = &people.rows_with_key(&[Cell::Int(3)])[0];
        assert_eq!(grace["email"], Cell::Str("grace@example.org".into()));
        assert_eq!(grace["score"], Cell::float(9.9));
        let ada = &people.rows_with_key(&[Cell::Int(1)])[0];
        assert_eq!(ada["tags"], Cell::Str("[\"math\",\"poetry\"]".into()));
        assert_eq!(people.column("score").unwrap().delta_type, "double");
        assert_eq!(people.column("address").unwrap().delta_type, "string");
    }
}
