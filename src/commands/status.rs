//! `mirror status`: each source's and table's committed position, from the checkpoint store, and
//! for sinks whose destination reports on its tables (the onelake sink with `fabric`), what
//! Fabric applied and how far behind the Delta table is. `--format json` prints the JSON of
//! `GET /api/status` instead, from the checkpoint store.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mirror_core::checkpoint::ResumeState;
use mirror_core::destination::{destination_lag, DestinationReport, Lag};
use mirror_core::engine::resolve_checkpoint_store;

use super::load_config;
use crate::cli::StatusFormat;
use crate::exit::Code;

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).to_std().unwrap_or_default().as_secs();
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

pub async fn status(path: &Path, format: StatusFormat) -> Code {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match resolve_checkpoint_store(&config) {
        Ok(s) => s,
        Err(e) => {
            crate::print::error(&e);
            return Code::Usage;
        }
    };
    if format == StatusFormat::Json {
        return match mirror_core::telemetry::report::from_checkpoints(&config, &*store).await {
            Ok(report) => match serde_json::to_string_pretty(&report) {
                Ok(json) => {
                    println!("{json}");
                    Code::Ok
                }
                Err(e) => {
                    eprintln!("error: cannot encode the status: {e}");
                    Code::Failed
                }
            },
            Err(e) => {
                crate::print::error(&e);
                Code::Startup
            }
        };
    }
    println!("checkpoints: {}", store.location());
    let now = Utc::now();
    let mut failed = false;
    let mut resumes: Vec<(usize, ResumeState)> = Vec::new();
    for (i, source) in config.sources.iter().enumerate() {
        println!("\nsource {} ({})", source.name, source.type_name);
        match store.load(&source.name).await {
            Ok(resume) if resume.is_empty() => println!("  not started: no checkpoint yet"),
            Ok(resume) => {
                for (partition, stored) in resume.entries() {
                    if matches!(partition, mirror_core::Partition::TableSchema(_)) {
                        // Column types recorded ahead of the data: not a position.
                        continue;
                    }
                    println!(
                        "  {:<32} {}  (committed {} ago)",
                        partition.to_string(),
                        source.config.describe_state(&stored.state),
                        ago(now, stored.committed_at),
                    );
                }
                resumes.push((i, resume));
            }
            Err(e) => {
                println!("  error: {e}");
                failed = true;
            }
        }
    }
    for sink in &config.sinks {
        match sink.config.destination_status().await {
            Ok(None) => {}
            Ok(Some(report)) => print_report(&sink.name, &report, &config, &resumes, now),
            Err(e) => {
                println!("\nsink {} ({}): error: {e}", sink.name, sink.type_name);
                failed = true;
            }
        }
    }
    for sink in &config.sinks {
        match sink.config.writers().await {
            Ok(lines) if lines.is_empty() => {}
            Ok(lines) => {
                println!("\nsink {} ({}): writers", sink.name, sink.type_name);
                for line in lines {
                    println!("  {line}");
                }
            }
            Err(e) => {
                println!(
                    "\nsink {} ({}): writers: error: {e}",
                    sink.name, sink.type_name
                );
                failed = true;
            }
        }
    }
    if failed {
        Code::Startup
    } else {
        Code::Ok
    }
}

fn print_report(
    sink: &str,
    report: &DestinationReport,
    config: &mirror_core::config::MirrorConfig,
    resumes: &[(usize, ResumeState)],
    now: DateTime<Utc>,
) {
    println!(
        "\nsink {sink} -> {}: {}",
        report.destination,
        report.state.as_deref().unwrap_or("unknown")
    );
    if let Some(e) = &report.error {
        println!("  error: {e}");
    }
    for t in &report.tables {
        println!("  {}", t.location);
        let file = match (t.last_file, t.written_rows) {
            (Some(n), Some(rows)) => format!("file {n}, {rows} rows published"),
            (Some(n), None) => format!("file {n} (rows published not recorded)"),
            (None, _) => "no data file yet".to_owned(),
        };
        println!("    landing zone: {file}");
        match &t.state {
            None => println!(
                "    Fabric: not listed yet (it lists a table once it has seen its folder)"
            ),
            Some(state) => {
                let mut line = format!("    Fabric: {state}");
                if let Some(rows) = t.applied_rows {
                    line.push_str(&format!(", {rows} rows processed"));
                }
                if let Some(bytes) = t.applied_bytes {
                    line.push_str(&format!(" ({bytes} bytes)"));
                }
                if let Some(at) = t.last_applied {
                    line.push_str(&format!(
                        ", last sync {} ({} ago)",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        ago(now, at)
                    ));
                }
                println!("{line}");
            }
        }
        if let Some(e) = &t.error {
            println!("    error: {e}");
        }
        if let Some(advice) = &t.advice {
            println!("    what to do: {advice}");
        }
        // The committed source time of this table, from the source that has it.
        let position = t.table.as_ref().and_then(|id| {
            resumes.iter().find_map(|(i, resume)| {
                resume.table(id)?;
                config.sources[*i].config.position_time(resume, id)
            })
        });
        match destination_lag(t, position, now) {
            Lag::Known { lag, as_of } => println!(
                "    Delta table lag: {} (Fabric applied every published row; current to source time {})",
                humantime::format_duration(Duration::from_secs(lag.as_secs())),
                as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Lag::Unknown { reason } => println!("    Delta table lag: unknown ({reason})"),
        }
    }
}
