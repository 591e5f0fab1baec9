//! The program part of an agent key: what names a program the same way however its process
//! was first seen, and across restarts.
//!
//! A process found in /proc at start names its executable by `/proc/PID/exe`, a symbolic
//! link the kernel has already resolved (`/usr/bin/python3.11`), while an exec seen later
//! names it as the caller passed it to `execve` (`/usr/bin/python3`, a pyenv shim's target,
//! a path relative to some directory). Scripts are named as the command line gave them:
//! relative or absolute, in a checkout or a temporary directory that differs on every run.
//! So the key keeps only what both views share and what stays put across restarts: the
//! executable's file name, and for interpreters the interpreter family (version suffix
//! dropped) and the script's file name (or `-m module`). Directories never enter it (no
//! temporary directory), and neither does any other argument (no port, no pid, no token).
//! The full command stays in [`super::Agent::program`] for people to read.

use crate::program::{basename, is_version_suffix, INTERPRETERS};

/// The stable program name of a process: `python incident_agent.py`, `node server.js`,
/// `python -m mcp_server_git`, `claude`.
pub fn program_key(exe: Option<&str>, argv: &[String], comm: &str) -> String {
    let exe = exe.unwrap_or(comm);
    // A replaced executable's link reads `/path (deleted)`.
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    let base = basename(exe);
    let Some(family) = interpreter_family(base) else {
        return base.to_string();
    };
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-m" => {
                if let Some(module) = args.next() {
                    return format!("{family} -m {module}");
                }
            }
            // Inline code: its text changes with every edit and may carry anything.
            "-c" | "-e" | "--eval" | "-p" | "--print" => return format!("{family} {arg}"),
            option if option.starts_with('-') => {}
            script => return format!("{family} {}", basename(script)),
        }
    }
    family.to_string()
}

/// `python` for `python3.11`, `python3` and `python`; `node` for `nodejs`; `None` for
/// programs that are not interpreters.
fn interpreter_family(base: &str) -> Option<&'static str> {
    let matched = INTERPRETERS
        .iter()
        .find(|i| base == **i || base.strip_prefix(**i).is_some_and(is_version_suffix))?;
    Some(match *matched {
        "python3" => "python",
        "nodejs" => "node",
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seeded_and_execed_views_of_one_program_give_one_key() {
        // /proc/PID/exe of a seeded process (resolved link) and the execve filename of the
        // same command run again, with the script named relatively the second time.
        let seeded = program_key(
            Some("/root/.pyenv/versions/3.11.7/bin/python3.11"),
            &argv(&[
                "python3",
                "/work/wt/tests/agents/incident_agent.py",
                "--port",
                "39271",
            ]),
            "python3",
        );
        let execed = program_key(
            Some("/usr/bin/python3"),
            &argv(&["python3", "-u", "tests/agents/incident_agent.py"]),
            "python3",
        );
        assert_eq!(seeded, "python incident_agent.py");
        assert_eq!(seeded, execed);
        assert_eq!(
            program_key(
                Some("/usr/bin/nodejs"),
                &argv(&["node", "/app/s.js"]),
                "node"
            ),
            program_key(
                Some("/usr/local/bin/node"),
                &argv(&["node", "s.js"]),
                "node"
            )
        );
        assert_eq!(
            program_key(Some("/opt/bin/agentd (deleted)"), &[], "agentd"),
            program_key(Some("/usr/local/bin/agentd"), &[], "agentd")
        );
    }

    #[test]
    fn keys_contain_no_temporary_directory_and_no_port() {
        let cases = [
            (
                "/tmp/pytest-of-root/pytest-7/bin/python3.12",
                argv(&["python3", "/tmp/tmpk3j2x9/agent.py", "--port", "41023"]),
            ),
            (
                "/usr/bin/node",
                argv(&["node", "/var/tmp/run-5521/server.js", "127.0.0.1:38117"]),
            ),
            (
                "/tmp/.mount_agentXYZ/agent",
                argv(&["agent", "--listen", ":45871"]),
            ),
            (
                "/usr/bin/python3",
                argv(&["python3", "-c", "import x; x.serve(port=40111)"]),
            ),
        ];
        for (exe, argv) in cases {
            let key = program_key(Some(exe), &argv, "x");
            assert!(!key.contains("tmp"), "{key}");
            assert!(!key.contains('/'), "{key}: no directory at all");
            assert!(!key.chars().any(|c| c.is_ascii_digit()), "{key}: no port");
        }
        assert_eq!(
            program_key(
                Some("/usr/bin/python3"),
                &argv(&["python3", "-m", "mcp_server_git"]),
                "python3"
            ),
            "python -m mcp_server_git"
        );
        assert_eq!(program_key(None, &[], "agentd"), "agentd");
    }
}
