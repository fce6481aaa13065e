//! The HTTP API of `mirror run`, end to end: the real binary mirrors mongo-sim into onelake-sim
//! (or a local landing zone) while the tests read `/metrics` (parsed by the Prometheus project's
//! own Python parsers, not by our code), `/api/status`, `/health` and `/ready`, and inject faults.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, RawDocumentBuf};
use mongo_sim::{MongoSim, SimOptions};
use onelake_sim::{Fault, Operation};
use support::*;

const ORDERS: &str = "shop.schema/orders";
const CUSTOMERS: &str = "shop.schema/customers";

fn sim_options() -> SimOptions {
    SimOptions {
        noop_interval: Some(Duration::from_millis(100)),
        ..SimOptions::default()
    }
}

fn seed(sim: &mongo_sim::SimHandle, coll: &str, n: i64) {
    let docs: Vec<RawDocumentBuf> = (0..n)
        .map(|i| {
            RawDocumentBuf::from_document(
                &doc! {"_id": i, "v": i, "name": format!("{coll} {i}"), "pad": "x".repeat(100)},
            )
            .unwrap()
        })
        .collect();
    sim.seed_raw("shop", coll, docs).unwrap();
}

fn scrape(mirror: &Mirror, python: &std::path::Path) -> Metrics {
    let reply = mirror.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Metrics::parse(python, &reply.body, "text")
}

fn lag(m: &Metrics, table: &str) -> Option<f64> {
    m.value(
        "mirror_replication_lag_seconds",
        &[("source", "m"), ("table", table)],
    )
}

#[test]
fn metrics_follow_a_run_into_onelake_with_faults() {
    let Some(python) = python() else { return };
    let mongo = MongoSim::start_on_thread(sim_options()).unwrap();
    seed(&mongo, "orders", 3000);
    seed(&mongo, "customers", 500);
    let lake = Lake::start();
    lake.sim.tokens().only(["tok-1"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
shutdown_timeout = "30s"
retry = {{ initial_backoff = "50ms", max_backoff = "1s" }}

[sources.m]
type = "mongodb"
uri = "{uri}"
databases = ["shop"]
snapshot_page_size = 250
idle_checkpoint_interval = "2s"
progress = false

[sinks.lake]
type = "onelake"
inputs = ["m"]
{sink}flush_interval = "200ms"
request_timeout = "30s"

[api]
address = "127.0.0.1:0"
"#,
            uri = mongo.uri(),
            sink = lake.sink_toml("tok-1"),
        ),
    )
    .unwrap();
    let mirror = Mirror::start(&config, dir.path(), &[], &[]);
    wait_for("/ready", Duration::from_secs(60), || {
        (mirror.get("/ready").status == 200).then_some(())
    });

    // The initial-sync progress reaches the collections' counts, then the tables stream.
    wait_for(
        "the initial syncs to finish",
        Duration::from_secs(120),
        || {
            let m = scrape(&mirror, &python);
            let done = [(ORDERS, 3000.0), (CUSTOMERS, 500.0)].iter().all(|(t, n)| {
                let l = [("source", "m"), ("table", *t)];
                m.value("mirror_initial_sync_copied_documents", &l) == Some(*n)
                    && m.value("mirror_initial_sync_estimated_documents", &l) == Some(*n)
                    && m.value(
                        "mirror_table_phase",
                        &[("source", "m"), ("table", *t), ("phase", "streaming")],
                    ) == Some(1.0)
            });
            done.then_some(())
        },
    );

    // Change events are counted by operation.
    for i in 0..200 {
        mongo
            .insert("shop", "orders", doc! {"_id": 10_000 + i, "v": 1})
            .unwrap();
    }
    for i in 0..100 {
        mongo
            .update_one("shop", "orders", doc! {"_id": i}, doc! {"$set": {"v": -1}})
            .unwrap();
    }
    for i in 100..150 {
        mongo.delete_one("shop", "orders", doc! {"_id": i}).unwrap();
    }
    wait_for("the change events", Duration::from_secs(60), || {
        let m = scrape(&mirror, &python);
        let events = |op| {
            m.value(
                "mirror_change_events_received_total",
                &[("table", ORDERS), ("operation", op)],
            )
        };
        (events("insert") == Some(200.0)
            && events("update") == Some(100.0)
            && events("delete") == Some(50.0))
        .then_some(())
    });

    // Injected 503s show up as retries.
    let before = scrape(&mirror, &python).sum(
        "mirror_sink_retries_total",
        &[("sink", "lake"), ("reason", "unavailable")],
    );
    lake.sim
        .faults()
        .inject(Fault::unavailable(Operation::Rename, 3).on_path("orders/000"));
    mongo
        .insert("shop", "orders", doc! {"_id": 20_000, "v": 1})
        .unwrap();
    wait_for("the 503s to be retried", Duration::from_secs(60), || {
        let retried = scrape(&mirror, &python).sum(
            "mirror_sink_retries_total",
            &[("sink", "lake"), ("reason", "unavailable")],
        );
        (retried >= before + 3.0).then_some(())
    });
    assert_eq!(lake.sim.faults().pending(), 0);

    // Lag rises while a publish stalls, and comes back near 0 once it ends.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (writing, mongo) = (writing.clone(), (*mongo).clone());
        std::thread::spawn(move || {
            let mut id = 30_000;
            while writing.load(Ordering::SeqCst) {
                mongo
                    .insert("shop", "orders", doc! {"_id": id, "v": 1})
                    .unwrap();
                id += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let steady = wait_for(
        "a low lag while writes flow",
        Duration::from_secs(30),
        || lag(&scrape(&mirror, &python), ORDERS).filter(|l| *l < 3.0),
    );
    lake.sim
        .faults()
        .inject(Fault::delay(Operation::Rename, 1, Duration::from_secs(9)).on_path("orders/000"));
    let mut peak = 0.0f64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        peak = peak.max(lag(&scrape(&mirror, &python), ORDERS).unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        peak >= 5.0,
        "lag peaked at {peak:.1} s during a 9 s publish stall (before: {steady:.1} s)"
    );
    let recovered = wait_for("the lag to come back", Duration::from_secs(30), || {
        lag(&scrape(&mirror, &python), ORDERS).filter(|l| *l < 3.0)
    });
    writing.store(false, Ordering::SeqCst);
    writer.join().unwrap();
    // Idle: the post-batch resume tokens keep the lag low without writes.
    std::thread::sleep(Duration::from_secs(4));
    let idle = lag(&scrape(&mirror, &python), ORDERS).expect("a lag");
    assert!(idle < 3.0, "lag {idle:.1} s while idle");
    eprintln!(
        "lag: {steady:.1} s steady, {peak:.1} s peak in the stall, {recovered:.1} s after, {idle:.1} s idle"
    );

    // Once nothing is pending, rows and files published equal what the landing zone holds.
    let settled = wait_for("everything committed", Duration::from_secs(30), || {
        let m = scrape(&mirror, &python);
        (m.value("mirror_source_pending_items", &[("source", "m")]) == Some(0.0)).then_some(m)
    });
    for table in [ORDERS, CUSTOMERS] {
        let labels = [("source", "m"), ("sink", "lake"), ("table", table)];
        let files = lake.data_files(table);
        let rows: i64 = files.iter().map(|(_, r)| r).sum();
        assert!(!files.is_empty(), "{table}: no file");
        assert_eq!(
            settled.value("mirror_published_files_total", &labels),
            Some(files.len() as f64),
            "{table}: files"
        );
        assert_eq!(
            settled.sum("mirror_published_rows_total", &labels),
            rows as f64,
            "{table}: rows"
        );
        let last = files.last().map(|(n, _)| n[..20].parse::<f64>().unwrap());
        assert_eq!(
            settled.value("mirror_last_file_sequence_number", &labels),
            last,
            "{table}: last file"
        );
        assert_eq!(settled.value("mirror_lease_held", &labels), Some(1.0));
        assert!(
            settled.sum("mirror_publish_duration_seconds_count", &labels) >= files.len() as f64
        );
    }
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(settled.value(name, &[]).is_some_and(|v| v > 0.0), "{name}");
    }

    // OpenMetrics when asked for, accepted by the strict OpenMetrics parser.
    let om = get(
        mirror.api,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert!(om
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/openmetrics-text")));
    assert!(om.body.ends_with("# EOF\n"));
    let om = Metrics::parse(&python, &om.body, "openmetrics");
    assert_eq!(
        om.value(
            "mirror_published_files_total",
            &[("table", ORDERS), ("sink", "lake")]
        ),
        settled.value(
            "mirror_published_files_total",
            &[("table", ORDERS), ("sink", "lake")]
        )
    );

    // The same facts as JSON.
    let status = mirror.get("/api/status").json();
    let orders = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == ORDERS)
        .expect("orders in /api/status")
        .clone();
    assert_eq!(orders["phase"], "streaming");
    assert_eq!(orders["sink"], "lake");
    assert_eq!(orders["initial_sync"]["copied"], 3000);
    assert_eq!(
        orders["last_file"]["number"].as_u64(),
        lake.data_files(ORDERS)
            .last()
            .map(|(n, _)| n[..20].parse().unwrap())
    );
    assert!(orders["lag_seconds"].as_f64().unwrap() < 5.0);
    assert!(
        orders["last_error"]["message"].is_string(),
        "the 503s: {orders}"
    );
    assert_eq!(status["ready"]["ok"], true);
    assert_eq!(status["health"]["ok"], true);

    let code = mirror.stop();
    assert!(code.success(), "mirror stopped with {code}");

    // `mirror status --format json` prints the same shape from the checkpoints.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["status", "--format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["live"], false);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&offline), keys(&status));
    let offline_orders = offline["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == ORDERS)
        .expect("orders in mirror status")
        .clone();
    assert_eq!(keys(&offline_orders), keys(&orders));
    assert_eq!(offline_orders["phase"], "streaming");
    assert_eq!(offline_orders["initial_sync"]["copied"], 3000);
    assert!(offline_orders["position"]["text"]
        .as_str()
        .unwrap()
        .starts_with("cluster time "));
}

#[test]
fn ready_waits_for_mongodb_and_probes_stay_fast_during_an_initial_sync() {
    const DOCS: i64 = 400_000;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.m]
type = "mongodb"
uri = "mongodb://127.0.0.1:{port}/?directConnection=true&heartbeatFrequencyMS=500&serverSelectionTimeoutMS=60000"
databases = ["shop"]
progress = false

[sinks.lake]
type = "onelake"
inputs = ["m"]
landing_zone = {lz:?}

[api]
address = "127.0.0.1:0"
"#,
            lz = dir.path().join("lz").display().to_string(),
        ),
    )
    .unwrap();
    let mut mirror = Mirror::start(&config, dir.path(), &[], &[]);
    // Nothing listens on the MongoDB port yet: alive, not ready.
    for _ in 0..10 {
        let ready = mirror.get("/ready");
        assert_eq!(ready.status, 503, "{}", ready.body);
        assert!(
            ready.body.contains("source `m`: connecting"),
            "{}",
            ready.body
        );
        assert_eq!(mirror.get("/health").status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }

    // MongoDB comes up (held until its data is loaded): ready.
    let mongo = MongoSim::start_on_thread(SimOptions {
        port,
        ..sim_options()
    })
    .unwrap();
    mongo.pause();
    seed(&mongo, "orders", DOCS);
    mongo.resume();

    // From now on mirror connects and copies the documents: the probes answer within
    // 100 ms all along, and /ready turns 200.
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
    };
    // The whole machine's busy and total CPU ticks (/proc/stat's first line).
    let machine = || -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let idle = f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0);
        let total: f64 = f.iter().take(8).sum();
        (total - idle, total)
    };
    // The copy alone leaves cores idle here (the simulator serves it from one thread): a
    // thread per core spinning alongside makes sure the machine is saturated, as it is when a
    // large initial sync runs next to other work.
    let spinning = Arc::new(AtomicBool::new(true));
    let spinners: Vec<_> = (0..std::thread::available_parallelism().map_or(1, |n| n.get()))
        .map(|_| {
            let spinning = spinning.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                let until = Instant::now() + Duration::from_secs(150);
                while spinning.load(Ordering::Relaxed) && Instant::now() < until {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let me = std::process::id();
    let (cpu0, sim0, machine0, wall0) = (cpu(mirror.pid()), cpu(me), machine(), Instant::now());
    let mut latencies = Vec::new();
    let mut ready_at = None;
    loop {
        if let Some(status) = mirror.try_wait() {
            panic!("mirror exited ({status}):\n{}", mirror.log());
        }
        let health = mirror.get("/health");
        assert_eq!(health.status, 200, "/health: {}", health.body);
        let ready = mirror.get("/ready");
        assert!([200, 503].contains(&ready.status), "/ready: {}", ready.body);
        if ready.status == 200 {
            ready_at.get_or_insert(wall0.elapsed());
        }
        latencies.extend([health.took, ready.took]);
        let status = mirror.get("/api/status").json();
        let copied = status["tables"][0]["initial_sync"]["copied"].as_u64();
        if (copied == Some(DOCS as u64) && ready_at.is_some())
            || wall0.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready_at = ready_at.expect("/ready turned 200 once MongoDB was up");
    spinning.store(false, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    let secs = wall0.elapsed().as_secs_f64();
    let cores = (cpu(mirror.pid()) - cpu0) / secs;
    // The simulator serving the copy runs in this process.
    let busy = cores + (cpu(me) - sim0) / secs;
    let machine1 = machine();
    let utilisation = (machine1.0 - machine0.0) / (machine1.1 - machine0.1).max(1.0);
    latencies.sort();
    let max = *latencies.last().unwrap();
    eprintln!(
        "{} probes while connecting and copying ({:.1} s, ready after {ready_at:?}, mirror using {cores:.2} cores, with the simulator {busy:.2} of {}; machine {:.0}% busy): median {:?}, max {max:?}",
        latencies.len(),
        wall0.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        utilisation * 100.0,
        latencies[latencies.len() / 2]
    );
    assert!(latencies.len() >= 20, "too few probes during the sync");
    assert!(
        utilisation > 0.8 && cores > 0.2,
        "the machine was not saturated ({:.0}% busy, mirror {cores:.2} cores)",
        utilisation * 100.0
    );
    assert!(max < Duration::from_millis(100), "a probe took {max:?}");
}

#[test]
fn health_turns_503_after_a_permanent_route_failure() {
    let mongo = MongoSim::start_on_thread(sim_options()).unwrap();
    seed(&mongo, "orders", 100);
    let lake = Lake::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.m]
type = "mongodb"
uri = "{uri}"
databases = ["shop"]
progress = false

[sinks.lake]
type = "onelake"
inputs = ["m"]
{sink}flush_interval = "100ms"

[api]
address = "127.0.0.1:0"
linger_on_failure = "4s"
"#,
            uri = mongo.uri(),
            sink = lake.sink_toml("tok"),
        ),
    )
    .unwrap();
    let mirror = Mirror::start(&config, dir.path(), &[], &[]);
    wait_for("/ready", Duration::from_secs(60), || {
        (mirror.get("/ready").status == 200 && mirror.get("/health").status == 200).then_some(())
    });
    wait_for("the first file", Duration::from_secs(60), || {
        (!lake.data_files(ORDERS).is_empty()).then_some(())
    });
    // The identity loses its write permission: a permanent error, the route stops.
    lake.sim
        .tokens()
        .deny_writes_under(format!("{LZ_PATH}/{ORDERS}"));
    mongo
        .insert("shop", "orders", doc! {"_id": 1000, "v": 1})
        .unwrap();
    let health = wait_for("/health to fail", Duration::from_secs(30), || {
        let r = mirror.get("/health");
        (r.status == 503).then_some(r)
    });
    let body = health.json();
    assert_eq!(body["status"], "unhealthy");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("a route failed: "), "{reason}");
    assert!(reason.contains("lake"), "{reason}");
    assert_eq!(mirror.get("/ready").status, 503);
    // Then it exits with the failure's code.
    let status = mirror.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
}

fn small_config(dir: &std::path::Path, uri: &str, api: &str) -> std::path::PathBuf {
    let config = dir.join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.m]\ntype = \"mongodb\"\nuri = \"{uri}\"\ndatabases = [\"shop\"]\nprogress = false\n\n\
             [sinks.lake]\ntype = \"onelake\"\ninputs = [\"m\"]\nlanding_zone = {lz:?}\n\n[api]\n{api}\n",
            lz = dir.join("lz").display().to_string(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_token_guards_everything_but_the_probes() {
    let mongo = MongoSim::start_on_thread(sim_options()).unwrap();
    seed(&mongo, "orders", 10);
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cret-api-token";
    let config = small_config(
        dir.path(),
        &mongo.uri(),
        "address = \"127.0.0.1:0\"\ntoken = \"${MIRROR_TEST_API_TOKEN}\"",
    );
    let mirror = Mirror::start(
        &config,
        dir.path(),
        &[],
        &[("MIRROR_TEST_API_TOKEN", token)],
    );
    wait_for("/ready", Duration::from_secs(60), || {
        (mirror.get("/ready").status == 200).then_some(())
    });
    assert_eq!(mirror.get("/health").status, 200);
    let bearer = format!("Bearer {token}");
    for path in ["/metrics", "/api/status", "/"] {
        let refused = mirror.get(path);
        assert_eq!(refused.status, 401, "{path} without a token");
        assert_eq!(
            refused.header("www-authenticate").as_deref(),
            Some("Bearer")
        );
        let wrong = get(
            mirror.api,
            path,
            &[("Authorization", "Bearer s3cret-api-tokeX")],
        );
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let ok = get(mirror.api, path, &[("Authorization", &bearer)]);
        assert_eq!(ok.status, 200, "{path} with the token");
        assert!(!ok.body.contains(token), "{path} shows the token");
    }
    assert!(!mirror.log().contains(token), "the token reached the log");
}

#[test]
fn a_taken_port_is_a_clear_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), "mongodb://127.0.0.1:1/", "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["run", "--api-address", &address, "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve the HTTP API on {address}"))
            && stderr.contains("already in use"),
        "{stderr}"
    );
    // `mirror check` says where the API will listen.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("api: http://127.0.0.1:8686/"));
}
