//! The `tessera` binary; the application lives in the library.

/// jemalloc serves the server's many small, short-lived allocations across
/// threads with less contention than glibc's malloc. Client credentials at
/// concurrency 64 took 10% less CPU per token (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
