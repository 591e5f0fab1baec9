//! The exit statuses every `agentscope` command uses, so scripts can tell "could not do the
//! job" from "did the job and found something" the same way everywhere (docs/cli.md).

use std::process::ExitCode;

/// The command did its job and found nothing to report.
pub const OK: u8 = 0;
/// The command could not do its job (an unreadable file, no root, a failed attach).
pub const ERROR: u8 = 1;
/// The command line was wrong (clap's own status for usage errors).
#[cfg_attr(not(test), allow(dead_code))]
pub const USAGE: u8 = 2;
/// The command did its job and found what it looks for: an injection (`scan
/// --fail-on-injection`), differences (`baseline diff`), deviations (`baseline check`), damage
/// (`cap verify`).
pub const FOUND: u8 = 3;
/// Part of the input could not be used (lines `scan` could not read); the rest was.
pub const INCOMPLETE_INPUT: u8 = 4;

/// `--help` of the top-level command and of each command that uses more than 0 and 1.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  done, nothing found
  1  error: the command could not do its job (the message says why)
  2  usage error (a wrong option or argument)
  3  done, and found what the command looks for: an injection (scan --fail-on-injection),
     differences (baseline diff), deviations (baseline check), damage (cap verify)
  4  done, but part of the input could not be used (scan: lines that are not JSON objects)";

pub fn code(status: u8) -> ExitCode {
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// The usage status documented here is the one clap really exits with.
    #[test]
    fn usage_errors_exit_with_the_documented_status() {
        #[derive(Parser, Debug)]
        struct Probe {
            #[arg(long)]
            _flag: bool,
        }
        let err = Probe::try_parse_from(["probe", "--no-such-option"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(super::USAGE));
    }
}
