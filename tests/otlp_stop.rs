//! OTLP export must never cost capture or the stop: with the endpoint black-holed (it accepts
//! connections and never answers), the agent's traffic is still captured, every span is
//! dropped and counted, and SIGTERM still stops the collector within a second.
//!
//! Privileged, and run alone (the Makefile's `E2E_ALONE`): it times a stop. The rest of OTLP
//! export is tests/otlp_export.rs.

use crate::support;

use std::time::Duration;

use support::otlp_live_run::live_run;

#[test]
fn a_black_holed_endpoint_costs_spans_not_capture_or_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel's backlog) and never reads or answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", hole.local_addr().unwrap().port());
    let (pid, captured, stopped_in) = live_run(dir.path(), &endpoint, &[], "black-hole");
    assert!(
        stopped_in < Duration::from_secs(1),
        "SIGTERM took {stopped_in:?} with the OTLP endpoint black-holed"
    );
    // Capture went on: the agent's model requests are all there.
    let sent = captured
        .events
        .iter()
        .filter(|e| e["pid"] == pid && e["kind"] == "data" && e["source"] == "tls")
        .count();
    assert!(sent > 0, "the agent's TLS traffic was captured");
    let otlp = &captured.summary["otlp"];
    assert_eq!(otlp["spans_exported"], 0, "{otlp}");
    assert!(otlp["spans_dropped"].as_u64() > Some(0), "{otlp}");
    drop(hole);
}
