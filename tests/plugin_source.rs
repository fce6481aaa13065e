//! Another database reusing the Open Mirroring sink, as a runtime plugin: the example `jsonl_file`
//! source plugin (a JSON Lines export standing in for any database) feeds the `onelake` sink through
//! `mirror run`, and the table Fabric would build equals the export, deletes applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use onelake_sim::{LocalDir, Replicator, TableStatus, Value};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the plugin in its own target directory (the outer `cargo test` holds the main one).
fn plugin() -> PathBuf {
    let target = workspace().join("target").join("plugin-tests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--locked",
            "-p",
            "mirror-plugin-jsonl-source",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the plugin failed");
    target.join("debug").join(format!(
        "{}mirror_plugin_jsonl_source{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn a_plugin_source_feeds_the_onelake_sink() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("customers.jsonl");
    let mut expected: BTreeMap<i64, (String, f64)> = BTreeMap::new();
    let mut lines = String::new();
    for i in 0..3000i64 {
        if i % 11 == 10 {
            let gone = i - 7;
            lines.push_str(&format!("{{\"id\": {gone}, \"_deleted\": true}}\n"));
            expected.remove(&gone);
        } else {
            let name = format!("customer {i}");
            let score = (i % 13) as f64 + 0.25;
            lines.push_str(&format!(
                "{{\"id\": {i}, \"name\": \"{name}\", \"score\": {score}}}\n"
            ));
            expected.insert(i, (name, score));
        }
    }
    std::fs::write(&export, lines).unwrap();
    let lz = dir.path().join("lz");
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\nload = [{plugin:?}]\n\n[sources.legacy]\ntype = \"jsonl_file\"\npath = {export:?}\ntable = \"legacy.schema/customers\"\nkey = \"id\"\nbatch_size = 400\n\n[sinks.fabric]\ntype = \"onelake\"\ninputs = [\"legacy\"]\nlanding_zone = {lz:?}\nmax_file_rows = 1000\n",
            plugin = plugin().display().to_string(),
            export = export.display().to_string(),
            lz = lz.display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("MIRROR_API_ADDRESS", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut replicator = Replicator::new(Arc::new(LocalDir::new(&lz)));
    replicator.scan().unwrap();
    let table = replicator
        .table("legacy.schema/customers")
        .expect("the table exists");
    assert_eq!(table.status, TableStatus::Replicating);
    assert_eq!(table.key_columns, vec!["id".to_string()]);
    let actual: BTreeMap<i64, (String, f64)> = table
        .rows()
        .into_iter()
        .map(|row| {
            let id = match row.get("id") {
                Some(Value::Int(i)) => *i,
                other => panic!("bad id {other:?}"),
            };
            let name = match row.get("name") {
                Some(Value::Str(s)) => s.clone(),
                other => panic!("bad name {other:?}"),
            };
            let score = row.get("score").and_then(Value::as_f64).expect("a score");
            (id, (name, score))
        })
        .collect();
    assert_eq!(actual, expected);
}
