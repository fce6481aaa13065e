//! Crash tests of the whole binary: `mirror run` is killed with SIGKILL at every step of its work
//! and started again, against mongo-sim and onelake-sim. Each request to the landing zone is a
//! step: onelake-sim holds the n-th request unanswered (applied first, or not) and the test kills
//! the process while it waits, so the process dies exactly before or after that write took effect.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, RawDocumentBuf};
use mongo_sim::{MongoSim, SimHandle, SimOptions};
use onelake_sim::faults::{Fault, FaultAction};
use onelake_sim::{Replicator, TableStatus, Value};
use support::*;

const DB: &str = "shop";
/// The table of `shop.mixed` (schema naming: `<db>.schema/<collection>`).
const MIXED: &str = "shop.schema/mixed";

fn sim_options() -> SimOptions {
    SimOptions {
        noop_interval: Some(Duration::from_millis(100)),
        ..SimOptions::default()
    }
}

/// One landing zone in onelake-sim and the `mirror.toml` that mirrors `shop` into it.
struct Case {
    dir: tempfile::TempDir,
    lz: String,
    config: PathBuf,
}

impl Case {
    fn new(mongo: &SimHandle, lake: &Lake, item: &str, extra: &str) -> Case {
        Self::with_source(mongo, lake, item, "", extra)
    }

    /// With `source` lines added to the source's table (e.g. `collections = [...]`).
    fn with_source(mongo: &SimHandle, lake: &Lake, item: &str, source: &str, extra: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let lz = format!("ws/{item}.MountedRelationalDatabase/Files/LandingZone");
        let config = dir.path().join("mirror.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[engine]
shutdown_timeout = "30s"
retry = {{ initial_backoff = "50ms", max_backoff = "500ms" }}

[sources.src]
type = "mongodb"
uri = "{uri}"
databases = ["{DB}"]
snapshot_page_size = 10
max_await = "100ms"
idle_checkpoint_interval = "300ms"
progress = false
{source}

[sinks.lake]
type = "onelake"
inputs = ["src"]
landing_zone = "https://onelake.dfs.fabric.microsoft.com/{lz}"
endpoint = "{endpoint}"
auth = {{ method = "bearer_token", token = "tok" }}
flush_interval = "200ms"
lease = {{ ttl = "60s" }}

[api]
address = "127.0.0.1:0"
{extra}
"#,
                uri = mongo.uri(),
                endpoint = lake.sim.endpoint(),
            ),
        )
        .unwrap();
        Case { dir, lz, config }
    }

    fn start(&self) -> Mirror {
        Mirror::start(&self.config, self.dir.path(), &[], &[])
    }

    fn replicator(&self, lake: &Lake) -> Replicator {
        Replicator::new(Arc::new(lake.sim.storage().landing_zone(&self.lz))).keep_processed_files()
    }
}

/// `_id` -> `v` of the collection, keys as the source writes them.
fn collection(mongo: &SimHandle, coll: &str) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = mongo
        .collection_docs(DB, coll)
        .iter()
        .map(|d| {
            let id = d.get("_id").unwrap();
            let raw = RawDocumentBuf::from_document(&doc! {"_id": id.clone()}).unwrap();
            let mut key = String::new();
            mirror_mongodb::bson_arrow::encode_key(&mut key, raw.get("_id").unwrap().unwrap())
                .unwrap();
            (key, d.get_i64("v").unwrap())
        })
        .collect();
    out.sort();
    out
}

/// `_id` -> `v` of the replicated table (`None` until it has files), after checking that Fabric
/// would keep replicating it.
fn replicated(replicator: &mut Replicator, table: &str) -> Option<Vec<(String, i64)>> {
    replicator.scan().ok()?;
    let t = replicator.table(table)?;
    assert!(
        !matches!(t.status, TableStatus::Failed { .. }),
        "Fabric would stop the table: {:?}",
        t.status
    );
    let mut out: Vec<(String, i64)> = t
        .rows()
        .into_iter()
        .map(|row| {
            let key = match row.get("_id") {
                Some(Value::Str(s)) => s.clone(),
                other => panic!("bad key {other:?}"),
            };
            let v = match row.get("v") {
                Some(Value::Int(v)) => *v,
                other => panic!("bad v {other:?}"),
            };
            (key, v)
        })
        .collect();
    out.sort();
    Some(out)
}

/// The column types Fabric has for `table` (name, Delta type), in order.
fn column_types(replicator: &mut Replicator, table: &str) -> Vec<(String, String)> {
    replicator.scan().unwrap();
    replicator
        .table(table)
        .map(|t| {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.delta_type.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the table equals the collection, failing at once if `mirror` exits.
fn wait_equal(mirror: &mut Mirror, replicator: &mut Replicator, mongo: &SimHandle, coll: &str) {
    let table = format!("{DB}.schema/{coll}");
    wait_for(
        &format!("{table} to equal the collection"),
        Duration::from_secs(90),
        || {
            if let Some(status) = mirror.try_wait() {
                panic!("mirror exited ({status}):\n{}", mirror.log());
            }
            (replicated(replicator, &table)? == collection(mongo, coll)).then_some(())
        },
    )
}

/// Starts `case` with its `n`-th landing-zone request hanging (applied first or not), waits until
/// it hangs, and kills the process with SIGKILL. (A process with nothing left to do still sends
/// requests: idle checkpoints.)
fn kill_at(case: &Case, lake: &Lake, n: usize, applied: bool) {
    let mirror = case.start();
    kill_running_at(mirror, lake, &case.lz, n, applied, || {});
}

/// Makes the `n`-th request of `mirror` whose path contains `path` hang (applied first or not),
/// runs `then`, waits until the request hangs, and kills the process with SIGKILL.
fn kill_running_at(
    mut mirror: Mirror,
    lake: &Lake,
    path: &str,
    n: usize,
    applied: bool,
    then: impl FnOnce(),
) {
    let hangs = || {
        lake.sim
            .faults()
            .fired()
            .iter()
            .filter(|(_, _, a)| matches!(a, FaultAction::Hang { .. }))
            .count()
    };
    lake.sim.faults().clear();
    let (before, hung_before) = (lake.sim.requests().len(), hangs());
    lake.sim
        .faults()
        .inject(Fault::hang_at(n, applied).on_path(path));
    then();
    wait_for(
        &format!("request {n} to hang"),
        Duration::from_secs(60),
        || {
            if let Some(status) = mirror.try_wait() {
                panic!(
                    "mirror exited ({status}) before request {n}:\n{}",
                    mirror.log()
                );
            }
            (hangs() > hung_before).then_some(())
        },
    );
    let what = lake.sim.requests()[before..]
        .iter()
        .filter(|r| r.path.contains(path))
        .nth(n - 1)
        .map(|r| format!("{} {}", r.method, r.path))
        .unwrap_or_default();
    drop(mirror); // SIGKILL
    lake.sim.faults().clear();
    eprintln!("killed at request {n} (applied: {applied}): {what}");
}

/// Stops `mirror` with SIGTERM; it must exit 0.
fn stop_cleanly(mirror: Mirror, what: &str) {
    let log = mirror.log.clone();
    let status = mirror.stop();
    assert!(
        status.success(),
        "{what}: mirror exited {status} on SIGTERM:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Seeds for `$sample` that draw a document whose `arr` is a string, and one whose `arr` is a
/// double, in that order.
fn sample_seeds(mongo: &SimHandle) -> (u64, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(mongo.uri()).await.unwrap();
        let coll = client.database(DB).collection::<bson::Document>("mixed");
        let (mut string, mut double) = (None, None);
        for seed in 0u64.. {
            mongo.set_sample_seed(Some(seed));
            let mut cursor = coll
                .aggregate([doc! {"$sample": {"size": 1}}])
                .await
                .unwrap();
            assert!(cursor.advance().await.unwrap());
            let drawn = cursor.deserialize_current().unwrap();
            match drawn.get("arr") {
                Some(Bson::String(_)) => string = string.or(Some(seed)),
                Some(Bson::Double(_)) => double = double.or(Some(seed)),
                other => panic!("{other:?}"),
            }
            if let (Some(s), Some(d)) = (string, double) {
                return (s, d);
            }
        }
        unreachable!()
    })
}

fn seed_mixed(mongo: &SimHandle) {
    let docs: Vec<RawDocumentBuf> = (0..40i64)
        .map(|i| {
            let arr = if i % 2 == 0 {
                Bson::String(format!("s{i}"))
            } else {
                Bson::Double(i as f64 + 0.5)
            };
            RawDocumentBuf::from_document(&doc! {"_id": i, "v": i, "arr": arr}).unwrap()
        })
        .collect();
    mongo.seed_raw(DB, "mixed", docs).unwrap();
}

fn path_of(lake: &Lake, case: &Case, file: &str) -> Option<Vec<u8>> {
    use onelake_sim::LandingFiles;
    lake.sim
        .storage()
        .landing_zone(&case.lz)
        .read(file)
        .ok()
        .flatten()
}

/// Issue 13, defect 0: a process killed between a table's first type inference and the commit of
/// its first file's checkpoint, at every landing-zone request in between, then started again
/// with a sample that infers the other type for a mixed-type field (and killed again at the same
/// step), and finally let run: every start keeps the types published before, and the table ends
/// equal to the collection.
#[test]
fn restarts_keep_the_published_column_types_after_a_kill_at_every_step() {
    let mongo = MongoSim::start_on_thread(sim_options()).unwrap();
    seed_mixed(&mongo);
    let (string_seed, double_seed) = sample_seeds(&mongo);
    let lake = Lake::start();
    let extra = "[tables.\"*\"]\nsample_size = 1\n";

    // A clean run shows how many requests it takes until the first file's checkpoint is
    // committed in the table's folder.
    let reference = Case::new(&mongo, &lake, "reference", extra);
    mongo.set_sample_seed(Some(string_seed));
    let mut mirror = reference.start();
    let mut replicator = reference.replicator(&lake);
    wait_equal(&mut mirror, &mut replicator, &mongo, "mixed");
    assert!(mirror.stop().success());
    let requests: Vec<_> = lake
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&reference.lz))
        .collect();
    let first_file = requests
        .iter()
        .position(|r| r.path.ends_with("mixed/00000000000000000001.parquet"))
        .expect("the first file was published");
    let steps = first_file
        + requests[first_file..]
            .iter()
            .position(|r| r.path.ends_with("mixed/_mirror_checkpoint.src.json"))
            .expect("its checkpoint was committed")
        + 1;
    eprintln!("{steps} landing-zone requests until the first file's checkpoint");

    for n in 1..=steps {
        for applied in [false, true] {
            let case = Case::new(&mongo, &lake, &format!("kill{n}{applied}"), extra);
            // Each start draws another sample: string, double, then string again.
            mongo.set_sample_seed(Some(string_seed));
            kill_at(&case, &lake, n, applied);
            let mut replicator = case.replicator(&lake);
            let published = column_types(&mut replicator, MIXED);
            mongo.set_sample_seed(Some(double_seed));
            kill_at(&case, &lake, n, applied);
            let after_second = column_types(&mut replicator, MIXED);
            assert!(
                after_second.starts_with(&published),
                "kill {n}/{applied}: {published:?} became {after_second:?}"
            );
            mongo.set_sample_seed(Some(string_seed ^ double_seed ^ 1));
            let mut mirror = case.start();
            wait_equal(&mut mirror, &mut replicator, &mongo, "mixed");
            let end = column_types(&mut replicator, MIXED);
            assert!(
                end.starts_with(&after_second),
                "kill {n}/{applied}: {after_second:?} became {end:?}"
            );
            assert!(!mirror.log().contains("was written as"), "{}", mirror.log());
            stop_cleanly(mirror, &format!("kill {n}/{applied}"));
        }
    }
}

/// A `mirror.toml` in `dir` mirroring `shop` into the local landing zone `dir/lz`, with `source`
/// lines added to the source's table and `extra` tables at the end.
fn local_config(mongo: &SimHandle, dir: &std::path::Path, source: &str, extra: &str) -> PathBuf {
    let config = dir.join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.src]
type = "mongodb"
uri = "{uri}"
databases = ["{DB}"]
max_await = "100ms"
idle_checkpoint_interval = "300ms"
progress = false
{source}

[sinks.lake]
type = "onelake"
inputs = ["src"]
landing_zone = "{lz}"
flush_interval = "200ms"
lease = {{ ttl = "3s" }}

[api]
address = "127.0.0.1:0"

{extra}"#,
            uri = mongo.uri(),
            lz = dir.join("lz").display(),
        ),
    )
    .unwrap();
    config
}

/// The committed stream position of `shop`, as `mirror status --format json` prints it from the
/// checkpoint store: the cluster time's seconds and increment.
fn status_position(config: &std::path::Path) -> Option<(u32, u32)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["status", "--format", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report["sources"][0]["positions"]
        .as_array()?
        .iter()
        .find(|p| p["stream"] == DB)?["text"]
        .as_str()?
        .to_owned();
    let (s, i) = text.strip_prefix("cluster time ")?.split_once('.')?;
    Some((s.parse().ok()?, i.parse().ok()?))
}

/// Issue 13, defect 2: while a long initial sync runs, writes roll a small oplog over several
/// times. The committed stream position must move forward during the copy (as `mirror status`
/// shows), so that a process killed mid-copy resumes its stream from a position still in the oplog:
/// no history lost, no resync, and the table ends equal to the collection.
#[test]
fn a_long_initial_sync_moves_the_stream_position_forward() {
    const DOCS: i64 = 2000;
    let mongo = MongoSim::start_on_thread(SimOptions {
        // About 300 updates of the writer below.
        oplog_size_bytes: 300 * 1024,
        ..sim_options()
    })
    .unwrap();
    let pad = "x".repeat(600);
    let docs: Vec<RawDocumentBuf> = (0..DOCS)
        .map(|i| RawDocumentBuf::from_document(&doc! {"_id": i, "v": 0i64, "pad": &pad}).unwrap())
        .collect();
    mongo.seed_raw(DB, "big", docs).unwrap();
    // Every page of the copy waits: the copy of 40 pages lasts about 12 s.
    mongo
        .configure_fail_point(
            "failCommand",
            Bson::String("alwaysOn".into()),
            doc! {"failCommands": ["find", "getMore"], "blockConnection": true, "blockTimeMS": 300},
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        &mongo,
        dir.path(),
        "snapshot_page_size = 50\nsnapshot_readers = 1",
        "",
    );

    // A writer keeps updating the collection: the oplog holds only the last ~1.5 s of it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (handle, stop) = ((*mongo).clone(), stop.clone());
        let pad = "y".repeat(600);
        std::thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                handle
                    .update_one(
                        DB,
                        "big",
                        doc! {"_id": n % DOCS},
                        doc! {"$set": {"v": n, "pad": &pad}},
                    )
                    .unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let mirror = Mirror::start(&config, dir.path(), &[], &[]);
    let first = wait_for("a committed position", Duration::from_secs(30), || {
        status_position(&config)
    });
    // The stream position moves forward while the copy goes on, by more than the oplog holds
    // (about 2 s of the writer's updates).
    let (mut seen, started) = (first, std::time::Instant::now());
    wait_for(
        "the committed position to move 4 s forward",
        Duration::from_secs(30),
        || {
            let now = status_position(&config)?;
            assert!(now >= seen, "the position went back: {seen:?} -> {now:?}");
            seen = now;
            (now.0 >= first.0 + 4).then_some(())
        },
    );
    let copied = |mirror: &Mirror| -> u64 {
        mirror.get("/api/status").json()["tables"][0]["initial_sync"]["copied"]
            .as_u64()
            .unwrap_or(0)
    };
    let copied_at_kill = copied(&mirror);
    eprintln!(
        "committed position {first:?} -> {seen:?} in {:.1?}, {copied_at_kill} of {DOCS} copied",
        started.elapsed()
    );
    assert!(
        copied_at_kill < DOCS as u64,
        "the copy ended before the position was seen moving ({:?})",
        started.elapsed()
    );
    let log = mirror.log();
    drop(mirror); // SIGKILL, mid-copy
    assert!(!log.contains("history lost"), "{log}");

    let mut mirror = Mirror::start(&config, dir.path(), &[], &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    mongo
        .configure_fail_point("failCommand", Bson::String("off".into()), doc! {})
        .unwrap();
    let mut replicator =
        Replicator::new(Arc::new(onelake_sim::LocalDir::new(dir.path().join("lz"))))
            .keep_processed_files();
    wait_equal(&mut mirror, &mut replicator, &mongo, "big");
    let log = mirror.log();
    assert!(
        !log.contains("history lost") && !log.contains("copying this database's tables again"),
        "{log}"
    );
    assert!(mirror.stop().success());
}

/// Runs `mirror run` with `MIRROR_CRASH_AT=<point>:<n>` until it aborts there; `false` if it was
/// still running after `within` (the point was not reached that often), in which case it is
/// stopped.
fn crash_at(config: &std::path::Path, point: &str, n: usize, within: Duration) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["run", "--config"])
        .arg(config)
        .env("MIRROR_CRASH_AT", format!("{point}:{n}"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert_eq!(
                status.signal(),
                Some(6),
                "mirror should have aborted at {point}:{n}, but exited {status}:\n{err}"
            );
            return true;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

fn is_temporary(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.starts_with("_mirror_tmp_") || name.starts_with(".mirror-write-") || name.contains(".tmp-")
}

/// Issue 13, defect 3: a process killed inside every kind of write of the local stores (the
/// landing zone's data files, checkpoint records, lease, metadata and state files, written
/// through a temporary file; the checkpoint store in `[state] path`) leaves temporary files, all
/// named `_…` so that Fabric ignores them, and the next start removes them: after a clean run the
/// landing zone holds only the files docs/landing-zone.md lists.
#[test]
fn temporary_files_left_by_a_kill_at_every_write_are_removed_at_start() {
    let mongo = MongoSim::start_on_thread(sim_options()).unwrap();
    let docs: Vec<RawDocumentBuf> = (0..300i64)
        .map(|i| {
            RawDocumentBuf::from_document(&doc! {"_id": i, "v": i, "name": format!("n{i}")})
                .unwrap()
        })
        .collect();
    mongo.seed_raw(DB, "orders", docs).unwrap();
    for (round, (point, state_dir, kills)) in [
        ("local-store-put", false, 16),
        ("local-store-rename", false, 3),
        ("checkpoint-store-write", true, 8),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let (lz, state) = (dir.path().join("lz"), dir.path().join("state"));
        let state_line = if state_dir {
            format!("[state]\npath = \"{}\"\n", state.display())
        } else {
            String::new()
        };
        let config = local_config(&mongo, dir.path(), "snapshot_page_size = 40", &state_line);
        let mut left_before: Vec<String> = Vec::new();
        for kill in 1..=kills {
            // Something new to write in every run, so that every run reaches its crash point.
            mongo
                .insert(
                    DB,
                    "orders",
                    doc! {"_id": 1000 * (round as i64 + 1) + kill as i64, "v": kill as i64},
                )
                .unwrap();
            // Renames publish data files, one or two per run: the first of each run.
            let n = if point == "local-store-rename" {
                1
            } else {
                kill
            };
            let started = std::time::Instant::now();
            let crashed = crash_at(&config, point, n, Duration::from_secs(30));
            eprintln!("{point}:{n}: crashed after {:.1?}", started.elapsed());
            assert!(crashed, "{point}:{n} was not reached");
            let mut left: Vec<String> = files_below(&lz);
            left.extend(
                files_below(&state)
                    .into_iter()
                    .map(|f| format!("state/{f}")),
            );
            left.retain(|f| is_temporary(f));
            // The crash left a temporary file; the start of this run removed the earlier one.
            for f in &left {
                assert!(
                    f.rsplit('/').next().unwrap().starts_with('_'),
                    "{f}: a temporary name Fabric would not ignore"
                );
            }
            for earlier in &left_before {
                assert!(
                    !left.contains(earlier),
                    "{earlier} survived a start ({point}:{n})"
                );
            }
            assert!(!left.is_empty(), "{point}:{n} left no temporary file");
            left_before = left;
        }
        let mut mirror = Mirror::start(&config, dir.path(), &[], &[]);
        let mut replicator =
            Replicator::new(Arc::new(onelake_sim::LocalDir::new(&lz))).keep_processed_files();
        wait_equal(&mut mirror, &mut replicator, &mongo, "orders");
        assert!(mirror.stop().success());
        let documented = matcher(&[
            r"_partnerEvents\.json",
            r"_mirror_state/src/source\.json",
            r"_mirror_state/src/(tables|schemas)/[^/]+\.json",
            r"shop\.schema/orders/_metadata\.json",
            r"shop\.schema/orders/_mirror_table\.json",
            r"shop\.schema/orders/_mirror_lease\.json",
            r"shop\.schema/orders/_mirror_checkpoint\.src(\.schema)?\.json",
            r"shop\.schema/orders/[0-9]{20}\.parquet",
        ]);
        for file in files_below(&lz) {
            assert!(
                documented(&file),
                "{point}: an undocumented file is left: {file}"
            );
        }
        for file in files_below(&state) {
            assert!(
                file == "src/source.json"
                    || (file.starts_with("src/tables/")
                        && file.ends_with(".json")
                        && !is_temporary(&file)),
                "{point}: an undocumented file is left in the state folder: {file}"
            );
        }
    }
}

/// Whether a whole path matches one of `patterns` (regular expressions).
fn matcher(patterns: &[&str]) -> impl Fn(&str) -> bool {
    let all = regex::Regex::new(&format!("^({})$", patterns.join("|"))).unwrap();
    move |s| all.is_match(s)
}

/// The type recorded for `column` of `folder` in the landing zone: in the sink's
/// `_mirror_table.json` (what Fabric may have seen), else in the source's record of its columns.
fn recorded_type(lake: &Lake, case: &Case, folder: &str, column: &str) -> Option<String> {
    let table: serde_json::Value = serde_json::from_slice(&path_of(
        lake,
        case,
        &format!("{folder}/_mirror_table.json"),
    )?)
    .ok()?;
    let sink = table["columns"].as_array().and_then(|cols| {
        cols.iter()
            .find(|c| c["name"] == column)
            .and_then(|c| c["type"].as_str().map(str::to_owned))
    });
    if sink.is_some() {
        return sink;
    }
    let record: serde_json::Value = serde_json::from_slice(&path_of(
        lake,
        case,
        &format!("{folder}/_mirror_checkpoint.src.schema.json"),
    )?)
    .ok()?;
    record["state"]["columns"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == column)
        .and_then(|c| c["type"].as_str())
        // The source's logical types as the sink records them (see docs/type-mapping.md).
        .map(|t| match t {
            "double" => "float64".to_owned(),
            "int64" => "int64".to_owned(),
            _ => "string".to_owned(),
        })
}

/// Issue 13, defect 1: a field first seen as a string in a batch of its own gets a `string`
/// column; the process is killed at every landing-zone request of that table between the batch
/// and its file's checkpoint; while it is down the field arrives four times more, as doubles. The
/// restarted source reads all five in one batch (which alone would make the column a double), yet
/// keeps the type recorded before the kill, and the table ends equal to the collection.
#[test]
fn a_new_column_keeps_its_type_after_a_kill_between_its_batch_and_its_file() {
    let mongo = MongoSim::start_on_thread(sim_options()).unwrap();
    let lake = Lake::start();
    // Each round: a collection streaming into its own landing zone, and then a string `extra`.
    let start = |name: &str| {
        let docs: Vec<RawDocumentBuf> = (0..5i64)
            .map(|i| RawDocumentBuf::from_document(&doc! {"_id": i, "v": i}).unwrap())
            .collect();
        mongo.seed_raw(DB, name, docs).unwrap();
        let case = Case::with_source(
            &mongo,
            &lake,
            name,
            &format!("collections = [\"{name}\"]"),
            "",
        );
        let mut mirror = case.start();
        let mut replicator = case.replicator(&lake);
        wait_equal(&mut mirror, &mut replicator, &mongo, name);
        // Counted: the requests touching the table's folder, from the batch on; the copy's last
        // ones come first.
        let path = format!("{}/{DB}.schema/{name}/", case.lz);
        let touching = || {
            lake.sim
                .requests()
                .iter()
                .filter(|r| r.path.starts_with(&path))
                .count()
        };
        let mut last = touching();
        wait_for(
            "the table's folder to be quiet",
            Duration::from_secs(30),
            || {
                std::thread::sleep(Duration::from_millis(700));
                let now = touching();
                std::mem::replace(&mut last, now).eq(&now).then_some(())
            },
        );
        (case, mirror, replicator, path)
    };
    let add_extra = |name: &str| {
        mongo
            .insert(DB, name, doc! {"_id": 100i64, "v": 100i64, "extra": "text"})
            .unwrap();
    };

    // A reference round shows how many such requests there are until the checkpoint of the file
    // holding the new column.
    let (_case, mut mirror, mut replicator, path) = start("drift_ref");
    let before = lake.sim.requests().len();
    add_extra("drift_ref");
    wait_equal(&mut mirror, &mut replicator, &mongo, "drift_ref");
    std::thread::sleep(Duration::from_millis(500));
    let touched: Vec<String> = lake.sim.requests()[before..]
        .iter()
        .filter(|r| r.path.starts_with(&path))
        .map(|r| r.path.clone())
        .collect();
    let steps = touched
        .iter()
        .position(|p| p.ends_with("/_mirror_checkpoint.src.json"))
        .expect("the file's checkpoint was committed")
        + 1;
    eprintln!("{steps} requests to the table's folder: {touched:?}");
    assert!(steps >= 3, "{touched:?}");
    assert!(mirror.stop().success());

    for n in 1..=steps + 1 {
        for applied in [false, true] {
            let coll = format!("drift{n}{applied}");
            let folder = format!("{DB}.schema/{coll}");
            let (case, mirror, mut replicator, path) = start(&coll);
            kill_running_at(mirror, &lake, &path, n, applied, || add_extra(&coll));
            let kept = recorded_type(&lake, &case, &folder, "extra");
            for i in 101..105i64 {
                mongo
                    .insert(DB, &coll, doc! {"_id": i, "v": i, "extra": i as f64 + 0.5})
                    .unwrap();
            }
            let mut mirror = case.start();
            wait_equal(&mut mirror, &mut replicator, &mongo, &coll);
            let end = recorded_type(&lake, &case, &folder, "extra");
            if let Some(kept) = &kept {
                assert_eq!(
                    end.as_ref(),
                    Some(kept),
                    "kill at {n}/{applied}: the column was recorded as {kept} before the kill"
                );
            }
            let types = column_types(&mut replicator, &folder);
            assert!(
                types.iter().any(|(c, _)| c == "extra"),
                "kill at {n}/{applied}: no column `extra`: {types:?}"
            );
            stop_cleanly(mirror, &format!("kill {n}/{applied}"));
        }
    }
}
