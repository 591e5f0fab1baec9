//! The process lineage Detail shows: an observation's process and its ancestors up to the
//! boundary of what the agent is (the first infrastructure process: a container's shim or
//! runtime, an init, an SSH daemon, a terminal multiplexer), each as its command line with the
//! environment it was handed collapsed and its secrets masked.
//!
//! Above that boundary every process is the node's or the container runtime's, the same for
//! every agent, and its command line is long (a shim's flags, a multiplexer's session) and can
//! carry a whole environment; it says nothing about the agent. Environment assignments
//! (`env NAME=value …`) and JSON objects of strings passed as arguments (a launcher's
//! environment) are shown as one `[environment: N variables]` note unless expanded, and
//! then with each value through the same redaction as every byte that leaves the process.

use agentscope_event::process_table::ProcessTable;

/// Process names (as `comm` or the executable's file name) where the lineage stops: the
/// container boundary (every container process descends from its shim or runtime), inits and
/// session managers.
const INFRASTRUCTURE: &[&str] = &[
    "containerd-shim",
    "containerd",
    "runc",
    "crun",
    "conmon",
    "dockerd",
    "docker-init",
    "tini",
    "dumb-init",
    "kubelet",
    "systemd",
    "init",
    "sshd",
    "tmux",
    "screen",
    "login",
    "agetty",
];

/// Ancestors shown at most (a fork bomb's chain is not a lineage anyone reads).
const MAX_DEPTH: usize = 16;
/// Longest environment value shown when expanded.
const VALUE_CHARS: usize = 60;

/// One process of a lineage as Detail shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageLine {
    pub pid: u32,
    pub comm: String,
    /// The command line, environment collapsed (or listed, when expanded) and secrets masked;
    /// empty for the boundary process.
    pub command: String,
    pub exited: bool,
    /// The process is infrastructure: the lineage stops here, its command line not shown.
    pub boundary: bool,
    /// The process table does not know it.
    pub unknown: bool,
}

/// Whether a process with this `comm` and executable is infrastructure.
pub fn is_infrastructure(comm: &str, exe: Option<&str>) -> bool {
    let exe_name = exe.and_then(|e| e.rsplit('/').next()).unwrap_or("");
    let comm = comm.trim();
    INFRASTRUCTURE.iter().any(|name| {
        // comm is cut at 15 bytes (`containerd-shim` of `containerd-shim-runc-v2`) and tmux
        // names its server `tmux: server`.
        comm == *name
            || comm.starts_with(&format!("{name}:"))
            || exe_name == *name
            || (name.len() >= 8 && (comm.starts_with(name) || exe_name.starts_with(name)))
    })
}

/// `pid`'s lineage, nearest first, up to and including the first infrastructure process (or
/// pid 1, or [`MAX_DEPTH`] processes).
pub fn lineage(processes: &ProcessTable, pid: u32, expand_environment: bool) -> Vec<LineageLine> {
    let mut out = Vec::new();
    for ancestor in processes.lineage(pid).into_iter().take(MAX_DEPTH) {
        let Some(info) = processes.get(ancestor) else {
            out.push(LineageLine {
                pid: ancestor,
                comm: String::new(),
                command: String::new(),
                exited: false,
                boundary: false,
                unknown: true,
            });
            continue;
        };
        let boundary = ancestor == 1 || is_infrastructure(&info.comm, info.exe.as_deref());
        let command = if boundary {
            String::new()
        } else if info.argv.is_empty() {
            info.exe.clone().unwrap_or_else(|| info.comm.to_string())
        } else {
            command_line(&info.argv, expand_environment)
        };
        out.push(LineageLine {
            pid: ancestor,
            comm: info.comm.to_string(),
            command,
            exited: info.exited,
            boundary,
            unknown: false,
        });
        if boundary {
            break;
        }
    }
    out
}

/// Whether `arg` hands the process an environment: `NAME=value`, or a JSON object of strings.
fn environment_of(arg: &str) -> Option<Vec<(String, String)>> {
    if let Some((name, value)) = arg.split_once('=') {
        let mut chars = name.chars();
        let is_name = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        // `--flag=value` is not an assignment; an all-lowercase name rarely is one either
        // (`key=value` arguments of a tool), but an uppercase one is.
        if is_name && name.chars().any(|c| c.is_ascii_uppercase()) {
            return Some(vec![(name.to_string(), value.to_string())]);
        }
        return None;
    }
    let trimmed = arg.trim_start();
    if !trimmed.starts_with('{') {
        return None;
    }
    let serde_json::Value::Object(map) = serde_json::from_str(trimmed).ok()? else {
        return None;
    };
    if map.is_empty() || !map.values().all(serde_json::Value::is_string) {
        return None;
    }
    Some(
        map.into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
    )
}

/// The command line with its environment collapsed (or listed with masked values).
fn command_line(argv: &[String], expand_environment: bool) -> String {
    let mut words = Vec::new();
    let mut environment: Vec<(String, String)> = Vec::new();
    for arg in argv {
        match environment_of(arg) {
            Some(variables) => environment.extend(variables),
            None => words.push(arg.clone()),
        }
    }
    agentscope_redact::redact_argv(&mut words);
    let mut line = words.join(" ");
    if environment.is_empty() {
        return line;
    }
    if !line.is_empty() {
        line.push(' ');
    }
    if !expand_environment {
        let n = environment.len();
        let plural = if n == 1 { "" } else { "s" };
        line.push_str(&format!("[environment: {n} variable{plural}]"));
        return line;
    }
    // Redacted as an assignment list, so a secret's name masks its value.
    let mut assignments: Vec<String> = environment
        .into_iter()
        .map(|(name, value)| {
            let value: String = value.chars().take(VALUE_CHARS).collect();
            format!("{name}={value}")
        })
        .collect();
    agentscope_redact::redact_argv(&mut assignments);
    line.push_str(&format!("[environment: {}]", assignments.join(" ")));
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentscope_event::process_table::ProcessInfo;

    fn exec(pid: u32, ppid: u32, comm: &str, filename: &str, argv: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            comm: comm.into(),
            exe: Some(filename.into()),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            seeded: false,
            exited: false,
        }
    }

    fn table(processes: &[ProcessInfo]) -> ProcessTable {
        ProcessTable::import(processes.to_vec(), Vec::new())
    }

    #[test]
    fn lineage_stops_at_the_first_infrastructure_process_without_its_command() {
        let processes = table(&[
            exec(
                50,
                1,
                "containerd-shim",
                "/usr/bin/containerd-shim-runc-v2",
                &["/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io"],
            ),
            exec(60, 50, "tini", "/usr/bin/tini", &["tini", "--", "python"]),
            exec(
                70,
                60,
                "python3",
                "/usr/bin/python3",
                &["python", "agent.py"],
            ),
        ]);
        let lines = lineage(&processes, 70, false);
        let pids: Vec<u32> = lines.iter().map(|l| l.pid).collect();
        assert_eq!(pids, [70, 60], "stops at the container's init, never PID 1");
        assert!(lines[1].boundary && lines[1].command.is_empty());
        assert_eq!(lines[0].command, "python agent.py");

        let processes = table(&[
            exec(
                10,
                1,
                "tmux: server",
                "/usr/bin/tmux",
                &["tmux", "new", "-d"],
            ),
            exec(20, 10, "bash", "/bin/bash", &["-bash"]),
            exec(30, 20, "node", "/usr/bin/node", &["node", "claude"]),
        ]);
        let pids: Vec<u32> = lineage(&processes, 30, false)
            .iter()
            .map(|l| l.pid)
            .collect();
        assert_eq!(pids, [30, 20, 10]);
    }

    #[test]
    fn the_environment_is_collapsed_and_its_secrets_masked_when_expanded() {
        let processes = table(&[exec(
            20,
            1,
            "env",
            "/usr/bin/env",
            &[
                "env",
                "OPENAI_API_KEY=sk-live-0123456789abcdef0123",
                "HOME=/root",
                "python",
                "agent.py",
                r#"{"AWS_SECRET_ACCESS_KEY":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","LANG":"C"}"#,
            ],
        )]);
        let collapsed = &lineage(&processes, 20, false)[0].command;
        assert_eq!(collapsed, "env python agent.py [environment: 4 variables]");
        let expanded = &lineage(&processes, 20, true)[0].command;
        assert!(expanded.contains("HOME=/root"), "{expanded}");
        assert!(expanded.contains("LANG=C"), "{expanded}");
        assert!(expanded.contains("OPENAI_API_KEY="), "{expanded}");
        assert!(
            !expanded.contains("sk-live-0123456789abcdef0123"),
            "{expanded}"
        );
        assert!(!expanded.contains("wJalrXUtnFEMI"), "{expanded}");
        // A flag with a value is not an environment.
        assert_eq!(
            command_line(
                &["curl".into(), "--max-time=5".into(), "key=value".into()],
                false
            ),
            "curl --max-time=5 key=value"
        );
    }
}
