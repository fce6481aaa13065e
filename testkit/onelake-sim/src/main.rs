//! `onelake-sim`: run the simulator, or replicate a local landing zone and print the tables.
//!
//! ```text
//! onelake-sim serve --port 10100 --landing-zone ws/lake/Files/LandingZone
//! onelake-sim replicate ./landing-zone
//! ```

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use onelake_sim::{LandingFiles, LocalDir, OneLakeSim, Replicator, Storage};

#[derive(Parser)]
#[command(
    version,
    about = "A local OneLake (Blob + DFS) simulator with a Fabric-like replicator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Blob and DFS APIs on 127.0.0.1.
    Serve {
        /// Port (0: any free port).
        #[arg(long, default_value_t = 10100)]
        port: u16,
        /// Replicate this landing zone (`<workspace>/<item>/Files/LandingZone`) every second and
        /// print table status changes.
        #[arg(long)]
        landing_zone: Option<String>,
    },
    /// Apply a local landing zone once and print every table.
    Replicate {
        /// The landing-zone directory.
        dir: std::path::PathBuf,
        /// Also print every row.
        #[arg(long)]
        rows: bool,
    },
}

fn print_tables(replicator: &Replicator, rows: bool) {
    for (path, table) in replicator.tables() {
        println!(
            "{path}: {:?}, {} rows, last file {}, keys {:?}",
            table.status,
            table.len(),
            table.last_applied,
            table.key_columns
        );
        for c in &table.columns {
            println!("  {} {}", c.name, c.delta_type);
        }
        if rows {
            for row in table.rows() {
                let cells: Vec<String> = row.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("  | {}", cells.join(", "));
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Serve { port, landing_zone } => {
            let storage = Storage::new();
            let sim = OneLakeSim::start_on(([127, 0, 0, 1], port).into(), storage.clone()).await?;
            println!("onelake-sim listening on {}", sim.endpoint());
            let Some(root) = landing_zone else {
                tokio::signal::ctrl_c().await?;
                return Ok(());
            };
            let files: Arc<dyn LandingFiles> = Arc::new(storage.landing_zone(&root));
            let mut replicator = Replicator::new(files);
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if !replicator.scan()?.applied.is_empty() {
                            print_tables(&replicator, false);
                        }
                    }
                }
            }
        }
        Command::Replicate { dir, rows } => {
            let mut replicator =
                Replicator::new(Arc::new(LocalDir::new(dir))).keep_processed_files();
            replicator.scan()?;
            print_tables(&replicator, rows);
            Ok(())
        }
    }
}
