//! BSON to Arrow: MongoDB documents, read from raw BSON, into typed Arrow batches following the
//! table's mapping ([`mirror_core::mapping`]).
//!
//! - [`BsonConverter`] — one per table: [`RowInput`]s (whole documents, or `_id`s of deleted
//!   documents) to a `RecordBatch` with the table's full column set, values that do not fit in the
//!   overflow column, the table's [`TableSchemaState`](mirror_core::mapping::TableSchemaState) kept
//!   up to date.
//! - [`encode_key`] — the `_id` key encoding, injective across BSON types.
//! - [`write_value`] / [`write_document`] — BSON to JSON text (plain, relaxed or canonical Extended
//!   JSON) from raw bytes.
//!
//! The type table and rules are in `docs/type-mapping.md`.

mod converter;
mod json;
mod key;
mod values;

pub use converter::{BsonConverter, RowInput};
pub use json::{write_array, write_document, write_value};
pub use key::encode_key;
pub use values::{decimal_parts, kind_of};

/// Why documents could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The BSON is malformed (bad lengths, invalid UTF-8, ...).
    #[error("malformed BSON: {0}")]
    Bson(#[from] bson::raw::Error),
    /// A document without `_id` (the key).
    #[error("document has no `_id` field")]
    MissingId,
    /// A value that could not be read.
    #[error("unreadable BSON value: {0}")]
    Unreadable(String),
    /// Arrow refused the batch (a bug if it happens).
    #[error("building the Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
