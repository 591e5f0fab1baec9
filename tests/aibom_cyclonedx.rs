//! `agentscope aibom -o cyclonedx` on a real agent in a real container: the MCP client agent
//! (tests/agents/mcp_client_agent.py, built on the official MCP Python SDK) runs in a podman
//! container whose file system has the test venv mounted at `/opt/venv`, a path that exists
//! only inside the container. The collector reads the SDK's version from its real
//! `mcp-*.dist-info/METADATA` through `/proc/PID/root`. The live document names the agent,
//! the SDK as a framework with its exact version (the one the venv's own `importlib.metadata`
//! reports) and the MCP server with its tools; it validates against the official CycloneDX 1.6
//! JSON schema; and `aibom --replay` of the recording it made (`--record`) gives the same
//! document. (The replay of a second collector's recording need not: whether a short-lived
//! child's packages are read depends on whether it still runs when that collector gets to its
//! opens.) A `collect` beside it records the package events, checked against their schema.
//!
//! Privileged end-to-end test (run as root; `make test-e2e`); needs podman and the test venv
//! with cyclonedx-python-lib (`make setup`).

use crate::support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::cyclonedx_schema::assert_valid_cyclonedx_1_6;
use support::podman::{host_programs_image, podman_output, Container, RUN_LIMITS};
use support::*;

/// `agentscope aibom --duration ... -o cyclonedx`, collecting live.
struct LiveAibom {
    child: std::process::Child,
    stdout: std::path::PathBuf,
}

impl LiveAibom {
    /// Starts it, recording to `recording`; [`LiveAibom::wait_ready`] waits for its probes.
    fn spawn(
        dir: &Path,
        pid: &str,
        recording: &Path,
    ) -> (LiveAibom, BufReader<std::process::ChildStderr>) {
        let stdout = dir.join("live-aibom.json");
        let mut child = Command::new(BIN)
            .args(["aibom", "--ready-message", "--no-kubernetes", "--pid", pid])
            .args(["--record", recording.to_str().unwrap()])
            .args(["--duration", "300", "-o", "cyclonedx"])
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentscope aibom");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        (LiveAibom { child, stdout }, stderr)
    }

    fn wait_ready(mut stderr: BufReader<std::process::ChildStderr>) {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("collecting"), "aibom did not start: {line}");
        std::thread::spawn(move || {
            let mut rest = String::new();
            while stderr.read_line(&mut rest).unwrap_or(0) > 0 {
                eprint!("aibom: {rest}");
                rest.clear();
            }
        });
    }

    /// SIGINT: the document of what it saw.
    fn stop(mut self) -> Value {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "aibom exited with {status}");
        serde_json::from_str(&std::fs::read_to_string(&self.stdout).unwrap())
            .expect("aibom -o cyclonedx writes one JSON document")
    }
}

fn aibom_replay(recording: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(["aibom", "--replay", recording.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aibom --replay {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What the venv's own metadata says, asked of Python (`importlib.metadata`).
fn venv_version(package: &str) -> String {
    let output = Command::new(mcp_python())
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{package}'))"),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn property<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

#[test]
fn an_agent_in_a_container_gets_a_valid_cyclonedx_aibom_with_sdk_versions_live_and_replayed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let base = host_programs_image(
        dir,
        "localhost/agentscope-test-aibom-base:e2e",
        &["usr", "etc", "tmp", "work", "agents", "opt/venv"],
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // The venv directory itself (its interpreter is a link to the host's /usr/bin/python3).
    let venv = Path::new(&mcp_python())
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();

    // The Python the venv was made from (a pyenv build on some machines), at its own path.
    let base_prefix = {
        let output = Command::new(mcp_python())
            .args(["-c", "import sys; print(sys.base_prefix)"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let mut python_mount = Vec::new();
    if !base_prefix.starts_with("/usr") {
        python_mount = vec!["-v".to_string(), format!("{base_prefix}:{base_prefix}:ro")];
    }

    // The agent waits for a start file before Python starts, so its imports happen while both
    // collectors watch.
    let script = "while [ ! -e /work/start ]; do sleep 0.05; done; \
                  exec /opt/venv/bin/python /agents/mcp_client_agent.py \
                  --read-path /etc/os-release --dump /work/dump.json --no-shell-pipeline";
    let python_mount: Vec<&str> = python_mount.iter().map(String::as_str).collect();
    // Named, and removed by name, so a container that failed to start is removed too.
    let agent = Container(format!("agentscope-aibom-e2e-{}", std::process::id()));
    let agent_id = podman_output(
        &[
            &["run", "--detach", "--name", &agent.0][..],
            &RUN_LIMITS,
            &[
                "--network=none",
                "-v",
                "/usr:/usr:ro",
                "-v",
                "/etc:/etc:ro",
                "-v",
                &format!("{}:/opt/venv:ro", venv.display()),
                "-v",
                &format!("{}:/agents:ro", agents_dir().display()),
                "-v",
                &format!("{}:/work", work.display()),
            ][..],
            &python_mount,
            &[&base, "/bin/sh", "-c", script],
        ]
        .concat(),
    );
    let pid = podman_output(&["inspect", "--format", "{{.State.Pid}}", &agent.0]);

    // The live document and the recording it was made from; beside it, `collect` for the
    // package events.
    let recording = dir.join("aibom.cap");
    // Both start at once: their kernel programs load side by side.
    let (live, live_stderr) = LiveAibom::spawn(dir, &pid, &recording);
    let collect = Collect::start(dir, &["--no-kubernetes", "--pid", &pid]);
    LiveAibom::wait_ready(live_stderr);
    std::fs::write(work.join("start"), "").unwrap();
    let exit_code = podman_output(&["wait", &agent.0]);
    let logs = podman_output(&["logs", &agent.0]);
    assert_eq!(exit_code, "0", "the agent failed: {logs}");
    let captured = collect.stop();
    let document = live.stop();

    // The collector's package events: read through the container's root, at a path only the
    // container has.
    let sdk_version = venv_version("mcp");
    let packages: Vec<&Value> = captured
        .events
        .iter()
        .filter(|e| e["kind"] == "package")
        .collect();
    // Package events match their documented schema (docs/events.schema.json).
    let lines: Vec<String> = packages.iter().map(|e| e.to_string()).collect();
    support::events_schema::assert_lines_match_schema(&lines.join("\n"));
    let sdk_event = packages
        .iter()
        .find(|e| e["name"] == "mcp")
        .unwrap_or_else(|| panic!("no package event for the MCP SDK: {packages:#?}"));
    assert_eq!(sdk_event["version"], sdk_version.as_str(), "{sdk_event:#}");
    assert!(
        sdk_event["metadata_path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/opt/venv/lib/")
                && p.ends_with(&format!(
                    "/site-packages/mcp-{sdk_version}.dist-info/METADATA"
                ))),
        "{sdk_event:#}"
    );

    // The official schema.
    assert_valid_cyclonedx_1_6(&document);
    assert_eq!(document["bomFormat"], "CycloneDX");
    assert_eq!(document["specVersion"], "1.6");

    // The agent, with its container identity.
    let about = &document["metadata"]["component"];
    assert_eq!(about["type"], "application", "{document:#}");
    assert_eq!(about["name"], "mcp_client_agent.py", "{about:#}");
    assert_eq!(
        property(about, "agentscope:identity.container_id"),
        Some(agent_id.as_str()),
        "{about:#}"
    );
    let agent_ref = about["bom-ref"].as_str().unwrap();

    // The SDK: a framework with its exact version and purl, from the container's file system.
    let components = document["components"].as_array().unwrap();
    let sdk = components
        .iter()
        .find(|c| c["name"] == "mcp" && c["purl"].is_string())
        .unwrap_or_else(|| panic!("no MCP SDK component: {components:#?}"));
    assert_eq!(sdk["type"], "framework", "{sdk:#}");
    assert_eq!(sdk["version"], sdk_version.as_str(), "{sdk:#}");
    assert_eq!(sdk["purl"], format!("pkg:pypi/mcp@{sdk_version}").as_str());
    assert!(
        property(sdk, "agentscope:package.metadata_path")
            .is_some_and(|p| p.starts_with("/opt/venv/")),
        "{sdk:#}"
    );
    // A library it loaded, at the venv's version too.
    let pydantic_version = venv_version("pydantic");
    assert!(
        components.iter().any(|c| c["type"] == "library"
            && c["name"] == "pydantic"
            && c["version"] == pydantic_version.as_str()),
        "pydantic {pydantic_version} missing: {components:#?}"
    );

    // The stdio MCP server as a service, its tools nested.
    let services = document["services"].as_array().unwrap();
    let server = services
        .iter()
        .find(|s| property(s, "agentscope:mcp.endpoint").is_some())
        .unwrap_or_else(|| panic!("no MCP server service: {services:#?}"));
    let tools: Vec<&str> = server["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"read_file"), "{server:#}");

    // The agent depends on the SDK and the server.
    let dependencies = document["dependencies"].as_array().unwrap();
    let of_agent = dependencies
        .iter()
        .find(|d| d["ref"] == agent_ref)
        .expect("the agent's dependencies");
    for wanted in [&sdk["bom-ref"], &server["bom-ref"]] {
        assert!(
            of_agent["dependsOn"].as_array().unwrap().contains(wanted),
            "{of_agent:#}"
        );
    }

    // Its recording gives the same document, selected by the agent's name too.
    let replayed: Value = serde_json::from_str(&aibom_replay(
        &recording,
        &["--agent", "mcp_client_agent.py", "-o", "cyclonedx"],
    ))
    .unwrap();
    assert_eq!(replayed, document);
    // The other formats carry the same versions.
    let json: Value = serde_json::from_str(&aibom_replay(&recording, &["-o", "json"])).unwrap();
    let packages = &json["agents"][0]["aibom"]["packages"];
    assert_eq!(
        packages[format!("pypi:mcp@{sdk_version}")]["version"],
        sdk_version.as_str(),
        "{json:#}"
    );
    let text = aibom_replay(&recording, &[]);
    assert!(
        text.contains(&format!("package   pypi mcp {sdk_version}")),
        "{text}"
    );
}

/// The recorded incident (recordings/injected.cap: a pod's agent with a model, two MCP servers,
/// its own tools, an internal API, an exfiltration endpoint and a database table) as
/// CycloneDX: valid against the official schema, with each of those in its place. No root.
#[test]
fn a_recorded_incident_is_a_valid_cyclonedx_document_with_models_services_and_data() {
    let recording = Path::new(env!("AGENTSCOPE_REPO")).join("recordings/injected.cap");
    let document: Value =
        serde_json::from_str(&aibom_replay(&recording, &["-o", "cyclonedx"])).unwrap();
    assert_valid_cyclonedx_1_6(&document);

    let about = &document["metadata"]["component"];
    assert_eq!(about["name"], "incident_agent.py", "{about:#}");
    assert_eq!(
        property(about, "agentscope:identity.pod"),
        Some("support/support-agent-6c9d7f5b8d-q7k2m")
    );
    assert_eq!(
        property(about, "agentscope:llm.api"),
        Some("open_ai_chat_completions")
    );
    let components = document["components"].as_array().unwrap();
    let model = components
        .iter()
        .find(|c| c["type"] == "machine-learning-model")
        .expect("the model");
    assert_eq!(model["name"], "gpt-4o-mini");
    assert_eq!(model["supplier"]["name"], "127.0.0.1", "{model:#}");
    assert!(
        components
            .iter()
            .any(|c| c["type"] == "data" && c["bom-ref"] == "data:table:crm.customers"),
        "{components:#?}"
    );
    assert!(
        !components.iter().any(|c| c["bom-ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("data:file:"))),
        "files are behaviour, not the bill of materials"
    );
    let services = document["services"].as_array().unwrap();
    let names = |s: &Value| s["name"].as_str().unwrap_or_default().to_string();
    let crm = services
        .iter()
        .find(|s| s["name"] == "agentscope-crm")
        .expect("the CRM MCP server");
    assert!(
        crm["endpoints"][0]
            .as_str()
            .is_some_and(|e| e.ends_with("/mcp")),
        "{crm:#}"
    );
    let crm_tools: Vec<String> = crm["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(names)
        .collect();
    assert_eq!(crm_tools, ["echo", "query_database"]);
    assert!(services.iter().any(|s| s["name"] == "agentscope-files"));
    // Ports change each time the recordings are regenerated.
    for (before_port, after_port) in [
        ("api:GET 127.0.0.1:", "/api/accounts/{id}/status"),
        ("api:POST 127.0.0.2:", "/collect"),
    ] {
        assert!(
            services
                .iter()
                .any(|s| s["bom-ref"].as_str().is_some_and(|r| r
                    .strip_prefix(before_port)
                    .and_then(|r| r.strip_suffix(after_port))
                    .is_some_and(|port| port.parse::<u16>().is_ok()))),
            "{before_port}PORT{after_port} missing: {services:#?}"
        );
    }
    assert!(
        services.iter().any(|s| s["name"] == "http_post"
            && property(s, "agentscope:tool") == Some("offered to the model")),
        "{services:#?}"
    );
}
