//! The table folders the MongoDB_Fabric_Mirroring Python app (`mongodb-partners/
//! MongoDB_Fabric_Mirroring`) leaves in a landing zone, for tests of tools that take over from it.
//!
//! Per collection, at `<LZ_URL><collection>/`: `_metadata.json` with `keyColumns: ["_id"]`; its
//! state as Python pickles (`_init_sync_status.pkl` holding "Y" once the initial sync is done,
//! `_last_created_parquet.pkl`, `_max_id.pkl`, `_resume_token.pkl`, `_internal_schema.pkl`, named
//! in its `constants.py`); and data files `00000000000000000001.parquet`, ... written by pandas
//! (pyarrow: Parquet `created_by` `parquet-cpp-arrow version ...`), `_id` as text.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// A data file as pandas writes it: columns `_id` (text) and `v`, one row per id.
pub fn pandas_parquet(ids: &[i64]) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter([
        (
            "_id",
            Arc::new(StringArray::from(
                ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        ("v", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
    ])
    .expect("two columns of one length");
    let props = WriterProperties::builder()
        .set_created_by("parquet-cpp-arrow version 16.1.0".into())
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("a plain schema");
    writer.write(&batch).expect("in-memory write");
    writer.close().expect("in-memory write");
    out
}

/// The files of one table folder (name, content) holding `ids`, two rows per data file.
pub fn table_files(ids: &[i64]) -> Vec<(String, Vec<u8>)> {
    // Pickle protocol 4: the string "Y", small integers, a resume-token dict.
    let mut files = vec![
        (
            "_metadata.json".to_owned(),
            b"{\n  \"keyColumns\": [\"_id\"]\n}\n".to_vec(),
        ),
        (
            "_init_sync_status.pkl".to_owned(),
            b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01Y\x94.".to_vec(),
        ),
        (
            "_last_created_parquet.pkl".to_owned(),
            b"\x80\x04K\x02.".to_vec(),
        ),
        ("_max_id.pkl".to_owned(), b"\x80\x04K\x05.".to_vec()),
        (
            "_resume_token.pkl".to_owned(),
            b"\x80\x04}\x94\x8c\x05_data\x94\x8c\x04abcd\x94s.".to_vec(),
        ),
        (
            "_internal_schema.pkl".to_owned(),
            b"\x80\x04}\x94.".to_vec(),
        ),
    ];
    for (n, chunk) in ids.chunks(2).enumerate() {
        files.push((format!("{:020}.parquet", n + 1), pandas_parquet(chunk)));
    }
    files
}
