//! The last 15 minutes of each table's lag and row count, sampled every few seconds, for the
//! status page's charts and the JSON API's rates.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use mirror_core::telemetry::report::TableReport;
use mirror_core::telemetry::StatusReport;

/// How far back the charts reach.
pub const WINDOW_SECS: f64 = 15.0 * 60.0;
/// The span a rate is measured over.
const RATE_SECS: f64 = 60.0;

/// One sample of one table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Unix seconds.
    pub at: f64,
    /// Replication lag, if known.
    pub lag: Option<f64>,
    /// Rows published so far (or documents copied when no sink reports).
    pub rows: u64,
}

/// A table at a sink: (source, sink, table).
pub type TableKey = (String, String, String);

pub fn key(t: &TableReport) -> TableKey {
    (
        t.source.clone().unwrap_or_default(),
        t.sink.clone().unwrap_or_default(),
        t.table.clone(),
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn rows_of(t: &TableReport) -> u64 {
    t.rows_total
        .or_else(|| t.initial_sync.as_ref().map(|s| s.copied))
        .unwrap_or(0)
}

/// Samples by table.
#[derive(Debug, Default)]
pub struct History {
    tables: Mutex<BTreeMap<TableKey, VecDeque<Point>>>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a point per table of `report` and forgets points older than the window.
    pub fn sample(&self, report: &StatusReport) {
        let at = now_secs();
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        for t in &report.tables {
            let points = tables.entry(key(t)).or_default();
            points.push_back(Point {
                at,
                lag: t.lag_seconds,
                rows: rows_of(t),
            });
            while points.front().is_some_and(|p| p.at < at - WINDOW_SECS) {
                points.pop_front();
            }
        }
    }

    /// A table's points, oldest first.
    pub fn points(&self, key: &TableKey) -> Vec<Point> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables
            .get(key)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }

    /// `report` with each table's rows per second over the last minute filled in.
    pub fn enrich(&self, mut report: StatusReport) -> StatusReport {
        let now = now_secs();
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        for t in &mut report.tables {
            let Some(points) = tables.get(&key(t)) else {
                continue;
            };
            let since = points
                .iter()
                .find(|p| p.at >= now - RATE_SECS)
                .or(points.back());
            if let Some(p) = since.filter(|p| now - p.at >= 1.0) {
                let rate = rows_of(t).saturating_sub(p.rows) as f64 / (now - p.at);
                t.rows_per_second = Some((rate * 10.0).round() / 10.0);
            }
        }
        report
    }
}
