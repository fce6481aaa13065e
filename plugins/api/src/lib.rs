//! `mirror-plugin-api`: the stable C ABI between `mirror` and runtime plugins, in Rust.
//!
//! The authoritative definition is the C header `include/mirror_plugin.h`, which states the
//! ownership and error rules; this crate mirrors it with `#[repr(C)]` types and adds safe helpers to
//! move Arrow record batches across ([`batch`]). Both the host (`mirror-core`'s plugin host) and the
//! plugin SDK use these helpers, so both sides follow the same rules.
//!
//! Version policy: [`ABI_VERSION`] changes whenever a struct layout or a rule changes; the entry
//! symbol [`ENTRY_SYMBOL`] never does. A host refuses a library whose `abi_version` differs.

pub mod batch;

use std::ffi::{c_char, c_void};

pub use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
pub use batch::{BatchParts, ImportError, MirrorBatch};

/// The ABI version this crate implements (`MIRROR_PLUGIN_ABI_VERSION`).
pub const ABI_VERSION: u32 = 1;

/// The one symbol a plugin exports.
pub const ENTRY_SYMBOL: &str = "mirror_plugin_entry";

/// Success.
pub const MIRROR_OK: i32 = 0;
/// Failed; retrying the same call may succeed.
pub const MIRROR_TRANSIENT: i32 = 1;
/// Failed; the route stops.
pub const MIRROR_PERMANENT: i32 = 2;
/// A source has nothing more, ever.
pub const MIRROR_END: i32 = 3;

/// A source component.
pub const KIND_SOURCE: u32 = 1;
/// A transform component.
pub const KIND_TRANSFORM: u32 = 2;
/// A sink component.
pub const KIND_SINK: u32 = 3;

/// `create(config_toml, config_len, resume, resume_len, &instance)`.
pub type CreateFn =
    unsafe extern "C" fn(*const u8, usize, *const u8, usize, *mut *mut c_void) -> i32;
/// `next(instance, out)`.
pub type NextFn = unsafe extern "C" fn(*mut c_void, *mut MirrorBatch) -> i32;
/// `apply(instance, in_out)`.
pub type ApplyFn = unsafe extern "C" fn(*mut c_void, *mut MirrorBatch) -> i32;
/// `write(instance, batch, batch_id)`.
pub type WriteFn = unsafe extern "C" fn(*mut c_void, *mut MirrorBatch, u64) -> i32;
/// `flush(instance)` / `close(instance)`.
pub type InstanceFn = unsafe extern "C" fn(*mut c_void) -> i32;
/// `take_acks(instance, ids, capacity)`.
pub type TakeAcksFn = unsafe extern "C" fn(*mut c_void, *mut u64, usize) -> usize;
/// `destroy(instance)`.
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);
/// `last_error(instance, buf, capacity)`.
pub type LastErrorFn = unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> usize;
/// `mirror_plugin_entry(host_abi_version)`.
pub type EntryFn = unsafe extern "C" fn(u32) -> *const MirrorPluginV1;

/// One component of a plugin (`MirrorComponentV1`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MirrorComponentV1 {
    /// [`KIND_SOURCE`], [`KIND_TRANSFORM`] or [`KIND_SINK`].
    pub kind: u32,
    /// The `type` name, NUL-terminated UTF-8.
    pub type_name: *const c_char,
    /// One line, NUL-terminated UTF-8.
    pub description: *const c_char,
    /// Creates an instance.
    pub create: Option<CreateFn>,
    /// Sources.
    pub next: Option<NextFn>,
    /// Transforms.
    pub apply: Option<ApplyFn>,
    /// Sinks.
    pub write: Option<WriteFn>,
    /// Sinks.
    pub flush: Option<InstanceFn>,
    /// Sinks.
    pub take_acks: Option<TakeAcksFn>,
    /// All kinds, optional.
    pub close: Option<InstanceFn>,
    /// All kinds.
    pub destroy: Option<DestroyFn>,
    /// All kinds.
    pub last_error: Option<LastErrorFn>,
}

/// The table a plugin's entry point returns (`MirrorPluginV1`).
#[repr(C)]
pub struct MirrorPluginV1 {
    /// Must equal the host's [`ABI_VERSION`]; read before anything else.
    pub abi_version: u32,
    /// Number of components.
    pub components_len: u32,
    /// The components.
    pub components: *const MirrorComponentV1,
}
