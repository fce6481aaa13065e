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
    match resolve_checkpoint_store(&config) {
        Ok(store) => println!("\ncheckpoints: {}", store.location()),
        Err(e) => {
            eprintln!("error: {e}");
            return Code::Usage;
        }
    }
    Code::Ok
}
