//! The `toprt` binary: `toprt run` and `toprt inspect` (the logic is `toprt_cli::main`).

fn main() -> std::process::ExitCode {
    toprt_cli::main(std::env::args_os())
}
