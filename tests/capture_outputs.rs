//! Unprivileged, through the real `agentscope` binary: what the capture tools do with hostile
//! or unlucky paths and damaged files. No output ever replaces an input (hard links and
//! symbolic links included) or follows a link planted at its name, and every output is
//! created 0600; a FIFO or a directory given as an input is named in one line, never waited
//! on; `cap info`, `cap verify` and `replay` report the same counts on the same damaged file.
//! Works on the committed recordings (recordings/), so it needs no root.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::BIN;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs agentscope; a run that does not end within a minute is a hang (a FIFO waited on, a
/// quadratic scan), reported as such rather than blocking the suite.
fn agentscope(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("agentscope {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        ok: status.success(),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    }
}

fn recording() -> PathBuf {
    Path::new(env!("AGENTSCOPE_REPO")).join("recordings/ordinary.cap")
}

/// A private copy of the committed recording.
fn copy_of_recording(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(recording(), &path).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn no_output_replaces_an_input_through_a_hard_link_or_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_of_recording(dir.path(), "in.cap");
    let original = std::fs::read(&input).unwrap();
    let hard = dir.path().join("hard.cap");
    std::fs::hard_link(&input, &hard).unwrap();
    let soft = dir.path().join("soft.cap");
    std::os::unix::fs::symlink(&input, &soft).unwrap();
    for output in [&input, &hard, &soft] {
        let run = agentscope(&["cap", "slice", s(&input), "-w", s(output)]);
        assert!(!run.ok, "slice onto {}: {}", output.display(), run.stderr);
        assert!(run.stderr.contains("refusing"), "{}", run.stderr);
        let run = agentscope(&["replay", s(&input), "--graph-json", s(output)]);
        assert!(!run.ok, "graph onto {}: {}", output.display(), run.stderr);
        assert!(run.stderr.contains("refusing"), "{}", run.stderr);
        let run = agentscope(&[
            "baseline",
            "export",
            "--capture",
            s(&input),
            "--agent",
            "x",
            "-w",
            s(output),
        ]);
        assert!(!run.ok);
        assert_eq!(
            std::fs::read(&input).unwrap(),
            original,
            "the input is intact"
        );
    }
    // The input was read through the link, and is still a capture that verifies.
    assert!(agentscope(&["cap", "verify", s(&input)]).ok);
    // Nothing else was left in the directory (no temporary files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn a_symlink_planted_at_the_output_is_refused_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    let planted = dir.path().join("graph.json");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let run = agentscope(&[
        "replay",
        "--quiet",
        s(&recording()),
        "--graph-json",
        s(&planted),
    ]);
    assert!(!run.ok);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    let planted_cap = dir.path().join("slice.cap");
    std::os::unix::fs::symlink(&victim, &planted_cap).unwrap();
    let run = agentscope(&["cap", "slice", s(&recording()), "-w", s(&planted_cap)]);
    assert!(!run.ok);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
}

#[test]
fn every_output_is_created_0600_and_replaces_an_old_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.json");
    std::fs::write(&graph, "old").unwrap();
    std::fs::set_permissions(&graph, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = agentscope(&[
        "replay",
        "--quiet",
        s(&recording()),
        "--graph-json",
        s(&graph),
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(mode(&graph), 0o600);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&graph).unwrap()).unwrap();
    assert!(value["agents"].is_array());

    let slice = dir.path().join("slice.cap");
    let run = agentscope(&["cap", "slice", s(&recording()), "-w", s(&slice)]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(mode(&slice), 0o600);
    assert!(agentscope(&["cap", "verify", s(&slice)]).ok);

    let agent = value["agents"][0]["key"].as_str().unwrap().to_string();
    let baseline = dir.path().join("baseline.yaml");
    let run = agentscope(&[
        "baseline",
        "export",
        "--capture",
        s(&recording()),
        "--agent",
        &agent,
        "-w",
        s(&baseline),
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(mode(&baseline), 0o600);
    // Only the outputs: no temporary file stayed behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn a_fifo_or_a_directory_as_input_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = dir.path().join("out.cap");
    for (input, kind) in [
        (&fifo, "a FIFO"),
        (&dir.path().to_path_buf(), "a directory"),
    ] {
        let commands: [Vec<&str>; 6] = [
            vec!["cap", "info", s(input)],
            vec!["cap", "verify", s(input)],
            vec!["cap", "slice", s(input), "-w", s(&out)],
            vec!["replay", s(input)],
            vec!["baseline", "export", "--capture", s(input), "-w", s(&out)],
            vec!["baseline", "export", "--events", s(input), "-w", s(&out)],
        ];
        for args in commands {
            let run = agentscope(&args);
            assert!(!run.ok, "{args:?}");
            let text = run.stderr.trim_end();
            assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
            assert!(
                text.ends_with(&format!("is {kind}, not a capture file"))
                    || text.ends_with(&format!("is {kind}, not a JSON-lines event file")),
                "{args:?}: {text}"
            );
        }
    }
    let missing = dir.path().join("missing.cap");
    let run = agentscope(&["cap", "info", s(&missing)]);
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "the OS error once: {}",
        run.stderr
    );
    assert!(!out.exists());
}

/// Events and damaged places as `cap info -o json`, `cap verify` and `replay` report them.
fn three_reports(path: &Path) -> [(u64, usize); 3] {
    let info = agentscope(&["cap", "info", "-o", "json", s(path)]);
    assert!(info.ok, "{}", info.stderr);
    let info: Value = serde_json::from_str(&info.stdout).unwrap();
    let info = (
        info["events"].as_u64().unwrap(),
        info["damage"].as_array().unwrap().len(),
    );
    let verify = agentscope(&["cap", "verify", s(path)]);
    // "...: ok (N blocks, M events, ...)" or "...: DAMAGED in K places (N intact blocks, M
    // events recovered):"
    let first_line: Vec<&str> = verify.stdout.lines().next().unwrap().split(' ').collect();
    let events = first_line
        .windows(2)
        .find(|w| w[1].starts_with("events"))
        .unwrap_or_else(|| panic!("{}", verify.stdout))[0]
        .parse()
        .unwrap();
    let places = verify
        .stdout
        .split_once("DAMAGED in ")
        .map_or(0, |(_, rest)| {
            rest.split(' ').next().unwrap().parse::<usize>().unwrap()
        });
    assert_eq!(places == 0, verify.ok, "{}", verify.stdout);
    let replay = agentscope(&["replay", s(path)]);
    assert!(replay.ok, "{}", replay.stderr);
    let replayed = replay
        .stderr
        .split_once("replayed ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let skipped = replay.stderr.matches("damaged, skipped").count();
    [info, (events, places), (replayed, skipped)]
}

#[test]
fn info_verify_and_replay_agree_on_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(recording()).unwrap();
    let [intact, ..] = three_reports(&recording());
    assert_eq!(intact.1, 0);
    let total = intact.0;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    // Two captures end to end: the trailer at the end describes the second one only.
    let mut twice = bytes.clone();
    twice.extend_from_slice(&bytes);
    let reports = three_reports(&write("twice.cap", &twice));
    assert!(reports.iter().all(|r| *r == reports[0]), "{reports:?}");
    assert_eq!(reports[0].0, 2 * total, "both halves are recovered");

    // Bytes inserted after the header: nothing is lost but the inserted stretch.
    let header_end = 8 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut inserted = bytes[..header_end].to_vec();
    inserted.extend_from_slice(b"inserted by an unlucky copy");
    inserted.extend_from_slice(&bytes[header_end..]);
    let reports = three_reports(&write("inserted.cap", &inserted));
    assert!(reports.iter().all(|r| *r == reports[0]), "{reports:?}");
    assert_eq!(reports[0].0, total);

    // Bit flips across the file, and a cut.
    for at in (header_end..bytes.len()).step_by(bytes.len() / 7) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x08;
        let reports = three_reports(&write("flipped.cap", &flipped));
        assert!(
            reports.iter().all(|r| *r == reports[0]),
            "flip at {at}: {reports:?}"
        );
        assert!(reports[0].1 > 0, "flip at {at} is reported");
    }
    let cut = write("cut.cap", &bytes[..bytes.len() / 2]);
    let reports = three_reports(&cut);
    assert!(reports.iter().all(|r| *r == reports[0]), "{reports:?}");
    let replay = agentscope(&["replay", s(&cut)]);
    assert!(replay.stderr.contains("was cut short"), "{}", replay.stderr);
}

#[test]
fn a_file_of_fake_block_headers_is_scanned_not_hung_on() {
    // Fake events blocks of 2 MiB every 8 bytes, both lengths agreeing, CRCs wrong: the old
    // resync hashed 2 MiB at each of 256 Ki offsets (512 GiB) and never finished.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(recording()).unwrap();
    let header_end = 8 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut crafted = bytes[..header_end].to_vec();
    while crafted.len() < 4 << 20 {
        crafted.extend_from_slice(&2u32.to_le_bytes());
        crafted.extend_from_slice(&(2u32 << 20).to_le_bytes());
    }
    let path = dir.path().join("crafted.cap");
    std::fs::write(&path, &crafted).unwrap();
    let info = agentscope(&["cap", "info", "-o", "json", s(&path)]);
    assert!(info.ok, "{}", info.stderr);
    let info: Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(info["events"], 0);
    assert_eq!(info["index"], "scan");
}
