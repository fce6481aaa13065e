//! Throughput of BSON -> Arrow conversion on ~1 KB order documents (25 top-level fields, nested
//! sub-documents and arrays), single-threaded.
//!
//! `cargo bench -p mirror-mongodb --bench bson_to_arrow` (env `BENCH_DOCS`, default 1,000,000;
//! `BENCH_BATCH`, default 4096). Prints documents/s and MB/s for: a baseline that only walks every
//! element of the raw documents (reading each value), and conversion with the default mapping
//! (sub-documents and arrays as JSON) and with `flatten_depth = 2`.

use std::hint::black_box;
use std::str::FromStr;
use std::time::Instant;

use bson::oid::ObjectId;
use bson::raw::{RawBsonRef, RawDocument};
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Decimal128, RawDocumentBuf};
use mirror_core::mapping::{TableMapping, TableSchemaState};
use mirror_mongodb::bson_arrow::BsonConverter;
use mongo_sim::workload::Rng;

fn order(rng: &mut Rng, i: u64) -> RawDocumentBuf {
    let mut oid = [0u8; 12];
    oid[..8].copy_from_slice(&i.to_be_bytes());
    let created = 1_700_000_000_000 + rng.below(100_000_000_000) as i64;
    let items: Vec<Bson> = (0..3)
        .map(|k| {
            Bson::Document(doc! {
                "sku": format!("SKU-{:06}", rng.below(1_000_000)),
                "qty": (1 + rng.below(5)) as i32,
                "price": rng.below(100_000) as f64 / 100.0,
                "line": k,
            })
        })
        .collect();
    let d = doc! {
        "_id": ObjectId::from_bytes(oid),
        "orderNo": format!("ORD-{i:010}"),
        "customerId": ObjectId::from_bytes([7; 12]),
        "status": (["new", "paid", "shipped", "delivered"][rng.below(4) as usize]),
        "createdAt": DateTime::from_millis(created),
        "updatedAt": DateTime::from_millis(created + 3_600_000),
        "total": rng.below(1_000_000) as f64 / 100.0,
        "subtotal": rng.below(1_000_000) as f64 / 100.0,
        "tax": rng.below(10_000) as f64 / 100.0,
        "currency": "EUR",
        "itemsCount": 3,
        "paid": rng.below(2) == 0,
        "priority": rng.below(10) as i32,
        "version": rng.below(1 << 40) as i64,
        "discount": Decimal128::from_str(&format!("{}.{:02}", rng.below(100), rng.below(100))).unwrap(),
        "notes": rng.word(160),
        "email": format!("{}@example.com", rng.word(10)),
        "phone": format!("+33 6 {:08}", rng.below(100_000_000)),
        "channel": (["web", "app", "store"][rng.below(3) as usize]),
        "tags": [rng.word(6), rng.word(5), rng.word(7)],
        "customer": {
            "name": rng.word(12),
            "email": format!("{}@example.org", rng.word(8)),
            "tier": rng.below(4) as i32,
            "address": {
                "street": format!("{} {} street", rng.below(200), rng.word(9)),
                "city": rng.word(8),
                "zip": format!("{:05}", rng.below(100_000)),
                "country": "FR",
            },
        },
        "items": items,
        "shipping": { "method": "express", "cost": 4.99, "eta": DateTime::from_millis(created + 172_800_000) },
        "metrics": { "views": rng.below(1000) as i64, "clicks": rng.below(100) as i32 },
        "session": Bson::Binary(Binary { subtype: BinarySubtype::Uuid, bytes: rng.next().to_le_bytes().repeat(2) }),
    };
    RawDocumentBuf::from_document(&d).unwrap()
}

fn walk(doc: &RawDocument) -> usize {
    let mut n = 0;
    for elem in doc.iter_elements() {
        let elem = elem.unwrap();
        n += elem.key().len() + walk_value(elem.value().unwrap());
    }
    n
}

fn walk_value(value: RawBsonRef<'_>) -> usize {
    match value {
        RawBsonRef::Document(d) => walk(d),
        RawBsonRef::Array(a) => a.into_iter().map(|v| walk_value(v.unwrap())).sum(),
        v => {
            black_box(v);
            1
        }
    }
}

/// Time this thread spent on a CPU, from `/proc/thread-self/schedstat` (Linux), so that figures
/// hold on a machine shared with other work; `None` elsewhere.
fn cpu_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// A wall-clock and on-CPU stopwatch.
struct Watch(Instant, Option<f64>);

impl Watch {
    fn start() -> Self {
        Watch(Instant::now(), cpu_time())
    }

    /// (wall seconds, on-CPU seconds; wall again where CPU time is unknown)
    fn stop(&self) -> (f64, f64) {
        let wall = self.0.elapsed().as_secs_f64();
        let cpu = match (self.1, cpu_time()) {
            (Some(a), Some(b)) => b - a,
            _ => wall,
        };
        (wall, cpu)
    }
}

/// Prints one line; rates are per on-CPU second (one core), the wall-clock rate in brackets.
fn report(label: &str, docs: usize, bytes: usize, times: (f64, f64), baseline: Option<f64>) -> f64 {
    let (wall, cpu) = times;
    let rate = docs as f64 / cpu;
    let ratio = baseline.map_or(String::new(), |b| {
        format!(", {:.2}x the walk's time", b / rate)
    });
    println!(
        "{label:<38} {rate:>9.0} docs/s {:>6.1} MB/s per core  (wall {:.0} docs/s; {docs} docs, {cpu:.2} s CPU{ratio})",
        bytes as f64 / cpu / 1e6,
        docs as f64 / wall,
    );
    rate
}

fn main() {
    let total: usize = std::env::var("BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batch: usize = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let distinct = total.min(100_000);
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let docs: Vec<RawDocumentBuf> = (0..distinct as u64).map(|i| order(&mut rng, i)).collect();
    let avg = docs.iter().map(|d| d.as_bytes().len()).sum::<usize>() / distinct;
    let top = docs[0].iter().count();
    println!(
        "{total} conversions of {distinct} distinct documents, avg {avg} bytes, {top} top-level fields, batches of {batch}"
    );
    let order_of = |k: usize| &docs[k % distinct];
    let bytes: usize = (0..total).map(|k| order_of(k).as_bytes().len()).sum();

    let t = Watch::start();
    let mut n = 0;
    for k in 0..total {
        n += walk(order_of(k));
    }
    black_box(n);
    let base = report("walk raw elements (baseline)", total, bytes, t.stop(), None);

    for (label, mapping) in [
        ("convert, default mapping", TableMapping::default()),
        (
            "convert, flatten_depth = 2",
            TableMapping {
                flatten_depth: 2,
                ..TableMapping::default()
            },
        ),
    ] {
        let mut conv =
            BsonConverter::new("bench.orders", mapping, TableSchemaState::new()).unwrap();
        let mut refs: Vec<&RawDocument> = Vec::with_capacity(batch);
        let mut rows = 0;
        let mut columns = 0;
        let t = Watch::start();
        let mut k = 0;
        while k < total {
            refs.clear();
            let end = (k + batch).min(total);
            refs.extend((k..end).map(|j| order_of(j).as_ref()));
            let out = conv.convert_documents(&refs).unwrap();
            rows += out.num_rows();
            columns = out.num_columns();
            black_box(out);
            k = end;
        }
        let times = t.stop();
        assert_eq!(rows, total);
        report(
            &format!("{label} ({columns} cols)"),
            total,
            bytes,
            times,
            Some(base),
        );
    }
}
