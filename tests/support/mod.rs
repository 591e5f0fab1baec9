//! Harness for the privileged end-to-end tests: runs the real `agentscope collect` binary next
//! to the test agents in tests/agents/, and reassembles what it captured.
//!
//! Workloads start paused (waiting for a file), so the collector can be pointed at their pid
//! with `--pid` before they do anything: tests stay isolated from each other and from the rest
//! of the machine, and every test also exercises a process that existed before the collector.

#![allow(dead_code)]

pub mod certificates;
pub mod cyclonedx_schema;
pub mod events_schema;
pub mod h2_front;
pub mod kubernetes;
pub mod otlp_live_run;
pub mod payloads;
pub mod podman;
pub mod process_state;
pub mod quiescence;
pub mod recording_secrets;
pub mod scenarios;
pub mod token_volume;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agentscope");

pub fn agents_dir() -> PathBuf {
    Path::new(env!("AGENTSCOPE_REPO")).join("tests/agents")
}

/// Privileged tests fail, never skip, without root: CI runs as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these end-to-end tests load eBPF programs: run them as root (sudo make test)"
    );
}

/// The real Python interpreter, not a version-manager shim (shims run dozens of processes
/// that would blur event counts).
pub fn python_interpreter() -> String {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Polls until `path` exists and is non-empty.
pub fn wait_for_file(path: &Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({})",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped.
pub struct Background(pub Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long a process asked to stop by [`StopOnDrop`] gets before it is killed: a collector's
/// stop takes at most a second, more on a loaded machine.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A child process that is stopped when dropped unless it was already reaped: SIGINT (a
/// collector's clean stop: it finishes its outputs and detaches its programs), up to
/// [`STOP_GRACE`] to exit, then SIGKILL; reaped either way. A test that panics (a failed
/// assertion) then leaves no collector running, enforcing or capturing, to confound the
/// tests after it.
pub struct StopOnDrop(pub Child);

impl std::ops::Deref for StopOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for StopOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // `try_wait` also answers for a child already waited for (its status is kept).
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: plain kill(2) on our own, not yet reaped, child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "pid {} did not stop within {STOP_GRACE:?} of SIGINT: killed",
            self.0.id()
        );
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct MockLlm {
    pub port: u16,
    pub cert: PathBuf,
    _process: Background,
}

impl MockLlm {
    /// The CA that issued the certificate, when started with `--with-ca`.
    pub fn ca(&self) -> PathBuf {
        self.cert.with_file_name("ca.pem")
    }

    pub fn start(dir: &Path) -> MockLlm {
        Self::start_with(dir, &[])
    }

    /// With extra mock options, e.g. `--scenario FILE`.
    pub fn start_with(dir: &Path, extra: &[&str]) -> MockLlm {
        let port_file = dir.join("llm.port");
        let cert_dir = dir.join("cert");
        let process = Command::new("python3")
            .arg(agents_dir().join("mock_llm_server.py"))
            .args([
                "--port-file",
                port_file.to_str().unwrap(),
                "--cert-dir",
                cert_dir.to_str().unwrap(),
            ])
            .args(extra)
            .stderr(std::fs::File::create(dir.join("llm.log")).unwrap())
            .spawn()
            .expect("start mock LLM server");
        let process = Background(process);
        let port = wait_for_file(&port_file, "mock LLM port").parse().unwrap();
        MockLlm {
            port,
            cert: cert_dir.join("cert.pem"),
            _process: process,
        }
    }
}

pub struct EchoService {
    pub port: u16,
    _process: Background,
}

impl EchoService {
    pub fn start(dir: &Path) -> EchoService {
        let port_file = dir.join("echo.port");
        let process = Command::new("python3")
            .arg(agents_dir().join("tcp_echo_service.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo service");
        let process = Background(process);
        let port = wait_for_file(&port_file, "echo port").parse().unwrap();
        EchoService {
            port,
            _process: process,
        }
    }
}

/// The `node` that `/usr/bin/env node` finds on the test's PATH (Gemini CLI's shebang, the
/// Node test agent): the file the collector says it probed.
pub fn which_node() -> PathBuf {
    ["/usr/local/bin/node", "/usr/bin/node", "/bin/node"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("node (make setup installs Node 20)")
}

/// The arguments of tests/agents/python_agent.py against `llm` and `echo`: a model turn over
/// TLS (the system libssl), then its three tools: a command, a read of /etc/os-release, a call
/// to the echo service.
pub fn python_agent_args(llm: &MockLlm, echo: &EchoService) -> Vec<String> {
    [
        agents_dir().join("python_agent.py").display().to_string(),
        "--port".into(),
        llm.port.to_string(),
        "--ca".into(),
        llm.cert.display().to_string(),
        "--read-path".into(),
        "/etc/os-release".into(),
        "--service-port".into(),
        echo.port.to_string(),
    ]
    .into()
}

/// tests/agents/opaque_socket_client.py: its sink and HTTP servers running, and a client held
/// at its start that sends `chunks` chunks of 8 KiB to the sink beside its HTTP requests (the
/// script says in which order) and prints a JSON report.
pub struct OpaqueSocketClient {
    pub client: Paused,
    _servers: Background,
}

impl OpaqueSocketClient {
    /// The process serving the sink and the HTTP endpoint (it receives the opaque bytes).
    pub fn servers_pid(&self) -> u32 {
        self._servers.0.id()
    }

    pub fn start(dir: &Path, chunks: usize) -> OpaqueSocketClient {
        let script = agents_dir().join("opaque_socket_client.py");
        let port_file = dir.join("ports");
        let servers = Background(
            Command::new(python_interpreter())
                .arg(&script)
                .args(["--serve", port_file.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the sink and HTTP servers"),
        );
        let ports = wait_for_file(&port_file, "server ports");
        let (sink, http) = ports.trim().split_once(' ').unwrap();
        let chunks = chunks.to_string();
        let client = Paused::agent(
            dir,
            &python_interpreter(),
            &[
                script.to_str().unwrap(),
                "--sink",
                sink,
                "--http",
                http,
                "--chunks",
                &chunks,
            ],
            &[],
        );
        OpaqueSocketClient {
            client,
            _servers: servers,
        }
    }
}

/// A workload held at its start until [`Paused::release`], so the collector can attach first.
/// Killed and reaped when dropped unless it was already reaped: a test that fails before it
/// releases its workload leaves no shell waiting on its FIFO for ever.
pub struct Paused {
    pub child: Child,
    pub start_file: PathBuf,
}

impl Drop for Paused {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Paused {
    /// Wraps any command in a shell that waits for the start file and then `exec`s it, keeping
    /// the pid.
    pub fn command(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Paused {
        let start_file = dir.join(format!(
            "start-{}-{}",
            args.len() + program.len(),
            rand_suffix()
        ));
        // The shell blocks opening a FIFO until released. (It used to poll for a file with
        // `sleep 0.02`: a fork, an exec and a dozen opens of the traced process 50 times a
        // second, as many more events the longer the collector took to start.) Nothing is
        // written into the FIFO: data from the test, which reads the collector's output,
        // would rightly make the workload a consumer of that output whose payloads are not
        // captured.
        let path = std::ffi::CString::new(start_file.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        let mut script = format!(": < '{}'; exec '{}'", start_file.display(), program);
        for arg in args {
            script.push_str(&format!(" '{arg}'"));
        }
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        Paused {
            child: command.spawn().expect("start workload"),
            start_file,
        }
    }

    /// Uses the agent's own `--wait-before-start-file` (the interpreter and its TLS library are
    /// loaded before the collector starts).
    pub fn agent(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Paused {
        let start_file = dir.join(format!("start-agent-{}", rand_suffix()));
        let mut command = Command::new(program);
        command
            .args(args)
            .args(["--wait-before-start-file", start_file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let paused = Paused {
            child: command.spawn().expect("start agent"),
            start_file,
        };
        // Give the interpreter time to load its TLS library before the collector scans /proc.
        std::thread::sleep(Duration::from_millis(800));
        paused
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn release(&self) {
        use std::os::unix::fs::FileTypeExt as _;
        let is_fifo = std::fs::metadata(&self.start_file)
            .map(|m| m.file_type().is_fifo())
            .unwrap_or(false);
        if !is_fifo {
            std::fs::write(&self.start_file, b"go").unwrap();
            return;
        }
        release_fifo(&self.start_file, Duration::from_secs(30));
    }

    /// The workload's process, no longer killed when this is dropped (its new owner ends it).
    pub fn into_child(self) -> Child {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again: each field is read out once and
        // dropped by its new owner (the start file's path here, the child by the caller).
        unsafe {
            drop(std::ptr::read(&this.start_file));
            std::ptr::read(&this.child)
        }
    }

    /// Waits for the workload and returns what it wrote and its status.
    pub fn output(self) -> std::process::Output {
        self.into_child().wait_with_output().unwrap()
    }

    /// Waits for the workload and returns its stdout, asserting success.
    pub fn finish(self) -> String {
        let output = self.output();
        assert!(
            output.status.success(),
            "workload failed: {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Makes a FIFO at `path`, for a shell to wait at (`: < PATH`) until [`release_fifo`].
pub fn fifo(path: &Path) -> PathBuf {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    path.to_path_buf()
}

/// Lets a shell waiting at `fifo` (`: < FIFO`) go on, once it waits there (within `timeout`:
/// a shell that first runs a warm-up gets there late on a loaded machine).
pub fn release_fifo(fifo: &Path, timeout: Duration) {
    use std::os::unix::fs::OpenOptionsExt as _;
    // Opening the write end (non-blocking: it fails with ENXIO until the shell is waiting in
    // its open for reading) completes the shell's open; closing it again sends nothing.
    let deadline = Instant::now() + timeout;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(_) => return,
            Err(err) if err.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(err) => panic!("releasing the workload at {}: {err}", fifo.display()),
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

/// What a paused agent did, run to its end under `agentscope collect --pid PID
/// --no-kubernetes --graph-json FILE` (and `extra` options): its JSON report on stdout
/// (`"ok": true` asserted), what was captured, and the graph.
pub struct FollowedAgent {
    pub pid: u32,
    pub output: String,
    pub report: serde_json::Value,
    pub captured: Captured,
    pub graph: serde_json::Value,
    pub graph_path: PathBuf,
    /// The collector's `--json` output.
    pub events_path: PathBuf,
}

pub fn follow_agent(dir: &Path, agent: Paused, extra: &[&str]) -> FollowedAgent {
    let pid = agent.pid();
    let pid_arg = pid.to_string();
    let graph_path = dir.join("graph.json");
    let mut args = vec![
        "--pid",
        pid_arg.as_str(),
        "--no-kubernetes",
        "--graph-json",
        graph_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let collect = Collect::start(dir, &args);
    agent.release();
    let output = agent.finish();
    let report: serde_json::Value = serde_json::from_str(output.trim())
        .unwrap_or_else(|err| panic!("the agent's report is not JSON ({err}): {output}"));
    assert_eq!(report["ok"], true, "{output}");
    let events_path = collect.stdout_path.clone();
    let captured = collect.stop();
    let graph = serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    FollowedAgent {
        pid,
        output,
        report,
        captured,
        graph,
        graph_path,
        events_path,
    }
}

/// Copies tests/agents/documents (the support agent's knowledge base and tickets) into `dir`,
/// with the drop box's URL filled in, for the demo's sessions (recordings, enforcement).
pub fn write_documents(dir: &Path, drop_url: &str) -> PathBuf {
    let source = agents_dir().join("documents");
    let target = dir.join("support-docs");
    for sub in ["kb", "tickets"] {
        std::fs::create_dir_all(target.join(sub)).unwrap();
        for entry in std::fs::read_dir(source.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                target.join(sub).join(path.file_name().unwrap()),
                text.replace("{{EXFIL_URL}}", drop_url),
            )
            .unwrap();
        }
    }
    target
}

/// A running `agentscope collect --json`. Dropped without [`Collect::stop`] (a test that
/// panicked), it stops its collector ([`StopOnDrop`]) before its pin directory is unmounted.
pub struct Collect {
    /// Declared before `_pins`: fields drop in order, so the collector has exited before its
    /// pins are released.
    pub child: StopOnDrop,
    /// Where its stdout (JSON lines) goes.
    pub stdout_path: PathBuf,
    /// A collector given `--enforce` (and no `--pin-dir`) pins its enforcement in a directory
    /// of its own, removed when this is dropped: tests running side by side never share (or
    /// adopt) each other's, and none is left behind.
    _pins: Option<PinDir>,
    /// Its stderr after the ready line, as it comes (see [`Collect::wait_probed`]).
    stderr_lines: std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>,
}

/// A pin directory for one test's enforcement, in a bpffs instance of its own (mounted on a
/// temporary directory): unmounted when dropped, which releases whatever is still pinned in it
/// (detaching the programs), so no test leaves pins behind or sees another's, and the host's
/// /sys/fs/bpf is never touched.
pub struct PinDir {
    /// The pin directory (`collect --pin-dir`), inside the mount.
    pub path: PathBuf,
    mount: tempfile::TempDir,
}

impl PinDir {
    pub fn new(what: &str) -> PinDir {
        let mount = tempfile::Builder::new()
            .prefix(&format!("agentscope-bpffs-{what}-"))
            .tempdir()
            .unwrap();
        let target = std::ffi::CString::new(mount.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mount(2) with NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mounting a bpffs: {}",
            std::io::Error::last_os_error()
        );
        PinDir {
            path: mount.path().join("agentscope"),
            mount,
        }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let target =
            std::ffi::CString::new(self.mount.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2(2) of the mount made in `new`.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Waits (at most 15 s) until no earlier collector's background unloader (`agentscope-unld`,
/// see `KernelCapture::unload_in_background`) is still closing its probes. While one is, the
/// kernel serialises the new collector's uprobe attaches behind its detaches: attaching a
/// binary's TLS probes took 150-320 ms instead of 10-40 ms here, longer than a fresh Node
/// process takes to send its ClientHello, so the first connection is reported
/// `probes_attached_late` (correctly) and its plaintext is missing. Tests that check a fresh
/// binary's capture byte for byte call this first: back-to-back collectors are an artefact
/// of the test suite, not of a node.
pub fn wait_for_earlier_unloads() {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let unloading = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                std::fs::read_to_string(entry.path().join("comm"))
                    .is_ok_and(|comm| comm.trim() == "agentscope-unld")
            });
        if !unloading {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Collect {
    pub fn start(dir: &Path, args: &[&str]) -> Collect {
        Collect::start_binary(BIN, dir, args)
    }

    /// [`Collect::start`] with another build of `agentscope` (a benchmark-like test measuring
    /// the release binary, say).
    pub fn start_binary(binary: &str, dir: &Path, args: &[&str]) -> Collect {
        let stdout_path = dir.join(format!("collect-{}.jsonl", rand_suffix()));
        let pins = (args.contains(&"--enforce") && !args.contains(&"--pin-dir"))
            .then(|| PinDir::new("collect"));
        let pin_args = pins
            .iter()
            .flat_map(|pins| ["--pin-dir".to_string(), pins.arg().to_string()]);
        let mut child = StopOnDrop(
            Command::new(binary)
                .args(["collect", "--json", "--ready-message"])
                .args(args)
                .args(pin_args)
                .stdout(std::fs::File::create(&stdout_path).unwrap())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start agentscope collect"),
        );
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(
            line.contains("collecting"),
            "collector did not start: {line}"
        );
        // Keep draining stderr so the collector never blocks on it.
        let stderr_lines =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let lines = stderr_lines.clone();
        std::thread::spawn(move || {
            let mut rest = String::new();
            while stderr.read_line(&mut rest).unwrap_or(0) > 0 {
                eprint!("collector: {rest}");
                let (kept, told) = &*lines;
                kept.lock().unwrap().push(std::mem::take(&mut rest));
                told.notify_all();
            }
        });
        Collect {
            child,
            stdout_path,
            _pins: pins,
            stderr_lines,
        }
    }

    /// Waits until the collector says it attached its TLS probes to `binary` (the line
    /// `--ready-message` prints for each probed file, naming it as exec'd): every process that
    /// runs it from then on is probed from its exec. Panics after `timeout`.
    pub fn wait_probed(&self, binary: &Path, timeout: Duration) {
        let wanted = format!("probes attached to {}: ", binary.display());
        let deadline = Instant::now() + timeout;
        let (kept, told) = &*self.stderr_lines;
        let mut lines = kept.lock().unwrap();
        while !lines.iter().any(|line| line.contains(&wanted)) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the collector did not say it probed {} within {timeout:?}; it said: {lines:#?}",
                binary.display()
            );
            lines = told.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits until the collector has printed the exit of process `pid` (its last thread's), so
    /// everything the process did before is processed: a collector short of CPU runs behind,
    /// and a stop (which takes at most a second, whatever is left) would cut what it has not
    /// read yet. Panics after `timeout`.
    pub fn wait_exit_printed(&self, pid: u32, timeout: Duration) {
        self.wait_printed(&format!("the exit of pid {pid}"), "exit", timeout, |e| {
            e["kind"] == "exit" && e["pid"] == pid
        });
    }

    /// Waits until the collector has printed an event that `wanted` accepts, and returns the
    /// first such; only lines containing `needle` are parsed (the output can be large, and the
    /// collector may be short of CPU). Panics after `timeout`, saying `what` it waited for.
    pub fn wait_printed(
        &self,
        what: &str,
        needle: &str,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
            // Only whole lines: the last one may be half written.
            let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
            if let Some(event) = whole
                .lines()
                .filter(|line| line.contains(needle))
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| wanted(event))
            {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "the collector did not print {what} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the collector (SIGTERM) and returns its events and summary.
    pub fn stop(mut self) -> Captured {
        // Let the last records reach the ring buffer reader, and the collector work through
        // them (its stop leaves it only 200 ms).
        // Quiet: two 200 ms looks adding less than 30 ms of CPU (an idle debug collector takes
        // about 10 ms per 250 ms for its periodic work; a working one all it gets).
        quiescence::wait_until_quiet(
            self.child.id(),
            &quiescence::Quiet {
                at_least: Duration::from_millis(300),
                look: Duration::from_millis(200),
                less_cpu_than: Duration::from_millis(30),
                looks_in_a_row: 2,
                at_most: Duration::from_secs(10),
            },
        );
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "collector exited with {status}");
        let text = std::fs::read_to_string(&self.stdout_path).unwrap();
        let mut events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let summary = events.pop().expect("summary line");
        assert_eq!(summary["kind"], "summary", "last line must be the summary");
        Captured {
            events,
            summary: summary["summary"].clone(),
        }
    }
}

/// Ends a watched agent session: lets the paused agent run, waits for it, stops the collector,
/// and checks that the agent reported `"ok": true` and the kernel dropped nothing. These
/// scenarios are small, so a drop would mean every later assertion is about a partial capture.
/// Returns what the collector captured.
pub fn run_session_to_end(agent: Paused, collect: Collect) -> Captured {
    agent.release();
    let output = agent.finish();
    let captured = collect.stop();
    assert!(output.contains("\"ok\": true"), "{output}");
    assert_eq!(
        captured.summary["kernel"]["dropped"], 0,
        "{}",
        captured.summary
    );
    captured
}

pub struct Captured {
    pub events: Vec<Value>,
    pub summary: Value,
}

impl Captured {
    /// The TLS streams of `pid` in one direction, one per connection, in capture order.
    pub fn tls_streams(&self, pid: u64, direction: &str) -> Vec<Vec<u8>> {
        self.streams()
            .into_iter()
            .filter(|((p, source, dir, _), _)| *p == pid && source == "tls" && dir == direction)
            .map(|(_, bytes)| bytes)
            .collect()
    }

    /// The payload bytes the kernel counted as sampled out (`--sample-connections`), node-wide,
    /// after checking that `pid`'s `payloads_left_out` reports account for all of them.
    pub fn sampled_out_bytes_all_of(&self, pid: u64) -> u64 {
        let counted = self.summary["kernel"]["sampled_out_bytes"]
            .as_u64()
            .unwrap();
        let reported: u64 = self
            .of_kind("payloads_left_out")
            .filter(|e| e["pid"].as_u64() == Some(pid))
            .map(|e| e["sampled_out_bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(
            reported, counted,
            "pid {pid}'s reports against the summary's count"
        );
        counted
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["kind"] == kind)
    }

    /// Byte streams per (pid, source, direction, connection), in capture order. Each value also
    /// carries the fds seen.
    pub fn streams(&self) -> BTreeMap<(u64, String, String, u64), Vec<u8>> {
        let mut out: BTreeMap<(u64, String, String, u64), Vec<u8>> = BTreeMap::new();
        for e in self.of_kind("data") {
            let conn = if e["source"] == "tls" {
                e["conn_id"].as_u64().unwrap()
            } else {
                e["fd"].as_i64().unwrap() as u64
            };
            let key = (
                e["pid"].as_u64().unwrap(),
                e["source"].as_str().unwrap().to_string(),
                e["direction"].as_str().unwrap().to_string(),
                conn,
            );
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(e["data_b64"].as_str().unwrap())
                .unwrap();
            out.entry(key).or_default().extend_from_slice(&bytes);
        }
        out
    }

    /// Per (fd, socket id) of `pid`'s egress plain-socket data: the bytes the calls moved (each
    /// call's `total_len` once) and the bytes delivered.
    pub fn socket_egress_by_connection(&self, pid: u64) -> Vec<(i64, u64, u64, Vec<u8>)> {
        let mut out: Vec<(i64, u64, u64, Vec<u8>)> = Vec::new();
        for e in self.of_kind("data") {
            if e["pid"].as_u64() != Some(pid)
                || e["source"] != "socket"
                || e["direction"] != "egress"
            {
                continue;
            }
            let fd = e["fd"].as_i64().unwrap();
            let id = e["conn_id"].as_u64().unwrap();
            let at = match out.iter().position(|(f, i, _, _)| *f == fd && *i == id) {
                Some(at) => at,
                None => {
                    out.push((fd, id, 0, Vec::new()));
                    out.len() - 1
                }
            };
            if e["seq"] == 0 {
                out[at].2 += e["total_len"].as_u64().unwrap();
            }
            out[at].3.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(e["data_b64"].as_str().unwrap())
                    .unwrap(),
            );
        }
        out
    }

    /// The one TLS stream of `pid` in `direction` (panics if there is not exactly one).
    pub fn tls_stream(&self, pid: u32, direction: &str) -> Vec<u8> {
        let streams: Vec<Vec<u8>> = self
            .streams()
            .into_iter()
            .filter(|((p, source, dir, _), _)| {
                *p == pid as u64 && source == "tls" && dir == direction
            })
            .map(|(_, bytes)| bytes)
            .collect();
        assert_eq!(
            streams.len(),
            1,
            "expected one TLS {direction} stream for pid {pid}, found {}",
            streams.len()
        );
        streams.into_iter().next().unwrap()
    }
}

/// Whether `needle` occurs in `haystack`. memchr's `memmem` (built optimised, as every
/// dependency): the tests search megabytes of captured output for many needles, which a
/// `windows().any()` in this unoptimised test crate made take minutes.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Removes HTTP/1.1 chunked framing from every response in a captured stream, leaving headers
/// and bodies, so bodies can be compared with what the client saw.
pub fn dechunk_all(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            out.extend_from_slice(rest);
            break;
        };
        let head = &rest[..head_end + 4];
        out.extend_from_slice(head);
        rest = &rest[head_end + 4..];
        let head_text = String::from_utf8_lossy(head).to_ascii_lowercase();
        if head_text.contains("transfer-encoding: chunked") {
            loop {
                let Some(line_end) = find(rest, b"\r\n") else {
                    return out;
                };
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                        .unwrap_or(0);
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or(&[]);
                    break;
                }
                let take = size.min(rest.len());
                out.extend_from_slice(&rest[..take]);
                rest = rest.get(take + 2..).unwrap_or(&[]);
            }
        } else if let Some(len) = head_text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            let take = len.min(rest.len());
            out.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The interpreter of the test venv that holds the MCP Python SDK (scripts/setup.sh creates it):
/// `$AGENTSCOPE_TEST_PYTHON`, by default `$HOME/.cache/agentscope/test-venv/bin/python`.
pub fn mcp_python() -> String {
    let python = std::env::var("AGENTSCOPE_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/agentscope/test-venv/bin/python",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    assert!(
        Path::new(&python).exists(),
        "{python} is missing: run `make setup` (it creates the MCP test venv) or set AGENTSCOPE_TEST_PYTHON"
    );
    python
}

/// tests/agents/mcp_crm_server.py: an MCP server on Streamable HTTP (`http://127.0.0.1:PORT/mcp`).
pub struct McpCrmServer {
    pub port: u16,
    pub pid: u32,
    _process: Background,
}

impl McpCrmServer {
    pub fn start(dir: &Path, pg_port: Option<u16>) -> McpCrmServer {
        let port_file = dir.join("mcp-crm.port");
        let mut command = Command::new(mcp_python());
        command
            .arg(agents_dir().join("mcp_crm_server.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mcp-crm.log")).unwrap());
        if let Some(pg_port) = pg_port {
            command.args(["--pg-port", &pg_port.to_string()]);
        }
        let process = Background(command.spawn().expect("start MCP CRM server"));
        let port = wait_for_file(&port_file, "MCP CRM server port")
            .parse()
            .unwrap();
        McpCrmServer {
            port,
            pid: process.0.id(),
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Captured {
    /// Pipe byte streams, keyed by (pid, direction, fd), in capture order.
    pub fn pipe_streams(&self) -> BTreeMap<(u32, String, i32), Vec<u8>> {
        self.streams()
            .into_iter()
            .filter(|((_, source, _, _), _)| source == "pipe")
            .map(|((pid, _, dir, fd), bytes)| ((pid as u32, dir, fd as i32), bytes))
            .collect()
    }

    /// The one pipe stream of `pid` in `direction` on `fd` (empty when nothing was captured).
    pub fn pipe_stream(&self, pid: u32, direction: &str, fd: i32) -> Vec<u8> {
        self.pipe_streams()
            .remove(&(pid, direction.to_string(), fd))
            .unwrap_or_default()
    }
}

/// A throwaway PostgreSQL cluster from the Debian packages (tests/agents/postgres_server.py)
/// with a `crm` database holding a `customers` table.
pub struct PostgresServer {
    pub port: u16,
    process: Background,
}

impl PostgresServer {
    pub fn start(dir: &Path) -> PostgresServer {
        let port_file = dir.join("postgres.port");
        let process = Command::new("python3")
            .arg(agents_dir().join("postgres_server.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("postgres.log")).unwrap())
            .spawn()
            .expect("start PostgreSQL test server (run make setup)");
        let process = Background(process);
        let port = wait_for_file(&port_file, "PostgreSQL port")
            .parse()
            .unwrap();
        PostgresServer { port, process }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // SIGTERM lets the script stop the cluster and delete its data directory.
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.process.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The plain-HTTP internal API, or a drop box for POSTs (tests/agents/http_api_service.py).
pub struct HttpApi {
    pub port: u16,
    _process: Background,
}

impl HttpApi {
    pub fn start(dir: &Path) -> HttpApi {
        Self::start_with(dir, "api", "127.0.0.1", None)
    }

    /// Another instance named `name` (for its port file and log), listening on `bind`, writing
    /// each POST body it receives to `received_log` as a JSON line.
    pub fn start_with(dir: &Path, name: &str, bind: &str, received_log: Option<&Path>) -> HttpApi {
        Self::start_serving(dir, name, bind, received_log, None)
    }

    /// As [`HttpApi::start_with`], also serving the files of `serve_dir` on GET /files/NAME.
    pub fn start_serving(
        dir: &Path,
        name: &str,
        bind: &str,
        received_log: Option<&Path>,
        serve_dir: Option<&Path>,
    ) -> HttpApi {
        let port_file = dir.join(format!("{name}.port"));
        let mut command = Command::new("python3");
        command
            .arg(agents_dir().join("http_api_service.py"))
            .args(["--port-file", port_file.to_str().unwrap(), "--bind", bind])
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap());
        if let Some(log) = received_log {
            command.args(["--received-log", log.to_str().unwrap()]);
        }
        if let Some(serve_dir) = serve_dir {
            command.args(["--serve-dir", serve_dir.to_str().unwrap()]);
        }
        let process = Background(command.spawn().expect("start HTTP API service"));
        let port = wait_for_file(&port_file, "HTTP API port").parse().unwrap();
        HttpApi {
            port,
            _process: process,
        }
    }
}

/// `agentscope coverage --replay RECORDING`, as JSON (`-o json`, success asserted) and as the
/// text table.
pub fn replayed_coverage(recording: &Path) -> (Value, String) {
    let json = Command::new(BIN)
        .args(["coverage", "-o", "json", "--replay"])
        .arg(recording)
        .output()
        .unwrap();
    assert!(json.status.success(), "coverage --replay: {json:?}");
    let text = Command::new(BIN)
        .args(["coverage", "--replay"])
        .arg(recording)
        .output()
        .unwrap();
    assert!(text.status.success(), "coverage --replay: {text:?}");
    (
        serde_json::from_slice(&json.stdout).expect("coverage -o json"),
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}
