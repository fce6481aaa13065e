//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit;
use crate::logging::LogFormat;

const EXAMPLES: &str = "\
Examples:
  mirror demo --duration 20             mirror a sample MongoDB into ./landing-zone for 20 s
  mirror check --config mirror.toml     validate a configuration and print its routes
  mirror run --config mirror.toml       mirror until stopped (Ctrl-C stops cleanly)
  mirror status --config mirror.toml    show each table's phase and position
  RUST_LOG=mirror_core=debug mirror run --config mirror.toml --log-format json";

/// Keeps Microsoft Fabric in sync with MongoDB through Open Mirroring.
#[derive(Debug, Parser)]
#[command(name = "mirror", version, about, after_help = format!("{EXAMPLES}\n\n{}", exit::HELP))]
pub struct Cli {
    /// Log line format (logs go to stderr; `RUST_LOG` sets the filter).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "pretty",
        env = "MIRROR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    /// More log detail (-v: debug for mirror's crates, -vv: debug everywhere).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the configured routes until every finite source is done, or until stopped.
    #[command(
        after_help = "SIGINT/SIGTERM stop cleanly: in-flight batches are written and \
        checkpointed within engine.shutdown_timeout. A second SIGINT exits at once; nothing \
        unwritten is ever checkpointed, so the next run re-sends it."
    )]
    Run {
        /// The configuration file.
        #[arg(short, long, default_value = "mirror.toml", env = "MIRROR_CONFIG")]
        config: PathBuf,
    },
    /// Parse and validate a configuration, and print the routes it would run.
    Check {
        /// The configuration file.
        #[arg(short, long, default_value = "mirror.toml", env = "MIRROR_CONFIG")]
        config: PathBuf,
    },
    /// Mirror an embedded sample MongoDB database into a local landing zone, with live changes,
    /// then show the resulting tables.
    Demo {
        /// Where the landing zone goes (created; a previous demo's is cleared).
        #[arg(long, default_value = "landing-zone")]
        landing_zone: PathBuf,
        /// Stop by itself after this many seconds, with everything published and checkpointed
        /// (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Documents in the sample database.
        #[arg(long, default_value_t = 10_000)]
        docs: u64,
        /// Live changes per second.
        #[arg(long, default_value_t = 50)]
        changes_per_sec: u32,
    },
    /// Show each source's and table's committed position from the checkpoint store.
    Status {
        /// The configuration file.
        #[arg(short, long, default_value = "mirror.toml", env = "MIRROR_CONFIG")]
        config: PathBuf,
    },
}
