//! `mirror-mongodb`: mirror's MongoDB source.
//!
//! - [`bson_arrow`]: raw BSON documents to typed Arrow batches, following the table's mapping.

pub mod bson_arrow;
