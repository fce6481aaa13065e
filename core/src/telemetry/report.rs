//! The status report: one object per source, per sink and per table, as `GET /api/status` serves
//! it and `mirror status --format json` prints it from the checkpoint store.
//!
//! Both come in one shape so that a script reads either: fields that only a running process
//! knows (rates, files, errors, readiness) are `null` in a report built from checkpoints.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::component::{ComponentStats, ErrorRecord, RetryReason};
use super::destination::DestinationSnapshot;
use super::sink::{LeaseState, SinkTableTelemetry};
use super::source::{EventKind, Position, SourceTableTelemetry, TablePhase};
use super::{Telemetry, Verdict};
use crate::checkpoint::CheckpointStore;
use crate::config::MirrorConfig;
use crate::destination::Lag;
use crate::error::ErrorKind;
use crate::model::{Partition, RowOp};

/// The whole report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    /// This build's version.
    pub version: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Whether it comes from a running process (`false`: from the checkpoint store).
    pub live: bool,
    /// When the process started.
    pub started_at: Option<String>,
    /// Seconds since it started.
    pub uptime_seconds: Option<f64>,
    /// The engine's state (`starting`, `running`, `stopping`, `stopped`, `failed`).
    pub state: Option<String>,
    /// `/ready`'s verdict.
    pub ready: Option<Verdict>,
    /// `/health`'s verdict.
    pub health: Option<Verdict>,
    /// Per source.
    pub sources: Vec<SourceReport>,
    /// Per sink.
    pub sinks: Vec<SinkReport>,
    /// Per table (and sink, when a table goes to several).
    pub tables: Vec<TableReport>,
}

/// One source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceReport {
    /// The component name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether it reaches its server (`null` from checkpoints).
    pub reachable: Option<bool>,
    /// Committed positions, one per stream the source follows.
    pub positions: Vec<PositionReport>,
    /// The largest lag of its streams.
    pub lag_seconds: Option<f64>,
    /// When its checkpoint was last committed.
    pub last_commit_at: Option<String>,
    /// Seconds since then.
    pub checkpoint_age_seconds: Option<f64>,
    /// Items emitted and not committed yet.
    pub pending_items: Option<u64>,
    /// Retries by reason.
    pub retries: Option<BTreeMap<String, u64>>,
    /// Errors by kind (`transient`, `permanent`).
    pub errors: Option<BTreeMap<String, u64>>,
    /// The last error.
    pub last_error: Option<ErrorReport>,
}

/// One sink.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SinkReport {
    /// The component name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether its destination is open.
    pub opened: Option<bool>,
    /// Retries by reason.
    pub retries: Option<BTreeMap<String, u64>>,
    /// Errors by kind.
    pub errors: Option<BTreeMap<String, u64>>,
    /// The last error.
    pub last_error: Option<ErrorReport>,
    /// What its destination said when last asked (`null`: it has none, or not asked yet).
    #[serde(default)]
    pub destination: Option<DestinationSinkReport>,
}

/// What a sink's destination (Fabric, for the onelake sink) said when last asked.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DestinationSinkReport {
    /// What the destination is (e.g. the mirrored database and its workspace).
    pub destination: Option<String>,
    /// When it was asked.
    pub checked_at: String,
    /// Seconds since then.
    pub checked_seconds_ago: f64,
    /// Its overall state (Fabric: the mirroring status, e.g. `Running`).
    pub state: Option<String>,
    /// Its overall error, or why it could not be asked.
    pub error: Option<String>,
}

/// What a table's destination applied, and how far behind it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DestinationTableReport {
    /// The destination's state of the table (Fabric: e.g. `Replicating`).
    pub state: Option<String>,
    /// Rows the sink had written when the destination was asked.
    pub written_rows: Option<u64>,
    /// Rows the destination reported as applied.
    pub applied_rows: Option<u64>,
    /// When the destination last applied data.
    pub last_applied: Option<String>,
    /// Now minus the source time the destination holds every change up to (`null` when unknown).
    pub lag_seconds: Option<f64>,
    /// Why the lag is unknown.
    pub lag_unknown: Option<String>,
    /// Whether the destination stopped applying the table.
    pub failed: bool,
    /// The destination's error for the table, and what to do about it.
    pub error: Option<String>,
}

/// A committed position.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PositionReport {
    /// The stream (MongoDB: the database).
    pub stream: String,
    /// The position as a person reads it.
    pub text: String,
    /// When the change at that position happened.
    pub time: String,
    /// Now minus that time.
    pub lag_seconds: f64,
}

/// An error with its time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorReport {
    /// What happened (secrets removed).
    pub message: String,
    /// `transient` (retried) or `permanent`.
    pub kind: String,
    /// When.
    pub at: String,
}

/// An initial sync's progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InitialSyncReport {
    /// Documents copied.
    pub copied: u64,
    /// The collection's estimated size when the copy started.
    pub estimated: u64,
    /// Copied over estimated, 0 to 100.
    pub percent: f64,
    /// Documents per second since the copy started in this process.
    pub rate_per_second: Option<f64>,
    /// Seconds left at that rate.
    pub eta_seconds: Option<f64>,
}

/// The last file published.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LastFileReport {
    /// Its sequence number.
    pub number: u64,
    /// When it was published.
    pub at: String,
}

/// Publish latency quantiles, from the histogram's buckets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LatencyReport {
    /// Median, seconds.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One table (at one sink).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableReport {
    /// The table, `<schema>.schema/<name>` or `<name>`.
    pub table: String,
    /// The source feeding it.
    pub source: Option<String>,
    /// The sink writing it.
    pub sink: Option<String>,
    /// `initial_sync` or `streaming`.
    pub phase: Option<String>,
    /// During (or after) the initial sync.
    pub initial_sync: Option<InitialSyncReport>,
    /// Change events received, by kind.
    pub events: Option<BTreeMap<String, u64>>,
    /// The committed position of its stream.
    pub position: Option<PositionReport>,
    /// Now minus the time of that position.
    pub lag_seconds: Option<f64>,
    /// When a commit last wrote this table's checkpoint.
    pub last_commit_at: Option<String>,
    /// Rows published, by operation.
    pub rows: Option<BTreeMap<String, u64>>,
    /// Rows published, every operation.
    pub rows_total: Option<u64>,
    /// Rows published per second recently (filled by whoever samples the report over time).
    pub rows_per_second: Option<f64>,
    /// Bytes of files published.
    pub bytes: Option<u64>,
    /// Files published.
    pub files: Option<u64>,
    /// The last file published.
    pub last_file: Option<LastFileReport>,
    /// `held`, `waiting` or `not_held`.
    pub lease: Option<String>,
    /// While `waiting`: who holds the lease, and whether it may still be alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_wait: Option<String>,
    /// Publish latency.
    pub publish_seconds: Option<LatencyReport>,
    /// The newest error of its source or sink.
    pub last_error: Option<ErrorReport>,
    /// What the sink's destination applied of it (`null`: no destination, or it does not list
    /// the table yet).
    #[serde(default)]
    pub destination: Option<DestinationTableReport>,
}

/// What a source can tell about one committed partition state, for `mirror status` (see
/// `SourceConfig::state_facts`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateFacts {
    /// A table's phase.
    pub phase: Option<TablePhase>,
    /// A table's initial sync: documents copied and estimated.
    pub initial_sync: Option<(u64, u64)>,
    /// Change events applied so far.
    pub events: Option<u64>,
    /// The stream a table follows.
    pub stream: Option<String>,
    /// The positions a source-wide state holds, by stream.
    pub positions: Vec<(String, Position)>,
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rfc3339_ms(unix_ms: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(unix_ms))
}

fn seconds_since(t: SystemTime, now: SystemTime) -> f64 {
    let secs = now.duration_since(t).map_or(0.0, |d| d.as_secs_f64());
    (secs * 1000.0).round() / 1000.0
}

fn position_report(stream: &str, p: &Position, now: SystemTime) -> PositionReport {
    PositionReport {
        stream: stream.to_owned(),
        text: p.text.clone(),
        time: rfc3339(p.time),
        lag_seconds: seconds_since(p.time, now),
    }
}

fn error_report(e: &ErrorRecord) -> ErrorReport {
    ErrorReport {
        message: e.message.clone(),
        kind: match e.kind {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        }
        .into(),
        at: rfc3339_ms(e.at_unix_ms),
    }
}

fn retries(stats: &ComponentStats) -> BTreeMap<String, u64> {
    RetryReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), stats.retries(*r)))
        .collect()
}

fn errors(stats: &ComponentStats) -> BTreeMap<String, u64> {
    [
        ("transient", ErrorKind::Transient),
        ("permanent", ErrorKind::Permanent),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_owned(), stats.errors(kind)))
    .collect()
}

/// The operations rows are counted by, with their names.
pub const ROW_OPS: [(RowOp, &str); 4] = [
    (RowOp::Insert, "insert"),
    (RowOp::Update, "update"),
    (RowOp::Delete, "delete"),
    (RowOp::Upsert, "upsert"),
];

fn initial_sync_report(copied: u64, estimated: u64, rate: Option<f64>) -> InitialSyncReport {
    let percent = if estimated > 0 {
        (copied as f64 / estimated as f64 * 100.0).min(100.0)
    } else {
        0.0
    };
    let eta = rate
        .filter(|r| *r > 0.0)
        .map(|r| (estimated.saturating_sub(copied) as f64 / r).round());
    InitialSyncReport {
        copied,
        estimated,
        percent: (percent * 10.0).round() / 10.0,
        rate_per_second: rate.map(|r| r.round()),
        eta_seconds: eta,
    }
}

fn empty_table(table: String, source: Option<String>, sink: Option<String>) -> TableReport {
    TableReport {
        table,
        source,
        sink,
        phase: None,
        initial_sync: None,
        events: None,
        position: None,
        lag_seconds: None,
        last_commit_at: None,
        rows: None,
        rows_total: None,
        rows_per_second: None,
        bytes: None,
        files: None,
        last_file: None,
        lease: None,
        lease_wait: None,
        publish_seconds: None,
        last_error: None,
        destination: None,
    }
}

fn fill_source_side(
    report: &mut TableReport,
    table: &SourceTableTelemetry,
    positions: &BTreeMap<String, Position>,
    now: SystemTime,
) {
    report.phase = table.phase().map(|p| p.as_str().to_owned());
    let (copied, estimated) = table.initial_sync();
    if table.phase() == Some(TablePhase::InitialSync) || estimated > 0 || copied > 0 {
        let rate = if table.phase() == Some(TablePhase::InitialSync) {
            table.copy_rate()
        } else {
            None
        };
        report.initial_sync = Some(initial_sync_report(copied, estimated, rate));
    }
    report.events = Some(
        EventKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), table.events(*k)))
            .collect(),
    );
    if let Some((stream, p)) = table
        .stream()
        .and_then(|s| positions.get(&s).map(|p| (s, p)))
    {
        let position = position_report(&stream, p, now);
        report.lag_seconds = Some(position.lag_seconds);
        report.position = Some(position);
    }
    report.last_commit_at = table.committed_at_unix_ms().map(rfc3339_ms);
}

fn fill_sink_side(report: &mut TableReport, table: &SinkTableTelemetry) {
    report.rows = Some(
        ROW_OPS
            .iter()
            .map(|(op, name)| ((*name).to_owned(), table.rows(*op)))
            .collect(),
    );
    report.rows_total = Some(table.rows_total());
    report.bytes = Some(table.bytes());
    report.files = Some(table.files());
    report.last_file = table.last_file().map(|(number, at)| LastFileReport {
        number,
        at: rfc3339_ms(at),
    });
    report.lease = Some(
        match table.lease() {
            LeaseState::Held => "held",
            LeaseState::Waiting => "waiting",
            LeaseState::NotHeld => "not_held",
        }
        .into(),
    );
    report.lease_wait = table.lease_wait_reason();
    let latency = table.publish_latency().snapshot();
    if let (Some(p50), Some(p95), Some(p99)) = (
        latency.quantile(0.5),
        latency.quantile(0.95),
        latency.quantile(0.99),
    ) {
        report.publish_seconds = Some(LatencyReport { p50, p95, p99 });
    }
}

fn destination_sink_report(d: &DestinationSnapshot, now: SystemTime) -> DestinationSinkReport {
    let (destination, state, error) = match &d.outcome {
        Ok(r) => (
            Some(r.destination.clone()),
            r.state.clone(),
            r.error.clone(),
        ),
        Err(e) => (
            None,
            None,
            Some(format!("cannot read the destination's status: {e}")),
        ),
    };
    DestinationSinkReport {
        destination,
        checked_at: rfc3339(d.checked_at),
        checked_seconds_ago: seconds_since(d.checked_at, now),
        state,
        error,
    }
}

fn destination_table_report(
    d: &DestinationSnapshot,
    table: &crate::model::TableId,
    now: SystemTime,
) -> Option<DestinationTableReport> {
    let (t, lag) = d.table(table, now)?;
    let (lag_seconds, lag_unknown) = match lag {
        Lag::Known { lag, .. } => (Some((lag.as_secs_f64() * 1000.0).round() / 1000.0), None),
        Lag::Unknown { reason } => (None, Some(reason)),
    };
    Some(DestinationTableReport {
        state: t.state.clone(),
        written_rows: t.written_rows,
        applied_rows: t.applied_rows,
        last_applied: t
            .last_applied
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        lag_seconds,
        lag_unknown,
        failed: t.failed,
        error: match (&t.error, &t.advice) {
            (Some(e), Some(a)) => Some(format!("{e} ({a})")),
            (e, _) => e.clone(),
        },
    })
}

fn newest(a: Option<ErrorRecord>, b: Option<ErrorRecord>) -> Option<ErrorRecord> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.at_unix_ms >= b.at_unix_ms { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The report of a running process.
pub(super) fn live(telemetry: &Telemetry) -> StatusReport {
    let now = SystemTime::now();
    let mut sources = Vec::new();
    let mut tables = Vec::new();
    let sinks = telemetry.sinks();
    let sink_tables: Vec<(String, Vec<std::sync::Arc<SinkTableTelemetry>>)> = sinks
        .iter()
        .map(|s| (s.name().to_owned(), s.tables()))
        .collect();
    let mut matched = std::collections::BTreeSet::new();
    for source in telemetry.sources() {
        let positions = source.committed_positions();
        let position_reports: Vec<PositionReport> = positions
            .iter()
            .map(|(stream, p)| position_report(stream, p, now))
            .collect();
        let lag = position_reports
            .iter()
            .map(|p| p.lag_seconds)
            .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
        let source_error = source.stats.last_error();
        sources.push(SourceReport {
            name: source.name().to_owned(),
            type_name: source.type_name().to_owned(),
            reachable: Some(source.is_built() && source.reachability().is_ok()),
            positions: position_reports,
            lag_seconds: lag,
            last_commit_at: source.committed_at_unix_ms().map(rfc3339_ms),
            checkpoint_age_seconds: source
                .committed_at_unix_ms()
                .map(|t| seconds_since(UNIX_EPOCH + Duration::from_millis(t), now)),
            pending_items: Some(source.pending_items()),
            retries: Some(retries(&source.stats)),
            errors: Some(errors(&source.stats)),
            last_error: source_error.as_ref().map(error_report),
        });
        for table in source.tables() {
            let id = table.id().to_string();
            let mut at_sinks = 0;
            for (sink_name, sink_table) in sink_tables.iter().flat_map(|(name, tables)| {
                tables
                    .iter()
                    .filter(|t| t.id() == table.id())
                    .filter(|t| t.source().is_none_or(|s| s == source.name()))
                    .map(move |t| (name, t))
            }) {
                at_sinks += 1;
                matched.insert((sink_name.clone(), id.clone()));
                let mut report = empty_table(
                    id.clone(),
                    Some(source.name().to_owned()),
                    Some(sink_name.clone()),
                );
                fill_source_side(&mut report, &table, &positions, now);
                fill_sink_side(&mut report, sink_table);
                let sink = sinks.iter().find(|s| s.name() == sink_name);
                report.destination = sink
                    .and_then(|s| s.destination())
                    .and_then(|d| destination_table_report(&d, table.id(), now));
                let sink_error = sink.and_then(|s| s.stats.last_error());
                report.last_error = newest(source_error.clone(), sink_error)
                    .as_ref()
                    .map(error_report);
                tables.push(report);
            }
            if at_sinks == 0 {
                let mut report = empty_table(id, Some(source.name().to_owned()), None);
                fill_source_side(&mut report, &table, &positions, now);
                report.last_error = source_error.as_ref().map(error_report);
                tables.push(report);
            }
        }
    }
    // Tables whose source reports none of its own (e.g. the generator).
    for sink in &sinks {
        for table in sink.tables() {
            let id = table.id().to_string();
            if matched.contains(&(sink.name().to_owned(), id.clone())) {
                continue;
            }
            let mut report = empty_table(id, table.source(), Some(sink.name().to_owned()));
            fill_sink_side(&mut report, &table);
            report.destination = sink
                .destination()
                .and_then(|d| destination_table_report(&d, table.id(), now));
            report.last_error = sink.stats.last_error().as_ref().map(error_report);
            tables.push(report);
        }
    }
    tables.sort_by(|a, b| (&a.table, &a.sink).cmp(&(&b.table, &b.sink)));
    StatusReport {
        version: crate::VERSION.to_owned(),
        generated_at: rfc3339(now),
        live: true,
        started_at: Some(rfc3339_ms(telemetry.started_unix_ms())),
        uptime_seconds: Some((telemetry.uptime().as_secs_f64() * 10.0).round() / 10.0),
        state: Some(telemetry.state().as_str().to_owned()),
        ready: Some(telemetry.readiness()),
        health: Some(telemetry.health()),
        sources,
        sinks: sinks
            .iter()
            .map(|s| SinkReport {
                name: s.name().to_owned(),
                type_name: s.type_name().to_owned(),
                opened: Some(s.is_opened()),
                retries: Some(retries(&s.stats)),
                errors: Some(errors(&s.stats)),
                last_error: s.stats.last_error().as_ref().map(error_report),
                destination: s.destination().map(|d| destination_sink_report(&d, now)),
            })
            .collect(),
        tables,
    }
}

/// Why a report from checkpoints could not be made.
#[derive(Debug, thiserror::Error)]
#[error("source `{source_name}`: cannot read its checkpoints: {error}")]
pub struct ReportError {
    /// The source.
    pub source_name: String,
    /// Why.
    pub error: crate::checkpoint::CheckpointError,
}

/// The report `mirror status --format json` prints: what the checkpoint store holds for every
/// source of `config`, in the shape of the live report.
pub async fn from_checkpoints(
    config: &MirrorConfig,
    store: &dyn CheckpointStore,
) -> Result<StatusReport, ReportError> {
    let now = SystemTime::now();
    let mut sources = Vec::new();
    let mut tables = Vec::new();
    for spec in &config.sources {
        let resume = store.load(&spec.name).await.map_err(|error| ReportError {
            source_name: spec.name.clone(),
            error,
        })?;
        let mut positions = BTreeMap::new();
        let mut last_commit: Option<DateTime<Utc>> = None;
        let mut table_facts = Vec::new();
        for (partition, stored) in resume.entries() {
            if matches!(partition, Partition::TableSchema(_)) {
                // Recorded ahead of the data, not a commit of the source's position.
                continue;
            }
            last_commit =
                Some(last_commit.map_or(stored.committed_at, |t| t.max(stored.committed_at)));
            let facts = spec.config.state_facts(&stored.state);
            match partition {
                Partition::Source => positions.extend(facts.positions),
                Partition::Table(id) => table_facts.push((id.clone(), facts, stored.committed_at)),
                Partition::TableSchema(_) => {}
            }
        }
        let position_reports: Vec<PositionReport> = positions
            .iter()
            .map(|(stream, p)| position_report(stream, p, now))
            .collect();
        sources.push(SourceReport {
            name: spec.name.clone(),
            type_name: spec.type_name.clone(),
            reachable: None,
            lag_seconds: position_reports
                .iter()
                .map(|p| p.lag_seconds)
                .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l)))),
            positions: position_reports,
            last_commit_at: last_commit.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            checkpoint_age_seconds: last_commit.map(|t| seconds_since(t.into(), now)),
            pending_items: None,
            retries: None,
            errors: None,
            last_error: None,
        });
        for (id, facts, committed_at) in table_facts {
            let mut report = empty_table(id.to_string(), Some(spec.name.clone()), None);
            report.phase = facts.phase.map(|p| p.as_str().to_owned());
            report.initial_sync = facts
                .initial_sync
                .map(|(copied, estimated)| initial_sync_report(copied, estimated, None));
            report.events = facts
                .events
                .map(|n| BTreeMap::from([("total".to_owned(), n)]));
            if let Some((stream, p)) = facts.stream.and_then(|s| positions.get(&s).map(|p| (s, p)))
            {
                let position = position_report(&stream, p, now);
                report.lag_seconds = Some(position.lag_seconds);
                report.position = Some(position);
            }
            report.last_commit_at = Some(committed_at.to_rfc3339_opts(SecondsFormat::Millis, true));
            tables.push(report);
        }
    }
    Ok(StatusReport {
        version: crate::VERSION.to_owned(),
        generated_at: rfc3339(now),
        live: false,
        started_at: None,
        uptime_seconds: None,
        state: None,
        ready: None,
        health: None,
        sources,
        sinks: config
            .sinks
            .iter()
            .map(|s| SinkReport {
                name: s.name.clone(),
                type_name: s.type_name.clone(),
                opened: None,
                retries: None,
                errors: None,
                last_error: None,
                destination: None,
            })
            .collect(),
        tables,
    })
}
