//! The subcommands.

mod check;
mod run;
mod status;

use std::path::Path;

use mirror_core::config::{ConfigLoader, MirrorConfig, PluginSettings};

use crate::cli::Command;
use crate::exit::Code;

/// Runs one subcommand to its exit code.
pub async fn dispatch(command: Command) -> Code {
    match command {
        Command::Run { config } => run::run(&config).await,
        Command::Check { config } => check::check(&config),
        Command::Status { config } => status::status(&config).await,
    }
}

/// Loads a configuration, printing the error for the user on failure.
pub fn load_config(path: &Path) -> Result<MirrorConfig, Code> {
    let no_plugins = |plugins: &PluginSettings| {
        if plugins.load.is_empty() && plugins.dir.is_none() {
            Ok(())
        } else {
            Err("this build cannot load runtime plugins yet".to_owned())
        }
    };
    let loaded = ConfigLoader::default()
        .with_plugin_loader(&no_plugins)
        .load(path);
    loaded.map_err(|e| {
        eprintln!("error: {e}");
        Code::Usage
    })
}
