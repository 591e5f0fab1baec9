//! The Python agent against the mock LLM, followed by `collect --otlp-endpoint`: what the OTLP
//! export tests (tests/otlp_export.rs, tests/otlp_stop.rs) run live.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// The Python agent (tests/agents/python_agent.py, `--marker marker`) against the mock LLM,
/// under `collect --pid AGENT --no-kubernetes --otlp-endpoint ENDPOINT EXTRA...`, stopped by
/// SIGTERM once the agent has finished: returns the agent's pid, what was captured (its JSON
/// lines checked against docs/events.schema.json) and how long the stop took.
pub fn live_run(
    dir: &Path,
    endpoint: &str,
    extra: &[&str],
    marker: &str,
) -> (u32, Captured, Duration) {
    require_root();
    let llm = MockLlm::start(dir);
    let (script, port, cert) = (
        agents_dir().join("python_agent.py").display().to_string(),
        llm.port.to_string(),
        llm.cert.display().to_string(),
    );
    let agent = Paused::agent(
        dir,
        &python_interpreter(),
        &[&script, "--port", &port, "--ca", &cert, "--marker", marker],
        &[],
    );
    let pid = agent.pid();
    let pid_arg = pid.to_string();
    let mut args = vec![
        "--pid",
        &pid_arg,
        "--no-kubernetes",
        "--otlp-endpoint",
        endpoint,
    ];
    args.extend_from_slice(extra);
    let mut collect = Collect::start(dir, &args);
    agent.release();
    agent.finish();
    // Let the last records reach the ring buffer reader, then time the stop alone.
    std::thread::sleep(Duration::from_millis(300));
    let stop = Instant::now();
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(collect.child.id() as i32, libc::SIGTERM) };
    let status = collect.child.wait().unwrap();
    let stopped_in = stop.elapsed();
    assert!(status.success(), "collector exited with {status}");
    let text = std::fs::read_to_string(&collect.stdout_path).unwrap();
    // The collector's own lines, its summary with the OTLP counts included, match the
    // documented JSON-lines schema.
    let mut events = super::events_schema::assert_lines_match_schema(&text);
    let summary = events.pop().unwrap();
    assert_eq!(summary["kind"], "summary");
    let captured = Captured {
        events,
        summary: summary["summary"].clone(),
    };
    (pid, captured, stopped_in)
}
