//! Benchmark: 1M rows (~1 KB, 20 columns) through the sink into a local landing zone, compared
//! with Parquet encoding alone in the same run.
//!
//! ```text
//! cargo run --release -p mirror-onelake --example bench_local -- [--rows 1000000] [--file-rows 100000] [--compression snappy]
//! ```
//!
//! Prints rows/s, MB/s (of Arrow input and of Parquet written), p50/p99 publish latency per file,
//! peak RSS, and the ratio to encoding alone. The rows are generated before timing starts. The
//! sink runs twice: with one file encoded at a time (`encode_concurrency = 1`, the one-core
//! figure) and with the default (one per core, at most 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringBuilder, TimestampMillisecondArray,
};
use mirror_core::{RowOp, Table, TableId};
use mirror_onelake::encode::{encode_file, writer_properties, MarkerMode};
use mirror_onelake::schema::TableSchema;
use mirror_onelake::store::{LandingStore, LocalStore};
use mirror_onelake::writer::default_encode_concurrency;
use mirror_onelake::{Compression, LandingZoneWriter, WriterOptions, WriterStats};

// The allocator the `mirror` binary ships with (see the root Cargo.toml), so the figures are the
// product's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WORDS: &[&str] = &[
    "order",
    "customer",
    "shipped",
    "pending",
    "invoice",
    "payment",
    "refund",
    "item",
    "warehouse",
    "express",
    "standard",
    "returned",
    "priority",
    "discount",
    "gift",
    "account",
    "north",
    "south",
];

fn batch(start: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let int = |k: i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            ids.iter().map(|i| i.wrapping_mul(k) % 1_000_003),
        ))
    };
    let float = |k: f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            ids.iter().map(|i| *i as f64 * k),
        ))
    };
    let mut strings: Vec<ArrayRef> = Vec::new();
    for s in 0..5 {
        let mut b = StringBuilder::with_capacity(n, n * 20);
        for i in &ids {
            let w = WORDS[((*i as usize) + s * 7) % WORDS.len()];
            b.append_value(format!("{w}-{:08}-{s}", i % 10_000_000));
        }
        strings.push(Arc::new(b.finish()));
    }
    let mut payload = BinaryBuilder::with_capacity(n, n * 830);
    let mut buf = String::with_capacity(900);
    for i in &ids {
        buf.clear();
        let mut x = *i as u64 ^ 0x9E37_79B9_7F4A_7C15;
        while buf.len() < 820 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
            buf.push(' ');
            if x.is_multiple_of(5) {
                buf.push_str(&(x % 100_000).to_string());
                buf.push(' ');
            }
        }
        payload.append_value(buf.as_bytes());
    }
    let mut columns: Vec<(String, ArrayRef)> =
        vec![("id".into(), Arc::new(Int64Array::from(ids.clone())))];
    for k in 1..=5 {
        columns.push((format!("n{k}"), int(k * 31 + 7)));
    }
    for k in 1..=3 {
        columns.push((format!("f{k}"), float(k as f64 * 0.37)));
    }
    columns.push((
        "flag1".into(),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|i| Some(i % 2 == 0)),
        )),
    ));
    columns.push((
        "flag2".into(),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|i| Some(i % 3 == 0)),
        )),
    ));
    columns.push((
        "ts".into(),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(
                ids.iter().map(|i| 1_700_000_000_000 + i * 1000),
            )
            .with_timezone("UTC"),
        ),
    ));
    columns.push((
        "day".into(),
        Arc::new(Date32Array::from_iter_values(
            ids.iter().map(|i| 19_000 + (*i % 3650) as i32),
        )),
    ));
    columns.push((
        "amount".into(),
        Arc::new(
            Decimal128Array::from_iter_values(ids.iter().map(|i| (*i as i128 * 1234) % 10_000_000))
                .with_precision_and_scale(18, 2)
                .expect("valid decimal"),
        ),
    ));
    for (s, a) in strings.into_iter().enumerate() {
        columns.push((format!("s{}", s + 1), a));
    }
    columns.push(("payload".into(), Arc::new(payload.finish())));
    RecordBatch::try_from_iter(columns).expect("valid batch")
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = arg("--rows").map_or(Ok(1_000_000), |v| v.parse())?;
    let file_rows: usize = arg("--file-rows").map_or(Ok(100_000), |v| v.parse())?;
    let compression: Compression = match arg("--compression").as_deref() {
        None | Some("snappy") => Compression::Snappy,
        Some("zstd") => Compression::Zstd,
        Some("gzip") => Compression::Gzip,
        Some("none") => Compression::None,
        Some(other) => return Err(format!("unknown compression {other}").into()),
    };
    let batch_rows = 10_000;
    let batches: Vec<RecordBatch> = (0..rows.div_ceil(batch_rows))
        .map(|b| {
            batch(
                (b * batch_rows) as i64,
                batch_rows.min(rows - b * batch_rows),
            )
        })
        .collect();
    let input_bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let row_bytes = input_bytes as f64 / rows as f64;
    println!(
        "{rows} rows x {} columns, ~{row_bytes:.0} bytes/row in Arrow, {compression:?}, {file_rows} rows per file, cores: {}",
        batches[0].num_columns(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Parquet encoding alone, same files.
    let mut schema = TableSchema::new("bench");
    let conformed: Vec<RecordBatch> = batches
        .iter()
        .map(|b| schema.conform(b).map(|c| c.rows))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut encoded_bytes = 0usize;
    for chunk in conformed.chunks(file_rows.div_ceil(batch_rows).max(1)) {
        let parts: Vec<(RecordBatch, Arc<[RowOp]>)> = chunk
            .iter()
            .map(|b| (b.clone(), Arc::from(vec![RowOp::Upsert; b.num_rows()])))
            .collect();
        let bytes = encode_file(
            &schema,
            parts,
            MarkerMode::Markers { keyed: true },
            writer_properties(compression),
        )?;
        encoded_bytes += bytes.len();
    }
    let encode_secs = started.elapsed().as_secs_f64();

    println!(
        "encode only : {:>9.0} rows/s  {:>7.1} MB/s Arrow in  {:>7.1} MB/s Parquet out  ({encode_secs:.2} s, {:.1} MB Parquet)",
        rows as f64 / encode_secs,
        mb(input_bytes) / encode_secs,
        mb(encoded_bytes) / encode_secs,
        mb(encoded_bytes)
    );
    for encoders in [1, default_encode_concurrency()] {
        let (sink_secs, stats) = sink(&batches, compression, file_rows, encoders).await?;
        assert_eq!(stats.rows as usize, rows);
        let mut latencies = stats.publish_latencies.clone();
        latencies.sort();
        println!(
            "sink, {encoders} enc : {:>9.0} rows/s  {:>7.1} MB/s Arrow in  {:>7.1} MB/s Parquet out  ({sink_secs:.2} s, {} files, encoding {:.2} s); ratio to encode only {:.2}; publish per file p50 {:.1} ms, p99 {:.1} ms",
            rows as f64 / sink_secs,
            mb(input_bytes) / sink_secs,
            mb(stats.bytes as usize) / sink_secs,
            stats.files,
            stats.encode_time.as_secs_f64(),
            encode_secs / sink_secs,
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "peak RSS: {:.0} MB (includes the {:.0} MB of pre-generated input)",
        peak_rss_mb(),
        mb(input_bytes)
    );
    Ok(())
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// The sink: conform, buffer, encode, temp + fsync + link publish into a local directory.
async fn sink(
    batches: &[RecordBatch],
    compression: Compression,
    file_rows: usize,
    encoders: usize,
) -> Result<(f64, WriterStats), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("mirror-bench-{}", std::process::id()));
    let store: Arc<dyn LandingStore> = Arc::new(LocalStore::new(&dir));
    let mut writer = LandingZoneWriter::open(
        store,
        WriterOptions {
            compression,
            max_file_rows: file_rows,
            max_file_bytes: usize::MAX,
            encode_concurrency: encoders,
            ..WriterOptions::default()
        },
    )
    .await?;
    let table = Arc::new(Table::new(TableId::with_schema("bench", "rows"), ["id"]));
    let started = Instant::now();
    for b in batches {
        writer
            .write_rows(&table, b.clone(), vec![RowOp::Upsert; b.num_rows()])
            .await?;
    }
    writer.close().await?;
    let secs = started.elapsed().as_secs_f64();
    let stats = writer.stats().clone();
    drop(writer);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((secs, stats))
}
