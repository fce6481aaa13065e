//! `mirror-mongodb`: mirror's MongoDB source (`type = "mongodb"`).
//!
//! - [`config`]: what to mirror (databases, collections, patterns, excludes, naming, policies).
//! - [`discovery`]: which collections exist and what they are (views and time-series are refused).
//! - `worker`: per database, one change stream plus the initial-sync readers, merged with
//!   watermarks so that writes during the copy are never lost and deletes never come back.
//! - [`snapshot`]: split points and `_id`-range readers that cannot skip a type of `_id`.
//! - [`stream`]: the change stream task (resume, invalidate, high-water marks).
//! - [`state`]: the checkpointed state (resume tokens, initial-sync ranges, column types).
//! - [`schemas`]: column types recorded ahead of the data, so that no crash changes one.
//! - [`bson_arrow`]: raw BSON documents to typed Arrow batches, following the table's mapping.
//! - `check`: `mirror check --connect` (reachability, deployment, privileges, pre-images, oplog).

pub mod bson_arrow;
mod check;
pub mod config;
pub mod discovery;
pub mod errors;
mod progress;
pub mod schemas;
pub mod snapshot;
mod source;
pub mod state;
pub mod stream;
pub mod token;
mod worker;

pub use config::MongoSourceConfig;

/// Keeps the `mongodb` source registered in a binary that links this crate (see `mirror_core::link`).
#[inline(never)]
pub fn link() {
    source::link();
}
