//! The privileged end-to-end tests: one test binary, a module per file of tests/.
//!
//! Why one binary: as 39 binaries, each compiled tests/support and linked against the whole
//! collector on its own, which was about a tenth of a fresh build (87 of 808 unit-seconds; one
//! binary builds in 15 CPU-s), and clippy checked tests/support once per file. Each file is
//! still run on its own, in a process of its own, by module filter (`e2e --test-threads=1
//! NAME::`): the Makefile's lists name the modules, scripts/e2e-beside-clippy.sh runs them (and
//! checks that each filter selects exactly its own module's tests), and
//! scripts/check-e2e-lists.sh fails CI when a module below is in no list. A process per file
//! keeps what a file assumes of its process (a once-per-process mark, the tests' statics, its
//! environment) as it was.
//!
//! One file by hand: `cargo test --test e2e -- --test-threads=1 NAME::` (as root).

mod support;

mod agent_escape;
mod agent_graph;
mod agent_key;
mod aibom_cyclonedx;
mod baseline_store;
mod blind_spots;
mod capture_files;
mod capture_outputs;
mod claude_code;
mod cli_conventions;
mod closed_stdout;
mod codex_cli;
mod collector_stop;
mod connection_sampling;
mod console_tmux;
mod detection_scenarios;
mod enforcement;
mod enforcement_ops;
mod gemini_cli;
mod go_tls_capture;
mod hostile_node;
mod hostile_text;
mod http2_capture;
mod identity;
mod kernel_drops;
mod live_capture;
mod mcp_capture;
mod memory_budget;
mod node_container;
mod opaque_sockets;
mod otlp_export;
mod otlp_stop;
mod payload_loss;
mod payload_switch;
mod pid_filter;
mod posture;
mod recordings;
mod redaction;
mod rustls_capture;
mod scan_exit_codes;
mod serve_connect;
mod vectored_capture;
mod websocket_capture;
