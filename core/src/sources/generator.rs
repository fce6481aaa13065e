//! The `generator` source: deterministic synthetic change rows, for smoke tests and benchmarks.
//!
//! Rows are a pure function of `seed` and their position, so a run resumed from a checkpoint emits
//! exactly what an uninterrupted run would have. Batches go to the configured tables in turn; each
//! row inserts a new key, upserts an existing one or deletes one, in the configured proportions.
//! Columns cover every Arrow type a landing-zone sink supports:
//!
//! | column | type | notes |
//! |---|---|---|
//! | `id` | int64 | key, per table 0, 1, 2, ... |
//! | `seq` | int64 | the row's position in the source's output |
//! | `name` | utf8 | |
//! | `quantity` | int32 | |
//! | `price` | float64 | |
//! | `active` | bool | |
//! | `created_at` | timestamp(ms, UTC) | |
//! | `day` | date32 | |
//! | `amount` | decimal128(18, 2) | |
//! | `payload` | binary | `payload_bytes` long |
//! | `note` | utf8 | null every 7th row |
//! | `extra` | utf8 | only after `new_column_after` rows (schema growth) |
//!
//! Delete rows carry the key and nulls elsewhere.
//!
//! ```toml
//! [sources.gen]
//! type = "generator"
//! count = 100000            # total rows; omit for an endless stream
//! rate = 5000               # rows per second; omit for as fast as possible
//! batch_size = 1000
//! tables = ["orders", "customers"]
//! schema = "demo"           # optional: tables become demo.schema/<table>
//! update_ratio = 0.2
//! delete_ratio = 0.05
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::component::{BuildError, Source, SourceConfig, SourceContext, SourceItem};
use crate::error::ComponentError;
use crate::model::{ChangeBatch, Checkpoint, CheckpointState, RowOp, Table, TableId};

/// `[sources.<name>] type = "generator"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Total rows to emit; `None` for an endless stream.
    pub count: Option<u64>,
    /// Rows per second; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// Rows per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Target table names.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
    /// Schema of the target tables.
    pub schema: Option<String>,
    /// Seed of the pseudo-random values.
    #[serde(default)]
    pub seed: u64,
    /// Fraction of rows that upsert an existing key.
    #[serde(default)]
    pub update_ratio: f64,
    /// Fraction of rows that delete an existing key.
    #[serde(default)]
    pub delete_ratio: f64,
    /// Length of the `payload` column (use ~900 for ~1 KB rows).
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    /// Add the `extra` column to rows from this position on.
    pub new_column_after: Option<u64>,
}

fn default_batch_size() -> usize {
    1000
}

fn default_tables() -> Vec<String> {
    vec!["generated".to_owned()]
}

fn default_payload_bytes() -> usize {
    16
}

crate::register_source!(
    "generator",
    GeneratorConfig,
    "deterministic synthetic rows (smoke tests, benchmarks)"
);

/// Referenced from the crate's `link()` so the linker keeps this module's registration.
#[inline(never)]
pub(crate) fn link() {}

/// The generator's checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct GeneratorState {
    /// Rows emitted so far.
    emitted: u64,
    /// Next new key per table.
    next_key: BTreeMap<String, u64>,
}

#[async_trait]
impl SourceConfig for GeneratorConfig {
    async fn build(&self, cx: SourceContext) -> Result<Box<dyn Source>, BuildError> {
        self.validate().map_err(|m| BuildError::new(&cx.name, m))?;
        let state = match cx.resume.source() {
            Some(s) => s.to_json::<GeneratorState>().map_err(|e| {
                BuildError::new(
                    &cx.name,
                    format!("its checkpoint is not a generator checkpoint: {e}"),
                )
            })?,
            None => GeneratorState::default(),
        };
        Ok(Box::new(Generator::new(self.clone(), state)))
    }

    fn describe(&self) -> String {
        let count = self
            .count
            .map_or("endless".to_owned(), |c| format!("{c} rows"));
        format!("{count} into {} table(s)", self.tables.len())
    }

    fn describe_state(&self, state: &CheckpointState) -> String {
        match state.to_json::<GeneratorState>() {
            Ok(s) => match self.count {
                Some(total) => format!("emitted {} of {total} rows", s.emitted),
                None => format!("emitted {} rows", s.emitted),
            },
            Err(_) => format!("{state:?}"),
        }
    }
}

impl GeneratorConfig {
    fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        if self.tables.is_empty() {
            return Err("tables must name at least one table".into());
        }
        if !(0.0..=1.0).contains(&(self.update_ratio + self.delete_ratio))
            || self.update_ratio < 0.0
            || self.delete_ratio < 0.0
        {
            return Err("update_ratio and delete_ratio must be >= 0 and sum to at most 1".into());
        }
        if matches!(self.rate, Some(r) if r.is_nan() || r <= 0.0) {
            return Err("rate must be a positive number of rows per second".into());
        }
        Ok(())
    }
}

/// The running generator.
struct Generator {
    config: GeneratorConfig,
    state: GeneratorState,
    tables: Vec<Arc<Table>>,
    started: Instant,
    emitted_at_start: u64,
}

impl Generator {
    fn new(config: GeneratorConfig, state: GeneratorState) -> Self {
        let tables = config
            .tables
            .iter()
            .map(|name| {
                let id = match &config.schema {
                    Some(schema) => TableId::with_schema(schema.clone(), name.clone()),
                    None => TableId::new(name.clone()),
                };
                Arc::new(Table::new(id, ["id"]))
            })
            .collect();
        let emitted_at_start = state.emitted;
        Self {
            config,
            state,
            tables,
            started: Instant::now(),
            emitted_at_start,
        }
    }

    fn schema(&self, with_extra: bool) -> SchemaRef {
        let mut fields = vec![
            Field::new("id", DataType::Int64, false),
            Field::new("seq", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("quantity", DataType::Int32, true),
            Field::new("price", DataType::Float64, true),
            Field::new("active", DataType::Boolean, true),
            Field::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("payload", DataType::Binary, true),
            Field::new("note", DataType::Utf8, true),
        ];
        if with_extra {
            fields.push(Field::new("extra", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    fn next_batch(&mut self) -> Result<ChangeBatch, ComponentError> {
        let remaining = self
            .config
            .count
            .map_or(u64::MAX, |c| c - self.state.emitted);
        let n = (self.config.batch_size as u64).min(remaining) as usize;
        let batch_index = self.state.emitted / self.config.batch_size as u64;
        let table = self.tables[(batch_index % self.tables.len() as u64) as usize].clone();
        let table_name = table.id.name().to_owned();
        let first_seq = self.state.emitted;
        let with_extra = self
            .config
            .new_column_after
            .is_some_and(|after| first_seq + n as u64 > after);

        let mut id = Int64Builder::with_capacity(n);
        let mut seq = Int64Builder::with_capacity(n);
        let mut name = StringBuilder::with_capacity(n, n * 12);
        let mut quantity = Int32Builder::with_capacity(n);
        let mut price = Float64Builder::with_capacity(n);
        let mut active = BooleanBuilder::with_capacity(n);
        let mut created = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut day = Date32Builder::with_capacity(n);
        let mut amount = Decimal128Builder::with_capacity(n)
            .with_precision_and_scale(18, 2)
            .map_err(ComponentError::permanent)?;
        let mut payload = BinaryBuilder::with_capacity(n, n * self.config.payload_bytes);
        let mut note = StringBuilder::with_capacity(n, n * 8);
        let mut extra = StringBuilder::with_capacity(n, n * 8);
        let mut ops = Vec::with_capacity(n);
        let mut payload_buf = vec![0u8; self.config.payload_bytes];

        for i in 0..n as u64 {
            let s = first_seq + i;
            let h = mix(self.config.seed, s);
            let next_key = self.state.next_key.entry(table_name.clone()).or_insert(0);
            let roll = (h >> 11) as f64 / (1u64 << 53) as f64;
            let (op, key) =
                if *next_key == 0 || roll >= self.config.update_ratio + self.config.delete_ratio {
                    *next_key += 1;
                    (RowOp::Insert, *next_key - 1)
                } else if roll < self.config.delete_ratio {
                    (RowOp::Delete, mix(h, 1) % *next_key)
                } else {
                    (RowOp::Upsert, mix(h, 2) % *next_key)
                };
            ops.push(op);
            id.append_value(key as i64);
            if op == RowOp::Delete {
                seq.append_null();
                name.append_null();
                quantity.append_null();
                price.append_null();
                active.append_null();
                created.append_null();
                day.append_null();
                amount.append_null();
                payload.append_null();
                note.append_null();
                extra.append_null();
                continue;
            }
            seq.append_value(s as i64);
            name.append_value(format!("item-{key}-{}", h % 1000));
            quantity.append_value((h % 1000) as i32 - 100);
            price.append_value((h % 100_000) as f64 / 100.0);
            active.append_value(h & 1 == 1);
            created.append_value(1_700_000_000_000 + (s as i64) * 1000);
            day.append_value(19_000 + (s % 3650) as i32);
            amount.append_value((h % 10_000_000) as i128 - 5_000_000);
            for (j, b) in payload_buf.iter_mut().enumerate() {
                *b = (h >> ((j % 8) * 8)) as u8 ^ j as u8;
            }
            payload.append_value(&payload_buf);
            if s.is_multiple_of(7) {
                note.append_null();
            } else {
                note.append_value(format!("note {s}"));
            }
            match self.config.new_column_after {
                Some(after) if s >= after => extra.append_value(format!("extra {s}")),
                _ => extra.append_null(),
            }
        }
        self.state.emitted += n as u64;

        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(seq.finish()),
            Arc::new(name.finish()),
            Arc::new(quantity.finish()),
            Arc::new(price.finish()),
            Arc::new(active.finish()),
            Arc::new(created.finish()),
            Arc::new(day.finish()),
            Arc::new(amount.finish()),
            Arc::new(payload.finish()),
            Arc::new(note.finish()),
        ];
        if with_extra {
            columns.push(Arc::new(extra.finish()));
        }
        let rows = RecordBatch::try_new(self.schema(with_extra), columns)
            .map_err(ComponentError::permanent)?;
        let checkpoint = Checkpoint::source(
            CheckpointState::from_json(&self.state).map_err(ComponentError::permanent)?,
        );
        ChangeBatch::new(table, rows, ops, checkpoint).map_err(ComponentError::permanent)
    }
}

#[async_trait]
impl Source for Generator {
    async fn next(&mut self) -> Result<Option<SourceItem>, ComponentError> {
        if self.config.count.is_some_and(|c| self.state.emitted >= c) {
            return Ok(None);
        }
        if let Some(rate) = self.config.rate {
            let due = (self.state.emitted - self.emitted_at_start) as f64 / rate;
            tokio::time::sleep_until(self.started + Duration::from_secs_f64(due)).await;
        }
        self.next_batch().map(|b| Some(SourceItem::Batch(b)))
    }
}

/// SplitMix64 of a seed and a position: cheap, deterministic, well spread.
fn mix(seed: u64, position: u64) -> u64 {
    let mut z = seed ^ position.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ResumeState;
    use crate::model::Partition;

    fn config(count: u64) -> GeneratorConfig {
        toml::from_str(&format!(
            "count = {count}\nbatch_size = 7\ntables = [\"a\", \"b\"]\nupdate_ratio = 0.3\ndelete_ratio = 0.1\nseed = 9"
        ))
        .unwrap()
    }

    async fn drain(source: &mut dyn Source) -> Vec<ChangeBatch> {
        let mut out = Vec::new();
        while let Some(item) = source.next().await.unwrap() {
            if let SourceItem::Batch(b) = item {
                out.push(b);
            }
        }
        out
    }

    fn cx(resume: ResumeState) -> SourceContext {
        SourceContext::standalone("gen", resume)
    }

    #[tokio::test]
    async fn resuming_from_any_checkpoint_emits_the_same_rows() {
        let mut whole = config(50).build(cx(ResumeState::empty())).await.unwrap();
        let all = drain(&mut *whole).await;
        assert_eq!(all.iter().map(|b| b.num_rows()).sum::<usize>(), 50);
        assert!(all.iter().any(|b| b.ops().contains(&RowOp::Delete)));
        assert!(all.iter().any(|b| b.ops().contains(&RowOp::Upsert)));

        for cut in 1..all.len() {
            let mut resume = ResumeState::empty();
            resume.apply(all[cut - 1].checkpoint(), chrono::Utc::now());
            let mut rest = config(50).build(cx(resume)).await.unwrap();
            let tail = drain(&mut *rest).await;
            assert_eq!(tail.len(), all.len() - cut);
            for (a, b) in all[cut..].iter().zip(&tail) {
                assert_eq!(a.rows(), b.rows());
                assert_eq!(a.ops(), b.ops());
                assert_eq!(a.table(), b.table());
            }
        }
    }

    #[tokio::test]
    async fn a_finished_generator_has_nothing_left() {
        let mut g = config(10).build(cx(ResumeState::empty())).await.unwrap();
        let batches = drain(&mut *g).await;
        let mut resume = ResumeState::empty();
        resume.apply(batches.last().unwrap().checkpoint(), chrono::Utc::now());
        assert!(resume.entries().all(|(p, _)| *p == Partition::Source));
        let mut again = config(10).build(cx(resume)).await.unwrap();
        assert!(again.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn new_column_appears_after_the_configured_row() {
        let mut c = config(30);
        c.new_column_after = Some(14);
        let mut g = c.build(cx(ResumeState::empty())).await.unwrap();
        let batches = drain(&mut *g).await;
        assert!(batches[0].schema().column_with_name("extra").is_none());
        assert!(batches
            .last()
            .unwrap()
            .schema()
            .column_with_name("extra")
            .is_some());
    }

    #[tokio::test]
    async fn invalid_settings_are_refused() {
        let mut c = config(1);
        c.delete_ratio = 0.95;
        let err = c.build(cx(ResumeState::empty())).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "gen: update_ratio and delete_ratio must be >= 0 and sum to at most 1"
        );
    }
}
