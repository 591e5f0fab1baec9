//! What program a process runs: the executable, or for an interpreter the script (or `-m`
//! module) it was given. Agents are keyed by it, and reconstruction names a local server's
//! program with it, so it is decided here, beside the process table both read.

/// Interpreters whose script, not the interpreter, says which program runs.
pub const INTERPRETERS: &[&str] = &[
    "python", "python3", "node", "nodejs", "bun", "deno", "ruby", "java", "perl", "php",
];

/// The program an agent process runs: the executable, or an interpreter's script.
pub fn program_of(exe: Option<&str>, argv: &[String], comm: &str) -> String {
    let exe = exe.unwrap_or(comm);
    let base = basename(exe);
    let interpreter = INTERPRETERS
        .iter()
        .any(|i| base == *i || base.strip_prefix(i).is_some_and(is_version_suffix));
    if interpreter {
        // First argument that is not an option: the script (or `-m module`).
        let mut args = argv.iter().skip(1);
        while let Some(arg) = args.next() {
            if arg == "-m" {
                if let Some(module) = args.next() {
                    return format!("{exe} -m {module}");
                }
            } else if !arg.starts_with('-') {
                return format!("{exe} {arg}");
            }
        }
    }
    exe.to_string()
}

pub fn is_version_suffix(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A short display name: the script or executable's file name.
pub fn display_name(program: &str) -> String {
    let last = program.rsplit(' ').next().unwrap_or(program);
    basename(last).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_are_named_by_their_script() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            program_of(
                Some("/usr/bin/python3.11"),
                &argv(&["python3", "-u", "/app/agent.py", "--x"]),
                "python3"
            ),
            "/usr/bin/python3.11 /app/agent.py"
        );
        assert_eq!(
            program_of(
                Some("/usr/bin/python3"),
                &argv(&["python3", "-m", "mcp_server_git"]),
                "python3"
            ),
            "/usr/bin/python3 -m mcp_server_git"
        );
        assert_eq!(
            program_of(Some("/usr/bin/psql"), &argv(&["psql", "-c", "x"]), "psql"),
            "/usr/bin/psql"
        );
        assert_eq!(program_of(None, &[], "agentd"), "agentd");
        assert_eq!(
            display_name("/usr/bin/python3.11 /app/agent.py"),
            "agent.py"
        );
    }
}
