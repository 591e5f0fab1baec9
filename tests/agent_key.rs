//! End-to-end test of agent keys with the real collector: one program is one agent, however
//! its processes were first seen. A copy of the Python agent already runs when the collector
//! starts (found in /proc, its executable named by the resolved `/proc/PID/exe` link) and a
//! second copy of the same program is exec'd while the collector runs, through a
//! virtualenv-style `python3` symbolic link and with the script named relatively. Both must
//! land on one agent, whose key holds no directory. Needs root (eBPF).

use crate::support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

#[test]
fn a_program_seeded_from_proc_and_execd_later_is_one_agent() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let interpreter = python_interpreter();
    // A virtualenv's bin/python3 is a symbolic link to the real interpreter: exec'd through
    // it, the process names it; found in /proc, it names the link's target.
    let venv_bin = dir.path().join("venv-bin");
    std::fs::create_dir(&venv_bin).unwrap();
    let link = venv_bin.join("python3");
    std::os::unix::fs::symlink(&interpreter, &link).unwrap();

    let agent_args = |dump: &str| {
        format!(
            "--port {} --ca '{}' --read-path /etc/os-release --service-port {} --dump-dir '{}'",
            llm.port,
            llm.cert.display(),
            echo.port,
            dir.path().join(dump).display()
        )
    };
    let first_start = dir.path().join("start-first");
    let second_start = dir.path().join("start-second");
    let second_pid_file = dir.path().join("second.pid");
    // The launcher starts the first copy now (absolute script path, paused), and the second
    // (relative script path, through the link) once told to, then waits for both.
    let script = format!(
        "'{interpreter}' '{agents}/python_agent.py' {first_args} --wait-before-start-file '{first_start}' >'{dir}/first.out' 2>&1 &
first=$!
echo $first >'{dir}/first.pid'
while [ ! -e '{second_start}' ]; do sleep 0.02; done
'{link}' python_agent.py {second_args} >'{dir}/second.out' 2>&1 &
echo $! >'{second_pid}'
wait $first || exit 11
wait $! || exit 12",
        interpreter = interpreter,
        agents = agents_dir().display(),
        first_args = agent_args("dump-first"),
        first_start = first_start.display(),
        dir = dir.path().display(),
        second_start = second_start.display(),
        link = link.display(),
        second_args = agent_args("dump-second"),
        second_pid = second_pid_file.display(),
    );
    let mut launcher = Command::new("/bin/sh")
        .args(["-c", &script])
        .current_dir(agents_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start launcher");
    let first_pid: u32 = wait_for_file(&dir.path().join("first.pid"), "first agent pid")
        .parse()
        .unwrap();
    // Let the first copy load its interpreter and TLS library before the collector scans /proc.
    std::thread::sleep(std::time::Duration::from_millis(800));

    let graph_path = dir.path().join("graph.json");
    let (launcher_pid, first_pid_arg) = (launcher.id().to_string(), first_pid.to_string());
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &launcher_pid,
            "--pid",
            &first_pid_arg,
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    std::fs::write(&first_start, b"go").unwrap();
    std::fs::write(&second_start, b"go").unwrap();
    let status = launcher.wait().unwrap();
    let first_out = std::fs::read_to_string(dir.path().join("first.out")).unwrap_or_default();
    let second_out = std::fs::read_to_string(dir.path().join("second.out")).unwrap_or_default();
    assert!(
        status.success(),
        "agents failed ({status}):\nfirst: {first_out}\nsecond: {second_out}"
    );
    let second_pid: u32 = wait_for_file(&second_pid_file, "second agent pid")
        .parse()
        .unwrap();
    let captured = collect.stop();

    // The second copy really was exec'd while the collector ran, through the link.
    assert!(
        captured
            .of_kind("exec")
            .any(|e| e["pid"] == second_pid
                && e["filename"].as_str() == Some(link.to_str().unwrap())),
        "no exec of {} by pid {second_pid} captured",
        link.display()
    );
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let agents: Vec<&Value> = graph["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["program"]
                .as_str()
                .is_some_and(|p| p.ends_with("python_agent.py"))
        })
        .collect();
    let keys: Vec<&str> = agents.iter().filter_map(|a| a["key"].as_str()).collect();
    assert_eq!(
        agents.len(),
        1,
        "one program, one agent; got {keys:?}\n{:#}",
        graph["agents"]
    );
    let agent = agents[0];
    assert_eq!(agent["key"], "host:python python_agent.py");
    let pids: Vec<u64> = agent["pids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        pids.contains(&u64::from(first_pid)) && pids.contains(&u64::from(second_pid)),
        "both copies ({first_pid} seeded, {second_pid} exec'd) act as the agent: {pids:?}"
    );
    assert!(
        agent["llm_calls"].as_u64().unwrap_or(0) >= 2,
        "both sessions' LLM calls count for the one agent: {}",
        agent["llm_calls"]
    );
}
