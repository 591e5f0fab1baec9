//! The hostile-node acceptance test (issue 12): the node collector runs for a minute while local
//! processes try to make it run away, grow without bound, or leak a secret, all at once:
//!
//! - a full-speed JSON writer on a pipe (keeps the ring buffer full),
//! - 64 connections each sending most of a declared 32 MiB HTTP body and then holding,
//! - a streamed LLM response with a million tool calls,
//! - a client sending credentials of every family one byte per write, and execs with secrets
//!   in their argv.
//!
//! The collector watches the whole node (no `--pid`), prints `--json` into a pipe read by a
//! separate process (as a log shipper would: that reader must never be captured back), records
//! to a `.cap` and writes `--graph-json`. The test asserts that its resident memory stays under
//! the budget it set plus the fixed overhead the README states, that SIGTERM stops it within a
//! second with the summary printed, that the recording verifies, and that no secret appears in
//! any output.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// What the collector is told it may hold (`--memory-budget`).
const BUDGET_MIB: u64 = 64;
/// The kernel ring buffer (`--ring-buffer-kib`), in MiB.
const RING_MIB: u64 = 16;
/// The bound README.md states ("Memory"): the budget, the ring buffer twice (the kernel maps
/// its pages twice and both mappings count in RSS once touched), and 48 MiB of fixed overhead
/// (program pages, heap outside the pipeline, allocator slack).
const RSS_LIMIT_MIB: u64 = BUDGET_MIB + 2 * RING_MIB + 48;
/// How long the adversaries run.
const ADVERSARY_SECONDS: u64 = 50;

/// This run's mark in every secret: the collector watches the whole node, where other processes
/// may handle the secrets' fixed names (this file's text on a pipe, a commit message quoting a
/// leak), and only bytes the test's own carriers sent hold the mark.
fn run_mark() -> &'static str {
    static MARK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARK.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mixed = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
        // Letters and digits only: a mark changes no secret's shape.
        format!("{mixed:x}").chars().rev().take(8).collect()
    })
}

/// `text` with this run's mark after every `S3cr3t`.
fn marked(text: &str) -> String {
    text.replace("S3cr3t", &format!("S3cr3t{}", run_mark()))
}

/// One secret per family the redaction policy covers (docs/redaction.md), each unique so a leak
/// names its family, and marked with this run's mark.
fn secrets() -> Vec<String> {
    [
        "QryApiKeyS3cr3t01",
        "BearerTokS3cr3t02",
        "CookieSessS3cr3t03",
        "AmzSecTokS3cr3t04",
        "VaultTokS3cr3t05",
        "FormPassS3cr3t06",
        "ClientSecS3cr3t07",
        "EnvApiKeyS3cr3t08",
        "PasswdJsonS3cr3t09",
        "AwsSecretS3cr3t10",
        "DsnPassS3cr3t11",
        "PgWirePassS3cr3t12",
        "AlterUserS3cr3t13",
        "ArgvPassS3cr3t14",
        "ArgvDsnS3cr3t15",
        "ArgvCurlS3cr3t16",
        "XAuthTokS3cr3t17",
        "PrivTokS3cr3t18",
        "SubKeyS3cr3t19",
        "AmzSigS3cr3t20",
        "RedisDsnS3cr3t21",
        "MysqlArgvS3cr3t22",
        "EnvArgvS3cr3t23",
    ]
    .into_iter()
    .map(marked)
    .collect()
}

/// Requests that carry the secrets above, sent byte by byte to a sink.
fn carriers() -> Vec<String> {
    let json_body = &marked(
        r#"{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"deploy","arguments":"{\"OPENAI_API_KEY\":\"EnvApiKeyS3cr3t08\",\"passwd\":\"PasswdJsonS3cr3t09\"}"}}]}],"aws_secret_access_key":"AwsSecretS3cr3t10","dsn":"postgresql://app:DsnPassS3cr3t11@db.internal:5432/crm","cache":"redis://:RedisDsnS3cr3t21@cache:6379/0"}"#,
    );
    let form = &marked("user=ada&password=FormPassS3cr3t06&client_secret=ClientSecS3cr3t07");
    let sql = &marked("ALTER USER app WITH PASSWORD 'AlterUserS3cr3t13';");
    // A PostgreSQL StartupMessage (protocol 3.0, user=app) then a cleartext PasswordMessage.
    let startup_params = "user\0app\0database\0crm\0\0";
    let mut startup = Vec::new();
    startup.extend_from_slice(&((8 + startup_params.len()) as u32).to_be_bytes());
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(startup_params.as_bytes());
    let password = &marked("PgWirePassS3cr3t12\0");
    startup.push(b'p');
    startup.extend_from_slice(&((4 + password.len()) as u32).to_be_bytes());
    startup.extend_from_slice(password.as_bytes());
    let pg: String = startup.iter().map(|&b| b as char).collect();
    vec![
        marked(
            "GET /v1/models?api_key=QryApiKeyS3cr3t01&limit=5 HTTP/1.1\r\nHost: api.internal\r\n\
         Authorization: Bearer BearerTokS3cr3t02\r\nCookie: theme=dark; session=CookieSessS3cr3t03\r\n\
         X-Amz-Security-Token: AmzSecTokS3cr3t04\r\nX-Vault-Token: VaultTokS3cr3t05\r\n\
         X-Auth-Token: XAuthTokS3cr3t17\r\nPrivate-Token: PrivTokS3cr3t18\r\n\
         Ocp-Apim-Subscription-Key: SubKeyS3cr3t19\r\n\r\n",
        ),
        marked(
            "GET /bucket/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=AmzSigS3cr3t20 \
         HTTP/1.1\r\nHost: s3.internal\r\n\r\n",
        ),
        format!(
            "POST /oauth/token HTTP/1.1\r\nHost: api.internal\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: api.internal\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json_body}",
            json_body.len()
        ),
        pg,
        // A simple-query message carrying the ALTER USER statement.
        {
            let mut q = vec![b'Q'];
            q.extend_from_slice(&((4 + sql.len() + 1) as u32).to_be_bytes());
            q.extend_from_slice(sql.as_bytes());
            q.push(0);
            q.iter().map(|&b| b as char).collect()
        },
    ]
}

fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn adversary(dir: &Path, mode: &str, extra: &[&str]) -> Background {
    let ready = dir.join(format!("{mode}.ready"));
    let child = Command::new(python_interpreter())
        .arg(agents_dir().join("hostile.py"))
        .arg(mode)
        .args([
            "--seconds",
            &ADVERSARY_SECONDS.to_string(),
            "--ready-file",
            ready.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("start adversary");
    let child = Background(child);
    wait_for_file(&ready, mode);
    child
}

/// Runs the output scanner over `lines` and returns its report.
fn scan_lines(dir: &Path, secrets_file: &Path, lines: &str) -> Value {
    use std::io::Write as _;
    let report = dir.join("self-check-report.json");
    let mut scanner = Command::new(python_interpreter())
        .arg(agents_dir().join("output_scanner.py"))
        .args(["--secrets", secrets_file.to_str().unwrap()])
        .args(["--report", report.to_str().unwrap()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start the output scanner");
    scanner
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(
        scanner.wait().unwrap().success(),
        "the output scanner failed"
    );
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

/// The recording search finds what it looks for: a secret recorded one byte per payload event
/// (interleaved with another stream) and one in an event's fields, in a recording written by
/// the real recorder.
fn check_the_recording_search_finds_planted_secrets(dir: &Path) {
    use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
    use agentscope_analysis::pipeline::Pipeline;
    use agentscope_capture::capture::{CaptureMetadata, Recorder, RecorderOptions};
    use agentscope_event::event::{Direction, Event, EventBody, Header, PayloadSource};
    use agentscope_reconstruct::ReconstructOptions;

    let header = |pid: u32, ts_ns: u64, comm: &str| Header {
        ts_ns,
        time_unix_ns: 1_800_000_000_000_000_000 + ts_ns,
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        gid: 0,
        cgroup_id: 1,
        comm: comm.into(),
    };
    let byte = |pid: u32, ts_ns: u64, data: &[u8]| Event {
        header: header(pid, ts_ns, "python3"),
        body: EventBody::whole_call(
            PayloadSource::Socket,
            Direction::Egress,
            5,
            0,
            ts_ns,
            data.to_vec(),
        ),
    };
    let secrets = secrets();
    let [split, in_field] = [secrets[0].as_str(), secrets[1].as_str()];
    let mut events: Vec<Event> = Vec::new();
    for (i, b) in split.bytes().enumerate() {
        events.push(byte(100, 1_000 + 2 * i as u64, &[b]));
        events.push(byte(200, 1_001 + 2 * i as u64, b"x"));
    }
    events.push(Event {
        header: header(300, 5_000, in_field),
        body: EventBody::Close { fd: 3 },
    });
    let cap = dir.join("planted.cap");
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let mut recorder = Recorder::start(
        RecorderOptions::new(cap.clone(), CaptureMetadata::default()),
        &mut pipeline,
    )
    .unwrap();
    for event in &events {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    recorder.finish(&mut pipeline).unwrap();
    let found = support::recording_secrets::find_secrets(&cap, &secrets).found;
    assert_eq!(
        found,
        [split, in_field].iter().map(|s| s.to_string()).collect(),
        "the recording search missed planted secrets"
    );
}

/// The scanner is what makes "no secret in any output" an assertion that can fail: it must find
/// a secret in a line's text and one split across two payload events of a stream.
fn check_the_scanner_finds_planted_secrets(dir: &Path, secrets_file: &Path) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let data = |text: &str| {
        serde_json::json!({"kind": "data", "pid": 7, "source": "pipe", "direction": "egress",
            "fd": 3, "data_b64": b64(text)})
        .to_string()
    };
    // This run's secrets (the scanner looks for those), the second split across two events.
    let (bearer, vault) = (marked("BearerTokS3cr3t02"), marked("VaultTokS3cr3t05"));
    let planted = format!(
        "{}\n{}\n{}\n{}\n",
        serde_json::json!({"kind": "exec", "argv": format!("x {bearer} y")}),
        data(&format!("abc {}", &vault[..10])),
        data(&format!("{} xyz", &vault[10..])),
        data("nothing here"),
    );
    let report = scan_lines(dir, secrets_file, &planted);
    assert_eq!(
        report["leaks"],
        serde_json::json!([bearer, vault]),
        "the output scanner misses planted secrets, so it could not catch a leak"
    );
    // And it says where: the exec line's text, and the data line that completed the secret.
    let evidence = &report["leak_evidence"];
    assert_eq!(evidence[&bearer]["line"], 1, "{evidence:#}");
    assert_eq!(evidence[&bearer]["found_in"], "line text");
    assert_eq!(evidence[&vault]["line"], 3, "{evidence:#}");
    assert_eq!(evidence[&vault]["found_in"], "stream joined across events");
}

#[test]
fn a_hostile_node_cannot_make_the_collector_run_away_grow_or_leak() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Where the test's time goes, printed as it goes (CI logs show it; DEVELOPERS.md). Written
    // to the stderr handle itself: libtest captures `eprintln!` of a passing test, which left CI
    // logs without these lines.
    let test_started = Instant::now();
    let phase = |what: &str| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "hostile node: {what} at {:.1} s",
            test_started.elapsed().as_secs_f64()
        );
    };
    let secrets_file = dir.join("secrets.json");
    std::fs::write(&secrets_file, serde_json::to_string(&secrets()).unwrap()).unwrap();
    let carriers_file = dir.join("carriers.json");
    std::fs::write(&carriers_file, serde_json::to_string(&carriers()).unwrap()).unwrap();
    check_the_scanner_finds_planted_secrets(dir, &secrets_file);
    check_the_recording_search_finds_planted_secrets(dir);
    phase("scanner checked");
    let capture = dir.join("hostile.cap");
    let graph = dir.join("hostile.graph.json");
    let report = dir.join("stdout-report.json");

    // Stopped if the test fails before it does: a node-wide collector left running would
    // capture every test after it.
    let mut collector = StopOnDrop(
        Command::new(BIN)
            .args(["collect", "--json", "--ready-message", "--no-kubernetes"])
            .args(["--memory-budget", &format!("{BUDGET_MIB}M")])
            .args(["--ring-buffer-kib", &(RING_MIB * 1024).to_string()])
            .args(["--record", capture.to_str().unwrap()])
            .args(["--graph-json", graph.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentscope collect"),
    );
    let collector_pid = collector.id();
    // The reader of the collector's stdout is a separate process, as a log shipper would be.
    let reader = Command::new(python_interpreter())
        .arg(agents_dir().join("output_scanner.py"))
        .args(["--secrets", secrets_file.to_str().unwrap()])
        .args(["--report", report.to_str().unwrap()])
        .stdin(collector.stdout.take().unwrap())
        .spawn()
        .expect("start the output reader");
    let mut reader = Background(reader);
    let stderr = collector.stderr.take().unwrap();
    let stderr_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    {
        let lines = stderr_lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("collecting") {
                    let _ = ready_tx.send(());
                }
                eprintln!("collector: {line}");
                lines.lock().unwrap().push(line);
            }
        });
    }
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the collector did not start");

    phase("collector ready");
    let started = Instant::now();
    let _flood = adversary(dir, "pipe-flood", &[]);
    let _bodies = adversary(dir, "incomplete-bodies", &["--connections", "64"]);
    let _calls = adversary(dir, "huge-tool-call", &["--calls", "1000000"]);
    let _secrets = adversary(
        dir,
        "split-secrets",
        &["--carriers", carriers_file.to_str().unwrap()],
    );
    // Secrets in argv: a DSN, a --password flag, a curl header, a MySQL -p and an environment
    // assignment.
    for _ in 0..3 {
        let status = Command::new("/bin/sh")
            .args(
                [
                    "-c",
                    ": mysql -h db.internal -pMysqlArgvS3cr3t22 -e 'select 1'",
                    "sh",
                    "--password=ArgvPassS3cr3t14",
                    "postgresql://app:ArgvDsnS3cr3t15@db.internal/crm",
                    "-H",
                    "Authorization: Bearer ArgvCurlS3cr3t16",
                    "OPENAI_API_KEY=EnvArgvS3cr3t23",
                ]
                .map(marked),
            )
            .status()
            .unwrap();
        assert!(status.success());
    }

    let mut peak_rss_kib = 0;
    while started.elapsed() < Duration::from_secs(ADVERSARY_SECONDS + 10) {
        let rss = vm_kib(collector_pid, "VmRSS:").expect("the collector died under load");
        peak_rss_kib = peak_rss_kib.max(rss);
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak_rss_kib = peak_rss_kib.max(vm_kib(collector_pid, "VmHWM:").unwrap_or(0));

    // SIGTERM while the adversaries are still at it, if any are: it must take effect within 1 s.
    let _late_flood = adversary(dir, "pipe-flood", &[]);
    std::thread::sleep(Duration::from_secs(2));
    let term_at = Instant::now();
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(collector_pid as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = collector.try_wait().unwrap() {
            break status;
        }
        assert!(
            term_at.elapsed() < Duration::from_secs(30),
            "the collector ignored SIGTERM for 30 s under load"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stop_time = term_at.elapsed();
    eprintln!(
        "hostile node: peak RSS {} MiB (limit {RSS_LIMIT_MIB}), stopped {stop_time:?} after SIGTERM",
        peak_rss_kib / 1024
    );
    assert!(status.success(), "collector exited with {status}");
    assert!(
        stop_time <= Duration::from_secs(1),
        "SIGTERM took {stop_time:?} to stop the collector under load (limit 1 s)"
    );
    assert!(
        peak_rss_kib <= RSS_LIMIT_MIB * 1024,
        "the collector's resident memory reached {} MiB, over the {RSS_LIMIT_MIB} MiB the README \
         states for a {BUDGET_MIB} MiB budget and a {RING_MIB} MiB ring buffer",
        peak_rss_kib / 1024
    );

    // The reader saw the stream end with the summary, and no secret.
    phase("collector stopped");
    let reader_status = reader.0.wait().unwrap();
    phase("output reader done");
    assert!(reader_status.success(), "the output reader failed");
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let last: Value = serde_json::from_str(seen["last"].as_str().unwrap()).unwrap();
    eprintln!(
        "hostile node: {} bytes in {} lines on stdout; summary {}",
        seen["bytes"], seen["lines"], last["summary"]
    );
    assert_eq!(last["kind"], "summary", "the summary was not printed last");
    assert_eq!(
        seen["leaks"],
        serde_json::json!([]),
        "secrets reached --json output; where first: {:#}",
        seen["leak_evidence"]
    );
    let reader_pid = reader.0.id().to_string();
    assert!(
        seen["data_events_by_pid"].get(&reader_pid).is_none(),
        "the reader of the collector's own output was captured: {}",
        seen["data_events_by_pid"]
    );

    // The graph JSON was written, parses, and holds no secret.
    let graph_text = std::fs::read_to_string(&graph).expect("--graph-json was not written");
    let _: Value = serde_json::from_str(&graph_text).expect("graph JSON parses");
    for secret in &secrets() {
        assert!(
            !graph_text.contains(secret.as_str()),
            "{secret} reached the graph JSON"
        );
    }

    // The recording verifies, and replays without any secret.
    phase("graph checked");
    let verify = Command::new(BIN)
        .args(["cap", "verify", capture.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the recording does not verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    phase("recording verified");
    // What the recording keeps (and so what any replay of it prints): no secret, in any
    // payload (joined per stream), field, identity answer or keyframe.
    let recorded = support::recording_secrets::find_secrets(&capture, &secrets());
    assert_eq!(
        recorded.found,
        Default::default(),
        "secrets reached the recording"
    );
    assert!(
        recorded.events > 1000 && recorded.data_events > 0,
        "the recording holds almost nothing: {recorded:?}"
    );
    phase("recording searched for the secrets");
    let stderr_text = stderr_lines.lock().unwrap().join("\n");
    for secret in &secrets() {
        assert!(
            !stderr_text.contains(secret.as_str()),
            "{secret} reached stderr"
        );
    }
}
