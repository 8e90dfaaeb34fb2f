//! The `toprt-calibrate` binary (the logic is `toprt_calibrate::cli::main`).

fn main() -> std::process::ExitCode {
    toprt_calibrate::cli::main(std::env::args_os())
}
