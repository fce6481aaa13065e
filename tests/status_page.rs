//! The status page in a real browser: `mirror run` copies two collections from mongo-sim (slowed
//! down by a fail point, so the copy lasts) while headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `node_modules`, see `tests/tools/status_page.mjs`) opens the page at
//! desktop and phone widths. Screenshots go to `target/tmp/status_page/`.

mod support;

use std::process::Command;
use std::time::Duration;

use bson::{doc, Bson, RawDocumentBuf};
use mongo_sim::{MongoSim, SimOptions};
use support::*;

fn node() -> Option<std::path::PathBuf> {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("/usr/bin/chromium is missing: apt-get install -y chromium (.ci/run does)");
        }
        eprintln!("note: skipping: no /usr/bin/chromium (apt-get install -y chromium)");
        return None;
    }
    let script_deps = repo().join("node_modules/playwright-core/package.json");
    if !script_deps.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("playwright-core is missing: npm ci --no-audit --no-fund (.ci/run does)");
        }
        eprintln!("note: skipping: playwright-core is not installed (npm ci)");
        return None;
    }
    tool("node".into(), &["--version"], "install Node.js")
}

#[test]
fn the_status_page_shows_every_table_and_its_progress_in_chromium() {
    let Some(node) = node() else { return };
    let mongo = MongoSim::start_on_thread(SimOptions {
        noop_interval: Some(Duration::from_millis(100)),
        ..SimOptions::default()
    })
    .unwrap();
    for (coll, n) in [("orders", 4000i64), ("customers", 1500)] {
        let docs: Vec<RawDocumentBuf> = (0..n)
            .map(|i| {
                RawDocumentBuf::from_document(
                    &doc! {"_id": i, "v": i, "name": format!("{coll} {i}")},
                )
                .unwrap()
            })
            .collect();
        mongo.seed_raw("shop", coll, docs).unwrap();
    }
    // Every page of the copy waits 300 ms: the initial sync lasts long enough to watch.
    mongo
        .configure_fail_point(
            "failCommand",
            Bson::String("alwaysOn".into()),
            doc! {"failCommands": ["find", "getMore"], "blockConnection": true, "blockTimeMS": 300},
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.m]\ntype = \"mongodb\"\nuri = \"{uri}\"\ndatabases = [\"shop\"]\nprogress = false\n\
             snapshot_page_size = 100\nsnapshot_readers = 1\n\n\
             [sinks.lake]\ntype = \"onelake\"\ninputs = [\"m\"]\nlanding_zone = {lz:?}\nflush_interval = \"200ms\"\n\n\
             [api]\naddress = \"127.0.0.1:0\"\n",
            uri = mongo.uri(),
            lz = dir.path().join("lz").display().to_string(),
        ),
    )
    .unwrap();
    let mirror = Mirror::start(&config, dir.path(), &[], &[]);
    wait_for(
        "both tables in /api/status",
        Duration::from_secs(60),
        || {
            let status = mirror.get("/api/status").json();
            let tables = status["tables"].as_array()?.len();
            (tables >= 2).then_some(())
        },
    );
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page");
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new(node)
        .arg(repo().join("tests/tools/status_page.mjs"))
        .arg(format!("http://{}/", mirror.api))
        .arg(&out)
        .args(["shop.schema/orders", "shop.schema/customers"])
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}\nmirror's log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        mirror.log()
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    for name in ["status-desktop.png", "status-phone.png"] {
        let shot = std::fs::metadata(out.join(name)).expect("a screenshot");
        assert!(shot.len() > 1000, "{name} is empty");
    }
    eprintln!("{stdout}\nscreenshots in {}", out.display());
}
