//! Interpreters in an exec policy: programs whose real program is what they read (`sh`,
//! `python3`, `perl`…). An exec policy allows one only with inline code (its option letter
//! here: `sh -c CMD`, `perl -e CODE`) or with a script path the policy lists; the scripts are
//! derived from the arguments the baseline learned it run with. Reading its program from
//! standard input (`curl … | sh`) is never learned as allowed. docs/enforcement.md.

use std::collections::{BTreeMap, BTreeSet};

use super::collapse::ANY_NAME;

/// The inline-code option letter of an interpreter, by its file name; `None` for a program
/// that is not an interpreter.
pub fn inline_option(path: &str) -> Option<u8> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    match name {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "fish" | "python" | "pypy" => {
            Some(b'c')
        }
        "perl" | "ruby" | "node" | "nodejs" | "bun" | "deno" => Some(b'e'),
        "php" => Some(b'r'),
        "lua" | "luajit" => Some(b'e'),
        _ => None,
    }
}

/// Index in `argv` of the script an interpreter is given: the first argument that is not an
/// option (`-o VALUE` and `-O VALUE` skipped with their value, `--` ending the options);
/// `None` for inline code (`-c CMD`, also in a cluster such as `-ec`), standard input, or a
/// program that is not an interpreter. The kernel's exec check reads arguments the same way
/// (collector-ebpf/src/enforce_exec.rs).
pub fn script_index(argv: &[String]) -> Option<usize> {
    let inline = inline_option(argv.first()?)?;
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            return (i + 1 < argv.len()).then_some(i + 1);
        }
        if arg.len() > 1 && (arg.starts_with('-') || arg.starts_with('+')) {
            if !arg.starts_with("--") && arg.as_bytes()[1..].contains(&inline) {
                return None;
            }
            if matches!(arg.as_str(), "-o" | "+o" | "-O" | "+O") {
                i += 1;
            }
            i += 1;
            continue;
        }
        if arg == "-" || arg == "+" {
            return None;
        }
        return Some(i);
    }
    None
}

/// Whether a script argument is kept whole in a baseline (and can be allowed): an absolute
/// path. A relative one names a different file in every working directory.
pub fn is_script_path(arg: &str) -> bool {
    arg.starts_with('/') && !arg.contains(char::is_whitespace)
}

/// Script paths the learned executions of interpreters named (their argument patterns keep
/// an absolute script path whole: `collapse::argument_pattern`).
pub fn learned_scripts(executables: &BTreeMap<String, BTreeSet<Vec<String>>>) -> BTreeSet<String> {
    let mut scripts = BTreeSet::new();
    for (path, patterns) in executables {
        if inline_option(path).is_none() {
            continue;
        }
        for pattern in patterns {
            // The pattern's argv[0] is the program's name; judge it by the executable's.
            let mut argv = pattern.clone();
            if let Some(first) = argv.first_mut() {
                *first = path.clone();
            }
            if let Some(script) = script_index(&argv).map(|i| &argv[i]) {
                if is_script_path(script) && !script.contains(ANY_NAME) && !script.contains('{') {
                    scripts.insert(script.clone());
                }
            }
        }
    }
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_are_known_by_name_and_other_programs_are_not() {
        assert_eq!(inline_option("/bin/sh"), Some(b'c'));
        assert_eq!(inline_option("/usr/bin/python3.12"), Some(b'c'));
        assert_eq!(inline_option("/usr/bin/perl"), Some(b'e'));
        assert_eq!(inline_option("/usr/bin/curl"), None);
        assert_eq!(inline_option("/usr/bin/shred"), None);
    }

    #[test]
    fn scripts_come_from_whole_script_arguments_of_interpreters() {
        let mut executables = BTreeMap::new();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        executables.insert(
            "/bin/sh".to_string(),
            BTreeSet::from([
                args(&["sh", "-c", "{text}"]),
                args(&["sh", "-e", "/opt/ops/check.sh"]),
                args(&["sh", "-o", "pipefail", "/opt/ops/disk.sh"]),
                args(&["sh", "/tmp/{id}/*"]),
                args(&["sh"]),
            ]),
        );
        executables.insert(
            "/usr/bin/curl".to_string(),
            BTreeSet::from([args(&["curl", "/opt/not-a-script"])]),
        );
        assert_eq!(
            learned_scripts(&executables),
            BTreeSet::from([
                "/opt/ops/check.sh".to_string(),
                "/opt/ops/disk.sh".to_string()
            ])
        );
    }

    #[test]
    fn the_script_is_the_first_argument_that_is_not_an_option() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(script_index(&argv(&["/bin/sh", "/opt/a.sh", "x"])), Some(1));
        assert_eq!(
            script_index(&argv(&["sh", "-e", "-o", "pipefail", "/opt/a.sh"])),
            Some(4)
        );
        assert_eq!(
            script_index(&argv(&["bash", "--norc", "--", "-a.sh"])),
            Some(3)
        );
        assert_eq!(script_index(&argv(&["sh", "-ec", "uptime"])), None);
        assert_eq!(script_index(&argv(&["python3", "-c", "print(1)"])), None);
        assert_eq!(script_index(&argv(&["sh"])), None);
        assert_eq!(script_index(&argv(&["sh", "-"])), None);
        assert_eq!(script_index(&argv(&["curl", "/x"])), None);
        // Learned whole, so an exec policy can allow it; other paths still collapse.
        assert_eq!(
            super::super::collapse::argument_pattern(&argv(&[
                "/usr/bin/python3",
                "/srv/agent/mcp_files_server.py",
                "/srv/data/q3.csv"
            ])),
            ["python3", "/srv/agent/mcp_files_server.py", "{path}"]
        );
    }
}
