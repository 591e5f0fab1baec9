//! End to end, privileged: `agentscope collect --record` against a real workload, then the
//! unprivileged capture tools on what it wrote. A collector killed with SIGKILL leaves a file
//! that reads back up to its last sync; rotation keeps the newest files, each replayable on
//! its own; `cap info`, `cap verify` and `cap slice` work on real captures. Read-only opens of
//! runtime noise are left out in the kernel and counted, and nothing else is; with
//! `--keep-runtime-noise` every open is sent.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::*;

/// A shell that opens a file and execs `cat` every 50 ms for a few seconds: steady events.
fn steady_workload(dir: &Path, rounds: u32) -> Paused {
    let script = format!(
        "i=0; while [ $i -lt {rounds} ]; do cat /etc/hostname > /dev/null; i=$((i+1)); \
         sleep 0.05; done"
    );
    Paused::command(dir, "/bin/sh", &["-c", &script], &[])
}

fn agentscope(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["kind"] != "summary")
        .collect()
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn a_killed_collector_leaves_a_capture_that_reads_back_to_its_last_sync() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("killed.cap");
    let workload = steady_workload(dir.path(), 200);
    let pid = workload.pid().to_string();
    let Collect {
        child: mut collector,
        stdout_path: stdout,
        ..
    } = Collect::start(
        dir.path(),
        &["--pid", &pid, "--record", cap.to_str().unwrap()],
    );
    workload.release();
    std::thread::sleep(Duration::from_secs(4));
    let killed_at = now_unix_ns();
    collector.kill().unwrap();
    collector.wait().unwrap();
    let printed = json_lines(&std::fs::read_to_string(&stdout).unwrap());
    assert!(
        printed.len() > 50,
        "the workload made events: {}",
        printed.len()
    );

    // verify names the missing trailer and exits 1; info and replay still work.
    let (ok, report, _) = agentscope(&["cap", "verify", cap.to_str().unwrap()]);
    assert!(!ok, "a file without trailer is reported: {report}");
    assert!(report.contains("no index trailer"), "{report}");
    let (ok, info, err) = agentscope(&["cap", "info", "-o", "json", cap.to_str().unwrap()]);
    assert!(ok, "{err}");
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["index"], "scan");
    let (ok, replayed, err) = agentscope(&["replay", "--json", cap.to_str().unwrap()]);
    assert!(ok, "{err}");
    let replayed = json_lines(&replayed);

    // What was recovered is exactly what the collector saw first, in order.
    assert!(!replayed.is_empty());
    assert_eq!(replayed[..], printed[..replayed.len()]);
    // And nothing older than the sync interval (1 s) plus the flush timer is missing: allow
    // 2 s for scheduling on a loaded machine.
    let synced_before = killed_at - 2_000_000_000;
    let must_have = printed
        .iter()
        .filter(|e| e["time_unix_ns"].as_u64().unwrap() < synced_before)
        .count();
    assert!(
        replayed.len() >= must_have,
        "{} events recovered, {must_have} were older than 2 s at the kill",
        replayed.len()
    );
    let mode = std::fs::metadata(&cap).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    let _ = workload.output();
}

#[test]
fn rotation_by_size_and_count_and_the_capture_tools_on_a_real_capture() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("rotated.cap");
    // How many events a round makes depends on the environment: under `cargo test`, whose
    // LD_LIBRARY_PATH has the dynamic loader try several directories per library, each exec
    // opens about 100 files; run directly (scripts/e2e-beside-clippy.sh), about 30. 60 rounds
    // run directly fit in two 64 KiB files (the smallest size allowed) and nothing was
    // deleted; 150 rounds fill at least three either way. Those counts include the loader's
    // opens of the runtime's libraries, which the kernel now leaves out by default (1,202
    // events in one file without them): `--keep-runtime-noise` keeps this test about rotation.
    let workload = steady_workload(dir.path(), 150);
    let pid = workload.pid().to_string();
    let Collect {
        child: mut collector,
        ..
    } = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid,
            "--quiet",
            "--keep-runtime-noise",
            "--record",
            base.to_str().unwrap(),
            "--record-max-size",
            "64K",
            "--record-max-files",
            "2",
        ],
    );
    workload.release();
    workload.finish();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(collector.id() as i32, libc::SIGTERM) };
    assert!(collector.wait().unwrap().success());

    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cap"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "two newest files kept: {files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("rotated.") && name.len() == "rotated.000000.cap".len(),
            "{name}"
        );
        let (ok, report, _) = agentscope(&["cap", "verify", file.to_str().unwrap()]);
        assert!(ok, "{report}");
        let (ok, _, err) = agentscope(&["replay", "--quiet", file.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    assert_ne!(
        files[0].file_name().unwrap(),
        "rotated.000000.cap",
        "the first file was deleted by rotation"
    );

    // Slice the first half of the newest file; the slice verifies and holds fewer events.
    let newest = files.last().unwrap();
    let (_, info, _) = agentscope(&["cap", "info", "-o", "json", newest.to_str().unwrap()]);
    let info: Value = serde_json::from_str(&info).unwrap();
    let events = info["events"].as_u64().unwrap();
    assert!(events > 0);
    let half_ns = (info["duration_s"].as_f64().unwrap() * 1e9 / 2.0) as u64;
    let to = format!("+{half_ns}ns");
    let slice = dir.path().join("slice.out");
    let (ok, _, err) = agentscope(&[
        "cap",
        "slice",
        newest.to_str().unwrap(),
        "--from",
        "+0s",
        "--to",
        &to,
        "-w",
        slice.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, report, _) = agentscope(&["cap", "verify", slice.to_str().unwrap()]);
    assert!(ok, "{report}");
    let (_, sliced, _) = agentscope(&["cap", "info", "-o", "json", slice.to_str().unwrap()]);
    let sliced: Value = serde_json::from_str(&sliced).unwrap();
    let kept = sliced["events"].as_u64().unwrap();
    assert!(kept > 0 && kept < events, "{kept} of {events}");
    assert!(
        sliced["duration_s"].as_f64().unwrap() * 1e9 <= half_ns as f64,
        "{} s",
        sliced["duration_s"]
    );
}

#[test]
fn bad_capture_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a capture").unwrap();
    let (ok, _, err) = agentscope(&["replay", text.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is not an agentscope capture"), "{err}");
    let (ok, _, err) = agentscope(&["cap", "info", "/nonexistent/x.cap"]);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent/x.cap"), "{err}");
}

#[test]
fn a_recording_is_never_written_through_a_planted_link_and_is_private() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "not yours").unwrap();
    let planted = dir.path().join("planted.cap");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let me = std::process::id().to_string();
    let (ok, _, err) = agentscope(&[
        "collect",
        "--pid",
        &me,
        "--quiet",
        "--duration",
        "1",
        "--record",
        planted.to_str().unwrap(),
    ]);
    assert!(!ok, "recording through a link is refused");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours");

    // An existing file is replaced by a private recording; rotated files are private too.
    let existing = dir.path().join("old.cap");
    std::fs::write(&existing, "old").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    for extra in [&[][..], &["--record-max-size", "64K"][..]] {
        let mut args = vec![
            "collect",
            "--pid",
            &me,
            "--quiet",
            "--duration",
            "1",
            "--record",
            existing.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = agentscope(&args);
        assert!(ok, "{err}");
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cap") && !path.is_symlink() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
    }
}

/// An open as `collect --json` printed it: path, whether it was cut, flags, return value.
type PrintedOpen = (String, bool, i64, i64);

/// Every open the collector printed, in order.
fn printed_opens(captured: &Captured) -> Vec<PrintedOpen> {
    captured
        .of_kind("open")
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["path_truncated"].as_bool().unwrap(),
                e["flags"].as_i64().unwrap(),
                e["ret"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// What the kernel programs leave out (collector-ebpf `files.rs`): a read-only open that
/// succeeded or found nothing, of a whole (not cut) path `noise_paths` calls runtime noise.
fn is_runtime_noise((path, truncated, flags, ret): &PrintedOpen) -> bool {
    let read_only = flags & (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) as i64 == 0;
    let found_or_missing = *ret >= 0 || *ret == -(libc::ENOENT as i64);
    read_only
        && found_or_missing
        && !truncated
        && agentscope_common::noise_paths::is_droppable(path.as_bytes())
}

/// A Python program importing much of its standard library (as an agent starting does) and a
/// package, reading a secret, its own file and a time zone, opening a time zone read-write and a
/// missing locale file, watched by two collectors at once: one as it runs by default, one with
/// `--keep-runtime-noise`. The second sends every open and counts none left out. The first
/// sends exactly the second's opens but the read-only opens of runtime noise, in the same
/// order, and counts exactly as many left out as the second sent: the secret, the application
/// file, the package and libssl opens (the AI-BOM and the TLS probes need them) and the
/// read-write open arrive, the time zone's read and the missing locale do not.
#[test]
fn runtime_noise_is_left_out_in_the_kernel_and_counted_unless_kept() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join(".env");
    std::fs::write(&secret, "OPENAI_API_KEY=sk-test\n").unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "the application's own data\n").unwrap();
    let missing_locale = "/usr/lib/locale/agentscope-no-such-locale";
    let script = format!(
        r#"
import os, sys
import json, email.mime.multipart, http.client, asyncio, decimal, ssl, xml.dom.minidom, logging.handlers
import pip
open({secret:?}).read()
open({notes:?}).read()
open("/usr/share/zoneinfo/UTC", "rb").read()
os.close(os.open("/usr/share/zoneinfo/UTC", os.O_RDWR))
try:
    open({missing_locale:?}, "rb")
except FileNotFoundError:
    pass
print(pip.__file__)
"#
    );
    let python = python_interpreter();
    let workload = Paused::command(dir.path(), &python, &["-c", &script], &[]);
    let pid = workload.pid();
    let filtering = Collect::start(dir.path(), &["--pid", &pid.to_string()]);
    let keeping = Collect::start(
        dir.path(),
        &["--pid", &pid.to_string(), "--keep-runtime-noise"],
    );
    workload.release();
    let pip_file = workload.finish();
    filtering.wait_exit_printed(pid, Duration::from_secs(60));
    keeping.wait_exit_printed(pid, Duration::from_secs(60));
    let filtered_run = filtering.stop();
    let kept_run = keeping.stop();
    for run in [&filtered_run, &kept_run] {
        // A record lost to a full ring would make the comparison below say nothing.
        assert_eq!(run.summary["kernel"]["dropped"], 0, "{}", run.summary);
    }
    let counted = |run: &Captured| run.summary["kernel"]["noise_opens_filtered"].as_u64();

    // Switched off: every open arrives, the noise too, and none is counted.
    let kept = printed_opens(&kept_run);
    assert_eq!(counted(&kept_run), Some(0), "{}", kept_run.summary);
    let noise: Vec<&PrintedOpen> = kept.iter().filter(|o| is_runtime_noise(o)).collect();
    // The standard library's modules and the interpreter's libraries: hundreds of opens.
    assert!(
        noise.len() > 100,
        "only {} noise opens with --keep-runtime-noise: {kept:#?}",
        noise.len()
    );
    let opened = |opens: &[PrintedOpen], path: &str| -> Vec<PrintedOpen> {
        opens.iter().filter(|o| o.0 == path).cloned().collect()
    };
    assert_eq!(
        opened(&kept, "/usr/share/zoneinfo/UTC").len(),
        2,
        "{kept:#?}"
    );
    assert_eq!(opened(&kept, missing_locale).len(), 1, "{kept:#?}");

    // By default: exactly the noise is left out, and counted.
    let sent = printed_opens(&filtered_run);
    let expected: Vec<PrintedOpen> = kept
        .iter()
        .filter(|o| !is_runtime_noise(o))
        .cloned()
        .collect();
    if sent != expected {
        let at = sent
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(sent.len().min(expected.len()));
        panic!(
            "the default collector sends every open but the runtime noise: {} sent, {} \
             expected; first difference at {at}: sent {:?}, expected {:?}",
            sent.len(),
            expected.len(),
            sent.get(at),
            expected.get(at)
        );
    }
    assert_eq!(
        counted(&filtered_run),
        Some(noise.len() as u64),
        "every open left out is counted, and nothing else: {}",
        filtered_run.summary
    );
    let sent_path = |path: &str| !opened(&sent, path).is_empty();
    assert!(
        sent_path(secret.to_str().unwrap()),
        "the secret's open is sent"
    );
    assert!(
        sent_path(notes.to_str().unwrap()),
        "the application file's open is sent"
    );
    let package_dir = pip_file.trim().trim_end_matches("__init__.py");
    assert!(
        sent.iter().any(|(p, ..)| p.starts_with(package_dir)),
        "the package's opens (under {package_dir}) are sent: {sent:#?}"
    );
    assert!(
        sent.iter()
            .any(|(p, _, _, ret)| p.contains("libssl") && *ret >= 0),
        "libssl's open is sent (TLS probes): {sent:#?}"
    );
    let zone = opened(&sent, "/usr/share/zoneinfo/UTC");
    assert_eq!(
        zone.len(),
        1,
        "only the read-write open of UTC is sent: {zone:?}"
    );
    assert_eq!(zone[0].2 & libc::O_ACCMODE as i64, libc::O_RDWR as i64);
    assert!(
        !sent_path(missing_locale),
        "the missing locale file is noise"
    );
}
