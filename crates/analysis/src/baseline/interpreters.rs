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
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "fish" | "busybox" | "python"
        | "pypy" => Some(b'c'),
        "perl" | "ruby" | "node" | "nodejs" | "bun" | "deno" => Some(b'e'),
        "php" => Some(b'r'),
        "lua" | "luajit" => Some(b'e'),
        _ => None,
    }
}

/// Script paths the learned executions of interpreters named: the first argument that is not
/// an option, when it is an absolute path the baseline kept whole (not collapsed to a
/// pattern).
pub fn learned_scripts(executables: &BTreeMap<String, BTreeSet<Vec<String>>>) -> BTreeSet<String> {
    let mut scripts = BTreeSet::new();
    for (path, patterns) in executables {
        let Some(inline) = inline_option(path) else {
            continue;
        };
        for pattern in patterns {
            let mut args = pattern.iter().skip(1);
            let script = loop {
                match args.next() {
                    None => break None,
                    Some(arg) if arg == "--" => break args.next(),
                    Some(arg) if arg.starts_with('-') || arg.starts_with('+') => {
                        // Inline code: no script.
                        if !arg.starts_with("--") && arg.as_bytes().contains(&inline) {
                            break None;
                        }
                        if matches!(arg.as_str(), "-o" | "+o" | "-O" | "+O") {
                            args.next();
                        }
                    }
                    Some(arg) => break Some(arg),
                }
            };
            if let Some(script) = script {
                let kept_whole = script.starts_with('/')
                    && !script.contains(ANY_NAME)
                    && !script.contains('{')
                    && !script.contains(char::is_whitespace);
                if kept_whole {
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
}
