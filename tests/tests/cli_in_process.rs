//! The commands as library functions, as the Python package calls them in-process
//! (`toprt_cli::main`, `toprt_convert::cli::main`, `toprt_calibrate::cli::main`,
//! `toprt_bench::cli::main`): a command-line mistake or a failed command returns exit
//! status 1 and neither panics nor exits the process, `--version` returns 0, and one
//! call can follow another in the same process.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

#[test]
fn mistakes_return_failure() {
    let not_utf8 = [OsString::from("toprt"), OsString::from("inspect"), OsString::from_vec(vec![0xff, 0xfe])];
    for _ in 0..2 {
        assert_eq!(toprt_cli::main(["toprt", "bogus"]), ExitCode::FAILURE);
        assert_eq!(toprt_cli::main(["toprt"]), ExitCode::FAILURE);
        assert_eq!(toprt_cli::main(Vec::<OsString>::new()), ExitCode::FAILURE);
        assert_eq!(toprt_cli::main(["toprt", "run", "-m", "x", "-i", "-", "--batch-size", "0"]), ExitCode::FAILURE);
        assert_eq!(toprt_cli::main(not_utf8.clone()), ExitCode::FAILURE);
        assert_eq!(toprt_convert::cli::main(["toprt-convert", "--bogus"]), ExitCode::FAILURE);
        assert_eq!(toprt_convert::cli::main(Vec::<OsString>::new()), ExitCode::FAILURE);
        assert_eq!(toprt_calibrate::cli::main(["toprt-calibrate", "--limit", "x"]), ExitCode::FAILURE);
        assert_eq!(toprt_calibrate::cli::main(Vec::<OsString>::new()), ExitCode::FAILURE);
        assert_eq!(toprt_bench::cli::main(["engine-bench", "--threads", "1,2,3,4,5,6,7,8,9"]), ExitCode::FAILURE);
    }
}

#[test]
fn failed_commands_return_failure() {
    let dir = std::env::temp_dir().join(format!("toprt-cli-in-process-{}", std::process::id()));
    let missing = dir.join("missing");
    let out = dir.join("out.toprt");
    let (missing, out) = (missing.to_str().unwrap(), out.to_str().unwrap());
    assert_eq!(toprt_cli::main(["toprt", "inspect", missing]), ExitCode::FAILURE);
    assert_eq!(toprt_convert::cli::main(["toprt-convert", missing, "-o", out]), ExitCode::FAILURE);
    assert_eq!(
        toprt_calibrate::cli::main(["toprt-calibrate", missing, "--data", missing, "-o", out, "--dtype", "int8"]),
        ExitCode::FAILURE
    );
    assert_eq!(toprt_bench::cli::main(["engine-bench", "--compare", missing, missing]), ExitCode::FAILURE);
    assert!(!dir.join("out.toprt").exists());
}

#[test]
fn version_returns_success() {
    assert_eq!(toprt_cli::main(["toprt", "--version"]), ExitCode::SUCCESS);
    assert_eq!(toprt_convert::cli::main(["toprt-convert", "--version"]), ExitCode::SUCCESS);
    assert_eq!(toprt_calibrate::cli::main(["toprt-calibrate", "--version"]), ExitCode::SUCCESS);
    assert_eq!(toprt_bench::cli::main(["engine-bench", "--version"]), ExitCode::SUCCESS);
}
