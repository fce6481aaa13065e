//! What a sink's destination last said about its tables (Open Mirroring: Fabric's replication
//! status), kept with the source times the tables were committed to when it was asked, so that
//! the destination's own lag can be told while the process runs.
//!
//! The engine asks each sink that has a destination every
//! [`SinkConfig::destination_status_interval`](crate::component::SinkConfig) and records the
//! answer here ([`Telemetry::record_destination`]); the API serves it. A destination that has
//! applied every row written when it was asked holds every change up to the positions committed
//! at that moment, so its lag is `now` minus those positions' times: an upper bound that grows
//! between two checks, never a guess ([`destination_lag`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::source::TablePhase;
use super::Telemetry;
use crate::destination::{
    destination_lag, DestinationError, DestinationReport, DestinationTable, Lag,
};
use crate::model::TableId;

/// One answer of a destination.
#[derive(Clone, Debug)]
pub struct DestinationSnapshot {
    /// When it was asked.
    pub checked_at: SystemTime,
    /// What it said, or why it could not be asked (secrets removed).
    pub outcome: Result<DestinationReport, String>,
    /// Per streaming table, the source time up to which its changes were committed when the
    /// destination was asked.
    pub committed_to: BTreeMap<TableId, SystemTime>,
}

impl DestinationSnapshot {
    /// The destination's view of `table` and its lag at `now`, if the destination lists it.
    pub fn table(&self, table: &TableId, now: SystemTime) -> Option<(&DestinationTable, Lag)> {
        let report = self.outcome.as_ref().ok()?;
        let found = report
            .tables
            .iter()
            .find(|t| t.table.as_ref() == Some(table))?;
        let position = self
            .committed_to
            .get(table)
            .map(|t| DateTime::<Utc>::from(*t));
        Some((found, destination_lag(found, position, now.into())))
    }
}

impl Telemetry {
    /// Records what the destination of sink `sink` answered now (engine).
    pub fn record_destination(
        &self,
        sink: &str,
        outcome: Result<DestinationReport, DestinationError>,
    ) {
        let mut committed_to = BTreeMap::new();
        for source in self.sources() {
            let positions = source.committed_positions();
            for table in source.tables() {
                if table.phase() != Some(TablePhase::Streaming) {
                    continue;
                }
                if let Some(p) = table.stream().and_then(|s| positions.get(&s).cloned()) {
                    committed_to.insert(table.id().clone(), p.time);
                }
            }
        }
        let snapshot = DestinationSnapshot {
            checked_at: SystemTime::now(),
            outcome: outcome.map_err(|e| super::redact_message(&e.to_string())),
            committed_to,
        };
        self.sink(sink, "").set_destination(snapshot);
    }
}
