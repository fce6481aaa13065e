//! Moving record batches across the boundary as `MirrorBatch`: Arrow C Data Interface for the
//! columns (zero-copy: buffers are shared, never copied), plus operations, table, keys and checkpoint.
//!
//! [`MirrorBatch::export`] builds a batch owned by the caller's allocator (its `release` frees it);
//! [`MirrorBatch::import`] takes ownership of a batch filled by the other side, validates it fully
//! (a malformed array from a plugin is an error, not undefined behaviour later), and copies only the
//! small parts (one byte per row of operations, the names, the checkpoint).

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StructArray};
use arrow::datatypes::{Field, Schema};
use arrow::error::ArrowError;
use arrow::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};

/// A batch crossing the boundary (`MirrorBatch` in the header).
#[repr(C)]
pub struct MirrorBatch {
    /// Struct schema, one child per column.
    pub schema: FFI_ArrowSchema,
    /// Struct array, one child per column.
    pub array: FFI_ArrowArray,
    /// One operation per row.
    pub ops: *const u8,
    /// NUL-terminated table id.
    pub table: *const c_char,
    /// Key column names.
    pub key_columns: *const *const c_char,
    /// Number of key columns.
    pub key_columns_len: usize,
    /// Checkpoint bytes (sources).
    pub checkpoint: *const u8,
    /// Checkpoint length.
    pub checkpoint_len: usize,
    /// Frees ops, table, key_columns and checkpoint; `None` once moved or released.
    pub release: Option<unsafe extern "C" fn(*mut MirrorBatch)>,
    /// Owned by whoever set `release`.
    pub private_data: *mut c_void,
}

// SAFETY: rule 5 of the header: a batch owns what it points to and its release callbacks may be
// called from any thread, so moving it between threads is sound (it is never shared).
unsafe impl Send for MirrorBatch {}

/// The parts of a batch, on either side.
#[derive(Debug, Clone)]
pub struct BatchParts {
    /// The rows.
    pub rows: RecordBatch,
    /// One operation (row marker) per row: 0 insert, 1 update, 2 delete, 4 upsert.
    pub ops: Vec<u8>,
    /// `<table>` or `<schema>.schema/<table>`.
    pub table: String,
    /// Key columns.
    pub key_columns: Vec<String>,
    /// A source's checkpoint after this batch.
    pub checkpoint: Option<Vec<u8>>,
}

/// Why a batch from the other side was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The batch was already released or moved.
    #[error("the batch is empty (released or never filled)")]
    Released,
    /// The Arrow data is not a valid struct array.
    #[error("malformed Arrow data: {0}")]
    Arrow(#[from] ArrowError),
    /// The top-level array is not a struct array.
    #[error("the batch's array must be a struct array (format \"+s\"), found {0}")]
    NotStruct(String),
    /// The struct array has top-level nulls.
    #[error("the batch's struct array must not have top-level nulls")]
    TopLevelNulls,
    /// A pointer that must be set is null.
    #[error("`{0}` is NULL")]
    Null(&'static str),
    /// A row operation is not 0, 1, 2 or 4.
    #[error(
        "row {row} has operation {op}, not one of 0 (insert), 1 (update), 2 (delete), 4 (upsert)"
    )]
    BadOp {
        /// The row.
        row: usize,
        /// Its operation.
        op: u8,
    },
    /// A string is not UTF-8.
    #[error("`{0}` is not UTF-8")]
    NotUtf8(&'static str),
}

struct Owned {
    ops: Vec<u8>,
    table: CString,
    // Owns the strings `key_ptrs` points into.
    _keys: Vec<CString>,
    key_ptrs: Vec<*const c_char>,
    checkpoint: Option<Vec<u8>>,
}

unsafe extern "C" fn release_owned(batch: *mut MirrorBatch) {
    if batch.is_null() {
        return;
    }
    // SAFETY: `private_data` was set by `export` from a leaked `Box<Owned>` and is freed exactly
    // once: `release` is cleared before the box is dropped.
    unsafe {
        let b = &mut *batch;
        b.release = None;
        let owned = std::mem::replace(&mut b.private_data, ptr::null_mut()) as *mut Owned;
        if !owned.is_null() {
            drop(Box::from_raw(owned));
        }
        b.ops = ptr::null();
        b.table = ptr::null();
        b.key_columns = ptr::null();
        b.checkpoint = ptr::null();
    }
}

impl MirrorBatch {
    /// A released (empty) batch, to be filled by the other side.
    pub fn empty() -> Self {
        Self {
            schema: FFI_ArrowSchema::empty(),
            array: FFI_ArrowArray::empty(),
            ops: ptr::null(),
            table: ptr::null(),
            key_columns: ptr::null(),
            key_columns_len: 0,
            checkpoint: ptr::null(),
            checkpoint_len: 0,
            release: None,
            private_data: ptr::null_mut(),
        }
    }

    /// Exports `parts`. The column buffers are shared, not copied. Names with an interior NUL are
    /// cut at it (they cannot be C strings).
    pub fn export(parts: BatchParts) -> Result<Self, ArrowError> {
        let struct_array = StructArray::from(parts.rows);
        let data = struct_array.into_data();
        let array = FFI_ArrowArray::new(&data);
        let schema = FFI_ArrowSchema::try_from(data.data_type())?;
        let c = |s: String| {
            CString::new(s).unwrap_or_else(|e| {
                let end = e.nul_position();
                let mut bytes = e.into_vec();
                bytes.truncate(end);
                CString::new(bytes).unwrap_or_default()
            })
        };
        let keys: Vec<CString> = parts.key_columns.into_iter().map(c).collect();
        let key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let owned = Box::new(Owned {
            ops: parts.ops,
            table: c(parts.table),
            _keys: keys,
            key_ptrs,
            checkpoint: parts.checkpoint,
        });
        Ok(Self {
            schema,
            array,
            ops: owned.ops.as_ptr(),
            table: owned.table.as_ptr(),
            key_columns: owned.key_ptrs.as_ptr(),
            key_columns_len: owned.key_ptrs.len(),
            checkpoint: owned
                .checkpoint
                .as_ref()
                .map_or(ptr::null(), |c| c.as_ptr()),
            checkpoint_len: owned.checkpoint.as_ref().map_or(0, |c| c.len()),
            release: Some(release_owned),
            private_data: Box::into_raw(owned) as *mut c_void,
        })
    }

    /// Takes ownership of the batch at `batch`, leaving an empty batch there, and validates it.
    ///
    /// # Safety
    /// `batch` must point to a `MirrorBatch` filled according to the header's rules (valid pointers
    /// for the lengths given, release callbacks that may be called once).
    pub unsafe fn import(batch: *mut MirrorBatch) -> Result<BatchParts, ImportError> {
        if batch.is_null() {
            return Err(ImportError::Null("batch"));
        }
        // SAFETY: the caller guarantees `batch` is valid; we move it out and leave an empty one.
        let mut taken = unsafe { ptr::replace(batch, MirrorBatch::empty()) };
        // SAFETY: as above; `taken` is released by its Drop whatever happens below.
        unsafe { taken.parts() }
    }

    unsafe fn parts(&mut self) -> Result<BatchParts, ImportError> {
        if self.array.is_released() || self.schema.release().is_none() {
            return Err(ImportError::Released);
        }
        let array = std::mem::replace(&mut self.array, FFI_ArrowArray::empty());
        // SAFETY: the producer promises the C Data Interface contract; `validate_full` below checks
        // everything that can be checked without trusting it (lengths, offsets, UTF-8, children).
        let data = unsafe { from_ffi(array, &self.schema) }?;
        data.validate_full()?;
        let arrow::datatypes::DataType::Struct(fields) = data.data_type().clone() else {
            return Err(ImportError::NotStruct(data.data_type().to_string()));
        };
        let struct_array = StructArray::from(data);
        if struct_array.null_count() > 0 {
            return Err(ImportError::TopLevelNulls);
        }
        let rows_len = struct_array.len();
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| f.as_ref().clone())
                .collect::<Vec<Field>>(),
        ));
        let (_, columns, _) = struct_array.into_parts();
        let rows = RecordBatch::try_new_with_options(
            schema,
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows_len)),
        )?;
        let ops = if rows_len == 0 {
            Vec::new()
        } else if self.ops.is_null() {
            return Err(ImportError::Null("ops"));
        } else {
            // SAFETY: the producer promises `ops` holds one byte per row.
            unsafe { std::slice::from_raw_parts(self.ops, rows_len) }.to_vec()
        };
        if let Some((row, op)) = ops
            .iter()
            .enumerate()
            .find(|(_, op)| !matches!(op, 0 | 1 | 2 | 4))
        {
            return Err(ImportError::BadOp { row, op: *op });
        }
        let table = unsafe { c_str(self.table, "table") }?;
        let mut key_columns = Vec::with_capacity(self.key_columns_len);
        for i in 0..self.key_columns_len {
            if self.key_columns.is_null() {
                return Err(ImportError::Null("key_columns"));
            }
            // SAFETY: the producer promises `key_columns_len` valid pointers.
            key_columns.push(unsafe { c_str(*self.key_columns.add(i), "key_columns") }?);
        }
        let checkpoint = if self.checkpoint.is_null() {
            None
        } else {
            // SAFETY: the producer promises `checkpoint_len` readable bytes.
            Some(
                unsafe { std::slice::from_raw_parts(self.checkpoint, self.checkpoint_len) }
                    .to_vec(),
            )
        };
        Ok(BatchParts {
            rows,
            ops,
            table,
            key_columns,
            checkpoint,
        })
    }
}

unsafe fn c_str(p: *const c_char, what: &'static str) -> Result<String, ImportError> {
    if p.is_null() {
        return Err(ImportError::Null(what));
    }
    // SAFETY: the producer promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(str::to_owned)
        .map_err(|_| ImportError::NotUtf8(what))
}

impl Drop for MirrorBatch {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            // SAFETY: `release` was set by the producer for exactly this batch and is called once.
            unsafe { release(self) };
        }
        // `schema` and `array` release themselves (arrow's FFI types implement Drop).
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn parts() -> BatchParts {
        let rows = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as _,
            ),
        ])
        .unwrap();
        BatchParts {
            rows,
            ops: vec![0, 4, 2],
            table: "shop.schema/orders".into(),
            key_columns: vec!["id".into()],
            checkpoint: Some(b"{\"n\":3}".to_vec()),
        }
    }

    #[test]
    fn round_trip_shares_column_buffers() {
        let original = parts();
        let id_ptr = original.rows.column(0).to_data().buffers()[0].as_ptr();
        let mut batch = MirrorBatch::export(original.clone()).unwrap();
        let back = unsafe { MirrorBatch::import(&mut batch) }.unwrap();
        assert_eq!(back.rows, original.rows);
        assert_eq!(back.ops, original.ops);
        assert_eq!(back.table, original.table);
        assert_eq!(back.key_columns, original.key_columns);
        assert_eq!(back.checkpoint, original.checkpoint);
        assert_eq!(
            back.rows.column(0).to_data().buffers()[0].as_ptr(),
            id_ptr,
            "column data was copied"
        );
        // The slot is left empty: importing again is refused, not a double free.
        assert!(matches!(
            unsafe { MirrorBatch::import(&mut batch) },
            Err(ImportError::Released)
        ));
    }

    #[test]
    fn bad_operations_are_refused() {
        let mut p = parts();
        p.ops = vec![0, 3, 2];
        let mut batch = MirrorBatch::export(p).unwrap();
        let err = unsafe { MirrorBatch::import(&mut batch) }.unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 1 has operation 3, not one of 0 (insert), 1 (update), 2 (delete), 4 (upsert)"
        );
    }
}
