//! Process exit codes, documented in `mirror --help` and the README.

/// Why `mirror` exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Finished: every finite source is written and checkpointed, or a requested shutdown completed.
    Ok = 0,
    /// A route failed while running (a permanent error, or retries exhausted).
    Failed = 1,
    /// Invalid command line or configuration.
    Usage = 2,
    /// Could not start: a component could not be built or its checkpoints could not be read (an
    /// error waiting cannot fix, or `engine.start_timeout` passed); `mirror check --connect`: a
    /// check failed.
    Startup = 3,
    /// A shutdown did not finish within `engine.shutdown_timeout`.
    ShutdownTimeout = 4,
    /// A second interrupt forced an immediate exit.
    Interrupted = 130,
}

impl From<Code> for std::process::ExitCode {
    fn from(code: Code) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// The exit codes as shown in `--help`.
pub const HELP: &str = "\
Exit codes:
  0    finished: finite sources fully written and checkpointed, or a clean shutdown
  1    a route failed while running (permanent error, or retries exhausted)
  2    invalid command line or configuration
  3    could not start (component build failed, checkpoints unreadable, engine.start_timeout
       passed); for check --connect: a check failed
  4    shutdown did not finish within engine.shutdown_timeout
  130  a second interrupt forced an immediate exit";
