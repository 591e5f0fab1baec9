//! What the overhead benches share: a long-lived workload process that runs N round trips per
//! line on its stdin and answers with the nanoseconds they took, and `agentscope collect`
//! following some pids with its events discarded (tls_probe_overhead,
//! socket_payload_overhead).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// A workload process that runs round trips on request.
pub struct Loop {
    pub child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Loop {
    pub fn start(command: &mut Command) -> Loop {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the workload loop");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the workload loop did not start");
        Loop {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs `n` round trips; the time the loop itself measured.
    pub fn run(&mut self, n: u64) -> Duration {
        writeln!(self.stdin, "{n}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        Duration::from_nanos(line.trim().parse().expect("elapsed ns"))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agentscope collect` following some pids, its events discarded.
pub struct Collector(Child);

impl Collector {
    pub fn follow(pids: &[u32]) -> Collector {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentscope"));
        command.args(["collect", "--json", "--ready-message", "--no-kubernetes"]);
        for pid in pids {
            command.args(["--pid", &pid.to_string()]);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentscope collect");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(
            line.contains("collecting"),
            "collector did not start: {line}"
        );
        std::thread::spawn(move || {
            let mut rest = String::new();
            while stderr.read_line(&mut rest).unwrap_or(0) > 0 {
                rest.clear();
            }
        });
        Collector(child)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}
