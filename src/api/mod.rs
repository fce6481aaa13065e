//! The HTTP API of `mirror run` and `mirror demo`: probes, metrics, the JSON status and a
//! status page, over the core's [`Telemetry`].
//!
//! | path | what | token |
//! |---|---|---|
//! | `GET /health` | liveness: 200, or 503 with the reasons (a route failed, work wedged) | never |
//! | `GET /ready` | readiness: 200 once sources are connected and sinks open, else 503 | never |
//! | `GET /metrics` | Prometheus text (OpenMetrics when the `Accept` header asks for it) | if set |
//! | `GET /api/status` | the [`StatusReport`](mirror_core::telemetry::StatusReport) as JSON | if set |
//! | `GET /` | the status page (server-rendered HTML and SVG, refreshes itself) | if set |
//!
//! The server runs on a thread of its own with a single-threaded runtime, so that probes are
//! answered at once even while an initial sync keeps the engine's runtime busy: a probe that
//! waits behind data work gets a healthy process restarted. It is hyper's HTTP/1 server; the
//! routes are few enough that a router would add more than it saves.

mod history;
mod metrics;
mod page;
mod process;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mirror_core::config::{ApiSettings, Secret};
use mirror_core::telemetry::Telemetry;
use tracing::{debug, info};

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address is taken or not ours.
    #[error(
        "cannot serve the HTTP API on {address}: {source}{hint}",
        hint = bind_hint(source)
    )]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server thread could not start.
    #[error("cannot start the HTTP API's thread: {0}")]
    Thread(std::io::Error),
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process, perhaps another mirror, listens there: choose another with \
             --api-address or [api] address, or set [api] enabled = false)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges: choose a higher port)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            " (no interface of this machine has that address: use 127.0.0.1 or 0.0.0.0)"
        }
        _ => "",
    }
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub telemetry: Telemetry,
    pub token: Option<Secret>,
    pub history: history::History,
    pub metrics: metrics::Exporter,
}

/// The running API server; stops when dropped.
pub struct ApiServer {
    /// Only the demo prints it (as the status page's URL).
    #[cfg(feature = "demo")]
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `address` (a taken port is an error naming it) and serves `telemetry` on a thread of
    /// its own until [`ApiServer::stop`].
    pub fn start(
        settings: &ApiSettings,
        address: SocketAddr,
        telemetry: Telemetry,
    ) -> Result<Self, ApiError> {
        telemetry.set_stalled_after(settings.stalled_after);
        let listener = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ApiError::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ApiError::Bind { address, source })?;
        let shared = Arc::new(Shared {
            history: history::History::new(),
            metrics: metrics::Exporter::new(telemetry.clone()),
            telemetry,
            token: settings.token.clone(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("mirror-api".into())
            .spawn(move || serve(listener, shared, stop_rx))
            .map_err(ApiError::Thread)?;
        info!(address = %bound, "HTTP API listening (/health, /ready, /metrics, /api/status, /)");
        Ok(Self {
            #[cfg(feature = "demo")]
            address: bound,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The status page's URL (for an unspecified address such as `0.0.0.0`, via loopback).
    #[cfg(feature = "demo")]
    pub fn url(&self) -> String {
        let mut address = self.address;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{address}/")
    }

    /// Stops serving and waits for the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How often the page's charts get a point (15 minutes of them are kept).
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "the HTTP API cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the HTTP API cannot listen");
                return;
            }
        };
        let mut sampling = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = sampling.tick() => shared.history.sample(&shared.telemetry.report()),
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            debug!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, std::convert::Infallible>(routes::handle(&shared, req)) }
                        });
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await
                        {
                            debug!(%peer, error = %e, "API connection ended with an error");
                        }
                    });
                }
            }
        }
    });
}
