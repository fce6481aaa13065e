//! `mirror-onelake`: the Fabric Open Mirroring sink.
//!
//! It writes change batches as Parquet files into an Open Mirroring landing zone — in OneLake, in
//! any ADLS Gen2 account, or in a local directory — following every rule of the landing-zone
//! contract: one folder per table, `_metadata.json` before the first file, sequential 20-digit file
//! names with no gap, reuse or overwrite, atomic publish (temp upload + DFS rename that refuses to
//! overwrite, or a create-only Put Blob), `__rowMarker__` as the last column, and one type per
//! column for the table's whole life. State (checkpoints, column types, leases) lives in
//! `_`-prefixed files of the landing zone itself, which Fabric ignores.
//!
//! Two ways to use it:
//! - as the `onelake` sink of a `mirror.toml` ([`OneLakeSinkConfig`], registered with the core);
//! - as a library, from any source ([`LandingZoneWriter`]): open a landing zone, declare tables with
//!   key columns, write Arrow batches with row operations, flush.
//!
//! Module map: [`naming`] (folders and file names), [`schema`] (the column-type guard), [`encode`]
//! (Parquet), [`publish`] (the publish protocol), [`writer`] (buffering, sequence numbers),
//! [`store`] (local and remote storage), [`checkpoint`] (checkpoint store), [`lease`] (single
//! writer), [`metadata`] (`_metadata.json`, `_partnerEvents.json`), [`state`]
//! (`_mirror_table.json`), [`truncate`] (emptying a table), [`takeover`] (folders another writer
//! made), [`datafile`] (what a data file's footer says), [`fabric`] (the Fabric REST API and
//! end-to-end status), `check` (`mirror check --connect`), [`auth`], [`location`], [`config`],
//! [`sink`].

pub mod auth;
mod check;
pub mod checkpoint;
pub mod config;
pub mod datafile;
pub mod encode;
pub mod error;
pub mod fabric;
pub mod lease;
pub mod location;
pub mod metadata;
pub mod naming;
pub mod publish;
pub mod schema;
pub mod sink;
pub mod state;
pub mod store;
pub mod takeover;
pub mod truncate;
pub mod writer;

pub use checkpoint::LandingZoneCheckpointStore;
pub use config::OneLakeSinkConfig;
pub use encode::Compression;
pub use error::SinkError;
pub use publish::PublishMode;
pub use sink::OneLakeSink;
pub use writer::{LandingZoneWriter, WriterOptions, WriterStats};

/// Keeps the `onelake` sink registered in a binary that links this crate (see `mirror_core::link`).
#[inline(never)]
pub fn link() {
    config::link();
}
