//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::logging::LogFormat;

/// The demo's example line, in builds that have `mirror demo` (the `demo` feature).
const DEMO_EXAMPLE: &str = if cfg!(feature = "demo") {
    "  mirror demo --duration 20             mirror a sample MongoDB into ./landing-zone for 20 s\n"
} else {
    ""
};

const EXAMPLES: &str = "\
  mirror check --config mirror.toml     validate a configuration and print its routes
  mirror check --connect                also connect to MongoDB and the landing zone, and say what to fix
  mirror run --config mirror.toml       mirror until stopped (Ctrl-C stops cleanly)
  mirror status --config mirror.toml    show each table's phase and position, and Fabric's side
  mirror health --url http://127.0.0.1:8080/ready
                                        probe a running mirror (exit 0 when it answers 2xx)
  mirror init --from-env .env           convert the MongoDB_Fabric_Mirroring app's settings
  mirror fabric create --workspace Sales --name shop --config mirror.toml
                                        create a mirrored database, start it, set landing_zone
  RUST_LOG=mirror_core=debug mirror run --config mirror.toml --log-format json";

/// Keeps Microsoft Fabric in sync with MongoDB through Open Mirroring.
#[derive(Debug, Parser)]
#[command(name = "mirror", version, about, after_help = format!("Examples:\n{DEMO_EXAMPLE}{EXAMPLES}\n\n{}", exit::HELP))]
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

/// How `mirror status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Lines for people.
    Text,
    /// The JSON of `GET /api/status`, from the checkpoint store.
    Json,
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
        /// Serve the HTTP API (/health, /ready, /metrics, /api/status, the status page) on this
        /// address instead of [api] address, even if [api] enabled = false.
        #[arg(long, value_name = "ADDR", env = "MIRROR_API_ADDRESS")]
        api_address: Option<SocketAddr>,
    },
    /// Parse and validate a configuration, and print the routes it would run; with --connect,
    /// also connect to every source and sink and say whether `mirror run` would work.
    #[command(
        after_help = "--connect: per source the server version, the deployment (a replica set or \
        sharded cluster), the user's privileges, pre-images when full_document needs them and the \
        oplog window; per sink the token, the landing zone, a write probe (a `_`-prefixed file, \
        removed again) and the Fabric item. One line per check, with what to fix. Nothing is \
        written to any table. Exits 3 when a check fails."
    )]
    Check {
        /// The configuration file.
        #[arg(short, long, default_value = "mirror.toml", env = "MIRROR_CONFIG")]
        config: PathBuf,
        /// Connect to every source and sink and check that `mirror run` can read and write.
        #[arg(long)]
        connect: bool,
        /// How long each connection attempt may take with --connect.
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Mirror an embedded sample MongoDB database into a local landing zone, with live changes,
    /// then show the resulting tables.
    #[cfg(feature = "demo")]
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
        /// Where the status page and the rest of the HTTP API are served.
        #[arg(
            long,
            value_name = "ADDR",
            default_value = mirror_core::config::DEFAULT_API_ADDRESS,
            env = "MIRROR_API_ADDRESS"
        )]
        api_address: SocketAddr,
    },
    /// Show each source's and table's committed position from the checkpoint store, and what
    /// Fabric reports for each table when the sink has a `fabric` setting.
    Status {
        /// The configuration file.
        #[arg(short, long, default_value = "mirror.toml", env = "MIRROR_CONFIG")]
        config: PathBuf,
        /// `text` for people, `json` for scripts (the shape of `GET /api/status`).
        #[arg(long, value_enum, default_value = "text")]
        format: StatusFormat,
    },
    /// Write a commented starter mirror.toml, or one equivalent to the MongoDB_Fabric_Mirroring
    /// Python app's `.env` (secrets stay in the environment, as `${VAR}` references).
    Init(InitArgs),
    /// Probe a running `mirror` (the container's HEALTHCHECK): exit 0 if the URL answers 2xx,
    /// else 1.
    Health {
        /// The probe to ask (`/ready` for readiness).
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080/health",
            env = "MIRROR_HEALTH_URL"
        )]
        url: String,
        /// Give up waiting for the answer after this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Set up and watch the Fabric mirrored database (Fabric REST API).
    #[command(
        after_help = "Credentials: with --config, the onelake sink's `fabric.auth` (default: its \
        `auth`); without, AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET (and \
        AZURE_AUTHORITY_HOST), else AZURE_FEDERATED_TOKEN_FILE, else the managed identity. The \
        identity that writes the landing zone needs the Contributor role in the workspace."
    )]
    Fabric {
        #[command(subcommand)]
        command: FabricCommand,
    },
}

/// `mirror init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Convert this `.env` of the MongoDB_Fabric_Mirroring app (MONGO_CONN_STR, MONGO_DB_NAME,
    /// MONGO_COLLECTION, LZ_URL, APP_ID, SECRET, TENANT_ID, ...).
    #[arg(long, value_name = "FILE")]
    pub from_env: Option<PathBuf>,
    /// Where to write the configuration.
    #[arg(short, long, default_value = "mirror.toml")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// The environment variable holding the MongoDB URI.
    #[arg(long, default_value = "MONGODB_URI", value_name = "VAR")]
    pub uri_var: String,
    /// A database to mirror (repeatable; default: every database).
    #[arg(long = "database", value_name = "NAME")]
    pub databases: Vec<String>,
    /// Collections to mirror (repeatable: names, `db.name`, patterns; default: all).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// The landing zone: a OneLake URL, or a local directory.
    #[arg(long, default_value = "./landing-zone", value_name = "URL or DIR")]
    pub landing_zone: String,
}

/// `mirror fabric ...`.
#[derive(Debug, Subcommand)]
pub enum FabricCommand {
    /// Create an open mirroring database, wait until it is ready, start mirroring, and print its
    /// landing zone (with --config: write it into the onelake sink's `landing_zone`).
    Create {
        /// The mirrored database's name.
        #[arg(long)]
        name: String,
        /// Its description.
        #[arg(long, default_value = "Mirrored from MongoDB by mirror")]
        description: String,
        /// The schema of tables whose folder has none.
        #[arg(long, default_value = "dbo")]
        default_schema: String,
        /// Create it, but do not start mirroring.
        #[arg(long)]
        no_start: bool,
        #[command(flatten)]
        target: FabricTarget,
    },
    /// Start mirroring (`startMirroring`).
    Start(FabricTarget),
    /// Stop mirroring (`stopMirroring`).
    Stop(FabricTarget),
    /// Show the mirroring status and every table's status, processed rows and last sync.
    Status(FabricTarget),
    /// Give an identity a workspace role (default Contributor: what `mirror` needs to write the
    /// landing zone and start or stop mirroring). The caller must be a workspace Member or Admin.
    Grant {
        /// The identity's object id (for a service principal: the enterprise application's object
        /// id, not the app id).
        #[arg(long)]
        principal: String,
        /// Admin, Member, Contributor or Viewer.
        #[arg(long, default_value = "Contributor")]
        role: String,
        /// ServicePrincipal, User or Group.
        #[arg(long, default_value = "ServicePrincipal")]
        principal_type: String,
        #[command(flatten)]
        target: FabricTarget,
    },
}

/// Which mirrored database, and how to reach Fabric.
#[derive(Debug, Args)]
pub struct FabricTarget {
    /// A configuration whose onelake sink names the item (`fabric`, or its OneLake landing zone)
    /// and holds the credentials.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// The sink, when the configuration has several onelake sinks.
    #[arg(long)]
    pub sink: Option<String>,
    /// The workspace: id or name (overrides the configuration).
    #[arg(long)]
    pub workspace: Option<String>,
    /// The mirrored database: id or name (overrides the configuration).
    #[arg(long)]
    pub item: Option<String>,
    /// The Fabric REST API root, a proxy or a simulator (default: the configuration's
    /// `fabric.api`, else https://api.fabric.microsoft.com/v1).
    #[arg(long, env = "MIRROR_FABRIC_API")]
    pub api: Option<String>,
}
