//! End-to-end test of per-connection sampling (`collect --sample-connections 2`): a client
//! (tests/agents/sampled_connections_client.py) makes 16 rounds of one POST over a new TLS
//! connection to the mock LLM (system libssl) and one over a new plain connection to the HTTP
//! API, each body naming its round. Every connect arrives and says whether the kernel sampled
//! the connection out; the first connection to each of the two servers is kept (sampling
//! never hides a destination); exactly the kept connections' bodies are captured (TLS
//! plaintext and plain bytes), none of the sampled-out ones'; their bytes are counted node-wide
//! and reported as the client's; reconstruction reads one LLM call per kept TLS connection; and
//! `coverage --replay` of the recording says the same. Without the kernel's choice (the
//! default, one in one) nothing is sampled out. Needs root (eBPF).

use crate::support;

use serde_json::Value;
use support::*;

const ROUNDS: usize = 16;

struct Sampled {
    followed: FollowedAgent,
    llm_port: u64,
    api_port: u64,
    recording: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn run(extra: &[&str]) -> Sampled {
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let api = HttpApi::start(dir.path());
    let script = agents_dir().join("sampled_connections_client.py");
    let args = [
        script.display().to_string(),
        "--llm-port".into(),
        llm.port.to_string(),
        "--ca".into(),
        llm.cert.display().to_string(),
        "--api-port".into(),
        api.port.to_string(),
        "--count".into(),
        ROUNDS.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let client = Paused::agent(dir.path(), &python_interpreter(), &args, &[]);
    let recording = dir.path().join("sampled.cap");
    let mut collect_args = vec!["--record", recording.to_str().unwrap()];
    collect_args.extend_from_slice(extra);
    let followed = follow_agent(dir.path(), client, &collect_args);
    Sampled {
        followed,
        llm_port: u64::from(llm.port),
        api_port: u64::from(api.port),
        recording,
        _dir: dir,
    }
}

/// The client's connects to `port`, in capture order.
fn connects_to(captured: &Captured, pid: u64, port: u64) -> Vec<&Value> {
    captured
        .of_kind("connect")
        .filter(|e| e["pid"].as_u64() == Some(pid) && e["port"].as_u64() == Some(port))
        .collect()
}

fn is_sampled_out(connect: &Value) -> bool {
    connect["payloads_sampled_out"] == true
}

/// Every byte `pid` wrote with `source`, joined (the bodies are searched for their markers).
fn egress(captured: &Captured, pid: u64, source: &str) -> Vec<u8> {
    captured
        .streams()
        .into_iter()
        .filter(|((p, s, dir, _), _)| *p == pid && s == source && dir == "egress")
        .flat_map(|(_, bytes)| bytes)
        .collect()
}

/// Payload bytes `pid` moved over `source` and the kernel copied: each call's `total_len` once.
fn moved(captured: &Captured, pid: u64, source: &str) -> u64 {
    captured
        .of_kind("data")
        .filter(|e| e["seq"] == 0 && e["pid"].as_u64() == Some(pid) && e["source"] == source)
        .map(|e| e["total_len"].as_u64().unwrap())
        .sum()
}

#[test]
fn one_connection_in_two_keeps_its_payloads_and_the_rest_are_counted_and_reported() {
    require_root();
    let run = run(&["--sample-connections", "2"]);
    let followed = &run.followed;
    let captured = &followed.captured;
    let pid = u64::from(followed.pid);
    assert_eq!(
        captured.summary["kernel"]["dropped"], 0,
        "{}",
        captured.summary
    );
    support::events_schema::assert_lines_match_schema(
        &std::fs::read_to_string(&followed.events_path).unwrap(),
    );

    // Every connection is seen connecting, each saying whether it was sampled out.
    let tls_connects = connects_to(captured, pid, run.llm_port);
    let plain_connects = connects_to(captured, pid, run.api_port);
    assert_eq!(tls_connects.len(), ROUNDS, "{tls_connects:?}");
    assert_eq!(plain_connects.len(), ROUNDS, "{plain_connects:?}");
    let all: Vec<&Value> = tls_connects
        .iter()
        .chain(&plain_connects)
        .copied()
        .collect();
    // The client's first connection to each server is kept whatever the draw: sampling never
    // hides where a process connects (an agent is recognised from its model calls).
    assert!(
        !is_sampled_out(tls_connects[0]) && !is_sampled_out(plain_connects[0]),
        "first connections: {} and {}",
        tls_connects[0],
        plain_connects[0]
    );
    let sampled_out = all.iter().filter(|c| is_sampled_out(c)).count();
    // The other 30, one in two chosen at random: 2 × 2^-30 that all or none were.
    assert!(
        sampled_out > 0 && sampled_out < all.len() - 2,
        "{sampled_out} of {} sampled out",
        all.len()
    );

    // Exactly the kept connections' bodies were captured, TLS plaintext and plain bytes.
    let tls_bytes = egress(captured, pid, "tls");
    let plain_bytes = egress(captured, pid, "socket");
    for (connects, bytes, kind) in [
        (&tls_connects, &tls_bytes, "tls"),
        (&plain_connects, &plain_bytes, "plain"),
    ] {
        for (round, connect) in connects.iter().enumerate() {
            let marker = format!("sample-probe-{kind}-{round:03}");
            assert_eq!(
                contains(bytes, marker.as_bytes()),
                !is_sampled_out(connect),
                "{marker}: {connect}"
            );
        }
    }

    // The sampled-out bytes: counted node-wide, all of them the client's, reported as it
    // exited; about what the kept connections moved, per connection.
    let counted = captured.summary["kernel"]["sampled_out_bytes"]
        .as_u64()
        .unwrap();
    let reports: Vec<&Value> = captured
        .of_kind("payloads_left_out")
        .filter(|e| e["sampled_out_bytes"].as_u64() > Some(0))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["pid"].as_u64(), Some(pid));
    assert_eq!(reports[0]["running"], false);
    assert_eq!(reports[0]["sampled_out_bytes"].as_u64(), Some(counted));
    // Every round moves the same over each kind of connection (the mock's answers differ by
    // a few bytes): what the sampled-out ones would have moved, from what the kept ones did.
    let mut expected = 0.0;
    for (connects, source) in [(&tls_connects, "tls"), (&plain_connects, "socket")] {
        // At least the first connection of each kind is kept.
        let kept = connects.iter().filter(|c| !is_sampled_out(c)).count();
        let sampled = connects.len() - kept;
        expected += moved(captured, pid, source) as f64 / kept as f64 * sampled as f64;
    }
    assert!(
        (counted as f64 - expected).abs() <= expected * 0.1,
        "counted {counted} bytes for the sampled-out connections, the kept ones say {expected}"
    );

    // Reconstruction: one LLM call per kept TLS connection, the sampled-out ones counted.
    let stats = &followed.graph["stats"]["reconstruction"];
    let tls_kept = tls_connects.iter().filter(|c| !is_sampled_out(c)).count();
    assert_eq!(
        stats["llm_calls"].as_u64(),
        Some(tls_kept as u64),
        "{stats:#}"
    );
    assert_eq!(
        stats["connections_sampled_out"].as_u64(),
        Some(sampled_out as u64),
        "{stats:#}"
    );
    let rows = followed.graph["payloads_left_out"].as_array().unwrap();
    assert!(
        rows.iter().any(|row| row["pid"].as_u64() == Some(pid)
            && row["sampled_out_bytes"].as_u64() == Some(counted)),
        "{rows:?}"
    );

    // A replay of the recording says the same.
    let (coverage, text) = replayed_coverage(&run.recording);
    assert_eq!(
        coverage["connections_sampled_out"].as_u64(),
        Some(sampled_out as u64),
        "{coverage:#}"
    );
    let row = coverage["payloads_left_out"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["pid"].as_u64() == Some(pid))
        .unwrap_or_else(|| panic!("no row of the client: {coverage:#}"));
    assert_eq!(row["sampled_out_bytes"].as_u64(), Some(counted), "{row}");
    assert!(
        text.contains("SAMPLED OUT")
            && text.contains(&format!("{counted} bytes"))
            && text.contains(&format!("{sampled_out} connections sampled out")),
        "{text}"
    );
}

#[test]
fn by_default_no_connection_is_sampled_out() {
    require_root();
    let run = run(&[]);
    let captured = &run.followed.captured;
    let pid = u64::from(run.followed.pid);
    let connects: Vec<&Value> = connects_to(captured, pid, run.llm_port)
        .into_iter()
        .chain(connects_to(captured, pid, run.api_port))
        .collect();
    assert_eq!(connects.len(), 2 * ROUNDS);
    assert!(connects.iter().all(|c| !is_sampled_out(c)), "{connects:?}");
    assert_eq!(captured.summary["kernel"]["sampled_out_bytes"], 0);
    let tls_bytes = egress(captured, pid, "tls");
    for round in 0..ROUNDS {
        let marker = format!("sample-probe-tls-{round:03}");
        assert!(contains(&tls_bytes, marker.as_bytes()), "{marker}");
    }
}
