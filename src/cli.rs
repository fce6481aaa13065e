//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit;
use crate::logging::LogFormat;

const EXAMPLES: &str = "\
Examples:
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
    /// Show each source's and table's committed position from the checkpoint store.
    Status {
        /// The configuration file.
        #[arg(short, long, default_value = "mirror.toml", env = "MIRROR_CONFIG")]
        config: PathBuf,
    },
}
