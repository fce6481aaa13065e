//! `mirror check`: validate a configuration and show what it would run.

use std::path::Path;

use mirror_core::engine::resolve_checkpoint_store;

use super::load_config;
use crate::exit::Code;

pub fn check(path: &Path) -> Code {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
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

    match resolve_checkpoint_store(&config) {
        Ok(store) => println!("\ncheckpoints: {}", store.location()),
        Err(e) => {
            crate::print::error(&e);
            return Code::Usage;
        }
    }
    Code::Ok
}
