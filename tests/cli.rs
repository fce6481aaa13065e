//! The `mirror` binary as a user runs it: help, check, run, status, demo, and a custom build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use onelake_sim::{LocalDir, Replicator, TableStatus};

fn mirror() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirror"));
    // Any free port: tests run in parallel, and 8686 may be taken.
    cmd.env("RUST_LOG", "warn")
        .env_remove("MIRROR_CONFIG")
        .env("MIRROR_API_ADDRESS", "127.0.0.1:0");
    cmd
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn version_and_help_document_the_commands_and_exit_codes() {
    let out = mirror().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mirror {}", env!("CARGO_PKG_VERSION"))
    );
    let out = mirror().arg("--help").output().unwrap();
    let help = text(&out);
    for needle in [
        "run",
        "check",
        "status",
        "demo",
        "Exit codes:",
        "2    invalid command line or configuration",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn check_knows_every_first_party_component_and_prints_routes() {
    // The binary must link the connector and sink crates, or their inventory registrations vanish.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        r#"
[sources.atlas]
type = "mongodb"
uri = "mongodb://app:s3cret@db.example.net/?replicaSet=rs0"
databases = ["shop"]

[transforms.live]
type = "filter"
inputs = ["atlas"]
where = "status != 'archived'"

[sinks.fabric]
type = "onelake"
inputs = ["live"]
landing_zone = "./lz"
"#,
    )
    .unwrap();
    let out = mirror()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("atlas -> live -> fabric"), "{printed}");
    assert!(
        printed.contains("mongodb://app:***@db.example.net"),
        "{printed}"
    );
    assert!(
        !printed.contains("s3cret"),
        "the password leaked: {printed}"
    );
}

#[test]
fn a_bad_config_exits_2_with_the_place_of_the_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(&config, "[sources.gen]\ntype = \"generator\"\ncount = -1\n[sinks.lake]\ntype = \"onelake\"\ninputs = [\"gen\"]\nlanding_zone = \"x\"\n").unwrap();
    let out = mirror()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let printed = text(&out);
    assert!(
        printed.contains("mirror.toml:3:9: sources.gen.count: invalid value: integer `-1`"),
        "{printed}"
    );
}

/// Checks a landing zone against the contract: metadata, no gaps, tables replicate cleanly.
fn assert_landing_zone_is_valid(lz: &Path) -> Replicator {
    let mut replicator = Replicator::new(Arc::new(LocalDir::new(lz))).keep_processed_files();
    replicator.scan().unwrap();
    assert!(lz.join("_partnerEvents.json").exists());
    assert!(!replicator.tables().is_empty());
    for (path, table) in replicator.tables() {
        assert_eq!(table.status, TableStatus::Replicating, "{path}");
        assert_eq!(table.key_columns, vec!["id".to_string()], "{path}");
        assert!(table.duplicate_keys().is_empty(), "{path}");
        let files: Vec<String> = std::fs::read_dir(lz.join(path))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".parquet") && !n.starts_with('_'))
            .collect();
        let mut numbers: Vec<u64> = files.iter().map(|n| n[..20].parse().unwrap()).collect();
        numbers.sort();
        assert_eq!(
            numbers,
            (1..=numbers.len() as u64).collect::<Vec<_>>(),
            "{path}: gap in {files:?}"
        );
        assert_eq!(table.last_applied, numbers.len() as u64);
    }
    replicator
}

#[test]
fn run_writes_a_valid_landing_zone_and_a_second_run_has_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo().join("examples/configs/generator-local.toml");
    let out = mirror()
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let lz = dir.path().join("landing-zone");
    let first = assert_landing_zone_is_valid(&lz);
    let rows: usize = first.tables().values().map(|t| t.len()).sum();
    assert!(rows > 0);

    let out = mirror()
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("source gen: 0 rows"), "{printed}");
    let second = assert_landing_zone_is_valid(&lz);
    assert_eq!(
        second.tables().values().map(|t| t.len()).sum::<usize>(),
        rows
    );

    let out = mirror()
        .current_dir(dir.path())
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("emitted 20000 of 20000 rows"), "{printed}");
}

#[test]
fn demo_mirrors_the_sample_database_and_stops_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let lz = dir.path().join("lz");
    let out = mirror()
        .args([
            "demo",
            "--duration",
            "4",
            "--docs",
            "3000",
            "--landing-zone",
        ])
        .arg(&lz)
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("Every mirrored table has exactly as many rows as its collection."),
        "{printed}"
    );
    let mut replicator = Replicator::new(Arc::new(LocalDir::new(&lz))).keep_processed_files();
    replicator.scan().unwrap();
    for name in [
        "shop.schema/customers",
        "shop.schema/orders",
        "shop.schema/products",
    ] {
        let t = replicator
            .table(name)
            .unwrap_or_else(|| panic!("no table {name}"));
        assert_eq!(t.status, TableStatus::Replicating);
        assert!(!t.is_empty());
    }
    // A second demo in the same place starts over instead of refusing.
    let out = mirror()
        .args(["demo", "--duration", "1", "--docs", "500", "--landing-zone"])
        .arg(&lz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // But a directory that is not the demo's is left alone.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let out = mirror()
        .args(["demo", "--duration", "1", "--landing-zone"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("is not empty and was not made by `mirror demo`"));
    assert!(other.join("keep.txt").exists());
}

fn example(name: &str) -> PathBuf {
    // `cargo test` builds the package's examples next to the test binaries' directory.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    deps.parent().unwrap().join("examples").join(name)
}

#[test]
fn a_custom_build_adds_its_own_component() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custom.toml");
    std::fs::write(
        &config,
        "[sources.gen]\ntype = \"generator\"\ncount = 100\n[transforms.up]\ntype = \"uppercase\"\ninputs = [\"gen\"]\ncolumns = [\"name\"]\n[sinks.lake]\ntype = \"onelake\"\ninputs = [\"up\"]\nlanding_zone = \"./lz\"\n",
    )
    .unwrap();
    let custom = example("custom_binary");
    // `cargo test` (all targets) builds the examples; `cargo test --test cli` alone does not.
    assert!(
        custom.exists(),
        "{} is missing: run `cargo test` (which builds examples) or `cargo build --examples` first",
        custom.display()
    );
    let out = Command::new(&custom)
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut replicator =
        Replicator::new(Arc::new(LocalDir::new(dir.path().join("lz")))).keep_processed_files();
    replicator.scan().unwrap();
    let table = replicator.table("generated").unwrap();
    for row in table.rows() {
        if let Some(onelake_sim::Value::Str(name)) = row.get("name") {
            assert_eq!(name, &name.to_uppercase());
        }
    }
    // The stock binary does not know the custom type.
    let out = mirror()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("unknown transform type `uppercase`"));
}

#[test]
fn the_example_configuration_is_valid() {
    let out = mirror()
        .args(["check", "--config"])
        .arg(repo().join("mirror.toml.example"))
        .env("MONGODB_URI", "mongodb+srv://app:pw@cluster0.example.net/")
        .env("MASK_KEY", "k")
        .env("FABRIC_WORKSPACE", "ws")
        .env("FABRIC_ITEM", "db.MountedRelationalDatabase")
        .env("AZURE_TENANT_ID", "t")
        .env("AZURE_CLIENT_ID", "c")
        .env("AZURE_CLIENT_SECRET", "very-secret-value")
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("atlas -> pii -> fabric"), "{printed}");
    assert!(
        !printed.contains("very-secret-value") && !printed.contains(":pw@"),
        "{printed}"
    );
}

#[test]
fn an_unreachable_mongodb_is_a_startup_error_after_start_timeout_that_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        "[sources.m]\ntype = \"mongodb\"\nuri = \"mongodb://app:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=300\"\ndatabases = [\"shop\"]\n[sinks.lake]\ntype = \"onelake\"\ninputs = [\"m\"]\nlanding_zone = \"./lz\"\n[engine]\nstart_timeout = \"1s\"\n",
    )
    .unwrap();
    let out = mirror()
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(3), "{printed}");
    assert!(
        printed.contains("cannot reach MongoDB at mongodb://app:***@127.0.0.1:1/"),
        "{printed}"
    );
    assert!(
        printed.contains("check that the host in the URI is reachable"),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");
}
