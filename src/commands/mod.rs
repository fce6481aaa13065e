//! The subcommands.

mod check;
mod fabric;
mod health;
mod init;
mod run;
mod status;

use std::path::Path;

use mirror_core::config::{ConfigLoader, MirrorConfig, PluginSettings};
use mirror_core::plugin::load_plugins;

use crate::cli::Command;
use crate::exit::Code;

/// Runs one subcommand to its exit code.
pub async fn dispatch(command: Command) -> Code {
    match command {
        Command::Run {
            config,
            api_address,
        } => run::run(&config, api_address).await,
        Command::Check {
            config,
            connect,
            timeout,
        } => check::check(&config, connect.then_some(timeout)).await,
        Command::Status { config, format } => status::status(&config, format).await,
        Command::Init(args) => init::init(&args),
        Command::Health { url, timeout } => health::health(&url, timeout).await,
        Command::Fabric { command } => fabric::fabric(command).await,
        #[cfg(feature = "demo")]
        Command::Demo {
            landing_zone,
            duration,
            docs,
            changes_per_sec,
            api_address,
        } => {
            crate::demo::demo(crate::demo::DemoArgs {
                landing_zone,
                duration: duration.map(std::time::Duration::from_secs),
                docs,
                changes_per_sec,
                api_address,
            })
            .await
        }
    }
}

/// Loads a configuration, printing the error for the user on failure.
pub fn load_config(path: &Path) -> Result<MirrorConfig, Code> {
    let plugins = |settings: &PluginSettings| {
        for plugin in load_plugins(settings).map_err(|e| e.to_string())? {
            tracing::info!(path = %plugin.path.display(), components = ?plugin.components, "plugin loaded");
        }
        Ok(())
    };
    let loaded = ConfigLoader::default()
        .with_plugin_loader(&plugins)
        .load(path);
    loaded.map_err(|e| {
        crate::print::error(&e);
        Code::Usage
    })
}
