//! The equality test: a collection with varied shapes and mixed `_id` types is mirrored while random
//! inserts, updates, replaces and deletes run, during the initial sync and after it; the `mirror`
//! process is killed abruptly (SIGKILL) at random moments several times and restarted; at the end
//! the table Fabric would build from the landing zone equals the collection, row for row.
//!
//! Seeded and repeatable in its data and operations (`MIRROR_EQUALITY_SEED`). The CI size takes well
//! under a minute; `MIRROR_EQUALITY_FULL=1` runs the full size (100,000 documents).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, DateTime, Document, RawDocumentBuf};
use mirror_core::mapping::JsonFlavor;
use mirror_mongodb::bson_arrow::write_value;
use mongo_sim::{MongoSim, SimHandle, SimOptions};
use onelake_sim::{LocalDir, Replicator, TableStatus, Value};
use support::{key, replicated_rows, Rows};

const DB: &str = "eq";
const COLL: &str = "items";
const TABLE: &str = "eq.schema/items";

/// SplitMix64: small, seeded, good enough to choose operations.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `_id`s of every common type, including `1` next to `"1"`.
fn id_for(n: u64) -> Bson {
    match n % 5 {
        0 | 1 => Bson::Int64(n as i64),
        2 => Bson::String(n.to_string()),
        3 => {
            let mut bytes = [0u8; 12];
            bytes[4..].copy_from_slice(&n.to_be_bytes());
            Bson::ObjectId(bson::oid::ObjectId::from_bytes(bytes))
        }
        _ => Bson::Document(doc! {"k": n as i64, "tag": "sub"}),
    }
}

/// A document of one of several shapes; fields keep one type each so the table's columns are stable.
fn document(id: Bson, v: i64, dice: &mut Dice, late: bool) -> Document {
    let mut d = doc! {"_id": id, "v": v, "name": format!("item {}", dice.below(100_000))};
    if dice.below(4) != 0 {
        d.insert("score", (dice.below(10_000) as f64) / 7.0);
    }
    let tags: Vec<Bson> = (0..dice.below(4))
        .map(|i| Bson::String(format!("t{i}")))
        .collect();
    d.insert("tags", tags);
    if dice.below(3) != 0 {
        d.insert("nested", doc! {"a": dice.below(1000) as i64, "b": format!("x{}", dice.below(50)), "deep": {"c": [1, 2]}});
    }
    d.insert(
        "when",
        DateTime::from_millis(1_700_000_000_000 + dice.below(1_000_000_000) as i64),
    );
    if late {
        d.insert("extra", format!("new field {}", dice.below(10)));
    }
    d
}

struct Sizes {
    docs: u64,
    ops: u64,
    kills: usize,
}

fn sizes() -> Sizes {
    if std::env::var_os("MIRROR_EQUALITY_FULL").is_some() {
        Sizes {
            docs: 100_000,
            ops: 40_000,
            kills: 6,
        }
    } else {
        Sizes {
            docs: 20_000,
            ops: 8_000,
            kills: 4,
        }
    }
}

fn seed() -> u64 {
    std::env::var("MIRROR_EQUALITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42)
}

fn spawn_mirror(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,mirror_core=info")
        .env("MIRROR_API_ADDRESS", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("mirror starts")
}

/// Random writes until `stop` or `ops` operations; returns nothing, the collection is the truth.
fn write_randomly(
    sim: SimHandle,
    mut dice: Dice,
    first_new_id: u64,
    ops: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let mut next_id = first_new_id;
    let mut version = 1_000_000i64;
    for _ in 0..ops {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        version += 1;
        let pick = |dice: &mut Dice| id_for(dice.below(next_id));
        let result = match dice.below(10) {
            0..=2 => {
                next_id += 1;
                sim.insert(
                    DB,
                    COLL,
                    document(id_for(next_id - 1), version, &mut dice, true),
                )
                .map(|_| ())
            }
            3..=5 => {
                let id = pick(&mut dice);
                sim.update_one(
                    DB,
                    COLL,
                    doc! {"_id": id},
                    doc! {"$set": {"v": version, "name": format!("updated {version}")}},
                )
                .map(|_| ())
            }
            6 | 7 => {
                let id = pick(&mut dice);
                let late = dice.below(2) == 0;
                let replacement = document(id.clone(), version, &mut dice, late);
                sim.replace_one(DB, COLL, doc! {"_id": id}, replacement)
                    .map(|_| ())
            }
            _ => {
                let id = pick(&mut dice);
                sim.delete_one(DB, COLL, doc! {"_id": id}).map(|_| ())
            }
        };
        result.expect("the simulator accepts the write");
        done.fetch_add(1, Ordering::SeqCst);
        // About 1,000 writes a second: they span the initial sync, every crash and restart, and
        // the streaming afterwards.
        if version % 2 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn json(value: &Bson) -> Value {
    let raw = RawDocumentBuf::from_document(&doc! {"v": value.clone()}).unwrap();
    let mut out = String::new();
    write_value(&mut out, raw.get("v").unwrap().unwrap(), JsonFlavor::Plain).unwrap();
    Value::Str(out)
}

/// The rows the table must hold: one per document, every column.
fn expected_rows(sim: &SimHandle) -> Rows {
    sim.collection_docs(DB, COLL)
        .iter()
        .map(|d| {
            let mut row = BTreeMap::new();
            let id = key(d.get("_id").unwrap());
            row.insert("_id".to_string(), Value::Str(id.clone()));
            row.insert("v".into(), Value::Int(d.get_i64("v").unwrap()));
            row.insert(
                "name".into(),
                Value::Str(d.get_str("name").unwrap().to_owned()),
            );
            row.insert(
                "score".into(),
                d.get_f64("score").map(Value::float).unwrap_or(Value::Null),
            );
            row.insert(
                "tags".into(),
                d.get("tags").map(json).unwrap_or(Value::Null),
            );
            row.insert(
                "nested".into(),
                d.get("nested").map(json).unwrap_or(Value::Null),
            );
            row.insert(
                "when".into(),
                Value::TimestampMicros(d.get_datetime("when").unwrap().timestamp_millis() * 1000),
            );
            row.insert(
                "extra".into(),
                d.get_str("extra")
                    .map(|s| Value::Str(s.to_owned()))
                    .unwrap_or(Value::Null),
            );
            row.insert("_mirror_overflow".into(), Value::Null);
            (id, row)
        })
        .collect()
}

fn describe_difference(expected: &Rows, actual: &Rows) -> String {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    let differing: Vec<String> = expected
        .iter()
        .filter_map(|(k, row)| {
            actual
                .get(k)
                .filter(|a| *a != row)
                .map(|a| format!("{k}: expected {row:?}, got {a:?}"))
        })
        .take(3)
        .collect();
    format!(
        "{} rows expected, {} replicated; missing {missing:?}; unexpected {extra:?}; differing {differing:#?}",
        expected.len(),
        actual.len()
    )
}

#[test]
fn the_mirrored_table_equals_the_collection_through_writes_and_crashes() {
    let sizes = sizes();
    let seed = seed();
    let sim = MongoSim::start_on_thread(SimOptions::default()).expect("the simulator starts");
    let handle: SimHandle = (*sim).clone();
    let mut dice = Dice(seed);
    let docs: Vec<RawDocumentBuf> = (0..sizes.docs)
        .map(|n| {
            RawDocumentBuf::from_document(&document(id_for(n), n as i64, &mut dice, false)).unwrap()
        })
        .collect();
    handle.seed_raw(DB, COLL, docs).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let lz = dir.path().join("landing-zone");
    let config = dir.path().join("mirror.toml");
    let log = dir.path().join("mirror.log");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_timeout = "20s"

[sources.m]
type = "mongodb"
uri = "{uri}"
databases = ["{DB}"]
snapshot_page_size = 500
snapshot_readers = 3
progress = false

[sinks.lake]
type = "onelake"
inputs = ["m"]
landing_zone = {lz:?}
flush_interval = "300ms"
max_file_rows = 3000
lease = {{ ttl = "1s" }}
"#,
            uri = sim.uri(),
            lz = lz.display().to_string(),
        ),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (sim, stop, done) = (handle.clone(), stop.clone(), done.clone());
        let dice = Dice(seed ^ 0x5EED);
        let (first, ops) = (sizes.docs, sizes.ops);
        std::thread::spawn(move || write_randomly(sim, dice, first, ops, stop, done))
    };

    // Fabric applies files while mirror runs (and moves processed ones aside, as Fabric does).
    let mut replicator = Replicator::new(Arc::new(LocalDir::new(&lz)));
    let mut timing = Dice(seed ^ 0x7133);
    for round in 0..sizes.kills {
        let mut child = spawn_mirror(&config, &log);
        // The first crash lands in the initial sync, the others anywhere.
        let alive = match round {
            0 => Duration::from_millis(150 + timing.below(350)),
            _ => Duration::from_millis(300 + timing.below(1_700)),
        };
        std::thread::sleep(alive);
        let _ = replicator.scan();
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        eprintln!(
            "round {round}: killed after {alive:?} ({status}), {} writes so far",
            done.load(Ordering::SeqCst)
        );
    }

    let mut child = spawn_mirror(&config, &log);
    writer.join().expect("the writer finished");
    stop.store(true, Ordering::SeqCst);
    let expected = expected_rows(&handle);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "mirror exited early ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Some(actual) = replicated_rows(&mut replicator, TABLE) {
            if actual == expected {
                last = None;
                break;
            }
            last = Some(actual);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // A clean stop: SIGTERM, then every batch is written and checkpointed.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    if let Some(actual) = last {
        panic!(
            "the table never became equal to the collection: {}\nmirror's log:\n{}",
            describe_difference(&expected, &actual),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    assert!(
        status.success(),
        "mirror did not stop cleanly ({status}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let table = replicator.table(TABLE).unwrap();
    assert_eq!(table.status, TableStatus::Replicating);
    eprintln!(
        "equal: {} rows after {} writes and {} kills; {} files applied",
        expected.len(),
        done.load(Ordering::SeqCst),
        sizes.kills,
        table.last_applied
    );
}
