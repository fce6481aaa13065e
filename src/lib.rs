//! `mirror`: keeps Microsoft Fabric in sync with MongoDB through Open Mirroring.
//!
//! This crate is the command line, as a library so that a company can build its own `mirror` binary
//! with extra compile-time components: link a crate that registers them (with
//! `mirror_core::register_source!` and friends) and call [`main`]. See `examples/custom_binary.rs`.
//!
//! ```no_run
//! // src/main.rs of a custom build; `my_components` registers its types with inventory and has a
//! // `link()` function referring to the modules that register (see `mirror_core::link`).
//! fn main() -> std::process::ExitCode {
//!     my_components::link();
//!     mirror::main()
//! }
//! # mod my_components { pub fn link() {} }
//! ```
//!
//! It is wiring only: it parses the command line, sets up logging, links the first-party components
//! (so their `inventory` registrations are present) and hands over to `mirror-core`.

mod api;
mod cli;
mod commands;
mod config_edit;
#[cfg(feature = "demo")]
mod demo;
mod exit;
mod init;
mod logging;
mod print;

use clap::Parser;

/// Keeps the first-party components' `inventory` registrations in the binary: a linker drops object
/// files nothing refers to, and their registrations with them (a test checks that `mirror check`
/// knows every first-party type, in the stock binary and in a custom build).
fn link_components() {
    mirror_core::link();
    mirror_mongodb::link();
    mirror_onelake::link();
}

/// Runs the `mirror` command line with every component linked into this binary.
pub fn main() -> std::process::ExitCode {
    link_components();
    let cli = cli::Cli::parse();
    logging::install_panic_hook();
    logging::init(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::Code::Startup.into();
        }
    };
    let code = runtime.block_on(commands::dispatch(cli.command));
    // Background tasks that ignore shutdown must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code.into()
}
