//! The `mongo-sim` binary: serves a simulator until stopped, printing its URI first.

use std::time::Duration;

use clap::Parser;
use mongo_sim::{MongoSim, SimOptions};

/// An in-memory MongoDB replica-set primary for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "mongo-sim", version)]
struct Args {
    /// Port to listen on (0 picks a free port).
    #[arg(long, default_value_t = 27017)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Replica set name.
    #[arg(long, default_value = "rs0")]
    set_name: String,
    /// Oplog size in MiB (older change history is dropped beyond it).
    #[arg(long, default_value_t = 256)]
    oplog_size_mb: usize,
    /// Interval of the idle no-op oplog writer in ms (0 disables it).
    #[arg(long, default_value_t = 10_000)]
    noop_interval_ms: u64,
    /// The mongod version to play (6.0 or later), e.g. 6.0.8 for a server without
    /// `$changeStreamSplitLargeEvent`.
    #[arg(long, default_value = "7.0.0")]
    server_version: mongo_sim::ServerVersion,
    /// Seed a sample database `sample` with a collection `items` of N documents.
    #[arg(long, value_name = "N")]
    seed_sample: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let opts = SimOptions {
        host: args.host,
        port: args.port,
        set_name: args.set_name,
        oplog_size_bytes: args.oplog_size_mb * 1024 * 1024,
        noop_interval: (args.noop_interval_ms > 0)
            .then(|| Duration::from_millis(args.noop_interval_ms)),
        server_version: args.server_version,
        ..SimOptions::default()
    };
    let sim = MongoSim::start(opts).await?;
    if let Some(n) = args.seed_sample {
        sim.seed_sample("sample", "items", n)?;
    }
    println!("{}", sim.uri());
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
