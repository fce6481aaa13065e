//! `mirror run`: run the configured routes, stopping cleanly on SIGINT/SIGTERM, with the HTTP API
//! (probes, metrics, status) served meanwhile.

use std::net::SocketAddr;
use std::path::Path;

use mirror_core::engine::{Engine, EngineError};
use mirror_core::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::load_config;
use crate::api::ApiServer;
use crate::exit::Code;

pub async fn run(path: &Path, api_address: Option<SocketAddr>) -> Code {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    info!(config = %config.file, version = mirror_core::VERSION, "starting");
    let telemetry = Telemetry::new();
    let settings = config.api.clone();
    let engine = Engine::new(config).with_telemetry(telemetry.clone());
    spawn_signal_handler(engine.shutdown_token());
    // Serving starts before anything connects, so that probes see "not ready" rather than
    // nothing while sources and sinks come up.
    let api = if settings.enabled || api_address.is_some() {
        let address = api_address.unwrap_or(settings.address);
        match ApiServer::start(&settings, address, telemetry) {
            Ok(server) => Some(server),
            Err(e) => {
                crate::print::error(&e);
                return Code::Startup;
            }
        }
    } else {
        None
    };
    let linger = settings.linger_on_failure;
    let outcome = engine.run().await;
    if outcome.is_err() && api.is_some() && !linger.is_zero() {
        info!(
            ?linger,
            "route failed; the API keeps answering (/health: 503) before exiting"
        );
        tokio::time::sleep(linger).await;
    }
    if let Some(api) = api {
        api.stop();
    }
    match outcome {
        Ok(report) => {
            info!("{report}");
            Code::Ok
        }
        Err(err) => {
            error!("{err}");
            crate::print::error(&err);
            match err {
                EngineError::Build(_)
                | EngineError::LoadCheckpoint { .. }
                | EngineError::StartTimeout { .. } => Code::Startup,
                EngineError::ShutdownTimeout { .. } => Code::ShutdownTimeout,
                _ => Code::Failed,
            }
        }
    }
}

/// First SIGINT/SIGTERM: clean stop. Second SIGINT: exit at once (nothing unwritten is committed).
///
/// The handlers are installed here, before the task that waits on them is spawned: a signal that
/// comes before that task first runs (early in a busy start) must stop the run cleanly, not end
/// the process by the signal's default action.
fn spawn_signal_handler(stop: CancellationToken) {
    let mut signals = StopSignals::install();
    tokio::spawn(async move {
        signals.recv().await;
        info!("stop requested: finishing in-flight batches (press Ctrl-C again to exit at once)");
        stop.cancel();
        signals.recv().await;
        warn!(
            "second interrupt: exiting now; unacknowledged batches will be re-sent on the next run"
        );
        std::process::exit(Code::Interrupted as i32);
    });
}

/// SIGINT and SIGTERM, listened to from the moment of [`StopSignals::install`].
struct StopSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                _ => {
                    warn!("cannot listen to SIGINT/SIGTERM; only Ctrl-C stops the run cleanly");
                    None
                }
            };
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
