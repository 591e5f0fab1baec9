//! Privileged, end to end: a process that names itself (`prctl(PR_SET_NAME)`), its files and
//! its children's argv with terminal escape sequences cannot drive the terminal of whoever
//! reads `agentscope collect`'s text output: the sequences come out escaped and visible.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::BIN;

/// OSC "set the window title" and CSI "clear the screen".
const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J";

const SCRIPT: &str = r#"
import ctypes, os, subprocess, sys, time
hostile, workdir = sys.argv[1], sys.argv[2]
go = os.path.join(workdir, "go")
while not os.path.exists(go):
    time.sleep(0.02)
libc = ctypes.CDLL(None)
libc.prctl(15, hostile.encode(), 0, 0, 0)  # PR_SET_NAME: comm of the following events
open(os.path.join(workdir, hostile), "w").close()
subprocess.run(["/bin/true", hostile], check=True)
open(os.path.join(workdir, "done"), "w").write("done")
time.sleep(30)
"#;

#[test]
fn collect_text_output_holds_no_escape_byte() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().to_str().unwrap().to_string();
    let agent = support::Background(
        Command::new(support::python_interpreter())
            .args(["-c", SCRIPT, HOSTILE, &workdir])
            .spawn()
            .unwrap(),
    );
    let out_path = dir.path().join("collect.txt");
    let mut collector = support::Background(
        Command::new(BIN)
            .args(["collect", "--ready-message", "--no-kubernetes", "--pid"])
            .arg(agent.0.id().to_string())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = std::io::BufReader::new(collector.0.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(
        line.contains("collecting"),
        "collector did not start: {line}"
    );
    std::fs::write(dir.path().join("go"), b"").unwrap();
    support::wait_for_file(&dir.path().join("done"), "the hostile process");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(collector.0.id() as i32, libc::SIGTERM) };
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stderr, &mut rest).unwrap();
    assert!(collector.0.wait().unwrap().success());
    let output = std::fs::read(&out_path).unwrap();
    let text = String::from_utf8_lossy(&output);
    let visible = "\\x1b]0;pwned\\x07\\x1b[2J";
    // The comm (15 bytes at most: the whole sequence fits) and the file name, escaped.
    assert!(
        text.lines()
            .any(|l| l.contains(visible) && l.contains(" open ")),
        "no escaped open line in:\n{text}"
    );
    assert!(
        !output.contains(&0x1b) && !output.contains(&0x07),
        "raw control bytes in collect's text output:\n{text:?}"
    );
    assert!(!rest.contains(&0x1b), "raw ESC on standard error");
}
