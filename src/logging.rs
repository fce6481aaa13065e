//! Logging setup: `tracing` to stderr, human-readable or JSON, filtered by `RUST_LOG`, every line
//! scrubbed of the configuration's secrets.
//!
//! Components keep secrets out of what they log; the scrubbing writer is the net under them, for
//! what no one controls: a driver's or an HTTP library's trace line, an error that quotes a URI.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Installs the global subscriber. `RUST_LOG` wins over `--verbose`. Colours only when stderr is
/// a terminal (and `NO_COLOR` is unset): escapes in files and log collectors are noise.
pub fn init(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "info,mirror=debug,mirror_core=debug,mirror_mongodb=debug,mirror_onelake=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(|| ScrubbedStderr);
    match format {
        LogFormat::Pretty => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Stderr, with every known secret ([`mirror_core::config::scrub`]) replaced in what is written.
///
/// The formatter writes each event with one `write_all` of the whole line, so a secret is never
/// split between two writes.
struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = mirror_core::config::scrub(&text);
        std::io::stderr().lock().write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Panics print their message scrubbed of secrets: a panic in a library may format a value that
/// holds one (a connection string in a driver's `Debug`).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_owned());
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
            _ => "\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
                .to_owned(),
        };
        let text = format!(
            "\nthread '{}' panicked{location}:\n{message}{backtrace}\n",
            thread.name().unwrap_or("<unnamed>")
        );
        let _ = std::io::stderr()
            .lock()
            .write_all(mirror_core::config::scrub(&text).as_bytes());
    }));
}
