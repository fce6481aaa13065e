//! A plugin source as a [`Source`].

use async_trait::async_trait;
use mirror_plugin_api::MirrorBatch;

use super::convert::{source_checkpoint, TableCache};
use super::instance::{ComponentConfig, Outcome, SharedInstance};
use crate::component::{BuildError, Source, SourceConfig, SourceContext, SourceItem};
use crate::error::ComponentError;

/// A source type provided by a plugin; the config is the component's TOML table as text.
#[derive(Debug)]
pub(crate) struct PluginSourceConfig(pub ComponentConfig);

#[async_trait]
impl SourceConfig for PluginSourceConfig {
    async fn build(&self, cx: SourceContext) -> Result<Box<dyn Source>, BuildError> {
        let resume = cx.resume.source().map(|s| s.as_bytes().to_vec());
        let instance = self.0.instantiate(&cx.name, resume).await?;
        Ok(Box::new(PluginSource {
            instance,
            tables: TableCache::default(),
        }))
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

struct PluginSource {
    instance: SharedInstance,
    tables: TableCache,
}

#[async_trait]
impl Source for PluginSource {
    async fn next(&mut self) -> Result<Option<SourceItem>, ComponentError> {
        let parts = self
            .instance
            .call(|inst| {
                let next = inst.component.vt.next.expect("checked at load");
                let mut out = MirrorBatch::empty();
                // SAFETY: calling the plugin per the ABI with an empty slot to fill.
                let status = unsafe { next(inst.ptr(), &mut out) };
                match inst.check(status, "next")? {
                    Outcome::End => Ok(None),
                    // SAFETY: the plugin filled `out`; `import` validates it.
                    Outcome::Ok => unsafe { MirrorBatch::import(&mut out) }
                        .map(Some)
                        .map_err(|e| inst.refuse("next", format!("returned a bad batch: {e}"))),
                }
            })
            .await?;
        let Some(mut parts) = parts else {
            return Ok(None);
        };
        let checkpoint = source_checkpoint(parts.checkpoint.take());
        let batch = self.tables.batch_from(parts, checkpoint).map_err(|e| {
            ComponentError::permanent(format!("plugin source returned a bad batch: {e}"))
        })?;
        Ok(Some(SourceItem::Batch(batch)))
    }

    async fn close(&mut self) -> Result<(), ComponentError> {
        self.instance.close().await
    }
}
