//! End-to-end redaction: a real client (tests/agents/secret_sender.py) sends a secret of every
//! family over real sockets, plain TCP and TLS through the system libssl, one byte per write and
//! across a 16 KiB chunk boundary, and execs clients with passwords in their argv. With default
//! flags none of those secrets may appear in `collect --json` output (raw or reassembled), in the
//! `.cap` recording (raw, and replayed with `agentscope replay --json`), or in `--graph-json`.
//! Loads eBPF programs, so needs root.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::*;

/// Every 8-byte piece of every secret that occurs in `haystack`, as (family, piece).
fn leaks(haystack: &[u8], secrets: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (family, secret) in secrets {
        for piece in secret.as_bytes().windows(8) {
            if contains(haystack, piece) {
                found.push((family.clone(), String::from_utf8_lossy(piece).into_owned()));
                break;
            }
        }
    }
    found
}

fn assert_no_leak(what: &str, haystack: &[u8], secrets: &BTreeMap<String, String>) {
    let found = leaks(haystack, secrets);
    assert!(found.is_empty(), "{what} leaks {found:?}");
}

fn self_signed_cert(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req failed");
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn no_secret_of_any_family_reaches_any_output() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let secrets_file = dir.path().join("secrets.json");
    let script = agents_dir().join("secret_sender.py").display().to_string();
    let sender = Paused::agent(
        dir.path(),
        "python3",
        &[
            &script,
            "--cert",
            &cert,
            "--key",
            &key,
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--secrets-file",
            secrets_file.to_str().unwrap(),
        ],
        &[],
    );
    let pid = sender.pid().to_string();
    let record = dir.path().join("secrets.cap");
    let graph = dir.path().join("graph.json");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid,
            "--record",
            record.to_str().unwrap(),
            "--graph-json",
            graph.to_str().unwrap(),
        ],
    );
    sender.release();
    sender.finish();
    let secrets: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&secrets_file).unwrap())
            .expect("secrets written by the sender");
    let captured = collect.stop();

    // The traffic was captured at all (otherwise nothing below could fail): each carrier on
    // plain TCP and on TLS, and the execs with their argv.
    let streams = captured.streams();
    let sources: Vec<&str> = streams
        .keys()
        .map(|(_, source, _, _)| source.as_str())
        .collect();
    for source in ["socket", "tls"] {
        let carrier = streams
            .iter()
            .filter(|((_, s, _, _), _)| s == source)
            .any(|(_, bytes)| contains(bytes, b"X-Vault-Token: "));
        assert!(
            carrier,
            "no {source} stream carried the token header ({sources:?})"
        );
    }
    let execs: Vec<&Value> = captured.of_kind("exec").collect();
    let argv_of = |program: &str| {
        execs
            .iter()
            .find(|e| e["filename"].as_str().unwrap_or("").ends_with(program))
            .map(|e| e["argv"].to_string())
            .unwrap_or_else(|| panic!("exec of {program} captured"))
    };
    assert!(
        argv_of("/mysql").contains("-uroot"),
        "{}",
        argv_of("/mysql")
    );
    assert!(argv_of("/curl").contains("Authorization: Bearer "));

    // `collect --json`: the lines as printed, and every stream reassembled from them.
    let lines: String = captured
        .events
        .iter()
        .map(|e| e.to_string() + "\n")
        .collect();
    assert_no_leak("collect --json lines", lines.as_bytes(), &secrets);
    for (key, bytes) in &streams {
        assert_no_leak(&format!("collect --json stream {key:?}"), bytes, &secrets);
    }

    // The graph JSON.
    let graph_text = std::fs::read(&graph).expect("graph JSON written");
    assert_no_leak("--graph-json", &graph_text, &secrets);

    // The recording: raw bytes, and its events replayed as JSON lines.
    let raw = std::fs::read(&record).expect("recording written");
    assert_no_leak("recording bytes", &raw, &secrets);
    let replay = Command::new(BIN)
        .args(["replay", "--json"])
        .arg(&record)
        .output()
        .expect("agentscope replay");
    assert!(replay.status.success(), "replay failed: {replay:?}");
    assert_no_leak("replay --json", &replay.stdout, &secrets);
    let replayed = Captured {
        events: String::from_utf8_lossy(&replay.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] != "summary")
            .collect(),
        summary: Value::Null,
    };
    let replayed_streams = replayed.streams();
    assert!(
        replayed_streams.len() >= streams.len() / 2,
        "the recording holds the streams ({} of {})",
        replayed_streams.len(),
        streams.len()
    );
    for (key, bytes) in &replayed_streams {
        assert_no_leak(&format!("replayed stream {key:?}"), bytes, &secrets);
    }
}
