//! What the toprt commands (`toprt`, `toprt-convert`, `toprt-calibrate`, `engine-bench`)
//! share about their command lines: parsing that prints help and version to stdout and
//! a mistake as one line on stderr, never exiting the process, and the count parsers of
//! their options. A leaf: clap only.

use std::ffi::OsString;
use std::process::ExitCode;

/// Parses the command line `args` (the program name first, as [`std::env::args_os`]
/// gives it) for `program`. `--help`, `-h` and `--version` print to stdout and give
/// `Err(ExitCode::SUCCESS)`; a mistake prints `program: error: <one line>` on stderr
/// ([`usage_error`]) and gives `Err(ExitCode::FAILURE)`.
///
/// # Errors
/// The exit status to return instead of running the command.
pub fn parse<P, I, T>(program: &str, args: I) -> Result<P, ExitCode>
where
    P: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match P::try_parse_from(args) {
        Ok(p) => Ok(p),
        Err(e) if !e.use_stderr() => {
            // --help, -h, --version: to stdout, exit 0.
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{program}: error: {}", usage_error(&e, &P::command(), program));
            Err(ExitCode::FAILURE)
        }
    }
}

/// The whole of a command's `main`: parses `args` as [`parse`] does, runs `run`, and
/// turns its error into `program: error: <first line>` on stderr (any further lines
/// follow as they are) and exit status 1. Never exits the process.
pub fn main<P, I, T>(program: &str, args: I, run: impl FnOnce(P) -> Result<(), String>) -> ExitCode
where
    P: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let p = match parse(program, args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    match run(p) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut lines = e.lines();
            eprintln!("{program}: error: {}", lines.next().unwrap_or("failed"));
            lines.for_each(|l| eprintln!("{l}"));
            ExitCode::FAILURE
        }
    }
}

/// A command-line mistake of `program` (whose parser is `cmd`) as one line: clap's
/// message and its tip (a similar name) if it has one; for a bad value, the option
/// followed by its parser's reason; for a missing or unknown subcommand, the ones
/// there are.
pub fn usage_error(e: &clap::Error, cmd: &clap::Command, program: &str) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let text = e.render().to_string();
    let mut paragraphs = text.split("\n\n").map(str::trim);
    let head = paragraphs.next().unwrap_or_default();
    let commands = || {
        let names: Vec<String> =
            cmd.get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help").collect();
        names.join(" or ")
    };
    let mut line = match (e.kind(), e.get(ContextKind::InvalidArg), std::error::Error::source(e)) {
        (ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand, ..) => {
            format!("missing command: {} (see '{program} --help')", commands())
        }
        (ErrorKind::InvalidSubcommand, ..) => match e.get(ContextKind::InvalidSubcommand) {
            Some(ContextValue::String(c)) => format!("unknown command '{c}' (expected {})", commands()),
            _ => head.trim_start_matches("error: ").to_string(),
        },
        (ErrorKind::ValueValidation, Some(ContextValue::String(arg)), Some(why)) => {
            format!("{} {why}", arg.split(' ').next().unwrap_or(arg))
        }
        // e.g. "the following required arguments were not provided:" and one line each.
        _ => {
            let mut lines = head.lines().map(str::trim);
            let first = lines.next().unwrap_or_default().trim_start_matches("error: ");
            let rest: Vec<&str> = lines.collect();
            if rest.is_empty() {
                first.to_string()
            } else {
                format!("{first} {}", rest.join(", "))
            }
        }
    };
    for tip in paragraphs.filter(|p| p.starts_with("tip:")) {
        line += &format!(" ({tip})");
    }
    line
}

/// A non-negative integer option.
///
/// # Errors
/// Anything else, quoted.
pub fn count(v: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("expects a non-negative integer, got '{v}'"))
}

/// A positive integer option.
///
/// # Errors
/// Zero, or not a non-negative integer.
pub fn at_least_one(v: &str) -> Result<usize, String> {
    match count(v)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A comma-separated list of non-negative integers.
///
/// # Errors
/// The first element that is not one, quoted with the whole value.
pub fn counts(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|x| {
            x.trim().parse().map_err(|_| format!("expects comma-separated non-negative integers, got '{x}' in '{v}'"))
        })
        .collect()
}
