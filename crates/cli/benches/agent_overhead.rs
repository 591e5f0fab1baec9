//! What watching costs the agents: the CPU an agent spends per request with and without
//! `agentscope collect`, the collector's own CPU per agent request, its memory, and the node's
//! CPU per request, in alternating rounds (the number the README quotes).
//!
//! The agents send keep-alive HTTPS POSTs of an 8 KiB chat-completion request, one after
//! another, to a local TLS server (tests/agents/https_post in serve mode, Go crypto/tls, run
//! from its own copy of the binary so the Go probes on the client's file never trap in it):
//! - `python_openssl`: tests/agents/https_post_client.py, http.client over the system libssl
//!   (uprobes and uretprobes on `SSL_write_ex`/`SSL_read_ex`);
//! - `node`: tests/agents/https_post_client.mjs under Debian's node, OpenSSL linked in and
//!   exported;
//! - `go_static`: tests/agents/https_post in client mode, a static Go binary (crypto/tls probed
//!   at `Write`'s and `Read`'s stack checks and at `Read`'s copy into the caller's buffer).
//!
//! Not in the default set: `python_imports` (tests/agents/python_import_loop.py), whose request
//! forgets and imports again a set of standard-library modules, as an agent starting up does:
//! hundreds of file opens a request and no network (the cost of the file hooks and of runtime
//! noise).
//!
//! Each round measures every agent without a collector, then starts one collector following the
//! agents (`collect --quiet --no-kubernetes --pid ...`: the whole pipeline runs, nothing is
//! printed), measures every agent again, stops it and waits for the kernel to unload its
//! programs (uprobes stay attached until then). Each agent runs the same number of requests in
//! every window (calibrated once to about `OVERHEAD_SECONDS` of wall time). CPU is read from
//! the kernel's per-process CPU clocks (`clock_getcpuclockid`: nanoseconds, every thread),
//! the node's from /proc/stat. The collector's CPU of a window runs until it is idle again
//! (what the window put in the ring buffer may be read after the agent finished). The overhead of a round is its with-collector CPU per request
//! over its own without-collector CPU per request, so a slower or faster round on a shared
//! machine pairs with itself; the summary gives the median and the range over rounds, and the
//! load average while measuring (the node-wide figure includes every other process on the
//! node: on a shared machine read it next to the load), the events the collector received
//! and the kernel dropped (a collector that falls behind drops events, which also lowers its
//! CPU: read its CPU next to its drops), and the runtime-noise opens the kernel left out
//! (counted, not sent: `OVERHEAD_COLLECT_ARGS=--keep-runtime-noise` measures without that
//! filter).
//!
//! Environment: `OVERHEAD_ROUNDS` (default 5), `OVERHEAD_SECONDS` per window (default 3),
//! `OVERHEAD_AGENTS` (comma-separated subset of the names above), `AGENTSCOPE_BIN` (the
//! collector to measure; default the bench's own build of `agentscope`), `OVERHEAD_COLLECT_ARGS`
//! (more `collect` arguments, split at spaces, e.g. `--ring-buffer-kib 65536`),
//! `OVERHEAD_NODE_WIDE=1` (no `--pid`: the collector watches the whole node, as a DaemonSet
//! does; every other process's events then count in its CPU). Needs root, go, node and openssl
//! (`make setup`). Run: `make bench-overhead`, or
//! `cargo bench -p agentscope --bench agent_overhead`.
//!
//! `OVERHEAD_FLOOR=1` splits the overhead into what the kernel charges for the hooks alone and
//! what the collector's programs and the collector add: each round then also measures every
//! agent in three floor windows between the one without and the one with the collector,
//! with probes that run no program (support/bare_probes.rs: tracefs uprobe events at the
//! offsets the collector would probe in the files the agents map, enabled in a tracing
//! instance whose buffer is off): entry uprobes only; uprobes and uretprobes; both and every
//! tracepoint the collector attaches to. The summary gives each floor's overhead beside the
//! collector's.
//!
//! `OVERHEAD_RECONNECT=1` has the Python agent open a new connection before each window, so
//! the collector sees it connect (the others keep theirs): what connection-level choices
//! cost or save, such as `OVERHEAD_COLLECT_ARGS="--sample-connections 1000000"` (its
//! connection's payloads then almost surely sampled out), which apply to connections the
//! collector saw made.
//!
//! `OVERHEAD_BPF_STATS=1` switches `kernel.bpf_stats_enabled` on for the run (back to what it
//! was at the end; the accounting itself costs each program run two clock reads, so the
//! with-collector figures then include it) and prints, for each agent's collector window, the
//! collector's programs that ran, their runs and their kernel time per agent request (every
//! process's syscalls run the tracepoint programs, so other processes' count too).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/bare_probes.rs"]
mod bare_probes;
#[path = "support/program_stats.rs"]
mod program_stats;
#[path = "../../../tests/support/quiescence.rs"]
mod quiescence;
#[path = "support/workload.rs"]
mod workload;
use bare_probes::{BareProbes, Floor, ProbePoint};
use program_stats::{runs_by_program, KernelProgramStats};
use workload::{Collector, Loop};

/// The kernel's CPU clock of a whole process (user and system time of all its threads), in
/// nanoseconds.
fn process_cpu_ns(pid: u32) -> u64 {
    quiescence::process_cpu_ns(pid).unwrap_or_else(|| panic!("{pid}'s CPU clock is unreadable"))
}

/// CPU the whole node spent (every CPU, everything but idle and I/O wait), in nanoseconds.
fn node_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let line = stat.lines().next().unwrap();
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks.get(7).unwrap_or(&0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    busy * 1_000_000_000 / hz
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A `VmRSS`/`VmHWM` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// Events received, dropped by the kernel, and runtime-noise opens the kernel left out (counted,
/// not sent), from the summary line `collect` writes to stderr when it stops (0 for what it
/// does not say).
fn kernel_counts(stderr: &str) -> (u64, u64, u64) {
    let Some(line) = stderr.lines().find_map(|l| l.strip_prefix("summary: ")) else {
        return (0, 0, 0);
    };
    let number_before = |marker: &str| -> u64 {
        line.split(marker)
            .next()
            .and_then(|head| head.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        number_before(" events received"),
        number_before(" dropped by the kernel"),
        number_before(" runtime-noise opens left out"),
    )
}

fn loaded_bpf_programs() -> usize {
    aya::programs::loaded_programs().count()
}

/// One agent: its loop process and how many requests each window sends.
struct Agent {
    name: &'static str,
    workload: Loop,
    requests: u64,
    /// Opens a new connection before each window (`OVERHEAD_RECONNECT=1`, Python only).
    reconnect: bool,
}

/// What one window measured, per request.
#[derive(Clone, Copy, Default)]
struct Window {
    agent_ns: f64,
    node_ns: f64,
    collector_ns: f64,
    wall_ns: f64,
    load: f64,
}

fn measure(agent: &mut Agent, collector: Option<u32>) -> Window {
    if agent.reconnect {
        agent.workload.reconnect();
    }
    let pid = agent.workload.child.id();
    let agent_before = process_cpu_ns(pid);
    let node_before = node_cpu_ns();
    let collector_before = collector.map(process_cpu_ns);
    let wall = agent.workload.run(agent.requests);
    let node_after = node_cpu_ns();
    // The collector may still be reading what the window wrote into the ring: its CPU counts
    // until it is idle again.
    if let Some(pid) = collector {
        wait_until_idle(pid);
    }
    let n = agent.requests as f64;
    Window {
        agent_ns: (process_cpu_ns(pid) - agent_before) as f64 / n,
        node_ns: (node_after - node_before) as f64 / n,
        collector_ns: collector
            .zip(collector_before)
            .map_or(0.0, |(pid, before)| {
                (process_cpu_ns(pid) - before) as f64 / n
            }),
        wall_ns: wall.as_nanos() as f64 / n,
        load: load_average(),
    }
}

/// Waits until `pid` uses less than 2% of a CPU over 200 ms (at most 60 s).
fn wait_until_idle(pid: u32) {
    quiescence::wait_until_quiet(
        pid,
        &quiescence::Quiet {
            at_least: Duration::ZERO,
            look: Duration::from_millis(200),
            less_cpu_than: Duration::from_millis(4),
            looks_in_a_row: 1,
            at_most: Duration::from_secs(60),
        },
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{name}={v}"))
    })
}

/// Median and range.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    };
    (median, sorted[0], sorted[sorted.len() - 1])
}

fn show(values: &[f64], scale: f64, digits: usize) -> String {
    let (median, low, high) = spread(values);
    format!(
        "{:.digits$} ({:.digits$}..{:.digits$})",
        median / scale,
        low / scale,
        high / scale
    )
}

fn build_go_agent(repo: &Path, out: &Path) {
    let built = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(repo.join("tests/agents/https_post"))
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .expect("go build (make setup installs golang-go)");
    assert!(built.success(), "building tests/agents/https_post failed");
}

fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success(), "making the test certificate failed");
    (cert, key)
}

/// The TLS server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(binary: &Path, cert: &Path, key: &Path) -> (Server, u16) {
    use std::io::BufRead as _;
    let mut child = Command::new(binary)
        .arg("serve")
        .arg(cert)
        .arg(key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the TLS server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server's port");
    (Server(child), port)
}

/// Whether an `agentscope-unld` process runs: a stopped collector's child that holds its
/// probes until the kernel has released them (crates/kernel, `unload_in_background`).
fn unloading() -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "agentscope-unld")
        })
}

/// Waits until no collector is unloading and the kernel holds no more programs than `before`
/// (a stopped collector's probes stay attached until then), at most 60 s (other collectors on
/// a shared node can keep the count up); the time it took.
fn wait_for_unload(before: usize) -> Duration {
    let start = Instant::now();
    while (unloading() || loaded_bpf_programs() > before)
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// The points the collector would probe for the agents (each file once), printed.
fn floor_probe_points(agents: &[Agent]) -> Vec<ProbePoint> {
    let mut points: Vec<ProbePoint> = Vec::new();
    for agent in agents {
        let found = bare_probes::collector_probe_points(agent.workload.child.id());
        println!(
            "floor probes for {}: {}",
            agent.name,
            if found.is_empty() {
                "none (no TLS stack the collector probes is mapped)".to_string()
            } else {
                found
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}:{:#x}{}",
                            p.function,
                            p.path.display(),
                            p.offset,
                            if p.returns { " +return" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        for point in found {
            if !points
                .iter()
                .any(|p| p.path == point.path && p.offset == point.offset)
            {
                points.push(point);
            }
        }
    }
    points
}

/// Prints the collector's programs that ran between two readings, per request of `agent`,
/// costliest first; their total kernel time per request.
fn print_program_runs(
    round: usize,
    agent: &Agent,
    before: &std::collections::BTreeMap<String, (u64, u64)>,
    after: &std::collections::BTreeMap<String, (u64, u64)>,
) -> f64 {
    let mut ran = program_stats::per_call(before, after, agent.requests);
    ran.sort_by(|a, b| b.2.total_cmp(&a.2));
    let total: f64 = ran.iter().map(|r| r.2).sum();
    println!(
        "round {round} {:<15} kernel programs {:.1} us per request: {}",
        agent.name,
        total / 1e3,
        ran.iter()
            .map(|(name, runs, ns)| format!("{name} {runs:.1}x {:.2} us", ns / 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    total
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    workload::require_root("agent_overhead");
    let rounds = env_number("OVERHEAD_ROUNDS", 5).max(1) as usize;
    let seconds = env_number("OVERHEAD_SECONDS", 3).max(1);
    let wanted: Vec<String> = std::env::var("OVERHEAD_AGENTS")
        .unwrap_or_else(|_| "python_openssl,node,go_static".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let collector_binary = std::env::var_os("AGENTSCOPE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_agentscope")),
        PathBuf::from,
    );
    let node_wide = std::env::var("OVERHEAD_NODE_WIDE").is_ok_and(|v| v == "1");
    let floors: &[Floor] = if std::env::var("OVERHEAD_FLOOR").is_ok_and(|v| v == "1") {
        &Floor::ALL
    } else {
        &[]
    };
    let kernel_stats = std::env::var("OVERHEAD_BPF_STATS")
        .is_ok_and(|v| v == "1")
        .then(KernelProgramStats::enable);
    let reconnect = std::env::var("OVERHEAD_RECONNECT").is_ok_and(|v| v == "1");
    let extra: Vec<String> = std::env::var("OVERHEAD_COLLECT_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();

    let repo = Path::new(env!("AGENTSCOPE_REPO"));
    let dir = tempfile::tempdir().unwrap();
    let client_binary = dir.path().join("https_post");
    let server_binary = dir.path().join("https_post_server");
    build_go_agent(repo, &client_binary);
    std::fs::copy(&client_binary, &server_binary).unwrap();
    let (cert, key) = make_certificate(dir.path());
    let (_server, port) = start_server(&server_binary, &cert, &key);
    let url = format!("https://localhost:{port}/v1/chat/completions");
    const SIZE: &str = "8192";

    let mut agents: Vec<Agent> = Vec::new();
    for name in ["python_openssl", "node", "go_static", "python_imports"] {
        if !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mut command = match name {
            "python_openssl" => {
                let mut c = Command::new("python3");
                c.arg(repo.join("tests/agents/https_post_client.py"));
                c
            }
            "python_imports" => {
                let mut c = Command::new("python3");
                c.arg(repo.join("tests/agents/python_import_loop.py"));
                c
            }
            "node" => {
                let mut c = Command::new("node");
                c.arg(repo.join("tests/agents/https_post_client.mjs"));
                c
            }
            _ => {
                let mut c = Command::new(&client_binary);
                c.arg("client");
                c
            }
        };
        command.arg(&url).arg(&cert).arg(SIZE);
        let mut workload = Loop::start(&mut command);
        // Calibrate: about `seconds` of wall time per window, unwatched.
        let probe = 50;
        let per_request = workload.run(probe).as_secs_f64() / probe as f64;
        let requests = ((seconds as f64 / per_request) as u64).max(probe);
        agents.push(Agent {
            name,
            workload,
            requests,
            reconnect: reconnect && name == "python_openssl",
        });
    }
    assert!(!agents.is_empty(), "OVERHEAD_AGENTS named no known agent");
    let probe_points = if floors.is_empty() {
        Vec::new()
    } else {
        floor_probe_points(&agents)
    };

    let mut collect_args: Vec<String> =
        ["collect", "--quiet", "--no-kubernetes", "--ready-message"]
            .map(String::from)
            .into();
    if !node_wide {
        for agent in &agents {
            collect_args.extend(["--pid".into(), agent.workload.child.id().to_string()]);
        }
    }
    collect_args.extend(extra);
    println!(
        "agent_overhead: {rounds} rounds, {} ({}), collector {} {}",
        agents
            .iter()
            .map(|a| format!("{} {} requests", a.name, a.requests))
            .collect::<Vec<_>>()
            .join(", "),
        if node_wide {
            "node-wide collector"
        } else {
            "collector following the agents"
        },
        collector_binary.display(),
        collect_args.join(" ")
    );

    let mut without: Vec<Vec<Window>> = vec![Vec::new(); agents.len()];
    // [floor][agent][round]
    let mut floored: Vec<Vec<Vec<Window>>> = vec![vec![Vec::new(); agents.len()]; floors.len()];
    // Kernel time of the collector's programs per agent request, [agent][round].
    let mut program_ns: Vec<Vec<f64>> = vec![Vec::new(); agents.len()];
    let mut with: Vec<Vec<Window>> = vec![Vec::new(); agents.len()];
    let mut rss_kib = Vec::new();
    let mut hwm_kib = Vec::new();
    let mut events_received = Vec::new();
    let mut events_dropped = Vec::new();
    let mut noise_filtered = Vec::new();
    for round in 1..=rounds {
        for (i, agent) in agents.iter_mut().enumerate() {
            without[i].push(measure(agent, None));
        }
        for (f, floor) in floors.iter().enumerate() {
            let probes = BareProbes::register(&probe_points, *floor)
                .unwrap_or_else(|e| panic!("registering the {} probes: {e}", floor.label()));
            for (i, agent) in agents.iter_mut().enumerate() {
                floored[f][i].push(measure(agent, None));
            }
            drop(probes);
        }
        let programs_before = loaded_bpf_programs();
        let collector = Collector::start(&collector_binary, &collect_args);
        let collector_pid = collector.pid();
        for (i, agent) in agents.iter_mut().enumerate() {
            let runs_before = kernel_stats
                .as_ref()
                .map(|_| runs_by_program(collector_pid));
            with[i].push(measure(agent, Some(collector_pid)));
            if let Some(before) = runs_before {
                let ns = print_program_runs(round, agent, &before, &runs_by_program(collector_pid));
                program_ns[i].push(ns);
            }
        }
        rss_kib.push(status_kib(collector_pid, "VmRSS") as f64);
        hwm_kib.push(status_kib(collector_pid, "VmHWM") as f64);
        let summary = collector.stop();
        let (received, dropped, filtered) = kernel_counts(&summary);
        events_received.push(received as f64);
        events_dropped.push(dropped as f64);
        noise_filtered.push(filtered as f64);
        let unload = wait_for_unload(programs_before);
        println!(
            "round {round} collector: {received} events received, {dropped} dropped by the \
             kernel, {filtered} runtime-noise opens left out by the kernel; probes gone after \
             {:.1} s",
            unload.as_secs_f64()
        );
        for (i, agent) in agents.iter().enumerate() {
            let (a, b) = (without[i][round - 1], with[i][round - 1]);
            println!(
                "round {round} {:<15} agent CPU/request {:>7.1} -> {:>7.1} us ({:+.1}%), \
                 collector {:>6.1} us, node {:>7.1} -> {:>7.1} us, wall {:>6.1} -> {:>6.1} us, \
                 load {:.2}/{:.2}",
                agent.name,
                a.agent_ns / 1e3,
                b.agent_ns / 1e3,
                (b.agent_ns / a.agent_ns - 1.0) * 100.0,
                b.collector_ns / 1e3,
                a.node_ns / 1e3,
                b.node_ns / 1e3,
                a.wall_ns / 1e3,
                b.wall_ns / 1e3,
                a.load,
                b.load,
            );
            for (f, floor) in floors.iter().enumerate() {
                let w = floored[f][i][round - 1];
                println!(
                    "round {round} {:<15} {:<20} agent CPU/request {:>7.1} us ({:+.1}%), \
                     wall {:>6.1} us, load {:.2}",
                    agent.name,
                    floor.label(),
                    w.agent_ns / 1e3,
                    (w.agent_ns / a.agent_ns - 1.0) * 100.0,
                    w.wall_ns / 1e3,
                    w.load,
                );
            }
        }
    }

    println!("\nmedian (min..max) over {rounds} rounds, per request:");
    for (i, agent) in agents.iter().enumerate() {
        let pick = |windows: &[Window], f: fn(&Window) -> f64| -> Vec<f64> {
            windows.iter().map(f).collect()
        };
        let overhead: Vec<f64> = without[i]
            .iter()
            .zip(&with[i])
            .map(|(a, b)| (b.agent_ns / a.agent_ns - 1.0) * 100.0)
            .collect();
        let collector_share: Vec<f64> = without[i]
            .iter()
            .zip(&with[i])
            .map(|(a, b)| b.collector_ns / a.agent_ns * 100.0)
            .collect();
        let node_overhead: Vec<f64> = without[i]
            .iter()
            .zip(&with[i])
            .map(|(a, b)| (b.node_ns / a.node_ns - 1.0) * 100.0)
            .collect();
        println!("{}:", agent.name);
        println!(
            "  agent CPU       without {} us, with {} us: overhead {} %",
            show(&pick(&without[i], |w| w.agent_ns), 1e3, 1),
            show(&pick(&with[i], |w| w.agent_ns), 1e3, 1),
            show(&overhead, 1.0, 1),
        );
        for (f, floor) in floors.iter().enumerate() {
            let overhead: Vec<f64> = without[i]
                .iter()
                .zip(&floored[f][i])
                .map(|(a, b)| (b.agent_ns / a.agent_ns - 1.0) * 100.0)
                .collect();
            println!(
                "  {:<20}  with {} us: overhead {} %",
                floor.label(),
                show(&pick(&floored[f][i], |w| w.agent_ns), 1e3, 1),
                show(&overhead, 1.0, 1),
            );
        }
        if !program_ns[i].is_empty() {
            println!(
                "  kernel programs {} us per request (bpf_stats, every process's runs)",
                show(&program_ns[i], 1e3, 1),
            );
        }
        println!(
            "  collector CPU   {} us per agent request ({} % of the agent's own CPU)",
            show(&pick(&with[i], |w| w.collector_ns), 1e3, 1),
            show(&collector_share, 1.0, 1),
        );
        println!(
            "  node CPU        without {} us, with {} us: {} %",
            show(&pick(&without[i], |w| w.node_ns), 1e3, 1),
            show(&pick(&with[i], |w| w.node_ns), 1e3, 1),
            show(&node_overhead, 1.0, 1),
        );
        println!(
            "  latency         without {} us, with {} us",
            show(&pick(&without[i], |w| w.wall_ns), 1e3, 1),
            show(&pick(&with[i], |w| w.wall_ns), 1e3, 1),
        );
        println!(
            "  load average    {}",
            show(
                &without[i]
                    .iter()
                    .chain(&with[i])
                    .map(|w| w.load)
                    .collect::<Vec<_>>(),
                1.0,
                2
            ),
        );
    }
    println!(
        "collector memory: RSS {} MiB after the windows, peak {} MiB",
        show(&rss_kib, 1024.0, 1),
        show(&hwm_kib, 1024.0, 1),
    );
    println!(
        "collector events per round: {} received, {} dropped by the kernel, {} runtime-noise \
         opens left out by the kernel",
        show(&events_received, 1.0, 0),
        show(&events_dropped, 1.0, 0),
        show(&noise_filtered, 1.0, 0),
    );
}
