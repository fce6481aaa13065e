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
//! Documents are read by a small reader of raw BSON bytes of our own (`reader`), which checks
//! every length and terminator like bson's `RawIter` but validates a key's UTF-8 only the first
//! time the key is seen.
//!
//! The type table and rules are in `docs/type-mapping.md`.

mod converter;
mod json;
mod key;
mod reader;
mod values;

pub use converter::{sample_pipeline, BsonConverter, RowInput};
pub use json::{write_document, write_value};
pub use key::encode_key;
pub use values::decimal_parts;

/// Why documents could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The BSON is malformed (bad lengths, invalid UTF-8, unknown element type, ...).
    #[error("malformed BSON: {0}")]
    Malformed(String),
    /// The BSON is malformed (a reason found while reading).
    #[error("malformed BSON: {0}")]
    Read(#[from] reader::ReadError),
    /// A document without `_id` (the key).
    #[error("document has no `_id` field")]
    MissingId,
    /// Arrow refused the batch (a bug if it happens).
    #[error("building the Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
