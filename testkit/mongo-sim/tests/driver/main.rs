//! Conformance tests: the real `mongodb` driver against the simulator over TCP.

mod auth;
mod catalog;
mod change_streams;
mod crud;
mod faults;
mod large_events;
mod mongod_rules;
mod properties;
mod wire;

use mongo_sim::{MongoSim, SimOptions};
use mongodb::Client;

/// A simulator (no idle no-op writer, so oplog contents are deterministic) and a client.
pub async fn start() -> (MongoSim, Client) {
    let sim = MongoSim::start(SimOptions {
        noop_interval: None,
        ..Default::default()
    })
    .await
    .expect("start simulator");
    let client = Client::with_uri_str(sim.uri()).await.expect("client");
    (sim, client)
}

/// The server error code of a driver error, if any.
pub fn code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            Some(w.code)
        }
        mongodb::error::ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}
