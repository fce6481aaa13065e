//! The engine-facing [`Sink`]: a thin adapter over [`LandingZoneWriter`].

use async_trait::async_trait;
use mirror_core::component::Sink;
use mirror_core::engine::Ack;
use mirror_core::{ChangeBatch, ComponentError};
use tokio::time::Instant;

use crate::writer::LandingZoneWriter;

/// The `onelake` sink.
#[derive(Debug)]
pub struct OneLakeSink {
    writer: LandingZoneWriter,
}

impl OneLakeSink {
    /// A sink writing through `writer`.
    pub fn new(writer: LandingZoneWriter) -> Self {
        Self { writer }
    }

    /// The writer, e.g. for its statistics.
    pub fn writer(&self) -> &LandingZoneWriter {
        &self.writer
    }
}

#[async_trait]
impl Sink for OneLakeSink {
    async fn write(&mut self, batch: ChangeBatch, ack: Ack) -> Result<(), ComponentError> {
        self.writer.write(batch, ack).await.map_err(Into::into)
    }

    async fn flush(&mut self) -> Result<(), ComponentError> {
        self.writer.flush().await.map_err(Into::into)
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.writer.flush_deadline()
    }

    async fn on_deadline(&mut self) -> Result<(), ComponentError> {
        self.writer.publish_due().await.map_err(Into::into)
    }

    async fn close(&mut self) -> Result<(), ComponentError> {
        self.writer.close().await.map_err(Into::into)
    }
}
