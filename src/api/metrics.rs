//! `/metrics`: the core's telemetry as Prometheus metric families, encoded by the official Rust
//! client (`prometheus-client`) in the Prometheus text format or in OpenMetrics.
//!
//! Every family is built at scrape time from the telemetry (a [`Collector`]), so nothing is
//! counted twice and the engine's hot paths only touch the core's atomics. Names follow the
//! Prometheus conventions: the `mirror_` prefix, base units in the name (`_seconds`, `_bytes`),
//! `_total` for counters (added by the encoder). `docs/metrics.md` lists every one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_core::destination::Lag;
use mirror_core::telemetry::report::ROW_OPS;
use mirror_core::telemetry::{
    EngineState, EventKind, LeaseState, RetryReason, TablePhase, Telemetry, PUBLISH_BUCKETS,
};
use mirror_core::ErrorKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of OpenMetrics text 1.0.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes the metrics of one process.
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(telemetry: Telemetry) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TelemetryCollector { telemetry }));
        Self { registry }
    }

    /// The exposition and its content type: OpenMetrics, or the Prometheus text format.
    pub fn encode(&self, openmetrics: bool) -> Result<(&'static str, String), std::fmt::Error> {
        let mut out = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
            Ok((OPENMETRICS, out))
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
            Ok((
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                out,
            ))
        }
    }
}

#[derive(Debug)]
struct TelemetryCollector {
    telemetry: Telemetry,
}

type Labels = Vec<(&'static str, String)>;

/// One family: its samples by label set.
struct Family<T> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    samples: Vec<(Labels, T)>,
}

impl<T> Family<T> {
    fn new(name: &'static str, help: &'static str, unit: Option<Unit>) -> Self {
        Self {
            name,
            help,
            unit,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Labels, value: T) {
        self.samples.push((labels, value));
    }
}

/// Encodes one family of constant samples (none: nothing, not even its description).
fn encode_family<T>(
    encoder: &mut DescriptorEncoder,
    family: Family<T>,
    kind: MetricType,
    sample: impl Fn(&T, MetricEncoder) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    if family.samples.is_empty() {
        return Ok(());
    }
    let mut metric =
        encoder.encode_descriptor(family.name, family.help, family.unit.as_ref(), kind)?;
    for (labels, value) in &family.samples {
        sample(value, metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(encoder: &mut DescriptorEncoder, family: Family<f64>) -> Result<(), std::fmt::Error> {
    encode_family(encoder, family, MetricType::Gauge, |v, m| {
        ConstGauge::new(*v).encode(m)
    })
}

fn counters(encoder: &mut DescriptorEncoder, family: Family<u64>) -> Result<(), std::fmt::Error> {
    encode_family(encoder, family, MetricType::Counter, |v, m| {
        ConstCounter::new(*v).encode(m)
    })
}

fn seconds_since_unix_ms(ms: u64, now: SystemTime) -> f64 {
    now.duration_since(UNIX_EPOCH + Duration::from_millis(ms))
        .map_or(0.0, |d| d.as_secs_f64())
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl Collector for TelemetryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.telemetry;
        let now = SystemTime::now();
        let enc = &mut encoder;

        let mut build = Family::new("mirror_build_info", "The running build (value 1).", None);
        build.add(vec![("version", mirror_core::VERSION.to_owned())], 1.0);
        gauges(enc, build)?;
        let mut up = Family::new(
            "mirror_uptime",
            "Time since the process started.",
            Some(Unit::Seconds),
        );
        up.add(vec![], t.uptime().as_secs_f64());
        gauges(enc, up)?;
        let mut ready = Family::new(
            "mirror_ready",
            "1 when /ready answers 200: sources connected, sinks open, leases held.",
            None,
        );
        ready.add(vec![], flag(t.readiness().ok));
        gauges(enc, ready)?;
        let mut healthy = Family::new(
            "mirror_healthy",
            "1 when /health answers 200: no route failed and nothing is wedged.",
            None,
        );
        healthy.add(vec![], flag(t.health().ok));
        gauges(enc, healthy)?;
        let mut state = Family::new(
            "mirror_engine_state",
            "1 for the engine's current state, 0 for the others.",
            None,
        );
        let current = t.state();
        for s in [
            EngineState::Starting,
            EngineState::Running,
            EngineState::Stopping,
            EngineState::Stopped,
            EngineState::Failed,
        ] {
            state.add(vec![("state", s.as_str().to_owned())], flag(s == current));
        }
        gauges(enc, state)?;

        // Sources and their tables.
        let mut reachable = Family::new(
            "mirror_source_reachable",
            "1 while the source reaches its server.",
            None,
        );
        let mut pending = Family::new(
            "mirror_source_pending_items",
            "Items (batches and positions) emitted by the source and not committed yet.",
            None,
        );
        let mut committed = Family::new(
            "mirror_source_committed_items",
            "Items of the source committed by this process.",
            None,
        );
        let mut source_retries = Family::new(
            "mirror_source_retries",
            "Retries of the source's calls, by reason.",
            None,
        );
        let mut source_errors = Family::new(
            "mirror_source_errors",
            "Errors of the source, by kind (transient: retried; permanent: the route stopped).",
            None,
        );
        let mut phase = Family::new(
            "mirror_table_phase",
            "1 for the table's current phase (initial_sync, streaming), 0 for the other.",
            None,
        );
        let mut events = Family::new(
            "mirror_change_events_received",
            "Change events received from the source, by operation.",
            None,
        );
        let mut copied = Family::new(
            "mirror_initial_sync_copied_documents",
            "Documents the initial sync has copied (resumed copies count what earlier runs copied).",
            None,
        );
        let mut estimated = Family::new(
            "mirror_initial_sync_estimated_documents",
            "The collection's estimated size when its initial sync started.",
            None,
        );
        let mut lag = Family::new(
            "mirror_replication_lag",
            "Now minus the source time of the last committed change (MongoDB: its cluster time).",
            Some(Unit::Seconds),
        );
        let mut age = Family::new(
            "mirror_checkpoint_age",
            "Time since the table's source last committed a checkpoint (a commit holds every table's stream position).",
            Some(Unit::Seconds),
        );
        for source in t.sources() {
            let s = || vec![("source", source.name().to_owned())];
            reachable.add(
                s(),
                flag(source.is_built() && source.reachability().is_ok()),
            );
            pending.add(s(), source.pending_items() as f64);
            committed.add(s(), source.committed_items());
            for reason in RetryReason::ALL {
                let mut l = s();
                l.push(("reason", reason.as_str().to_owned()));
                source_retries.add(l, source.stats.retries(reason));
            }
            for (kind, name) in [
                (ErrorKind::Transient, "transient"),
                (ErrorKind::Permanent, "permanent"),
            ] {
                let mut l = s();
                l.push(("kind", name.to_owned()));
                source_errors.add(l, source.stats.errors(kind));
            }
            let positions = source.committed_positions();
            let commit_age = source
                .committed_at_unix_ms()
                .map(|ms| seconds_since_unix_ms(ms, now));
            for table in source.tables() {
                let l = || {
                    vec![
                        ("source", source.name().to_owned()),
                        ("table", table.id().to_string()),
                    ]
                };
                if let Some(current) = table.phase() {
                    for p in TablePhase::ALL {
                        let mut labels = l();
                        labels.push(("phase", p.as_str().to_owned()));
                        phase.add(labels, flag(p == current));
                    }
                }
                for kind in EventKind::ALL {
                    let mut labels = l();
                    labels.push(("operation", kind.as_str().to_owned()));
                    events.add(labels, table.events(kind));
                }
                let (c, e) = table.initial_sync();
                if table.phase().is_some() {
                    copied.add(l(), c as f64);
                    estimated.add(l(), e as f64);
                }
                if let Some(p) = table.stream().and_then(|s| positions.get(&s).cloned()) {
                    let behind = now.duration_since(p.time).map_or(0.0, |d| d.as_secs_f64());
                    lag.add(l(), behind);
                }
                if let Some(a) = commit_age {
                    age.add(l(), a);
                }
            }
        }
        gauges(enc, reachable)?;
        gauges(enc, pending)?;
        counters(enc, committed)?;
        counters(enc, source_retries)?;
        counters(enc, source_errors)?;
        gauges(enc, phase)?;
        counters(enc, events)?;
        gauges(enc, copied)?;
        gauges(enc, estimated)?;
        gauges(enc, lag)?;
        gauges(enc, age)?;

        // Sinks and their tables.
        let mut open = Family::new(
            "mirror_sink_open",
            "1 once the sink has opened its destination.",
            None,
        );
        let mut sink_retries = Family::new(
            "mirror_sink_retries",
            "Retries of the sink's calls, by reason (its storage requests and the engine's flushes).",
            None,
        );
        let mut sink_errors = Family::new(
            "mirror_sink_errors",
            "Errors of the sink, by kind (transient: retried; permanent: the route stopped).",
            None,
        );
        let mut rows = Family::new(
            "mirror_published_rows",
            "Rows in published files, by operation (insert, update, delete, upsert).",
            None,
        );
        let mut bytes = Family::new(
            "mirror_published",
            "Size of the published files.",
            Some(Unit::Bytes),
        );
        let mut files = Family::new("mirror_published_files", "Files published.", None);
        let mut last_file = Family::new(
            "mirror_last_file_sequence_number",
            "Sequence number of the table's last published file (00000000000000000001.parquet is 1).",
            None,
        );
        let mut last_at = Family::new(
            "mirror_last_publish_timestamp",
            "When the table's last file was published (Unix time).",
            Some(Unit::Seconds),
        );
        let mut lease = Family::new(
            "mirror_lease_held",
            "1 while this process holds the table's single-writer lease.",
            None,
        );
        let mut destination_up = Family::new(
            "mirror_destination_up",
            "1 when the sink's destination (Fabric) answered its last status request.",
            None,
        );
        let mut destination_checked = Family::new(
            "mirror_destination_last_check_timestamp",
            "When the sink's destination was last asked for its status (Unix time).",
            Some(Unit::Seconds),
        );
        let mut applied = Family::new(
            "mirror_destination_applied_rows",
            "Rows the destination reports as applied to the table (Fabric: processed rows).",
            None,
        );
        let mut written = Family::new(
            "mirror_destination_written_rows",
            "Rows the landing zone held for the table when the destination was asked.",
            None,
        );
        let mut destination_lag = Family::new(
            "mirror_destination_lag",
            "Now minus the source time up to which the destination table holds every change (absent while unknown).",
            Some(Unit::Seconds),
        );
        let mut destination_failed = Family::new(
            "mirror_destination_table_failed",
            "1 when the destination stopped applying the table.",
            None,
        );
        let mut latencies = Vec::new();
        for sink in t.sinks() {
            let destination = sink.destination();
            if let Some(d) = &destination {
                let k = vec![("sink", sink.name().to_owned())];
                destination_up.add(k.clone(), flag(d.outcome.is_ok()));
                destination_checked.add(
                    k,
                    d.checked_at
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |t| t.as_secs_f64()),
                );
            }
            let k = || vec![("sink", sink.name().to_owned())];
            open.add(k(), flag(sink.is_opened()));
            for reason in RetryReason::ALL {
                let mut l = k();
                l.push(("reason", reason.as_str().to_owned()));
                sink_retries.add(l, sink.stats.retries(reason));
            }
            for (kind, name) in [
                (ErrorKind::Transient, "transient"),
                (ErrorKind::Permanent, "permanent"),
            ] {
                let mut l = k();
                l.push(("kind", name.to_owned()));
                sink_errors.add(l, sink.stats.errors(kind));
            }
            for table in sink.tables() {
                let l = || {
                    vec![
                        ("source", table.source().unwrap_or_default()),
                        ("sink", sink.name().to_owned()),
                        ("table", table.id().to_string()),
                    ]
                };
                for (op, name) in ROW_OPS {
                    let mut labels = l();
                    labels.push(("operation", name.to_owned()));
                    rows.add(labels, table.rows(op));
                }
                bytes.add(l(), table.bytes());
                files.add(l(), table.files());
                if let Some((number, at)) = table.last_file() {
                    last_file.add(l(), number as f64);
                    last_at.add(l(), at as f64 / 1000.0);
                }
                lease.add(l(), flag(table.lease() == LeaseState::Held));
                latencies.push((l(), table.publish_latency().snapshot()));
                if let Some((d, lag)) = destination.as_ref().and_then(|d| d.table(table.id(), now))
                {
                    if let Some(n) = d.applied_rows {
                        applied.add(l(), n as f64);
                    }
                    if let Some(n) = d.written_rows {
                        written.add(l(), n as f64);
                    }
                    if let Lag::Known { lag, .. } = lag {
                        destination_lag.add(l(), lag.as_secs_f64());
                    }
                    destination_failed.add(l(), flag(d.failed));
                }
            }
        }
        gauges(enc, open)?;
        counters(enc, sink_retries)?;
        counters(enc, sink_errors)?;
        counters(enc, rows)?;
        counters(enc, bytes)?;
        counters(enc, files)?;
        gauges(enc, last_file)?;
        gauges(enc, last_at)?;
        gauges(enc, lease)?;
        gauges(enc, destination_up)?;
        gauges(enc, destination_checked)?;
        gauges(enc, applied)?;
        gauges(enc, written)?;
        gauges(enc, destination_lag)?;
        gauges(enc, destination_failed)?;
        if !latencies.is_empty() {
            let mut metric = enc.encode_descriptor(
                "mirror_publish_duration",
                "Time to publish one file (upload and rename, or put), from start to success.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (labels, h) in &latencies {
                // The encoder takes per-bucket counts and adds them up itself.
                let mut buckets = Vec::with_capacity(PUBLISH_BUCKETS.len() + 1);
                let mut below = 0;
                for (bound, cumulative) in &h.buckets {
                    buckets.push((*bound, cumulative - below));
                    below = *cumulative;
                }
                buckets.push((f64::INFINITY, h.count - below));
                metric
                    .encode_family(labels)?
                    .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)?;
            }
        }

        if let Some(p) = super::process::read() {
            process_metrics(enc, p)?;
        }
        Ok(())
    }
}

fn process_metrics(
    enc: &mut DescriptorEncoder,
    p: super::process::ProcessFacts,
) -> Result<(), std::fmt::Error> {
    let one = |name, help, unit: Option<Unit>, value: f64| {
        let mut f = Family::new(name, help, unit);
        f.add(vec![], value);
        f
    };
    encode_family(
        enc,
        one(
            "process_cpu",
            "Total user and system CPU time spent.",
            Some(Unit::Seconds),
            p.cpu_seconds,
        ),
        MetricType::Counter,
        |v, m| ConstCounter::new(*v).encode(m),
    )?;
    gauges(
        enc,
        one(
            "process_resident_memory",
            "Resident memory size.",
            Some(Unit::Bytes),
            p.resident_bytes as f64,
        ),
    )?;
    gauges(
        enc,
        one(
            "process_virtual_memory",
            "Virtual memory size.",
            Some(Unit::Bytes),
            p.virtual_bytes as f64,
        ),
    )?;
    gauges(
        enc,
        one(
            "process_open_fds",
            "Open file descriptors.",
            None,
            p.open_fds as f64,
        ),
    )?;
    if let Some(max) = p.max_fds {
        gauges(
            enc,
            one(
                "process_max_fds",
                "The limit of open file descriptors.",
                None,
                max as f64,
            ),
        )?;
    }
    gauges(
        enc,
        one(
            "process_start_time",
            "When the process started (Unix time).",
            Some(Unit::Seconds),
            p.start_time_seconds,
        ),
    )?;
    gauges(
        enc,
        one("process_threads", "OS threads.", None, p.threads as f64),
    )
}
