//! `onelake-sim`: a local stand-in for OneLake and Fabric Open Mirroring, for tests.
//!
//! - [`storage`]: an in-memory hierarchical-namespace account (files, directories, ETags, blocks,
//!   appends, leases ([`lease`])) with the conditional semantics of the Azure REST APIs;
//! - [`server`]: the Blob and DFS REST front end over it, OneLake-style paths, bearer-token checks
//!   ([`auth`]) and injectable faults ([`faults`]);
//! - [`fabric`]: the Fabric REST API (mirrored databases, mirroring and table status,
//!   workspaces, role assignments, long-running operations) and the Entra token endpoint, with
//!   table status computed by a [`Replicator`] over each item's landing zone;
//! - [`python_app`]: table folders as the MongoDB_Fabric_Mirroring Python app leaves them;
//! - [`replicator`]: applies landing-zone files the way Fabric does (sequence order, row markers,
//!   key columns, column types) into tables tests can read, over any [`files::LandingFiles`]: a
//!   local directory or the simulator's storage.
//!
//! The simulator depends on nothing of the product: it is a reference for what a landing zone
//! means, not a mirror of what the sink happens to do.

pub mod auth;
pub mod fabric;
pub mod faults;
pub mod files;
pub mod lease;
pub mod python_app;
pub mod replicator;
pub mod server;
pub mod storage;
pub mod value;

pub use faults::{Fault, FaultAction, Faults, Operation};
pub use files::{FileEntry, LandingFiles, LocalDir};
pub use replicator::{ReplicatedTable, Replicator, TableStatus};
pub use server::OneLakeSim;
pub use storage::Storage;
pub use value::{Row, Value};
