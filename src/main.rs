//! The `mirror` binary: the command line with the first-party components.

// Why jemalloc: see the dependency's comment in Cargo.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    mirror::main()
}
