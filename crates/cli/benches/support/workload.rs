//! What the overhead benches share: a long-lived workload process that runs N round trips per
//! line on its stdin and answers with the nanoseconds they took, and `agentscope collect`
//! following some pids with its events discarded (tls_probe_overhead,
//! socket_payload_overhead, enforce_connect, agent_overhead).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Stops the bench unless it runs as root: it loads the collector's kernel programs.
pub fn require_root(bench: &str) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "{bench} loads eBPF programs: run as root"
    );
}

/// Builds the C workload `tests/agents/{name}.c` (gcc -O2) into `dir`; returns its path.
// socket_payload_overhead and node_io_overhead run C loops; the other benches include this
// module too.
#[allow(dead_code)]
pub fn build_c_loop(name: &str, dir: &Path) -> PathBuf {
    let binary = dir.join(name);
    let source = Path::new(env!("AGENTSCOPE_REPO")).join(format!("tests/agents/{name}.c"));
    let built = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("gcc (make setup installs it)");
    assert!(built.success(), "building {} failed", source.display());
    binary
}

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

    /// Makes the loop drop its connection and open a new one (tests/agents/https_post_client.py
    /// `reconnect`), so that a collector started since sees it from its connect.
    #[allow(dead_code)]
    pub fn reconnect(&mut self) {
        writeln!(self.stdin, "reconnect").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the workload loop did not reconnect");
    }

    /// One criterion function `variant` in group `group`: the loop's round trips, timed by
    /// the loop itself, `samples` samples over about `seconds`.
    // agent_overhead and collector_start time their own windows.
    #[allow(dead_code)]
    pub fn measure(
        &mut self,
        c: &mut criterion::Criterion,
        group: &str,
        variant: &str,
        samples: usize,
        seconds: u64,
    ) {
        let mut group = c.benchmark_group(group);
        group
            .sample_size(samples)
            .measurement_time(Duration::from_secs(seconds));
        group.bench_function(variant, |b| b.iter_custom(|n| self.run(n)));
        group.finish();
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
    /// Standard output of a `--quiet` collector (only its summary), else none (discarded).
    summary: Option<tempfile::NamedTempFile>,
}

impl Collector {
    // agent_overhead starts its collector with [`Collector::start`].
    #[allow(dead_code)]
    pub fn follow(pids: &[u32]) -> Collector {
        Self::follow_with(pids, &[])
    }

    /// With further `collect` arguments (`--enforce ...`).
    #[allow(dead_code)]
    pub fn follow_with(pids: &[u32], extra: &[String]) -> Collector {
        let mut args: Vec<String> = ["collect", "--json", "--ready-message", "--no-kubernetes"]
            .map(String::from)
            .into();
        for pid in pids {
            args.extend(["--pid".to_string(), pid.to_string()]);
        }
        args.extend(extra.iter().cloned());
        Self::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_agentscope")),
            &args,
        )
    }

    /// `program` (an agentscope binary) run with `args`, which must include `--ready-message`;
    /// returns once it is collecting.
    pub fn start(program: &std::path::Path, args: &[String]) -> Collector {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        // A `--quiet` collector writes only its summary to stdout: kept in a file (not a
        // process, so no consumer). Others write every event there: discarded.
        let summary = args
            .iter()
            .any(|a| a == "--quiet")
            .then(|| tempfile::NamedTempFile::new().unwrap());
        let stdout = summary
            .as_ref()
            .map_or_else(Stdio::null, |file| file.reopen().unwrap().into());
        let mut command = Command::new(program);
        command.args(args);
        let mut child = command
            .stdout(stdout)
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
            summary,
        }
    }
}

impl Collector {
    // Each bench compiles this file as its own module; enforce_connect and agent_overhead
    // read the pid.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Collector {
    // Only agent_overhead reads the summary.
    #[allow(dead_code)]
    /// Stops a `--quiet` collector (SIGTERM) and returns what it wrote to stdout and stderr:
    /// its summary and messages.
    pub fn stop(mut self) -> String {
        self.terminate();
        let mut text = std::fs::read_to_string(self._stderr.path()).unwrap_or_default();
        if let Some(summary) = &self.summary {
            text += &std::fs::read_to_string(summary.path()).unwrap_or_default();
        }
        text
    }

    fn terminate(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: plain kill(2) on our child, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.terminate();
    }
}
