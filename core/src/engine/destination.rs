//! Asking sinks' destinations how far they are, while the routes run.
//!
//! For each sink whose configuration names an interval
//! ([`SinkConfig::destination_status_interval`]), a task asks
//! [`SinkConfig::destination_status`] at once and then every interval, and records each answer
//! (or why there was none) in the telemetry. These tasks are outside the routes: a destination
//! that cannot be asked never stops or slows replication, and they end with the run.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::component::SinkConfig;
use crate::telemetry::Telemetry;

/// Starts the askers for `sinks`; they stop when `stop` is cancelled or the returned set drops.
pub(super) fn watch_destinations<'a>(
    sinks: impl IntoIterator<Item = (&'a str, &'a Arc<dyn SinkConfig>)>,
    telemetry: &Telemetry,
    stop: &CancellationToken,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (name, config) in sinks {
        let Some(every) = config.destination_status_interval() else {
            continue;
        };
        let (name, config, telemetry, stop) = (
            name.to_owned(),
            config.clone(),
            telemetry.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let answer = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = config.destination_status() => a,
                };
                match answer {
                    Ok(Some(report)) => telemetry.record_destination(&name, Ok(report)),
                    // The sink has no destination after all (none configured).
                    Ok(None) => return,
                    Err(e) => {
                        debug!(sink = %name, error = %e, "cannot read the destination's status");
                        telemetry.record_destination(&name, Err(e));
                    }
                }
            }
        });
    }
    tasks
}
