//! The `engine-bench` binary (the logic is `toprt_bench::cli::main`).

fn main() -> std::process::ExitCode {
    toprt_bench::cli::main(std::env::args_os())
}
