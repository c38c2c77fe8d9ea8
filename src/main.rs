//! The `tessera` binary; the application lives in the library.

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
