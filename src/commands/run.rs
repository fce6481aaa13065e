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
    spawn_signal_handler(engine.shutdown_token());
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
fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("stop requested: finishing in-flight batches (press Ctrl-C again to exit at once)");
        stop.cancel();
        wait_for_signal().await;
        warn!(
            "second interrupt: exiting now; unacknowledged batches will be re-sent on the next run"
        );
        std::process::exit(Code::Interrupted as i32);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
