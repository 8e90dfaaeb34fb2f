//! The `toprt-convert` binary (the logic is `toprt_convert::cli::main`).

fn main() -> std::process::ExitCode {
    toprt_convert::cli::main(std::env::args_os())
}
