//! A plugin sink as a [`Sink`]: batch ids map to acks; durable ids come back through `take_acks`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use mirror_plugin_api::MirrorBatch;
use tokio::time::Instant;

use super::convert::to_parts;
use super::instance::{ComponentConfig, Instance, SharedInstance};
use crate::component::{BuildError, Sink, SinkConfig, SinkContext};
use crate::engine::Ack;
use crate::error::ComponentError;
use crate::model::ChangeBatch;

/// How long a written batch may wait for a flush when no new batch arrives.
const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// A sink type provided by a plugin.
#[derive(Debug)]
pub(crate) struct PluginSinkConfig(pub ComponentConfig);

#[async_trait]
impl SinkConfig for PluginSinkConfig {
    async fn build(&self, cx: SinkContext) -> Result<Box<dyn Sink>, BuildError> {
        let instance = self.0.instantiate(&cx.name, None).await?;
        Ok(Box::new(PluginSink {
            instance,
            pending: HashMap::new(),
            next_id: 1,
            oldest_unflushed: None,
        }))
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

struct PluginSink {
    instance: SharedInstance,
    pending: HashMap<u64, Ack>,
    next_id: u64,
    oldest_unflushed: Option<Instant>,
}

/// Collects the ids the plugin reports durable (blocking; inside a call).
fn take_acks(inst: &mut Instance) -> Vec<u64> {
    let take = inst.component.vt.take_acks.expect("checked at load");
    let mut ids = Vec::new();
    let mut buf = [0u64; 256];
    loop {
        // SAFETY: the buffer holds `buf.len()` ids.
        let n = unsafe { take(inst.ptr(), buf.as_mut_ptr(), buf.len()) }.min(buf.len());
        ids.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return ids;
        }
    }
}

impl PluginSink {
    fn acknowledge(&mut self, ids: Vec<u64>) -> Result<(), ComponentError> {
        for id in ids {
            match self.pending.remove(&id) {
                Some(ack) => ack.acknowledge(),
                None => {
                    return Err(ComponentError::permanent(format!(
                        "plugin sink acknowledged batch {id}, which it does not hold"
                    )));
                }
            }
        }
        if self.pending.is_empty() {
            self.oldest_unflushed = None;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for PluginSink {
    async fn write(&mut self, batch: ChangeBatch, ack: Ack) -> Result<(), ComponentError> {
        if batch.truncates() {
            return Err(ComponentError::permanent(format!(
                "{} must be emptied, but plugin sinks cannot empty tables (plugin ABI version 1)",
                batch.table().id
            )));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, ack);
        self.oldest_unflushed.get_or_insert_with(Instant::now);
        let mut exported =
            MirrorBatch::export(to_parts(&batch)).map_err(ComponentError::permanent)?;
        let acked = self
            .instance
            .call(move |inst| {
                let write = inst.component.vt.write.expect("checked at load");
                // SAFETY: the plugin takes the batch (moves or releases it) per the ABI.
                let status = unsafe { write(inst.ptr(), &mut exported, id) };
                drop(exported);
                let acked = take_acks(inst);
                inst.check(status, "write").map(|_| acked)
            })
            .await?;
        self.acknowledge(acked)
    }

    async fn flush(&mut self) -> Result<(), ComponentError> {
        let acked = self
            .instance
            .call(|inst| {
                let flush = inst.component.vt.flush.expect("checked at load");
                // SAFETY: calling the plugin per the ABI.
                let status = unsafe { flush(inst.ptr()) };
                let acked = take_acks(inst);
                inst.check(status, "flush").map(|_| acked)
            })
            .await?;
        self.acknowledge(acked)
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.oldest_unflushed.map(|t| t + FLUSH_AFTER)
    }

    async fn close(&mut self) -> Result<(), ComponentError> {
        self.instance.close().await?;
        let acked = self.instance.call(|inst| Ok(take_acks(inst))).await?;
        self.acknowledge(acked)
    }
}
