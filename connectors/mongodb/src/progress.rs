//! Initial-sync progress: bars with documents, MB/s and ETA on a terminal, log lines otherwise,
//! and the table's telemetry (documents copied and estimated, phase) for `/metrics` and the API.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror_core::telemetry::{SourceTableTelemetry, TablePhase};
use tracing::info;

/// How often progress is logged when there are no bars.
const LOG_EVERY: Duration = Duration::from_secs(10);

struct TableProgress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    bytes: u64,
    started: Instant,
    last_log: Instant,
}

/// Shared progress of every table's initial sync.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
    tables: Arc<Mutex<HashMap<String, TableProgress>>>,
}

impl Progress {
    /// Bars if `enabled` (default: when stderr is a terminal), log lines otherwise.
    pub fn new(enabled: Option<bool>) -> Self {
        let bars = enabled.unwrap_or_else(|| std::io::stderr().is_terminal());
        Self {
            bars: bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            tables: Arc::default(),
        }
    }

    /// A table whose copy starts (or resumes) with `done` of about `total` documents.
    pub fn add(&self, tel: &SourceTableTelemetry, total: u64, done: u64) {
        tel.start_initial_sync(done, total);
        let table = &tel.id().to_string();
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total.max(done)));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {human_pos}/{human_len} docs {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(table.to_owned());
            bar.set_position(done);
            bar
        });
        let now = Instant::now();
        self.lock().insert(
            table.to_owned(),
            TableProgress {
                bar,
                total,
                done,
                bytes: 0,
                started: now,
                last_log: now,
            },
        );
    }

    /// `docs` more documents (`bytes` of BSON) copied.
    pub fn advance(&self, tel: &SourceTableTelemetry, docs: u64, bytes: u64) {
        tel.add_copied(docs);
        let table = &tel.id().to_string();
        let mut tables = self.lock();
        let Some(p) = tables.get_mut(table) else {
            return;
        };
        p.done += docs;
        p.bytes += bytes;
        let mbps = p.bytes as f64 / 1e6 / p.started.elapsed().as_secs_f64().max(1e-3);
        match &p.bar {
            Some(bar) => {
                if p.done > bar.length().unwrap_or(0) {
                    bar.set_length(p.done);
                }
                bar.set_position(p.done);
                bar.set_message(format!("{mbps:.1} MB/s"));
            }
            None if p.last_log.elapsed() >= LOG_EVERY => {
                p.last_log = Instant::now();
                let pct = if p.total > 0 {
                    (p.done as f64 / p.total as f64 * 100.0).min(100.0)
                } else {
                    0.0
                };
                let rate = p.done as f64 / p.started.elapsed().as_secs_f64().max(1e-3);
                let eta = if rate > 0.0 && p.total > p.done {
                    format!("{:.0}s", (p.total - p.done) as f64 / rate)
                } else {
                    "-".into()
                };
                info!(
                    table,
                    copied = p.done,
                    estimated = p.total,
                    "initial sync {pct:.0}%, {rate:.0} docs/s, {mbps:.1} MB/s, ETA {eta}"
                );
            }
            None => {}
        }
    }

    /// The table's copy is complete.
    pub fn finish(&self, tel: &SourceTableTelemetry) {
        tel.set_phase(TablePhase::Streaming);
        if let Some(p) = self.lock().remove(&tel.id().to_string()) {
            if let Some(bar) = p.bar {
                bar.finish_with_message("done");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TableProgress>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}
