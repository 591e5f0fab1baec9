//! End to end, privileged: lost payload bytes are counted exactly, per direction, when a tiny
//! ring buffer drops records of many concurrent connections.
//!
//! Shared file (the Makefile's `E2E_SHARED`): its assertion is an equality whatever the load
//! (a busier node only drops more), and its collector follows its own process.

use crate::support;

use base64::Engine as _;
use serde_json::Value;
use support::*;

/// A tiny ring buffer and many concurrent connections force drops. The traced process both
/// sends and receives every byte (its sink is in the same process), so each byte is captured
/// twice and can be lost on either side: per direction, what was delivered plus what the
/// summary counts lost equals what was moved, exactly, and the total is their sum. Its bytes
/// are no protocol agentscope reads: `--copy-opaque-payloads` keeps the kernel copying them
/// (tests/opaque_sockets.rs covers leaving them out).
#[test]
fn lost_bytes_are_exact_with_many_concurrent_connections() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = python_interpreter();
    let senders = Paused::agent(
        dir.path(),
        &python,
        &[
            agents_dir().join("many_senders.py").to_str().unwrap(),
            "--connections",
            "48",
            "--bytes-per-connection",
            "262144",
            "--write-size",
            "20000",
        ],
        &[],
    );
    let pid = senders.pid();
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--ring-buffer-kib",
            "64",
            "--copy-opaque-payloads",
        ],
    );
    senders.release();
    let report_line = senders.finish();
    let report: Value = serde_json::from_str(report_line.trim()).unwrap();
    let sent = report["sent"].as_u64().unwrap();
    assert_eq!(report["received"].as_u64().unwrap(), sent);
    let captured = collect.stop();
    let delivered = |direction: &str| -> u64 {
        captured
            .of_kind("data")
            .filter(|e| e["pid"] == pid && e["direction"] == direction)
            .map(|e| {
                base64::engine::general_purpose::STANDARD
                    .decode(e["data_b64"].as_str().unwrap())
                    .unwrap()
                    .len() as u64
            })
            .sum()
    };
    let kernel = &captured.summary["kernel"];
    let lost = kernel["lost_bytes"].as_u64().unwrap();
    let lost_egress = kernel["lost_egress_bytes"]
        .as_u64()
        .expect("the summary counts lost bytes per direction");
    let lost_ingress = kernel["lost_ingress_bytes"].as_u64().unwrap();
    assert!(lost > 0, "the tiny ring buffer forced no drops");
    assert_eq!(lost, lost_egress + lost_ingress);
    // Egress also holds the JSON report the process printed to its stdout pipe.
    let moved_out = sent + report_line.len() as u64;
    assert_eq!(
        delivered("egress") + lost_egress,
        moved_out,
        "egress: delivered {} + lost {lost_egress} != written {moved_out}",
        delivered("egress")
    );
    assert_eq!(
        delivered("ingress") + lost_ingress,
        sent,
        "ingress: delivered {} + lost {lost_ingress} != read {sent}",
        delivered("ingress")
    );
}
