//! `mirror-plugin-sdk`: write a `mirror` runtime plugin in safe Rust.
//!
//! Implement [`SourcePlugin`], [`TransformPlugin`] or [`SinkPlugin`] and export your types with
//! [`export_plugin!`]. The SDK does the C side: it converts batches through the Arrow C Data
//! Interface without copying column data, keeps each instance's last error for the host, and catches
//! every panic so nothing unwinds into the host (a panic becomes a permanent error of that call).
//!
//! A plugin that needs async runs its own runtime (e.g. a current-thread tokio runtime created in
//! `create`): host runtimes never cross the boundary.
//!
//! ```no_run
//! use mirror_plugin_sdk::{Batch, PluginError, TransformPlugin, export_plugin};
//!
//! struct Passthrough;
//!
//! impl TransformPlugin for Passthrough {
//!     fn create(_config: &str) -> Result<Self, PluginError> {
//!         Ok(Passthrough)
//!     }
//!     fn apply(&mut self, batch: Batch) -> Result<Batch, PluginError> {
//!         Ok(batch)
//!     }
//! }
//!
//! export_plugin! {
//!     transforms: [("passthrough", "passes batches unchanged", Passthrough)],
//! }
//! ```
//!
//! Build it as a `cdylib` and name the library in `mirror.toml`:
//! `[plugins] load = ["target/release/libmy_plugin.so"]`.

mod ffi;

pub use arrow;
pub use mirror_plugin_api as api;

#[doc(hidden)]
pub use ffi::{component, PluginTable};

use arrow::array::RecordBatch;

/// Row operations, as Open Mirroring row markers.
pub mod op {
    /// A new row.
    pub const INSERT: u8 = 0;
    /// Replace the whole row.
    pub const UPDATE: u8 = 1;
    /// Remove the row (only key columns matter).
    pub const DELETE: u8 = 2;
    /// Insert or replace the whole row.
    pub const UPSERT: u8 = 4;
}

/// Whole rows of one table with one operation per row.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `<table>` or `<schema>.schema/<table>`.
    pub table: String,
    /// Columns identifying a row.
    pub key_columns: Vec<String>,
    /// The rows.
    pub rows: RecordBatch,
    /// One [`op`] per row.
    pub ops: Vec<u8>,
    /// For sources: the state to resume from once this batch (and all before) is durable.
    pub checkpoint: Option<Vec<u8>>,
}

/// An error a plugin reports to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// Retrying the same call may succeed.
    Transient(String),
    /// The route must stop.
    Permanent(String),
}

impl PluginError {
    /// A permanent error from anything displayable.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        PluginError::Permanent(e.to_string())
    }

    /// A transient error from anything displayable.
    pub fn transient(e: impl std::fmt::Display) -> Self {
        PluginError::Transient(e.to_string())
    }
}

/// A source: produces batches in order, resumable from the checkpoint of a batch it produced.
pub trait SourcePlugin: Sized + 'static {
    /// Creates it from its TOML table and the last committed checkpoint.
    fn create(config: &str, resume: Option<&[u8]>) -> Result<Self, PluginError>;
    /// The next batch; `Ok(None)` once there is nothing more, ever. May block.
    fn next(&mut self) -> Result<Option<Batch>, PluginError>;
    /// Called once at the end.
    fn close(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A transform: one batch in, one batch out (rows may be removed, operations stay aligned).
pub trait TransformPlugin: Sized + 'static {
    /// Creates it from its TOML table.
    fn create(config: &str) -> Result<Self, PluginError>;
    /// The batch to pass on.
    fn apply(&mut self, batch: Batch) -> Result<Batch, PluginError>;
}

/// A sink: writes batches and reports which are durable.
pub trait SinkPlugin: Sized + 'static {
    /// Creates it from its TOML table.
    fn create(config: &str) -> Result<Self, PluginError>;
    /// Takes a batch; `id` goes into [`SinkPlugin::take_acks`] once its rows are durable.
    fn write(&mut self, batch: Batch, id: u64) -> Result<(), PluginError>;
    /// Makes every written batch durable.
    fn flush(&mut self) -> Result<(), PluginError>;
    /// Ids of batches that became durable since the last call.
    fn take_acks(&mut self) -> Vec<u64>;
    /// Called once at the end; flushes by default.
    fn close(&mut self) -> Result<(), PluginError> {
        self.flush()
    }
}

/// Exports plugin types through the C entry point `mirror_plugin_entry`.
///
/// ```ignore
/// export_plugin! {
///     sources: [("my_source", "one line", MySource)],
///     transforms: [("my_transform", "one line", MyTransform)],
///     sinks: [("my_sink", "one line", MySink)],
/// }
/// ```
/// Each list is optional.
#[macro_export]
macro_rules! export_plugin {
    (
        $(sources: [$(($sname:literal, $sdesc:literal, $sty:ty)),* $(,)?] $(,)?)?
        $(transforms: [$(($tname:literal, $tdesc:literal, $tty:ty)),* $(,)?] $(,)?)?
        $(sinks: [$(($kname:literal, $kdesc:literal, $kty:ty)),* $(,)?] $(,)?)?
    ) => {
        /// The plugin's entry point (see `mirror_plugin.h`).
        ///
        /// # Safety
        /// Called by the host through the C ABI.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn mirror_plugin_entry(
            host_abi_version: u32,
        ) -> *const $crate::api::MirrorPluginV1 {
            static TABLE: ::std::sync::OnceLock<$crate::PluginTable> = ::std::sync::OnceLock::new();
            if host_abi_version != $crate::api::ABI_VERSION {
                return ::std::ptr::null();
            }
            TABLE
                .get_or_init(|| {
                    $crate::PluginTable::new(vec![
                        $($($crate::component::source::<$sty>(concat!($sname, "\0"), concat!($sdesc, "\0")),)*)?
                        $($($crate::component::transform::<$tty>(concat!($tname, "\0"), concat!($tdesc, "\0")),)*)?
                        $($($crate::component::sink::<$kty>(concat!($kname, "\0"), concat!($kdesc, "\0")),)*)?
                    ])
                })
                .as_ptr()
        }
    };
}
