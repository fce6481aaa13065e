//! `mongo-sim`: an in-memory MongoDB replica-set primary (mongod 7.0 behaviour, or 6.0+ as
//! configured) on the real wire
//! protocol, for tests, demos and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mongo_sim::SimError> {
//! use mongo_sim::{MongoSim, SimOptions};
//! let sim = MongoSim::start(SimOptions::default()).await?;
//! let uri = sim.uri(); // mongodb://127.0.0.1:PORT/?directConnection=true&heartbeatFrequencyMS=500
//! sim.insert("shop", "orders", bson::doc! {"_id": 1, "total": 5})?;
//! sim.step_down();
//! sim.step_up();
//! sim.shutdown().await;
//! # let _ = uri; Ok(()) }
//! ```
//!
//! Modules: `wire` (codec), `commands` (one file per command family), `storage`, `ordering`,
//! `matcher`, `expression`, `projection`, `update`, `oplog` and `changestream`, `cursors`, `failpoints`,
//! `topology`, `version` (which mongod it plays), `state` (the shared state and the writes that log events), `server` (TCP) and
//! `api` (this library surface).

pub mod api;
pub mod auth;
pub mod changestream;
pub mod commands;
pub mod cursors;
pub mod disambiguate;
pub mod error;
pub mod expression;
pub mod failpoints;
pub mod matcher;
pub mod oplog;
pub mod ordering;
pub mod projection;
pub mod server;
pub mod state;
pub mod storage;
pub mod topology;
pub mod update;
pub mod version;
pub mod wire;
pub mod workload;

pub use api::{MongoSim, SimHandle, SimOptions, SimThread};
pub use error::{CommandError, SimError};
pub use state::UpdateOutcome;
pub use version::ServerVersion;
