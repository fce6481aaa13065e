//! The `mirror` binary: the command line with the first-party components.

// Why jemalloc: see the dependency's comment in Cargo.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (read before `main`; `_RJEM_MALLOC_CONF` in the environment overrides them).
///
/// Two arenas instead of four per core: the pipeline allocates a page or a file's buffers on one
/// thread (reader, converter, encoder) and frees them on another, and each arena keeps the pages
/// freed into it for reuse by its own threads, so with many arenas the process holds several
/// copies of its working set. At 1M documents on 2 cores the initial sync peaked at 360–369 MB
/// with the default (8 arenas) and 236–254 MB with 2, at the same speed (`docs/benchmarks.md`).
/// Small allocations are served from per-thread caches, so few arenas cost little contention.
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 10] = b"narenas:2\0";

fn main() -> std::process::ExitCode {
    mirror::main()
}
