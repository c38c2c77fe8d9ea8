//! The `tessera` binary; the application lives in the library.

/// jemalloc serves the server's many small, short-lived allocations across
/// threads with less contention than glibc's malloc: 12% less CPU per token
/// in `bench/run`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
