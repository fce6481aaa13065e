//! `mirror status`: each source's and table's committed position, from the checkpoint store.

use std::path::Path;

use chrono::Utc;
use mirror_core::engine::resolve_checkpoint_store;

use super::load_config;
use crate::exit::Code;

pub async fn status(path: &Path) -> Code {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match resolve_checkpoint_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Code::Usage;
        }
    };
    println!("checkpoints: {}", store.location());
    let now = Utc::now();
    let mut failed = false;
    for source in &config.sources {
        println!("\nsource {} ({})", source.name, source.type_name);
        match store.load(&source.name).await {
            Ok(resume) if resume.is_empty() => println!("  not started: no checkpoint yet"),
            Ok(resume) => {
                for (partition, stored) in resume.entries() {
                    let age = (now - stored.committed_at).to_std().unwrap_or_default();
                    println!(
                        "  {:<32} {}  (committed {} ago)",
                        partition.to_string(),
                        source.config.describe_state(&stored.state),
                        humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
                    );
                }
            }
            Err(e) => {
                println!("  error: {e}");
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
