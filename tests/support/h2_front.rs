//! The HTTP/2 front: a real Go `net/http` server (tests/agents/go_h2_front, ALPN h2 and
//! http/1.1) in front of the mock LLM, for agents that speak HTTP/2 over TLS (the Go agent,
//! curl, Codex CLI).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{agents_dir, wait_for_file, Background, MockLlm};

/// Builds the front into `bin_dir`; returns the executable.
pub fn build(bin_dir: &Path) -> PathBuf {
    let binary = bin_dir.join("go_h2_front");
    let output = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(agents_dir().join("go_h2_front"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .output()
        .expect("go build the HTTP/2 front (needs golang-go: make setup)");
    assert!(
        output.status.success(),
        "building the HTTP/2 front failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// The HTTP/2 front, serving the leaf in `cert_dir` and passing requests to the mock LLM.
pub struct H2Front {
    pub port: u16,
    _process: Background,
}

impl H2Front {
    pub fn start(dir: &Path, binary: &Path, llm: &MockLlm, ca: &Path) -> H2Front {
        let port_file = dir.join("front.port");
        let cert_dir = dir.join("cert");
        let process = Command::new(binary)
            .args([
                "--upstream",
                &format!("https://127.0.0.1:{}", llm.port),
                "--upstream-ca",
                ca.to_str().unwrap(),
                "--cert",
                cert_dir.join("cert.pem").to_str().unwrap(),
                "--key",
                cert_dir.join("key.pem").to_str().unwrap(),
                "--port-file",
                port_file.to_str().unwrap(),
            ])
            .stderr(std::fs::File::create(dir.join("front.log")).unwrap())
            .spawn()
            .expect("start the HTTP/2 front");
        let process = Background(process);
        let port = wait_for_file(&port_file, "HTTP/2 front port")
            .parse()
            .unwrap();
        H2Front {
            port,
            _process: process,
        }
    }
}
