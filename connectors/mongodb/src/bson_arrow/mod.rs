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
//!
//! ```
//! use bson::rawdoc;
//! use mirror_core::mapping::{TableMapping, TableSchemaState};
//! use mirror_mongodb::bson_arrow::{BsonConverter, RowInput};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // On start: the table's mapping from mirror.toml and its saved state (or a new one).
//! let mut conv = BsonConverter::new("shop.orders", TableMapping::default(), TableSchemaState::new())?;
//! let a = rawdoc! { "_id": 1, "total": 9.5, "tags": ["x"] };
//! let gone = bson::RawBson::Int32(2);
//! let batch = conv.convert(&[RowInput::Document(&a), RowInput::Delete(gone.as_raw_bson_ref())])?;
//! let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
//! assert_eq!(names, ["_id", "total", "tags", "_mirror_overflow"]);
//! // With each batch: the state goes into the table's checkpoint.
//! let saved = conv.state().to_json();
//! assert_eq!(TableSchemaState::from_json(saved)?.columns().len(), 2);
//! # Ok(()) }
//! ```

mod converter;
mod json;
mod key;
mod reader;
mod values;

pub use converter::{sample_pipeline, BsonConverter, RowInput};
pub use json::{write_document, write_value};
pub use key::encode_key;
pub use reader::ReadError;
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
