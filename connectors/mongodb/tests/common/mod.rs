//! Helpers shared by the BSON-to-Arrow tests.
#![allow(dead_code)]

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Decimal128Type, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType,
};
use bson::{Document, RawDocumentBuf};

/// One cell, typed, for exact comparisons.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Str(String),
    I64(i64),
    F64(f64),
    Bool(bool),
    TsMs(i64),
    Bin(Vec<u8>),
    Dec(i128),
}

pub fn s(text: &str) -> Cell {
    Cell::Str(text.to_owned())
}

pub fn cell(batch: &RecordBatch, column: &str, row: usize) -> Cell {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column `{column}` in {:?}", batch.schema()));
    if array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(row).to_owned()),
        DataType::Int64 => Cell::I64(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Cell::F64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Cell::TsMs(array.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::Binary => Cell::Bin(array.as_binary::<i32>().value(row).to_vec()),
        DataType::Decimal128(_, _) => Cell::Dec(array.as_primitive::<Decimal128Type>().value(row)),
        other => panic!("unexpected type {other}"),
    }
}

pub fn data_type(batch: &RecordBatch, column: &str) -> DataType {
    batch
        .schema()
        .field_with_name(column)
        .unwrap_or_else(|_| panic!("no column `{column}` in {:?}", batch.schema()))
        .data_type()
        .clone()
}

pub fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

pub fn raw(doc: &Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(doc).unwrap()
}

pub fn ts_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
