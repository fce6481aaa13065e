//! The `extern "C"` side of the SDK: instance boxes, panic guards, batch conversion.

use std::any::Any;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use mirror_plugin_api::{
    BatchParts, MirrorBatch, MirrorComponentV1, MirrorPluginV1, ABI_VERSION, KIND_SINK,
    KIND_SOURCE, KIND_TRANSFORM, MIRROR_END, MIRROR_OK, MIRROR_PERMANENT, MIRROR_TRANSIENT,
};

use crate::{Batch, PluginError, SinkPlugin, SourcePlugin, TransformPlugin};

/// The component table behind the entry point; lives in a `static` of the plugin.
pub struct PluginTable {
    components: Vec<MirrorComponentV1>,
    header: MirrorPluginV1,
}

// SAFETY: the table is immutable after construction and points only at 'static data (string
// literals and functions), so sharing it between threads is sound.
unsafe impl Send for PluginTable {}
// SAFETY: see above.
unsafe impl Sync for PluginTable {}

impl PluginTable {
    /// A table of `components`.
    pub fn new(components: Vec<MirrorComponentV1>) -> Self {
        let mut table = Self {
            header: MirrorPluginV1 {
                abi_version: ABI_VERSION,
                components_len: components.len() as u32,
                components: ptr::null(),
            },
            components,
        };
        table.header.components = table.components.as_ptr();
        table
    }

    /// The header the entry point returns.
    pub fn as_ptr(&self) -> *const MirrorPluginV1 {
        &self.header
    }
}

struct Instance<T> {
    plugin: T,
    last_error: String,
    /// Acks taken from the plugin that did not fit the host's buffer yet.
    pending_acks: std::collections::VecDeque<u64>,
}

thread_local! {
    /// The error of the last failed `create` on this thread (there is no instance to hold it).
    static CREATE_ERROR: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("plugin panicked: {text}")
}

fn status(err: &PluginError) -> (i32, &str) {
    match err {
        PluginError::Transient(m) => (MIRROR_TRANSIENT, m),
        PluginError::Permanent(m) => (MIRROR_PERMANENT, m),
    }
}

/// Runs `f` on the instance, turning errors and panics into a status and a stored message.
unsafe fn guarded<T, F>(instance: *mut c_void, f: F) -> i32
where
    F: FnOnce(&mut T) -> Result<i32, PluginError>,
{
    if instance.is_null() {
        return MIRROR_PERMANENT;
    }
    // SAFETY: the host passes back the pointer `create` returned, one thread at a time.
    let inst = unsafe { &mut *(instance as *mut Instance<T>) };
    match catch_unwind(AssertUnwindSafe(|| f(&mut inst.plugin))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let (code, message) = status(&e);
            inst.last_error = message.to_owned();
            code
        }
        Err(payload) => {
            inst.last_error = panic_message(payload);
            MIRROR_PERMANENT
        }
    }
}

fn to_batch(parts: BatchParts) -> Batch {
    Batch {
        table: parts.table,
        key_columns: parts.key_columns,
        rows: parts.rows,
        ops: parts.ops,
        checkpoint: parts.checkpoint,
    }
}

fn to_parts(batch: Batch) -> BatchParts {
    BatchParts {
        rows: batch.rows,
        ops: batch.ops,
        table: batch.table,
        key_columns: batch.key_columns,
        checkpoint: batch.checkpoint,
    }
}

fn export_into(out: *mut MirrorBatch, batch: Batch) -> Result<i32, PluginError> {
    if batch.ops.len() != batch.rows.num_rows() {
        return Err(PluginError::Permanent(format!(
            "batch for {} has {} rows but {} operations",
            batch.table,
            batch.rows.num_rows(),
            batch.ops.len()
        )));
    }
    let exported = MirrorBatch::export(to_parts(batch)).map_err(PluginError::permanent)?;
    // SAFETY: `out` is the host's batch slot, valid for writes; the old value is empty.
    unsafe { ptr::write(out, exported) };
    Ok(MIRROR_OK)
}

fn import(batch: *mut MirrorBatch) -> Result<Batch, PluginError> {
    // SAFETY: the host fills batches by the header's rules.
    unsafe { MirrorBatch::import(batch) }
        .map(to_batch)
        .map_err(|e| PluginError::Permanent(format!("the host sent a bad batch: {e}")))
}

unsafe extern "C" fn create<T, F>(
    config: *const u8,
    config_len: usize,
    resume: *const u8,
    resume_len: usize,
    instance: *mut *mut c_void,
    make: F,
) -> i32
where
    F: FnOnce(&str, Option<&[u8]>) -> Result<T, PluginError>,
{
    let result = catch_unwind(AssertUnwindSafe(|| {
        let config = if config.is_null() {
            ""
        } else {
            // SAFETY: the host passes `config_len` readable bytes, borrowed for this call.
            std::str::from_utf8(unsafe { std::slice::from_raw_parts(config, config_len) })
                .map_err(|_| PluginError::Permanent("config is not UTF-8".into()))?
        };
        let resume = (!resume.is_null())
            // SAFETY: as above.
            .then(|| unsafe { std::slice::from_raw_parts(resume, resume_len) });
        make(config, resume)
    }));
    let error = match result {
        Ok(Ok(plugin)) => {
            let boxed = Box::new(Instance {
                plugin,
                last_error: String::new(),
                pending_acks: Default::default(),
            });
            // SAFETY: `instance` is the host's out-pointer.
            unsafe { *instance = Box::into_raw(boxed) as *mut c_void };
            return MIRROR_OK;
        }
        Ok(Err(e)) => e,
        Err(payload) => PluginError::Permanent(panic_message(payload)),
    };
    let (code, message) = status(&error);
    CREATE_ERROR.with(|c| *c.borrow_mut() = message.to_owned());
    code
}

unsafe extern "C" fn destroy<T>(instance: *mut c_void) {
    if !instance.is_null() {
        // A panicking Drop must not unwind into the host either.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `instance` came from `create` and is destroyed once.
            drop(unsafe { Box::from_raw(instance as *mut Instance<T>) })
        }));
    }
}

unsafe extern "C" fn last_error<T>(
    instance: *mut c_void,
    buf: *mut c_char,
    capacity: usize,
) -> usize {
    let message = if instance.is_null() {
        CREATE_ERROR.with(|c| c.borrow().clone())
    } else {
        // SAFETY: as in `guarded`.
        unsafe { &*(instance as *const Instance<T>) }
            .last_error
            .clone()
    };
    if !buf.is_null() && capacity > 0 {
        let n = message.len().min(capacity - 1);
        // SAFETY: the host's buffer holds `capacity` bytes.
        unsafe {
            ptr::copy_nonoverlapping(message.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
    }
    message.len()
}

/// Builders of component table entries, used by [`crate::export_plugin!`].
pub mod component {
    use super::*;

    unsafe extern "C" fn source_create<T: SourcePlugin>(
        config: *const u8,
        config_len: usize,
        resume: *const u8,
        resume_len: usize,
        instance: *mut *mut c_void,
    ) -> i32 {
        unsafe { create(config, config_len, resume, resume_len, instance, T::create) }
    }

    unsafe extern "C" fn source_next<T: SourcePlugin>(
        instance: *mut c_void,
        out: *mut MirrorBatch,
    ) -> i32 {
        unsafe {
            guarded::<T, _>(instance, |p| match p.next()? {
                Some(batch) => export_into(out, batch),
                None => Ok(MIRROR_END),
            })
        }
    }

    unsafe extern "C" fn source_close<T: SourcePlugin>(instance: *mut c_void) -> i32 {
        unsafe { guarded::<T, _>(instance, |p| p.close().map(|_| MIRROR_OK)) }
    }

    /// The table entry of a source.
    pub fn source<T: SourcePlugin>(
        name: &'static str,
        description: &'static str,
    ) -> MirrorComponentV1 {
        MirrorComponentV1 {
            kind: KIND_SOURCE,
            type_name: name.as_ptr() as *const c_char,
            description: description.as_ptr() as *const c_char,
            create: Some(source_create::<T>),
            next: Some(source_next::<T>),
            apply: None,
            write: None,
            flush: None,
            take_acks: None,
            close: Some(source_close::<T>),
            destroy: Some(destroy::<T>),
            last_error: Some(last_error::<T>),
        }
    }

    unsafe extern "C" fn transform_create<T: TransformPlugin>(
        config: *const u8,
        config_len: usize,
        resume: *const u8,
        resume_len: usize,
        instance: *mut *mut c_void,
    ) -> i32 {
        unsafe {
            create(config, config_len, resume, resume_len, instance, |c, _| {
                T::create(c)
            })
        }
    }

    unsafe extern "C" fn transform_apply<T: TransformPlugin>(
        instance: *mut c_void,
        in_out: *mut MirrorBatch,
    ) -> i32 {
        unsafe {
            guarded::<T, _>(instance, |p| {
                let batch = import(in_out)?;
                let out = p.apply(batch)?;
                export_into(in_out, out)
            })
        }
    }

    /// The table entry of a transform.
    pub fn transform<T: TransformPlugin>(
        name: &'static str,
        description: &'static str,
    ) -> MirrorComponentV1 {
        MirrorComponentV1 {
            kind: KIND_TRANSFORM,
            type_name: name.as_ptr() as *const c_char,
            description: description.as_ptr() as *const c_char,
            create: Some(transform_create::<T>),
            next: None,
            apply: Some(transform_apply::<T>),
            write: None,
            flush: None,
            take_acks: None,
            close: None,
            destroy: Some(destroy::<T>),
            last_error: Some(last_error::<T>),
        }
    }

    unsafe extern "C" fn sink_create<T: SinkPlugin>(
        config: *const u8,
        config_len: usize,
        resume: *const u8,
        resume_len: usize,
        instance: *mut *mut c_void,
    ) -> i32 {
        unsafe {
            create(config, config_len, resume, resume_len, instance, |c, _| {
                T::create(c)
            })
        }
    }

    unsafe extern "C" fn sink_write<T: SinkPlugin>(
        instance: *mut c_void,
        batch: *mut MirrorBatch,
        id: u64,
    ) -> i32 {
        unsafe {
            guarded::<T, _>(instance, |p| {
                let batch = import(batch)?;
                p.write(batch, id).map(|_| MIRROR_OK)
            })
        }
    }

    unsafe extern "C" fn sink_flush<T: SinkPlugin>(instance: *mut c_void) -> i32 {
        unsafe { guarded::<T, _>(instance, |p| p.flush().map(|_| MIRROR_OK)) }
    }

    unsafe extern "C" fn sink_close<T: SinkPlugin>(instance: *mut c_void) -> i32 {
        unsafe { guarded::<T, _>(instance, |p| p.close().map(|_| MIRROR_OK)) }
    }

    unsafe extern "C" fn sink_take_acks<T: SinkPlugin>(
        instance: *mut c_void,
        ids: *mut u64,
        capacity: usize,
    ) -> usize {
        if instance.is_null() || ids.is_null() {
            return 0;
        }
        // SAFETY: as in `guarded`.
        let inst = unsafe { &mut *(instance as *mut Instance<T>) };
        let taken = catch_unwind(AssertUnwindSafe(|| inst.plugin.take_acks())).unwrap_or_default();
        inst.pending_acks.extend(taken);
        // The host asks again while it gets `capacity`; the rest waits in `pending_acks`.
        let n = inst.pending_acks.len().min(capacity);
        for (i, id) in inst.pending_acks.drain(..n).enumerate() {
            // SAFETY: the host's buffer holds `capacity` ids.
            unsafe { *ids.add(i) = id };
        }
        n
    }

    /// The table entry of a sink.
    pub fn sink<T: SinkPlugin>(name: &'static str, description: &'static str) -> MirrorComponentV1 {
        MirrorComponentV1 {
            kind: KIND_SINK,
            type_name: name.as_ptr() as *const c_char,
            description: description.as_ptr() as *const c_char,
            create: Some(sink_create::<T>),
            next: None,
            apply: None,
            write: Some(sink_write::<T>),
            flush: Some(sink_flush::<T>),
            take_acks: Some(sink_take_acks::<T>),
            close: Some(sink_close::<T>),
            destroy: Some(destroy::<T>),
            last_error: Some(last_error::<T>),
        }
    }
}
