//! A plugin transform as a [`Transform`].

use async_trait::async_trait;
use mirror_plugin_api::MirrorBatch;

use super::convert::{to_parts, TableCache};
use super::instance::{ComponentConfig, SharedInstance};
use crate::component::{BuildError, Transform, TransformConfig, TransformContext};
use crate::error::ComponentError;
use crate::model::ChangeBatch;

/// A transform type provided by a plugin.
#[derive(Debug)]
pub(crate) struct PluginTransformConfig(pub ComponentConfig);

#[async_trait]
impl TransformConfig for PluginTransformConfig {
    async fn build(&self, cx: TransformContext) -> Result<Box<dyn Transform>, BuildError> {
        let instance = self.0.instantiate(&cx.name, None).await?;
        Ok(Box::new(PluginTransform {
            instance,
            tables: TableCache::default(),
        }))
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

struct PluginTransform {
    instance: SharedInstance,
    tables: TableCache,
}

#[async_trait]
impl Transform for PluginTransform {
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError> {
        let rows_in = batch.num_rows();
        let mut exported =
            MirrorBatch::export(to_parts(&batch)).map_err(ComponentError::permanent)?;
        let checkpoint = batch.checkpoint().clone();
        let parts = self
            .instance
            .call(move |inst| {
                let apply = inst.component.vt.apply.expect("checked at load");
                // SAFETY: the plugin takes the batch and fills the same slot with its result.
                let status = unsafe { apply(inst.ptr(), &mut exported) };
                inst.check(status, "apply")?;
                // SAFETY: the plugin filled the slot; `import` validates it.
                unsafe { MirrorBatch::import(&mut exported) }
                    .map_err(|e| inst.refuse("apply", format!("returned a bad batch: {e}")))
            })
            .await?;
        if parts.rows.num_rows() > rows_in {
            return Err(ComponentError::permanent(format!(
                "plugin transform returned {} rows for a batch of {rows_in}; transforms may only keep or remove rows",
                parts.rows.num_rows()
            )));
        }
        self.tables.batch_from(parts, checkpoint).map_err(|e| {
            ComponentError::permanent(format!("plugin transform returned a bad batch: {e}"))
        })
    }
}
