//! What the overhead benches share: a long-lived workload process that runs N round trips per
//! line on its stdin and answers with the nanoseconds they took, and `agentscope collect`
//! following some pids with its events discarded (tls_probe_overhead,
//! socket_payload_overhead, enforce_connect).

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
        Loop::start_expecting(command, "ready")
    }

    // Only tls_probe_overhead's rustls loop waits to connect; socket_payload_overhead
    // includes this module too.
    #[allow(dead_code)]
    /// A loop that prints `listening` and connects when told ([`Loop::connect`]): the
    /// rustls loop's `wait-to-connect`, so that a collector started in between sees its
    /// connection (accept, handshake) from the first byte, as the rustls programs need to bind
    /// records to sockets.
    pub fn start_waiting(command: &mut Command) -> Loop {
        Loop::start_expecting(command, "listening")
    }

    #[allow(dead_code)]
    pub fn connect(&mut self) {
        writeln!(self.stdin, "connect").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the workload loop did not connect");
    }

    fn start_expecting(command: &mut Command, first: &str) -> Loop {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the workload loop");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), first, "the workload loop did not start");
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
///
/// The bench never reads the collector's output itself: a process that does is a consumer of
/// it, whatever it writes next carries collector output (the loops' stdin, here), and a loop
/// reading that becomes a consumer too, whose payloads the kernel programs no longer emit, so
/// the probed times would leave out the emission. Its stderr goes to a file that `grep -q`
/// (a consumer that writes nothing) watches for the ready message.
pub struct Collector {
    child: Child,
    _stderr: tempfile::NamedTempFile,
}

impl Collector {
    pub fn follow(pids: &[u32]) -> Collector {
        Self::follow_with(pids, &[])
    }

    /// With further `collect` arguments (`--enforce ...`).
    pub fn follow_with(pids: &[u32], extra: &[String]) -> Collector {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentscope"));
        command.args(["collect", "--json", "--ready-message", "--no-kubernetes"]);
        for pid in pids {
            command.args(["--pid", &pid.to_string()]);
        }
        command.args(extra);
        let mut child = command
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("start agentscope collect");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !Command::new("grep")
            .args(["-q", "agentscope: collecting"])
            .arg(stderr.path())
            .status()
            .expect("grep")
            .success()
        {
            assert!(
                child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline,
                "collector did not start (its stderr: {})",
                stderr.path().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Collector {
            child,
            _stderr: stderr,
        }
    }
}

impl Collector {
    // Each bench compiles this file as its own module; only enforce_connect reads the pid.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
