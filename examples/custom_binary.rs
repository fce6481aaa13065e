//! A company's own `mirror` build with an extra compile-time component.
//!
//! Any crate linked into the binary can register components with `inventory`; here the component
//! lives in the binary itself. Build and try it:
//!
//! ```text
//! cargo run --example custom_binary -- check --config examples/configs/custom-binary.toml
//! ```
//!
//! The `uppercase` transform below upper-cases string columns. Everything else (`run`, `check`,
//! `status`, the first-party sources and sinks) comes from `mirror::main`.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use mirror_core::component::{BuildError, Transform, TransformConfig, TransformContext};
use mirror_core::{ChangeBatch, ComponentError};
use serde::Deserialize;

/// `[transforms.<name>] type = "uppercase"`: upper-cases the named string columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UppercaseConfig {
    columns: Vec<String>,
}

mirror_core::register_transform!(
    "uppercase",
    UppercaseConfig,
    "upper-cases string columns (custom build example)"
);

#[async_trait]
impl TransformConfig for UppercaseConfig {
    async fn build(&self, _cx: TransformContext) -> Result<Box<dyn Transform>, BuildError> {
        Ok(Box::new(Uppercase(self.columns.clone())))
    }

    fn describe(&self) -> String {
        format!("upper-cases {:?}", self.columns)
    }
}

struct Uppercase(Vec<String>);

#[async_trait]
impl Transform for Uppercase {
    async fn apply(&mut self, batch: ChangeBatch) -> Result<ChangeBatch, ComponentError> {
        let schema = batch.schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(batch.rows().columns())
            .map(
                |(field, column)| match column.as_any().downcast_ref::<StringArray>() {
                    Some(strings)
                        if self.0.contains(field.name())
                            && field.data_type() == &DataType::Utf8 =>
                    {
                        Arc::new(
                            strings
                                .iter()
                                .map(|v| v.map(str::to_uppercase))
                                .collect::<StringArray>(),
                        ) as ArrayRef
                    }
                    _ => column.clone(),
                },
            )
            .collect();
        let rows = RecordBatch::try_new(schema, columns).map_err(ComponentError::permanent)?;
        batch.with_rows(rows).map_err(ComponentError::permanent)
    }
}

fn main() -> std::process::ExitCode {
    mirror::main()
}
