//! `mirror demo`: an embedded MongoDB simulator with a sample database, mirrored into a local
//! landing zone while live changes happen, then the resulting tables as Fabric would show them.

mod sample;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirror_core::config::{ApiSettings, ConfigLoader};
use mirror_core::engine::Engine;
use mirror_core::telemetry::Telemetry;
use mongo_sim::{MongoSim, SimOptions};
use onelake_sim::{LocalDir, Replicator, TableStatus};

use crate::exit::Code;

/// Marks a landing zone the demo created, so a later demo may clear it (and nothing else).
const DEMO_MARKER: &str = "_mirror_demo";

/// What `mirror demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// Where the landing zone goes.
    pub landing_zone: PathBuf,
    /// Stop after this long (else on Ctrl-C).
    pub duration: Option<Duration>,
    /// Documents in the sample database.
    pub docs: u64,
    /// Live changes per second.
    pub changes_per_sec: u32,
    /// Where the status page is served.
    pub api_address: std::net::SocketAddr,
}

/// Runs the demo.
pub async fn demo(args: DemoArgs) -> Code {
    match run(args).await {
        Ok(code) => code,
        Err(message) => {
            crate::print::error(&message);
            Code::Failed
        }
    }
}

async fn run(args: DemoArgs) -> Result<Code, String> {
    prepare_landing_zone(&args.landing_zone)?;
    let telemetry = Telemetry::new();
    let api =
        crate::api::ApiServer::start(&ApiSettings::default(), args.api_address, telemetry.clone())
            .map_err(|e| e.to_string())?;
    let sim = MongoSim::start(SimOptions::default())
        .await
        .map_err(|e| format!("cannot start the embedded MongoDB simulator: {e}"))?;
    let handle = sim.handle();
    let mut sizes = sample::Sizes::for_total(args.docs);
    sample::seed(&handle, sizes).map_err(|e| format!("cannot load the sample database: {e}"))?;
    println!(
        "MongoDB simulator at {} with database `shop`: customers, orders, products",
        sim.uri()
    );
    println!("mirroring into {}", args.landing_zone.display());
    println!("status page: {} (also /metrics, /api/status)", api.url());

    let text = format!(
        r#"
[sources.shop]
type = "mongodb"
uri = {uri:?}
databases = ["shop"]
collections = ["*"]

[sinks.lake]
type = "onelake"
inputs = ["shop"]
landing_zone = {lz:?}
flush_interval = "1s"

[tables."*"]
flatten_depth = 1
"#,
        uri = sim.uri(),
        lz = args.landing_zone.display().to_string(),
    );
    let config = ConfigLoader::default()
        .parse(&text, "demo")
        .map_err(|e| e.to_string())?;
    let engine = Engine::new(config).with_telemetry(telemetry.clone());
    let stop = engine.shutdown_token();
    let running = tokio::spawn(engine.run());

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
            }
        });
    }

    let changes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut dice = sample::Dice::new(11);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.changes_per_sec.max(1)));
    let mut next_report = Instant::now() + Duration::from_secs(2);
    let mut replicator =
        Replicator::new(Arc::new(LocalDir::new(&args.landing_zone))).keep_processed_files();
    loop {
        if interrupted.load(Ordering::SeqCst)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
            || running.is_finished()
        {
            break;
        }
        sample::change(&handle, &mut sizes, &mut dice)
            .map_err(|e| format!("live change failed: {e}"))?;
        changes.fetch_add(1, Ordering::Relaxed);
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(2);
            let _ = replicator.scan();
            let tables: Vec<String> = replicator
                .tables()
                .values()
                .map(|t| format!("{} {} rows", t.path, t.len()))
                .collect();
            println!(
                "[{:>4.0}s] {} live changes; mirrored: {}",
                started.elapsed().as_secs_f64(),
                changes.load(Ordering::Relaxed),
                if tables.is_empty() {
                    "(initial sync running)".into()
                } else {
                    tables.join(", ")
                }
            );
        }
        tokio::time::sleep(interval).await;
    }

    // Let the mirror catch up with the last changes, then stop it cleanly (flush and checkpoint).
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected = |name: &str| handle.collection_len(sample::DB, name);
    while Instant::now() < deadline && !running.is_finished() {
        let _ = replicator.scan();
        let caught_up = ["customers", "orders", "products"].iter().all(|c| {
            replicator
                .table(&format!("shop.schema/{c}"))
                .is_some_and(|t| t.len() == expected(c))
        });
        if caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    let outcome = running
        .await
        .map_err(|e| format!("the mirror task failed: {e}"))?;
    let report = match outcome {
        Ok(report) => report,
        Err(e) => return Err(e.to_string()),
    };
    let _ = replicator.scan();
    println!("\n{report}\n");
    println!(
        "Tables in {} (as Fabric applies them):",
        args.landing_zone.display()
    );
    let mut all_equal = true;
    for (path, table) in replicator.tables() {
        let coll = path.rsplit('/').next().unwrap_or(path);
        let source_rows = expected(coll);
        let status = match &table.status {
            TableStatus::Replicating => "replicating".to_string(),
            other => format!("{other:?}"),
        };
        all_equal &= table.len() == source_rows;
        println!(
            "\n  {path}: {} rows (collection: {source_rows}), {status}",
            table.len()
        );
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.delta_type))
            .collect();
        println!("  columns: {}", columns.join(", "));
        for row in table.rows().iter().take(3) {
            let cells: Vec<String> = row
                .iter()
                .filter(|(name, _)| name.as_str() != "__rowMarker__")
                .map(|(name, v)| format!("{name}={}", shorten(&v.to_string())))
                .collect();
            println!("    {}", cells.join("  "));
        }
    }
    sim.shutdown().await;
    api.stop();
    println!(
        "\nThe landing zone, its Parquet files and mirror's checkpoints are in {}.",
        args.landing_zone.display()
    );
    if all_equal {
        println!("Every mirrored table has exactly as many rows as its collection.");
        Ok(Code::Ok)
    } else {
        println!("Some tables differ from their collections (see above).");
        Ok(Code::Failed)
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 32 {
        format!("{}…", text.chars().take(31).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Creates the landing zone, or clears one a previous demo made; refuses anything else.
fn prepare_landing_zone(dir: &Path) -> Result<(), String> {
    let not_empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if not_empty {
        if !dir.join(DEMO_MARKER).exists() {
            return Err(format!(
                "{} is not empty and was not made by `mirror demo`; choose another directory with --landing-zone",
                dir.display()
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "made by `mirror demo`; the next demo run clears this directory\n",
    )
    .map_err(|e| format!("cannot write in {}: {e}", dir.display()))
}
