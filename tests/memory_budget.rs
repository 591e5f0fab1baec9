//! The collector under memory pressure, for real: a traced process runs a local HTTP server
//! and 64 clients that each send a 31 MiB body and never finish it, over real sockets, while
//! `agentscope collect --memory-budget 64M` runs. The collector's peak RSS (VmHWM) must stay
//! under the budget plus the fixed overhead the README states, and the summary must say that
//! bodies were cut. Before the budget existed this reached gigabytes.

mod support;

use support::{require_root, Collect, Paused};

const BUDGET_MIB: u64 = 64;
/// The fixed overhead the README states (binary, maps, ring buffer pages touched, threads,
/// allocator slack), with the ring buffer set to 8 MiB here.
const OVERHEAD_MIB: u64 = 96;

const FLOOD: &str = r#"
import socket, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(128)
port = srv.getsockname()[1]
def serve():
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=lambda c: [c.recv(1 << 20) for _ in iter(int, 1)], args=(conn,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
BODY = 31 << 20
piece = b"x" * (1 << 20)
def client():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: victim\r\nContent-Length: %d\r\n\r\n" % (BODY + 1))
    for _ in range(BODY >> 20):
        s.sendall(piece)
    time.sleep(3)
threads = [threading.Thread(target=client) for _ in range(64)]
[t.start() for t in threads]
[t.join() for t in threads]
print("sent")
"#;

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sixty_four_incomplete_large_bodies_keep_the_collector_under_budget() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let flood = Paused::command(dir.path(), "/usr/bin/env", &["python3", "-c", FLOOD], &[]);
    let pid = flood.pid().to_string();
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid,
            "--quiet",
            "--ring-buffer-kib",
            "8192",
            "--memory-budget",
            &format!("{BUDGET_MIB}M"),
        ],
    );
    let collector_pid = collect.child.id();
    flood.release();
    assert_eq!(flood.finish().trim(), "sent");
    let peak_kib = vm_kib(collector_pid, "VmHWM:");
    let captured = collect.stop();
    let bound_kib = (BUDGET_MIB + OVERHEAD_MIB) << 10;
    eprintln!("collector peak RSS {peak_kib} KiB, bound {bound_kib} KiB");
    assert!(
        peak_kib < bound_kib,
        "collector peak RSS {peak_kib} KiB over budget + overhead {bound_kib} KiB"
    );
    let memory = &captured.summary["memory"];
    assert!(
        memory["bodies_truncated"].as_u64().unwrap_or(0) > 0,
        "the summary counts the cut bodies: {memory}"
    );
    assert!(
        memory["peak_held_bytes"].as_u64().unwrap() <= memory["held_limit_bytes"].as_u64().unwrap()
    );
}
