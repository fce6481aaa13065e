//! Start-up that waits for its servers: `mirror run` started before MongoDB listens keeps trying
//! (not ready, saying why and what to check) and mirrors the collection once MongoDB is up;
//! refused credentials stop it at once with the server's message; `engine.start_timeout` bounds
//! the wait.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use mongo_sim::auth::SimUser;
use mongo_sim::{MongoSim, SimOptions};
use onelake_sim::{LocalDir, Replicator, Value};
use support::{free_port, key, wait_for, Mirror};

const PASSWORD: &str = "Start-Up-Pass";

fn sim(port: u16) -> mongo_sim::SimThread {
    MongoSim::start_on_thread(SimOptions {
        port,
        noop_interval: Some(Duration::from_millis(200)),
        users: vec![SimUser::new("admin", "mirror", PASSWORD).role("read", "shop")],
        ..SimOptions::default()
    })
    .expect("the simulator starts")
}

fn config(dir: &Path, port: u16, password: &str, engine: &str) -> PathBuf {
    let path = dir.join("mirror.toml");
    std::fs::write(
        &path,
        format!(
            r#"[sources.m]
type = "mongodb"
uri = "mongodb://mirror:{password}@127.0.0.1:{port}/?directConnection=true&heartbeatFrequencyMS=500&serverSelectionTimeoutMS=1000&authSource=admin"
databases = ["shop"]
progress = false

[sinks.lake]
type = "onelake"
inputs = ["m"]
landing_zone = {lz:?}
flush_interval = "200ms"

[engine]
retry = {{ initial_backoff = "200ms", max_backoff = "2s" }}
{engine}
"#,
            lz = dir.join("lz").display().to_string(),
        ),
    )
    .unwrap();
    path
}

type Rows = BTreeMap<String, (i64, String)>;

/// `shop.orders` as rows keyed by `_id`: `(n, name)`.
fn collection(sim: &mongo_sim::SimHandle) -> Rows {
    sim.collection_docs("shop", "orders")
        .iter()
        .map(|d| {
            (
                key(d.get("_id").unwrap()),
                (
                    d.get_i64("n").unwrap(),
                    d.get_str("name").unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// The table Fabric builds from the landing zone (`replicator` applies the files published since
/// its last scan), as the same rows.
fn table(replicator: &mut Replicator) -> Option<Rows> {
    replicator.scan().ok()?;
    let table = replicator.table("shop.schema/orders")?;
    Some(
        table
            .rows()
            .into_iter()
            .map(|row| {
                let text = |c: &str| match row.get(c) {
                    Some(Value::Str(s)) => s.clone(),
                    other => panic!("{c}: {other:?}"),
                };
                let n = match row.get("n") {
                    Some(Value::Int(v)) => *v,
                    other => panic!("n: {other:?}"),
                };
                (text("_id"), (n, text("name")))
            })
            .collect(),
    )
}

#[test]
fn a_run_started_before_mongodb_waits_for_it_and_mirrors_the_collection() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), port, PASSWORD, "");
    let mirror = Mirror::start(&config, dir.path(), &["--api-address", "127.0.0.1:0"], &[]);

    // Nothing listens yet: alive, not ready, and saying what to check.
    let reason = wait_for("a failed attempt", Duration::from_secs(30), || {
        let ready = mirror.get("/ready");
        assert_eq!(ready.status, 503, "{}", ready.body);
        ready
            .body
            .contains("not connected yet")
            .then_some(ready.body)
    });
    assert!(
        reason.contains("check that the host in the URI is reachable"),
        "{reason}"
    );
    assert!(!reason.contains(PASSWORD), "{reason}");
    assert_eq!(mirror.get("/health").status, 200);

    std::thread::sleep(Duration::from_secs(10));
    let log = mirror.log();
    let attempts = log.matches("cannot start yet; trying again").count();
    assert!(attempts >= 3, "{attempts} attempts logged:\n{log}");
    assert!(
        log.contains("check that the host in the URI is reachable"),
        "{log}"
    );

    // MongoDB comes up 10 s later, on that port, with the collection.
    let mongo = sim(port);
    for i in 0..300i64 {
        mongo
            .insert(
                "shop",
                "orders",
                doc! {"_id": i, "n": i * 7, "name": format!("order {i}")},
            )
            .unwrap();
    }
    wait_for("ready", Duration::from_secs(60), || {
        (mirror.get("/ready").status == 200).then_some(())
    });
    // Changes after the copy are followed too.
    mongo
        .update_one(
            "shop",
            "orders",
            doc! {"_id": 5},
            doc! {"$set": {"name": "changed"}},
        )
        .unwrap();
    mongo.delete_one("shop", "orders", doc! {"_id": 6}).unwrap();
    let expected = collection(&mongo);
    let mut replicator = Replicator::new(Arc::new(LocalDir::new(dir.path().join("lz"))));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = table(&mut replicator);
        if got.as_ref() == Some(&expected) {
            break;
        }
        if Instant::now() > deadline {
            let got = got.unwrap_or_default();
            let differing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .take(5)
                .map(|(k, v)| format!("{k}: expected {v:?}, got {:?}", got.get(k.as_str())))
                .collect();
            panic!(
                "the table ({} rows) does not equal the collection ({} rows): {differing:?}\n{}",
                got.len(),
                expected.len(),
                mirror.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = mirror.log();
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(mirror.stop().success());
}

/// `mirror run` to its end: the exit code, stdout and stderr, and how long it took.
fn run_to_end(config: &Path, log: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["run", "--api-address", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", log)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), printed, started.elapsed())
}

#[test]
fn a_wrong_password_stops_the_start_at_once_with_the_servers_message() {
    let port = free_port();
    let _mongo = sim(port);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), port, "Wrong-Pass", "");
    let (code, printed, took) = run_to_end(&config, "info");
    assert_eq!(code, Some(3), "{printed}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {printed}");
    assert!(
        printed.contains("refused the credentials") && printed.contains("Authentication failed."),
        "{printed}"
    );
    assert!(
        printed.contains("check the user name, password and authSource in the URI"),
        "{printed}"
    );
    assert!(!printed.contains("trying again"), "{printed}");
    assert!(!printed.contains("Wrong-Pass"), "{printed}");
}

#[test]
fn start_timeout_bounds_the_wait() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), port, PASSWORD, "start_timeout = \"4s\"");
    let (code, printed, took) = run_to_end(&config, "warn");
    assert_eq!(code, Some(3), "{printed}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(30),
        "took {took:?}"
    );
    assert!(
        printed.contains("source `m` could not be started within engine.start_timeout"),
        "{printed}"
    );
    assert!(
        printed.contains("check that the host in the URI is reachable"),
        "{printed}"
    );
    assert!(!printed.contains(PASSWORD), "{printed}");
}
