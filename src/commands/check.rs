//! `mirror check`: validate a configuration and show what it would run; with `--connect`, ask
//! every source and sink whether `mirror run` would work (their
//! [`SourceConfig::check`](mirror_core::component::SourceConfig::check) and
//! [`SinkConfig::check`](mirror_core::component::SinkConfig::check) hooks) and print one line per
//! check.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mirror_core::component::check::{Check, CheckContext, CheckStatus};
use mirror_core::config::MirrorConfig;
use mirror_core::engine::resolve_checkpoint_store;

use super::load_config;
use crate::exit::Code;

/// `mirror check`; `connect` is the timeout of each connection with `--connect`.
pub async fn check(path: &Path, connect: Option<Duration>) -> Code {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let code = validate(&config);
    match connect {
        Some(timeout) if code == Code::Ok => connect_all(&config, timeout).await,
        _ => code,
    }
}

/// Prints one component's checks; whether one failed.
fn print_checks(kind: &str, name: &str, type_name: &str, checks: &[Check]) -> bool {
    println!("\n{kind} {name} ({type_name})");
    if checks.is_empty() {
        println!("  skip  this component type has no connection checks");
    }
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in checks {
        let mut line = format!(
            "  {:<4}  {:<width$}  {}",
            c.status.as_str(),
            c.name,
            c.detail
        );
        if let Some(fix) = &c.fix {
            line.push_str(&format!(" -- to fix: {fix}"));
        }
        println!("{}", mirror_core::config::scrub(&line));
    }
    checks.iter().any(|c| c.status == CheckStatus::Failed)
}

async fn connect_all(config: &MirrorConfig, timeout: Duration) -> Code {
    println!(
        "\nconnecting (each attempt up to {}):",
        humantime::format_duration(timeout)
    );
    let tables = Arc::new(config.tables.clone());
    let context = |name: &str| CheckContext {
        name: name.to_owned(),
        tables: tables.clone(),
        timeout,
    };
    // A check answers within its timeouts; this bounds a component that does not.
    let limit = timeout * 4;
    let bounded = |checks: Option<Vec<Check>>, what: &str| {
        checks.unwrap_or_else(|| {
            vec![Check::failed(
                "answer",
                format!(
                    "{what} did not finish within {}",
                    humantime::format_duration(limit)
                ),
                "check that its servers are reachable from here",
            )]
        })
    };
    let mut failed = false;
    for s in &config.sources {
        let checks = tokio::time::timeout(limit, s.config.check(context(&s.name)))
            .await
            .ok();
        failed |= print_checks(
            "source",
            &s.name,
            &s.type_name,
            &bounded(checks, "the check"),
        );
    }
    for s in &config.sinks {
        let checks = tokio::time::timeout(limit, s.config.check(context(&s.name)))
            .await
            .ok();
        failed |= print_checks("sink", &s.name, &s.type_name, &bounded(checks, "the check"));
    }
    if failed {
        println!(
            "\nsome checks failed: `mirror run` would not start or would stop; see the fixes above"
        );
        Code::Startup
    } else {
        println!("\nevery check passed");
        Code::Ok
    }
}

/// The offline checks: types, routes, table targets, the checkpoint store.
fn validate(config: &MirrorConfig) -> Code {
    let mut problems = Vec::new();
    for issue in mirror_core::mapping::check(&config.tables) {
        problems.push(format!("{}: {issue}", config.file));
    }
    // Declared target tables must map to distinct landing-zone folders.
    let mut targets = Vec::new();
    for (source_table, settings) in &config.tables {
        if let Some(target) = &settings.target {
            match target.parse::<mirror_core::TableId>() {
                Ok(id) => targets.push(id),
                Err(e) => problems.push(format!(
                    "{}: tables.{source_table:?}.target: {e}",
                    config.file
                )),
            }
        }
    }
    if let Err(e) = mirror_onelake::naming::check_collisions(&targets) {
        problems.push(format!("{}: [tables] targets: {e}", config.file));
    }
    if !problems.is_empty() {
        for p in &problems {
            crate::print::error(p);
        }
        return Code::Usage;
    }
    println!("{}: ok", config.file);
    println!("\ncomponents:");
    for s in &config.sources {
        println!(
            "  source    {:<16} {:<12} {}",
            s.name,
            s.type_name,
            s.config.describe()
        );
    }
    for t in &config.transforms {
        println!(
            "  transform {:<16} {:<12} {}",
            t.name,
            t.type_name,
            t.config.describe()
        );
    }
    for s in &config.sinks {
        println!(
            "  sink      {:<16} {:<12} {}",
            s.name,
            s.type_name,
            s.config.describe()
        );
    }
    println!("\nroutes:");
    for route in config.routes() {
        println!("  {}", route.join(" -> "));
    }

    if config.api.enabled {
        let token = if config.api.token.is_some() {
            " (token required but for /health and /ready)"
        } else {
            ""
        };
        println!("\napi: http://{}/{token}", config.api.address);
    } else {
        println!("\napi: disabled ([api] enabled = false; --api-address serves it anyway)");
    }

    match resolve_checkpoint_store(config) {
        Ok(store) => println!("\ncheckpoints: {}", store.location()),
        Err(e) => {
            crate::print::error(&e);
            return Code::Usage;
        }
    }
    Code::Ok
}
