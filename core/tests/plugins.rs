//! Runtime plugins end to end: the example plugins (Rust via the SDK, and C against the header) are
//! built in this test run, loaded through `mirror.toml`, and run in pipelines; broken libraries and
//! misbehaving plugins are refused with clear errors while the host keeps running.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::Int64Type;
use mirror_core::component::TransformContext;
use mirror_core::config::{ConfigLoader, MirrorConfig};
use mirror_core::engine::{Engine, EngineError};
use mirror_core::plugin::{load_plugin, load_plugins};
use mirror_core::{ChangeBatch, Checkpoint, RowOp, Table, TableId};
use sha2::{Digest, Sha256};
use support::{probe, RecordingStore};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn lib_name(crate_name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the Rust example plugins once per test run (own target dir: no lock on the outer build).
fn rust_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = workspace().join("target").join("plugin-tests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--locked", "--target-dir"])
            .arg(&target)
            .args([
                "-p",
                "mirror-plugin-jsonl-sink",
                "-p",
                "mirror-plugin-pii-hash",
                "-p",
                "mirror-plugin-jsonl-source",
                "-p",
                "mirror-plugin-faulty",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the example plugins failed");
        target.join("debug")
    })
}

fn rust_plugin(crate_name: &str) -> PathBuf {
    rust_plugins().join(lib_name(crate_name))
}

/// Compiles a C plugin with the system C compiler.
fn c_plugin(source: &str, out_name: &str, defines: &[&str]) -> PathBuf {
    let out_dir = workspace().join("target").join("plugin-tests").join("c");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(lib_name(out_name));
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&compiler);
    cmd.args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-std=c11"])
        .arg("-I")
        .arg(workspace().join("plugins/api/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let status = cmd
        .arg("-o")
        .arg(&out)
        .arg(workspace().join(source))
        .status()
        .unwrap_or_else(|e| {
            panic!("the C compiler `{compiler}` must be installed to build the C plugins: {e}")
        });
    assert!(status.success(), "compiling {source} failed");
    out
}

fn config_with_plugins(libs: &[&Path], body: &str) -> MirrorConfig {
    let load: Vec<String> = libs
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let text = format!("[plugins]\nload = [{}]\n\n{body}", load.join(", "));
    let loader = |settings: &mirror_core::config::PluginSettings| {
        load_plugins(settings)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let parsed = ConfigLoader::default()
        .with_plugin_loader(&loader)
        .parse(&text, "plugins.toml");
    parsed.unwrap_or_else(|e| panic!("{e}"))
}

const GENERATOR: &str = r#"
[sources.gen]
type = "generator"
count = 500
batch_size = 40
tables = ["orders", "people"]
update_ratio = 0.2
delete_ratio = 0.1
seed = 3
"#;

async fn run(config: MirrorConfig) -> Result<mirror_core::engine::RunReport, EngineError> {
    let dir = tempfile::tempdir().unwrap();
    Engine::new(config)
        .with_checkpoint_store(RecordingStore::new(dir.path()))
        .run()
        .await
}

#[tokio::test]
async fn rust_sink_plugin_writes_every_row_of_the_generator() {
    let out = tempfile::tempdir().unwrap();
    let config = config_with_plugins(
        &[&rust_plugin("mirror-plugin-jsonl-sink")],
        &format!("{GENERATOR}\n[sinks.files]\ntype = \"jsonl\"\ninputs = [\"gen\"]\ndir = {:?}\nbatches_per_flush = 3\n", out.path().display().to_string()),
    );
    let report = run(config).await.unwrap();
    assert_eq!(report.sources["gen"].committed_items, 13);
    let mut total = 0;
    let mut deletes = 0;
    for table in ["orders", "people"] {
        let text = std::fs::read_to_string(out.path().join(format!("{table}.jsonl"))).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            total += 1;
            if v["op"] == "delete" {
                deletes += 1;
            }
            assert!(v["row"]["id"].is_i64(), "{line}");
        }
    }
    assert_eq!(total, 500);
    assert!(deletes > 0);
}

#[tokio::test]
async fn rust_transform_plugin_hashes_in_a_pipeline() {
    let config = config_with_plugins(
        &[&rust_plugin("mirror-plugin-pii-hash")],
        &format!(
            "{GENERATOR}\n[transforms.pii]\ntype = \"pii_hash\"\ninputs = [\"gen\"]\ncolumns = [\"name\"]\nsalt = \"pepper-and-salt\"\n\
             [sinks.out]\ntype = \"recording\"\ninputs = [\"pii\"]\nprobe = \"p-pii\"\nbuffer = 2\n"
        ),
    );
    run(config).await.unwrap();
    let batches = probe("p-pii").batches("out");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 500);
    let mut checked = 0;
    for b in &batches {
        let names = b.rows().column_by_name("name").unwrap().as_string::<i32>();
        let seqs = b
            .rows()
            .column_by_name("seq")
            .unwrap()
            .as_primitive::<Int64Type>();
        let ids = b
            .rows()
            .column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if names.is_null(i) {
                continue;
            }
            // The generator's name is "item-<id>-<h % 1000>"; we can recompute only the shape, so
            // check against a hash of every candidate suffix.
            let id = ids.value(i);
            let _ = seqs.value(i);
            let found = (0..1000).any(|h| {
                let mut d = Sha256::new();
                d.update(b"pepper-and-salt");
                d.update(format!("item-{id}-{h}").as_bytes());
                hex::encode(&d.finalize()[..8]) == names.value(i)
            });
            assert!(
                found,
                "{} is not a pseudonym of an item name",
                names.value(i)
            );
            checked += 1;
        }
    }
    assert!(checked > 300);
}

#[tokio::test]
async fn plugin_source_reads_another_database_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.jsonl");
    let mut text = String::new();
    for i in 0..2500 {
        if i % 10 == 9 {
            text.push_str(&format!("{{\"id\": {}, \"_deleted\": true}}\n", i - 9));
        } else {
            text.push_str(&format!(
                "{{\"id\": {i}, \"name\": \"customer {i}\", \"score\": {}.5}}\n",
                i % 7
            ));
        }
    }
    std::fs::write(&file, text).unwrap();
    let body = |probe_name: &str| {
        format!(
            "[sources.legacy]\ntype = \"jsonl_file\"\npath = {:?}\ntable = \"legacy.schema/customers\"\nkey = \"id\"\nbatch_size = 300\n\
             [sinks.out]\ntype = \"recording\"\ninputs = [\"legacy\"]\nprobe = \"{probe_name}\"\n",
            file.display().to_string()
        )
    };
    let lib = rust_plugin("mirror-plugin-jsonl-source");
    let store = RecordingStore::new(&dir.path().join("state"));
    Engine::new(config_with_plugins(&[&lib], &body("p-src-1")))
        .with_checkpoint_store(store.clone())
        .run()
        .await
        .unwrap();
    let batches = probe("p-src-1").batches("out");
    assert_eq!(batches.len(), 9);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2500);
    let deletes = batches
        .iter()
        .flat_map(|b| b.ops().iter())
        .filter(|op| **op == RowOp::Delete)
        .count();
    assert_eq!(deletes, 250);
    assert_eq!(
        batches[0].table().id,
        "legacy.schema/customers".parse::<TableId>().unwrap()
    );
    assert_eq!(batches[0].table().key_columns, vec!["id".to_string()]);
    // A second run resumes after the last committed line: nothing left.
    let report = Engine::new(config_with_plugins(&[&lib], &body("p-src-2")))
        .with_checkpoint_store(store)
        .run()
        .await
        .unwrap();
    assert_eq!(report.sources["legacy"].rows, 0);
}

#[tokio::test]
async fn c_plugin_counts_every_row() {
    let lib = c_plugin(
        "plugins/examples/c-row-counter/row_counter.c",
        "row_counter",
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    let counts = out.path().join("counts.txt");
    let config = config_with_plugins(
        &[&lib],
        &format!("{GENERATOR}\n[sinks.counts]\ntype = \"c_row_counter\"\ninputs = [\"gen\"]\npath = {:?}\n", counts.display().to_string()),
    );
    let report = run(config).await.unwrap();
    assert_eq!(report.sources["gen"].committed_items, 13);
    let text = std::fs::read_to_string(&counts).unwrap();
    let mut total = 0;
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert!(parts[0] == "orders" || parts[0] == "people", "{line}");
        total += parts[1].parse::<u64>().unwrap();
    }
    assert_eq!(total, 500, "{text}");
}

#[test]
fn libraries_that_break_the_loading_rules_are_refused() {
    let wrong_abi = c_plugin("plugins/tests/malformed.c", "wrong_abi", &["WRONG_ABI"]);
    let err = load_plugin(&wrong_abi).unwrap_err().to_string();
    assert!(err.ends_with("was built for plugin ABI version 99, but this mirror implements version 1; rebuild the plugin against mirror-plugin-api with ABI version 1"), "{err}");

    let no_entry = c_plugin("plugins/tests/malformed.c", "no_entry", &["NO_ENTRY"]);
    let err = load_plugin(&no_entry).unwrap_err().to_string();
    assert!(
        err.contains("is not a mirror plugin: it does not export `mirror_plugin_entry`"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("libnot_a_plugin.so");
    std::fs::write(&text_file, "this is not a library").unwrap();
    let err = load_plugin(&text_file).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot load plugin {}", text_file.display())),
        "{err}"
    );
    assert!(err.contains("built for this platform"), "{err}");

    // The same library marked as built for a 32-bit platform (ELF class byte).
    let real = c_plugin(
        "plugins/examples/c-row-counter/row_counter.c",
        "row_counter",
        &[],
    );
    let mut bytes = std::fs::read(&real).unwrap();
    if bytes.starts_with(b"\x7fELF") {
        bytes[4] = if bytes[4] == 2 { 1 } else { 2 };
        let foreign = dir.path().join("libforeign.so");
        std::fs::write(&foreign, bytes).unwrap();
        let err = load_plugin(&foreign).unwrap_err().to_string();
        assert!(
            err.contains("ELF") && err.contains("built for this platform"),
            "{err}"
        );
    }

    let err = load_plugin(Path::new("/nonexistent/libmissing.so"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot load plugin /nonexistent/libmissing.so"),
        "{err}"
    );
}

/// Runs a faulty component and returns the error the run ended with.
async fn faulty(component: &str, fail_in: &str, how: &str) -> String {
    let lib = rust_plugin("mirror-plugin-faulty");
    let faults = format!("fail_in = \"{fail_in}\"\nhow = \"{how}\"\n");
    let body = match component {
        "source" => format!("[sources.f]\ntype = \"faulty_source\"\n{faults}\n[sinks.out]\ntype = \"recording\"\ninputs = [\"f\"]\nprobe = \"faulty\"\n"),
        "transform" => format!("{GENERATOR}\n[transforms.f]\ntype = \"faulty_transform\"\ninputs = [\"gen\"]\n{faults}\n[sinks.out]\ntype = \"recording\"\ninputs = [\"f\"]\nprobe = \"faulty\"\n"),
        _ => format!("{GENERATOR}\n[sinks.f]\ntype = \"faulty_sink\"\ninputs = [\"gen\"]\n{faults}\n"),
    };
    match run(config_with_plugins(&[&lib], &body)).await {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn errors_and_panics_in_every_call_are_reported_and_the_host_survives() {
    let cases = [
        ("source", "create"),
        ("source", "next"),
        ("source", "close"),
        ("transform", "create"),
        ("transform", "apply"),
        ("sink", "create"),
        ("sink", "write"),
        ("sink", "flush"),
        ("sink", "close"),
    ];
    for (component, call) in cases {
        // The sink's own close flushes, so a flush failure may surface through `close`.
        let via = if (component, call) == ("sink", "flush") {
            "close"
        } else {
            call
        };
        let err = faulty(component, call, "error").await;
        let expected = format!(": faulty plugin: failure in {call}");
        assert!(err.contains(&expected), "{component}/{call}: {err}");
        assert!(
            err.contains(&format!("plugin `faulty_{component}` {call}:"))
                || err.contains(&format!("plugin `faulty_{component}` {via}:")),
            "{component}/{call}: {err}"
        );
        let err = faulty(component, call, "panic").await;
        let expected = format!(": plugin panicked: faulty plugin panics in {call}");
        assert!(err.contains(&expected), "{component}/{call}: {err}");
    }
}

#[tokio::test]
async fn transient_plugin_errors_are_retried() {
    let lib = rust_plugin("mirror-plugin-faulty");
    let body = "[engine]\nretry = { initial_backoff = \"5ms\", max_backoff = \"10ms\" }\n\
        [sources.f]\ntype = \"faulty_source\"\ncount = 20\nfail_in = \"next\"\nhow = \"transient\"\nafter = 5\ntimes = 3\n\
        [sinks.out]\ntype = \"recording\"\ninputs = [\"f\"]\nprobe = \"p-transient\"\n";
    run(config_with_plugins(&[&lib], body)).await.unwrap();
    let mut rows = probe("p-transient").durable("out");
    rows.sort();
    assert_eq!(rows, (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn plugins_that_return_bad_data_are_refused() {
    let lib = rust_plugin("mirror-plugin-faulty");
    let err = faulty("source", "none", "wrong_ops").await;
    assert!(
        err.contains("batch for numbers has 1 rows but 2 operations"),
        "{err}"
    );
    let err = faulty("sink", "none", "ack_unknown").await;
    assert!(
        err.contains("plugin sink acknowledged batch 999999, which it does not hold"),
        "{err}"
    );
    drop(lib);

    let malformed = c_plugin("plugins/tests/malformed.c", "malformed", &[]);
    let expectations = [
        ("valid", "ok"),
        (
            "wrong_buffers",
            "returned a bad batch: malformed Arrow data",
        ),
        ("bad_format", "returned a bad batch: malformed Arrow data"),
        ("short_child", "returned a bad batch: malformed Arrow data"),
        ("bad_op", "returned a bad batch: row 2 has operation 7"),
        ("null_table", "returned a bad batch: `table` is NULL"),
    ];
    for (kind, expected) in expectations {
        let body = format!("[sources.m]\ntype = \"c_malformed\"\nkind = \"{kind}\"\n[sinks.out]\ntype = \"recording\"\ninputs = [\"m\"]\nprobe = \"p-malformed\"\n");
        let result = match run(config_with_plugins(&[&malformed], &body)).await {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        assert!(result.contains(expected), "{kind}: {result}");
    }
}

#[tokio::test]
async fn batches_cross_the_boundary_without_copying_column_data() {
    let config = config_with_plugins(
        &[&rust_plugin("mirror-plugin-pii-hash")],
        &format!("{GENERATOR}\n[transforms.pii]\ntype = \"pii_hash\"\ninputs = [\"gen\"]\ncolumns = [\"nothing\"]\nsalt = \"0123456789\"\n[sinks.out]\ntype = \"recording\"\ninputs = [\"pii\"]\nprobe = \"p-zero\"\n"),
    );
    let mut transform = config.transforms[0]
        .config
        .build(TransformContext { name: "pii".into() })
        .await
        .unwrap();
    let n = 1_000_000;
    let rows = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..n)) as _),
        (
            "name",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("n{i}")),
            )) as _,
        ),
    ])
    .unwrap();
    let buffers = |r: &RecordBatch| -> Vec<usize> {
        r.columns()
            .iter()
            .flat_map(|c| {
                c.to_data()
                    .buffers()
                    .iter()
                    .map(|b| b.as_ptr() as usize)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let before = buffers(&rows);
    let batch = ChangeBatch::new(
        Arc::new(Table::new(TableId::new("t"), ["id"])),
        rows,
        vec![RowOp::Upsert; n as usize],
        Checkpoint::none(),
    )
    .unwrap();
    let out = transform.apply(batch).await.unwrap();
    assert_eq!(out.num_rows(), n as usize);
    assert_eq!(
        buffers(out.rows()),
        before,
        "column buffers were copied crossing the plugin boundary"
    );
}
