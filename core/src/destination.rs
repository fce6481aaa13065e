//! End-to-end status: what a sink's destination reports about the tables it was sent, and how far
//! behind the destination is.
//!
//! A sink that writes into a system that applies the data later (Open Mirroring: Fabric turns
//! landing-zone files into Delta tables) reports, per table, what it wrote and what the system
//! says it applied ([`SinkConfig::destination_status`](crate::component::SinkConfig)). With the
//! source's committed position ([`SourceConfig::position_time`](crate::component::SourceConfig))
//! that gives the lag of the destination itself ([`destination_lag`]): it is known only when the
//! destination has applied every row the sink wrote, because only then does it hold every change
//! up to the committed position. Otherwise it is stated as unknown, with the reason, never guessed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::TableId;

/// What a destination reports, for one sink.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DestinationReport {
    /// What the destination is, e.g. `mirrored database `shop` (<id>) in workspace `Sales` (<id>)`.
    pub destination: String,
    /// Its overall state, e.g. `Running`.
    pub state: Option<String>,
    /// Its overall error, if it reports one.
    pub error: Option<String>,
    /// Per table.
    pub tables: Vec<DestinationTable>,
}

/// One table: what the sink wrote, and what the destination applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DestinationTable {
    /// The table, as the sink recorded it (`None` for a table only the destination lists).
    pub table: Option<TableId>,
    /// Where the sink writes it (a landing-zone folder).
    pub location: String,
    /// The number of the sink's newest file.
    pub last_file: Option<u64>,
    /// Rows the sink wrote through its newest file, when it knows.
    pub written_rows: Option<u64>,
    /// The destination's status of the table; `None` when it does not list the table (yet).
    pub state: Option<String>,
    /// Rows the destination reports as applied.
    pub applied_rows: Option<u64>,
    /// Bytes the destination reports as applied.
    pub applied_bytes: Option<u64>,
    /// When the destination last applied data to the table.
    pub last_applied: Option<DateTime<Utc>>,
    /// Whether the destination stopped applying the table for good.
    pub failed: bool,
    /// The destination's error for the table.
    pub error: Option<String>,
    /// What to do about the error.
    pub advice: Option<String>,
}

impl DestinationTable {
    /// `Some(true)` when the destination has applied exactly the rows written, `Some(false)` when
    /// fewer, `None` when it cannot be told (a count is missing, or it counts more rows than were
    /// written, which no rule explains).
    pub fn caught_up(&self) -> Option<bool> {
        let (applied, written) = (self.applied_rows?, self.written_rows?);
        match applied.cmp(&written) {
            std::cmp::Ordering::Equal => Some(true),
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Greater => None,
        }
    }
}

/// How far behind its source a destination table is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Lag {
    /// `now` minus the source time up to which the destination holds every change.
    Known {
        /// The lag.
        #[serde(with = "secs")]
        lag: Duration,
        /// The source time the destination is current to.
        as_of: DateTime<Utc>,
    },
    /// It cannot be derived.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// A destination's status could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DestinationError(pub String);

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The lag of `table` at `now`, given the source time (`position`) up to which every change of
/// the table is committed, i.e. written by the sink.
///
/// ```
/// use chrono::{Duration, Utc};
/// use mirror_core::destination::{destination_lag, DestinationTable, Lag};
/// let now = Utc::now();
/// let mut t = DestinationTable { written_rows: Some(10), applied_rows: Some(10), ..Default::default() };
/// assert!(matches!(destination_lag(&t, Some(now - Duration::seconds(4)), now), Lag::Known { .. }));
/// t.applied_rows = Some(7);
/// assert!(matches!(destination_lag(&t, Some(now), now), Lag::Unknown { .. }));
/// ```
pub fn destination_lag(
    table: &DestinationTable,
    position: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Lag {
    let unknown = |reason: String| Lag::Unknown { reason };
    if table.failed {
        return unknown("the destination stopped applying this table".into());
    }
    match table.caught_up() {
        Some(true) => {}
        Some(false) => {
            return unknown(format!(
                "the destination is still applying: {} of {} written rows applied",
                table.applied_rows.unwrap_or_default(),
                table.written_rows.unwrap_or_default()
            ))
        }
        None if table.written_rows.is_none() => {
            return unknown("the rows written to this table are not known".into())
        }
        None if table.applied_rows.is_none() => {
            return unknown("the destination reports no applied rows yet".into())
        }
        None => return unknown("the destination counts more rows than were written".into()),
    }
    match position {
        Some(as_of) => Lag::Known {
            lag: (now - as_of).to_std().unwrap_or_default(),
            as_of,
        },
        None => unknown(
            "the source has no committed streaming position for this table (still copying, or \
             it reports no time)"
                .into(),
        ),
    }
}
