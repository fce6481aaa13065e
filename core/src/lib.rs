//! `mirror-core`: the engine of `mirror`, independent of any database or storage service.
//!
//! It owns:
//! - the data model shared by every component ([`model`]): tables, row operations,
//!   [`ChangeBatch`]es of Arrow rows and opaque [`Checkpoint`]s;
//! - the component traits ([`Source`], [`Transform`], [`Sink`]) and their factories, registered with
//!   `inventory` under a `type` name ([`component`]);
//! - the configuration file `mirror.toml` ([`config`]);
//! - the engine that runs routes with bounded channels and commits checkpoints in source order, only
//!   for batches every sink acknowledged ([`engine`]);
//! - the checkpoint store ([`checkpoint`]), and local files replaced whole without crash leftovers
//!   ([`files`]);
//! - end-to-end status: what a sink's destination applied, and its lag ([`destination`]);
//! - what is measured about a run, and whether it is ready and healthy ([`telemetry`]);
//! - schema mapping from schemaless documents to typed, stable columns ([`mapping`]);
//! - first-party generic sources such as the synthetic [`sources::generator`].
//!
//! The core knows no MongoDB, no BSON and no Azure: connectors and sinks depend on it, never the
//! other way round.
//!
//! # Example: a pipeline from a config file
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = mirror_core::config::MirrorConfig::load("mirror.toml")?;
//! let report = mirror_core::engine::Engine::new(config).run().await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod component;
pub mod config;
pub mod destination;
pub mod engine;
pub mod error;
pub mod files;
pub mod mapping;
pub mod model;
pub mod plugin;
pub mod sources;
pub mod telemetry;
pub mod transforms;

pub use component::{Sink, Source, SourceItem, Transform};
pub use error::{ComponentError, ErrorKind};
pub use model::{ChangeBatch, Checkpoint, Partition, RowOp, Table, TableId};

#[doc(hidden)]
pub use inventory;

/// Keeps this crate's registered components in the final binary.
///
/// `inventory` registrations live in static constructors of the object files that define them, and a
/// linker drops object files nothing refers to, registrations included (silently). A binary calls
/// each component crate's `link()` once, which refers to every registering module.
#[inline(never)]
pub fn link() {
    sources::generator::link();
    transforms::link();
}

/// This build's version, as shown by `mirror --version` and written into landing-zone metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
