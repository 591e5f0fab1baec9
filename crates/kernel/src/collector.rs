//! The live collector: kernel capture plus the userspace state that enriches its events.
//!
//! It seeds the process table and the kernel's parent map from /proc, probes every TLS library
//! (and Go executable using `crypto/tls`) already mapped, and while running attaches to new
//! ones as processes exec or open them. It
//! hands out decoded, enriched events in batches and keeps the counts the summary reports.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::CollectorError;
use crate::event::{self, Event, EventBody};
use crate::go_tls_targets::{GoTlsBinary, GoTlsTargetCache};
use crate::kernel::{KernelCapture, KernelOptions, KernelStats};
use crate::output_tracking::{self, OutputConsumer};
use crate::process_table::ProcessTable;
use crate::procfs;
use crate::redact;
use crate::tls_coverage::{AnalysedObject, ObjectTls, ProcessTlsTracker};
use crate::tls_targets::{self, TlsInspection, TlsMethod, TlsTargetCache};
use agentscope_event::{NotVisibleReason, PlaintextMethod, SocketRef, TlsCoverage};

#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Trace only these processes and their descendants (all when empty).
    pub pids: Vec<u32>,
    /// Copy no payload of these processes and their descendants (counted in
    /// `KernelStats::payloads_off_bytes` instead); their other events are still sent.
    pub payloads_off: Vec<u32>,
    /// Ring buffer size in bytes (rounded up to a power of two); by default sized by the
    /// node's CPUs (crate::ring_sizing).
    pub ring_buffer_bytes: u32,
    /// Capture plain TCP socket payloads as well as TLS plaintext.
    pub capture_socket_data: bool,
    /// Capture JSON exchanged over pipes and socketpairs (MCP over stdio).
    pub capture_pipe_data: bool,
    /// Send every file open, runtime noise too: read-only opens of interpreter modules,
    /// shared libraries, locale and time-zone data, which the kernel otherwise counts
    /// (`KernelStats::noise_opens_filtered`) instead of sending (`agentscope_common::noise_paths`).
    pub keep_runtime_noise: bool,
    /// One inet connection in this many keeps its payloads, chosen at its connect or accept;
    /// the others' are counted (`KernelStats::sampled_out_bytes`, by process in
    /// `payloads_left_out` events) and their connect and accept events say so. 0 and 1 keep
    /// every connection's.
    pub sample_connections: u32,
    /// Overwrite credentials in payloads (on by default).
    pub redact_secrets: bool,
    /// Where /proc is (tests point it elsewhere).
    pub proc_root: PathBuf,
    /// Agents whose baseline policy the kernel enforces (crate::enforcement).
    pub governed: Vec<crate::enforcement::GovernedAgent>,
    /// Where enforcement is pinned (crate::enforcement_pins): a collector given `governed`
    /// pins it there; one given none adopts what a collector that has gone left there.
    pub pin_dir: PathBuf,
    /// More blocks than this in a minute drop an agent back to audit; 0: never
    /// (crate::enforcement_disarm).
    pub disarm_after: u32,
    /// Finds the governed agents' files again while enforcing, so files that appear (or are
    /// replaced) after enforcement began are governed too (crate::enforcement_file_refresh).
    pub governed_file_finder: Option<crate::enforcement_file_refresh::GovernedFileFinder>,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            pids: Vec::new(),
            payloads_off: Vec::new(),
            ring_buffer_bytes: crate::ring_sizing::default_ring_bytes(),
            capture_socket_data: true,
            capture_pipe_data: true,
            keep_runtime_noise: false,
            sample_connections: 1,
            redact_secrets: true,
            proc_root: PathBuf::from("/proc"),
            governed: Vec::new(),
            pin_dir: PathBuf::from(crate::enforcement_pins::DEFAULT_PIN_DIR),
            disarm_after: crate::enforcement_disarm::DEFAULT_DISARM_AFTER,
            governed_file_finder: None,
        }
    }
}

/// Counts for the final summary line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Records read from the ring buffer.
    pub received: u64,
    /// Records that did not decode (reported, not fatal).
    pub decode_errors: u64,
    /// Decoded events by kind.
    pub events: BTreeMap<&'static str, u64>,
    /// What the kernel programs recorded: records written, records dropped for lack of ring
    /// space, and payload bytes not delivered.
    pub kernel: KernelStats,
    /// TLS libraries and executables probed.
    pub tls_targets: usize,
    /// Every file inspected that carries a TLS library: how its plaintext is captured (the
    /// method and, for a located library, the evidence), or why it is not visible.
    pub tls_libraries: Vec<TlsLibrary>,
    /// Go executables that do TLS: how their plaintext is captured ("go crypto/tls
    /// (pclntab)") or why it is not.
    pub go_tls: Vec<GoTlsBinary>,
    /// Executables and libraries analysed for a TLS stack (each file once, by device and
    /// inode, however many processes run it).
    pub binaries_analysed: u64,
    /// Processes that read the collector's output: their payloads are not captured (each also
    /// has a warning). See README, "The collector's own output".
    pub consumers: Vec<OutputConsumer>,
    /// Records still in the ring buffer when the stop's time budget ran out: read and counted,
    /// not processed (the collector stops within a second however busy the machine is).
    pub unprocessed_at_stop: u64,
    /// Records read before the stop (so in `received` and `events`) whose processing the
    /// stop's time did not allow: not printed, recorded or analysed.
    pub read_unprocessed_at_stop: u64,
    /// Connections still open at the stop that its time did not allow to be flushed: their
    /// exchanges in flight were not parsed (set by the command that runs the pipeline).
    #[serde(skip_serializing_if = "is_zero")]
    pub connections_unflushed_at_stop: u64,
    pub warnings: Vec<String>,
    /// The pipeline's memory budget: what it held at most and what it cut (set by the
    /// command that runs the pipeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::memory_budget::MemoryStats>,
}

/// serde's test for a summary counter written only once something was counted.
fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One inspected TLS library or executable, for the summary and coverage reports.
#[derive(Debug, Clone, Serialize)]
pub struct TlsLibrary {
    pub path: PathBuf,
    /// "openssl (exported symbols)", "boringssl (located)", or absent when not visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// Why the locator believes it found the functions (located methods only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<String>,
    /// Why the plaintext is not visible (a blind spot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_visible: Option<String>,
}

/// A file whose TLS probes were attached, as [`Collector::take_probed`] hands it out: from then
/// on every process that runs or loads it is probed from its exec or open, so a script can
/// wait for it before starting an agent (a binary's first process can connect while its
/// analysis runs, and those connections are reported `probes_attached_late`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbedFile {
    /// The name its first user knew it by, as `tls_libraries` and `go_tls` report it.
    pub path: String,
    /// How its plaintext is captured, as the summary names it ("openssl (located)").
    pub method: &'static str,
}

/// Probed files kept until taken: a collector whose user never takes them (the console, the
/// coverage and AI-BOM commands) keeps no more than this.
const PROBED_KEPT: usize = 1024;

/// Records read per batch, and how long one batch may take, so signals and timers are seen
/// promptly even when the ring buffer never empties.
const BATCH_BUDGET: Duration = Duration::from_millis(20);

pub struct Collector {
    kernel: KernelCapture,
    tls: TlsTargetCache,
    go_tls: GoTlsTargetCache,
    /// Which analysed files each process uses: the verdict stamped on its ClientHellos.
    process_tls: ProcessTlsTracker,
    /// The processes whose payloads the kernel leaves out on request, followed through the
    /// same forks and exits as the kernel's `PAYLOADS_OFF`: their ClientHellos are stamped
    /// not visible, and why, whatever probes their TLS stack has.
    payloads_off: HashSet<u32>,
    state: Enrichment,
    /// Files marked as collector output in the kernel, so each is marked once.
    outputs: BTreeSet<(u32, u64)>,
    /// The pinned enforcement this collector owns (its lock held while it runs).
    enforcement_pins: Option<crate::enforcement_pins::EnforcementPins>,
    /// When expired DNS answers were last taken out.
    dns_expired_at: Instant,
    /// When the governed agents' files were last looked for again.
    files_refreshed_at: Instant,
    /// The governed agents' policies, reported as events (crate::enforcement_reports).
    policy_reports: crate::enforcement_reports::PolicyReports,
    /// Files probed since [`Collector::take_probed`] was last called, in the order attached.
    probed: Vec<ProbedFile>,
}

/// How often expired DNS answers are taken out of the allow-lists (the kernel already ignores
/// them; this frees their places).
const DNS_EXPIRY_INTERVAL: Duration = Duration::from_secs(5);

/// Everything that turns a record into an enriched event. Kept apart from the kernel handle so
/// records are decoded straight out of the ring buffer, without copying them first.
struct Enrichment {
    processes: ProcessTable,
    options: CollectorOptions,
    boot_time_ns: u64,
    summary: Summary,
    last_decode_error: Option<String>,
    /// What this batch revealed about processes' TLS stacks, in event order; handled once the
    /// batch is read (probing needs the kernel handle the read borrows).
    tls_pending: Vec<TlsPending>,
    /// Per-stream redaction state (see [`redact::EventRedactor`]).
    redactor: redact::EventRedactor,
    disarmer: crate::enforcement_disarm::Disarmer,
    /// Agents the disarmer tripped on in this batch, to drop to audit once it is read.
    to_disarm: Vec<u32>,
    /// Packages processes load, read from their roots (`package` events).
    packages: crate::package_inventory::PackageInventory,
    /// Mount tables of the mount namespaces writes were seen in (host paths in containers).
    host_mounts: crate::host_mounts::HostMounts,
}

/// Files opened per batch for analysis; the rest are reached by path when the batch is handled.
const FILES_HELD_PER_BATCH: usize = 256;

/// An event that matters to a process's TLS coverage, kept in order until the batch is read.
enum TlsPending {
    /// A file to analyse (and probe): an executable the process exec'd (`exec`), or a TLS
    /// library it opened.
    Object {
        pid: u32,
        path: PathBuf,
        /// The file, opened as soon as its event was read: a short-lived process may be gone
        /// (and its /proc entry with it) by the time the batch is handled.
        file: Option<std::fs::File>,
        shown: String,
        exec: bool,
    },
    Fork {
        parent: u32,
        child: u32,
    },
    Exit {
        pid: u32,
    },
    /// A ClientHello: event `index` of the batch gets the process's verdict.
    Hello {
        pid: u32,
        index: usize,
        /// Written inside a located OpenSSL 3 handshake (see `tls_hello_flags`).
        in_located_handshake: bool,
    },
}

impl Enrichment {
    /// Notes what an event says about TLS coverage: an exec of a binary (which may embed
    /// OpenSSL, as Node does, or a TLS stack agentscope cannot read), a process opening a
    /// libssl (Python importing `ssl`), forks and exits, and ClientHellos to stamp.
    fn note_tls(&mut self, event: &Event, raw: &[u8], index: usize) {
        let pid = event.header.pid;
        let (path, exec) = match &event.body {
            EventBody::Exec { filename, .. } => (filename, true),
            EventBody::Open { path, ret, .. }
                if *ret >= 0 && tls_targets::looks_like_tls_library(path) =>
            {
                (path, false)
            }
            EventBody::Fork { child_pid, .. } => {
                self.tls_pending.push(TlsPending::Fork {
                    parent: pid,
                    child: *child_pid,
                });
                return;
            }
            // A process's, whichever of its threads ended last (docs/events.md, `exit`).
            EventBody::Exit { .. } => {
                self.tls_pending.push(TlsPending::Exit { pid });
                return;
            }
            EventBody::TlsHello { .. } => {
                let at = std::mem::offset_of!(agentscope_common::TlsHelloEvent, flags);
                let flags = raw
                    .get(at..at + 2)
                    .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
                self.tls_pending.push(TlsPending::Hello {
                    pid,
                    index,
                    in_located_handshake: flags
                        & agentscope_common::tls_hello_flags::IN_LOCATED_HANDSHAKE
                        != 0,
                });
                return;
            }
            _ => return,
        };
        let shown = path.clone();
        let proc_dir = self.options.proc_root.join(pid.to_string());
        let path = if path.starts_with('/') {
            proc_dir.join("root").join(path.trim_start_matches('/'))
        } else {
            // A relative exec path: the kernel's view through /proc/PID/exe is authoritative.
            proc_dir.join("exe")
        };
        let held = self
            .tls_pending
            .iter()
            .filter(|p| matches!(p, TlsPending::Object { file: Some(_), .. }))
            .count();
        // Bounded, so a batch of execs cannot exhaust the collector's file descriptors.
        // A process that has already exited has no /proc root to look through: its parent
        // (alive, most likely, and in the same mount namespace, most likely) names the same
        // file. A wrong guess gives a verdict about the wrong file, so only the exec'd path is
        // tried there, never /proc/PID/exe.
        let parent_view = (shown.starts_with('/') && event.header.ppid != 0).then(|| {
            self.options
                .proc_root
                .join(event.header.ppid.to_string())
                .join("root")
                .join(shown.trim_start_matches('/'))
        });
        let file = (held < FILES_HELD_PER_BATCH)
            .then(|| {
                std::fs::File::open(&path)
                    .ok()
                    .or_else(|| parent_view.and_then(|p| std::fs::File::open(p).ok()))
            })
            .flatten();
        self.tls_pending.push(TlsPending::Object {
            pid,
            path,
            file,
            shown,
            exec,
        });
    }

    /// A successful write-open under a host path mounted into the process's container: the
    /// event that says so, to follow the open (see [`crate::host_mounts`]).
    fn host_path_write(&mut self, event: &Event) -> Option<Event> {
        let EventBody::Open {
            path, flags, ret, ..
        } = &event.body
        else {
            return None;
        };
        let write = flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) != 0;
        if *ret < 0 || !write {
            return None;
        }
        let lineage = self.processes.lineage(event.header.pid);
        let found = self.host_mounts.host_path(&lineage, path)?;
        Some(Event {
            header: event.header.clone(),
            body: EventBody::HostPathWrite {
                fd: *ret,
                path: path.clone(),
                mount_point: found.mount_point,
                host_path: found.host_path,
            },
        })
    }

    fn accept(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        self.summary.received += 1;
        match event::decode(bytes, self.boot_time_ns) {
            Ok(mut event) => {
                // Before anything keeps a copy (the process table keeps argv).
                if self.options.redact_secrets {
                    self.redactor.redact(&mut event);
                }
                self.processes.apply(&mut event);
                let mut disarmed = None;
                if let EventBody::Enforce(decision) = &mut event.body {
                    let agent = self
                        .options
                        .governed
                        .iter()
                        .find(|agent| agent.id == decision.agent_id);
                    decision.baseline = agent.map(|agent| agent.baseline.clone());
                    // A file decision names its rule; the rule, the path the agent knows.
                    if let (Some(agent), Some(rule)) = (agent, decision.rule) {
                        decision.path = agent
                            .governed_files
                            .get(rule as usize)
                            .map(|file| file.path.clone());
                    }
                    if decision.action == agentscope_event::enforcement::EnforceAction::Blocked {
                        if let Some(count) = self
                            .disarmer
                            .note_block(decision.agent_id, event.header.ts_ns)
                        {
                            self.to_disarm.push(decision.agent_id);
                            disarmed = Some(Event {
                                header: event.header.clone(),
                                body: EventBody::Enforce(Box::new(
                                    agentscope_event::enforcement::EnforceDecision::disarmed(
                                        decision, count,
                                    ),
                                )),
                            });
                        }
                    }
                }
                let host_write = self.host_path_write(&event);
                self.note_tls(&event, bytes, out.len());
                // Read now, while the process (and so its root) most likely still exists.
                let package = match &event.body {
                    EventBody::Open { path, ret, .. } if *ret >= 0 => {
                        self.packages.opened(event.header.pid, path)
                    }
                    EventBody::Exit { .. } => {
                        self.packages.exit(event.header.pid);
                        None
                    }
                    _ => None,
                };
                let package = package.map(|package| Event {
                    header: event.header.clone(),
                    body: EventBody::Package(Box::new(package)),
                });
                *self
                    .summary
                    .events
                    .entry(event.body.kind_name())
                    .or_default() += 1;
                out.push(event);
                out.extend(disarmed);
                out.extend(package);
                out.extend(host_write);
            }
            Err(err) => {
                self.summary.decode_errors += 1;
                self.last_decode_error = Some(err.to_string());
            }
        }
    }
}

/// Pipe ends the processes already hold, as (pid, fd), read from `/proc/PID/fd` (links named
/// `pipe:[inode]`). Unix socketpairs are left out: /proc cannot tell them from connected Unix
/// sockets, which are not stdio.
fn existing_pipe_ends(proc_root: &Path, pids: &[u32]) -> Vec<(u32, i32)> {
    let own = std::process::id();
    let mut ends = Vec::new();
    for &pid in pids.iter().filter(|&&pid| pid != own) {
        let Ok(entries) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let is_pipe = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("pipe:["));
            if is_pipe {
                ends.push((pid, fd));
            }
        }
    }
    ends
}

pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An event the collector makes itself, stamped now: its observation, not a process's (no
/// pid, no cgroup), as `enforce_policy` and `cluster_objects` events are.
pub fn collector_made_event(body: EventBody) -> Event {
    let ts_ns = clock_ns(libc::CLOCK_BOOTTIME);
    Event {
        header: event::Header {
            ts_ns,
            time_unix_ns: boot_time_ns().saturating_add(ts_ns),
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            comm: Default::default(),
        },
        body,
    }
}

/// Wall-clock time of boot, to turn the kernel's boot-relative timestamps into wall time.
pub fn boot_time_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME).saturating_sub(clock_ns(libc::CLOCK_BOOTTIME))
}

impl Collector {
    /// Loads and attaches everything. Fails with an actionable error when privileges or kernel
    /// features are missing.
    pub fn start(mut options: CollectorOptions) -> Result<Self, CollectorError> {
        let mut existing = procfs::list_processes(&options.proc_root);
        // A pid not running now would name whichever process takes it later: for the payload
        // switch, a process left out that nobody asked to leave out.
        if let Some(&missing) = options
            .pids
            .iter()
            .chain(&options.payloads_off)
            .find(|&&pid| !existing.iter().any(|p| p.pid == pid))
        {
            return Err(CollectorError::NoSuchProcess(missing));
        }
        if options.redact_secrets {
            for process in &mut existing {
                redact::redact_argv(&mut process.argv);
            }
        }
        let targets = if options.pids.is_empty() {
            Vec::new()
        } else {
            procfs::with_descendants(&existing, &options.pids)
        };
        let traced_now: Vec<u32> = if targets.is_empty() {
            existing.iter().map(|p| p.pid).collect()
        } else {
            targets.clone()
        };
        // Enforcement is always pinned; without agents to govern, what is pinned is adopted.
        let pins = crate::enforcement_pins::EnforcementPins::claim(
            &options.pin_dir,
            !options.governed.is_empty(),
        )?;
        // The processes named and their descendants already running; the kernel passes the
        // switch on to children started later.
        let payloads_off = if options.payloads_off.is_empty() {
            Vec::new()
        } else {
            procfs::with_descendants(&existing, &options.payloads_off)
        };
        let mut kernel = KernelCapture::load(&KernelOptions {
            ring_buffer_bytes: options.ring_buffer_bytes,
            self_tgid: std::process::id(),
            target_pids: targets,
            payloads_off_pids: payloads_off.clone(),
            capture_socket_data: options.capture_socket_data,
            capture_pipe_data: options.capture_pipe_data,
            keep_runtime_noise: options.keep_runtime_noise,
            sample_connections: options.sample_connections,
            pinned_maps: pins
                .as_ref()
                .map(|pins| pins.map_paths())
                .unwrap_or_default(),
        })?;
        kernel.seed_parents(existing.iter().map(|p| (p.pid, p.ppid)));
        let mut policy_reports = crate::enforcement_reports::PolicyReports::new();
        if let Some(pins) = &pins {
            let adopting = options.governed.is_empty();
            crate::enforcement_pins::govern_pinned(
                &mut kernel,
                pins,
                &mut options.governed,
                &options.proc_root,
            )?;
            policy_reports.governing(
                &options.governed,
                if adopting {
                    agentscope_event::enforcement::PolicyChange::Adopted
                } else {
                    agentscope_event::enforcement::PolicyChange::Started
                },
            );
        }
        if options.capture_pipe_data {
            kernel.seed_pipes(existing_pipe_ends(&options.proc_root, &traced_now));
        }
        let mut processes = ProcessTable::default();
        processes.seed(&existing);
        let mut collector = Collector {
            kernel,
            outputs: BTreeSet::new(),
            tls: TlsTargetCache::default(),
            go_tls: GoTlsTargetCache::default(),
            process_tls: ProcessTlsTracker::default(),
            payloads_off: payloads_off.into_iter().collect(),
            state: Enrichment {
                processes,
                boot_time_ns: boot_time_ns(),
                summary: Summary::default(),
                last_decode_error: None,
                tls_pending: Vec::new(),
                redactor: redact::EventRedactor::default(),
                disarmer: crate::enforcement_disarm::Disarmer::new(options.disarm_after),
                to_disarm: Vec::new(),
                packages: crate::package_inventory::PackageInventory::new(&options.proc_root),
                host_mounts: crate::host_mounts::HostMounts::new(&options.proc_root),
                options,
            },
            enforcement_pins: pins,
            dns_expired_at: Instant::now(),
            files_refreshed_at: Instant::now(),
            policy_reports,
            probed: Vec::new(),
        };
        collector.probe_mapped_tls_libraries(&existing);
        // Loading the programs parses the kernel's BTF and the programs' line info (27 MiB at
        // start-up's peak, heaptrack), and analysing the node's TLS binaries allocates as it
        // goes; all of it is freed by now and would otherwise stay in RSS for the whole run.
        crate::memory_budget::return_freed_heap_to_the_system();
        // Whatever reads the collector's stdout or stderr must not be captured reading it.
        for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            collector.mark_output_fd(fd);
        }
        Ok(collector)
    }

    /// Marks an open fd of this process as collector output (a pipe or a regular file; other
    /// kinds are ignored by the kernel programs).
    pub fn mark_output_fd(&mut self, fd: i32) {
        if let Some(file) = output_tracking::file_id_of_fd(fd) {
            self.mark_output(file);
        }
    }

    /// Marks a file the collector writes (a recording, the graph JSON) as collector output.
    pub fn mark_output_file(&mut self, path: &Path) {
        if let Ok(metadata) = std::fs::metadata(path) {
            self.mark_output(output_tracking::file_id(&metadata));
        }
    }

    fn mark_output(&mut self, file: agentscope_common::FileId) {
        if self.outputs.insert((file.dev, file.ino)) {
            self.kernel.mark_output(file);
        }
    }

    /// Stops the kernel copying the payloads of plain sockets reconstruction found to carry
    /// no protocol it reads: what follows on them would be read and dropped. Their bytes are
    /// counted instead (`KernelStats::opaque_socket_bytes`). An id the kernel never gave (0: a
    /// socket seen before tracing) matches no socket.
    pub fn mute_sockets(&mut self, sockets: impl IntoIterator<Item = SocketRef>) {
        for socket in sockets {
            self.kernel.mute_socket(socket);
        }
    }

    /// Processes that read the collector's output so far, by pid.
    pub fn consumers(&self) -> Vec<OutputConsumer> {
        let mut by_pid: BTreeMap<u32, OutputConsumer> = BTreeMap::new();
        for (pid, consumer, exited) in self.kernel.consumers() {
            let entry = by_pid.entry(pid).or_insert_with(|| OutputConsumer {
                pid,
                comm: crate::event::c_string(&consumer.comm),
                exited,
            });
            entry.exited &= exited;
        }
        by_pid.into_values().collect()
    }

    fn probe_mapped_tls_libraries(&mut self, existing: &[procfs::ProcEntry]) {
        let proc_root = self.state.options.proc_root.clone();
        for process in existing {
            if process.pid == std::process::id() {
                continue;
            }
            for file in procfs::mapped_files(&proc_root, process.pid) {
                let is_exe = process.exe.as_deref() == Some(file.as_path());
                if is_exe || tls_targets::looks_like_tls_library(&file.to_string_lossy()) {
                    let in_namespace = proc_root
                        .join(process.pid.to_string())
                        .join("root")
                        .join(file.strip_prefix("/").unwrap_or(&file));
                    self.analyse(process.pid, &in_namespace, &file.to_string_lossy(), false);
                }
            }
        }
    }

    /// Analyses (once per file) and probes a file `pid` runs or loaded, and notes that the
    /// process uses it.
    fn analyse(&mut self, pid: u32, path: &Path, shown: &str, exec: bool) {
        let kernel = &mut self.kernel;
        let warnings = &mut self.state.summary.warnings;
        let probed = &mut self.probed;
        let object = self.tls.analyse(path, shown, |target| {
            kernel
                .attach_tls(target)
                .map(|_| note_probed(probed, shown, target.method.name()))
                .map_err(|err| {
                    warnings.push(err.to_string());
                    err.to_string()
                })
        });
        match object {
            Some(object) => self.process_tls.uses(pid, object, exec),
            // Gone before it could be read: what the process ran is unknown.
            None if exec => self.process_tls.exit(pid),
            None => {}
        }
        if let Some(target) = self.go_tls.check(path, shown) {
            let outcome = self.kernel.attach_go_tls(&target).map_err(|err| {
                self.state.summary.warnings.push(err.to_string());
                err.to_string()
            });
            if outcome.is_ok() {
                note_probed(
                    &mut self.probed,
                    shown,
                    crate::go_tls_targets::GO_TLS_METHOD,
                );
            }
            if let (Ok(_), Some(weakness)) = (&outcome, &target.write_probe_weakness) {
                self.state
                    .summary
                    .warnings
                    .push(format!("{shown}: {weakness}"));
            }
            self.go_tls.attached(&target, outcome);
        }
        // A Go executable's own verdict (its stack is Go's crypto/tls, not an OpenSSL export).
        if let Some(tls) = self.go_tls_verdict(path) {
            let object = AnalysedObject {
                path: shown.to_string(),
                tls,
            };
            self.process_tls.uses(pid, object, false);
        }
    }

    /// The files whose TLS probes were attached since the last call, in the order attached
    /// (those found running at start first): each file once, when it is first analysed.
    pub fn take_probed(&mut self) -> Vec<ProbedFile> {
        std::mem::take(&mut self.probed)
    }

    /// A connection whose ClientHello went out before the probes of the file that would have
    /// seen it were attached (a binary's first process can connect while its analysis runs;
    /// whichever the stack) had its first calls missed: not visible, and that is why. A hello
    /// written inside a probed handshake (located OpenSSL 3) proves the probes were there.
    fn attached_late(
        &self,
        verdict: TlsCoverage,
        in_located_handshake: bool,
        hello_ts_ns: u64,
    ) -> TlsCoverage {
        let TlsCoverage::Seen { object, .. } = &verdict else {
            return verdict;
        };
        if in_located_handshake {
            return verdict;
        }
        let attached_at_ns = self
            .tls
            .inspections()
            .find(|library| library.shown == object.as_str())
            .and_then(|library| library.attached_at_ns)
            .or_else(|| {
                self.go_tls
                    .binaries()
                    .iter()
                    .find(|binary| binary.path == *object)
                    .and_then(|binary| binary.attached_at_ns)
            });
        match attached_at_ns {
            Some(attached) if hello_ts_ns < attached => TlsCoverage::NotVisible {
                reason: NotVisibleReason::ProbesAttachedLate {
                    detail: format!(
                        "{object}: this ClientHello came {} ms before the probes were attached",
                        (attached - hello_ts_ns) / 1_000_000
                    ),
                },
            },
            _ => verdict,
        }
    }

    /// A connection of a binary that links a located OpenSSL 3 and rustls beside it is
    /// OpenSSL's if its ClientHello was written inside the located `SSL_do_handshake`, or
    /// offers a cipher suite rustls never offers; otherwise rustls made it (Codex CLI
    /// 0.171.0's model calls): seen through the located aws-lc AEAD when that was located too,
    /// not visible (and why) when not. The flag alone is not enough: a process that connects
    /// while its binary is analysed can enter the handshake just before the probes are
    /// attached and write its hello just after, unflagged (a slow CI host saw an OpenSSL hello
    /// of Codex 0.101.0 blamed on rustls so); its suites settle most of those cases.
    fn other_stack(
        &self,
        verdict: TlsCoverage,
        in_located_handshake: bool,
        hello: &[u8],
    ) -> TlsCoverage {
        let TlsCoverage::Seen {
            method: method @ (PlaintextMethod::OpensslLocated | PlaintextMethod::RustlsLocated),
            object,
        } = &verdict
        else {
            return verdict;
        };
        if *method == PlaintextMethod::OpensslLocated
            && (in_located_handshake
                || agentscope_event::tls_hello::parse_client_hello(hello)
                    .and_then(|hello| hello.suite_rustls_never_offers())
                    .is_some())
        {
            return verdict;
        }
        let Some(library) = self
            .tls
            .inspections()
            .find(|library| library.shown == object.as_str())
        else {
            return verdict;
        };
        let rustls = match library.inspection {
            TlsInspection::Target(target) => match &target.method {
                TlsMethod::OpenSsl3Located {
                    rustls_beside: Some(rustls),
                    rustls_probed,
                    ..
                } => Some((rustls.clone(), rustls_probed.clone())),
                _ => None,
            },
            _ => None,
        };
        match rustls {
            Some((_, Ok(()))) => TlsCoverage::Seen {
                method: PlaintextMethod::RustlsLocated,
                object: object.clone(),
            },
            Some((rustls, Err(why))) => TlsCoverage::NotVisible {
                reason: NotVisibleReason::OtherStackNotProbed {
                    detail: format!(
                        "{object}: this ClientHello was not written by its located OpenSSL; rustls {rustls} is linked in too ({why})"
                    ),
                },
            },
            None => verdict,
        }
    }

    /// What the Go analysis found in the file at `path` (analysed before, once per file), as a
    /// coverage verdict: probed, or why not. `None` for files that are not Go programs doing TLS.
    fn go_tls_verdict(&self, path: &Path) -> Option<ObjectTls> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        let binary = self
            .go_tls
            .binaries()
            .iter()
            .find(|b| b.dev == meta.dev() && b.ino == meta.ino())?;
        match (&binary.method, &binary.blind_spot) {
            (Some(_), _) => Some(ObjectTls::Probed(PlaintextMethod::GoCryptoTls)),
            (None, Some(why)) if why.starts_with("attach failed") => {
                Some(ObjectTls::AttachFailed(why.clone()))
            }
            // Located but not probeable here (an unsupported Go version or ABI): say why.
            (None, Some(why)) => Some(ObjectTls::ValidationFailed(why.clone())),
            (None, None) => None,
        }
    }

    /// Go executables that do TLS seen so far: how their plaintext is captured, or why not.
    pub fn go_tls_binaries(&self) -> &[GoTlsBinary] {
        self.go_tls.binaries()
    }

    /// Handles, in event order, what the last batch revealed: files to analyse and probe,
    /// forks and exits, and ClientHellos that get their process's verdict.
    fn settle_tls(&mut self, batch: &mut [Event]) {
        for pending in std::mem::take(&mut self.state.tls_pending) {
            match pending {
                TlsPending::Object {
                    pid,
                    path,
                    file,
                    shown,
                    exec,
                } => {
                    // Through the descriptor opened when the event was read, if any: it
                    // reaches the file even if the process has exited since.
                    let path = match &file {
                        Some(file) => {
                            use std::os::fd::AsRawFd as _;
                            PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
                        }
                        None => path,
                    };
                    self.analyse(pid, &path, &shown, exec);
                    drop(file);
                }
                TlsPending::Fork { parent, child } => {
                    self.process_tls.fork(parent, child);
                    if self.payloads_off.contains(&parent) {
                        self.payloads_off.insert(child);
                    }
                }
                TlsPending::Exit { pid } => {
                    self.process_tls.exit(pid);
                    self.payloads_off.remove(&pid);
                }
                TlsPending::Hello {
                    pid,
                    index,
                    in_located_handshake,
                } => {
                    let ts_ns = batch.get(index).map_or(0, |e| e.header.ts_ns);
                    if let Some(EventBody::TlsHello { coverage, data, .. }) =
                        batch.get_mut(index).map(|e| &mut e.body)
                    {
                        *coverage = Some(if self.payloads_off.contains(&pid) {
                            TlsCoverage::NotVisible {
                                reason: NotVisibleReason::PayloadsLeftOut,
                            }
                        } else {
                            let verdict = self.process_tls.verdict(pid);
                            let verdict = self.attached_late(verdict, in_located_handshake, ts_ns);
                            self.other_stack(verdict, in_located_handshake, data)
                        });
                    }
                }
            }
        }
    }

    /// Drops the agents the disarmer tripped on to audit in the kernel, and now and then
    /// takes expired DNS answers out of the allow-lists.
    fn apply_disarms(&mut self) {
        for agent in std::mem::take(&mut self.state.to_disarm) {
            if let Err(err) = self.kernel.disarm(agent) {
                self.state.summary.warnings.push(err.to_string());
            } else if let Some(governed) =
                self.state.options.governed.iter().find(|g| g.id == agent)
            {
                self.policy_reports.disarmed(&mut self.kernel, governed);
            }
        }
        if self.enforcement_pins.is_some() {
            self.policy_reports
                .check(&mut self.kernel, &self.state.options.governed);
        }
        if self.enforcement_pins.is_some()
            && self.files_refreshed_at.elapsed()
                >= crate::enforcement_file_refresh::REFRESH_INTERVAL
        {
            self.files_refreshed_at = Instant::now();
            self.refresh_governed_files();
        }
        if self.enforcement_pins.is_some() && self.dns_expired_at.elapsed() >= DNS_EXPIRY_INTERVAL {
            self.dns_expired_at = Instant::now();
            self.kernel.expire_dns_answers();
        }
    }

    /// Governs the files that appeared in (or were replaced in) the governed agents' roots
    /// since they were last looked for, each as a new rule numbered after the agent's others,
    /// and reports them (crate::enforcement_file_refresh).
    fn refresh_governed_files(&mut self) {
        let Some(finder) = self.state.options.governed_file_finder.clone() else {
            return;
        };
        let mut rules: usize = self
            .state
            .options
            .governed
            .iter()
            .map(|agent| agent.governed_files.len())
            .sum();
        for index in 0..self.state.options.governed.len() {
            let agent = &self.state.options.governed[index];
            if agent.files == crate::enforcement::Mode::Off {
                continue;
            }
            let Some(found) = (finder.0)(agent.id) else {
                continue;
            };
            let mut new =
                crate::enforcement_file_refresh::not_yet_governed(&agent.governed_files, found);
            let room = (agentscope_common::enforce::MAX_FILE_RULES as usize).saturating_sub(rules);
            if new.len() > room {
                self.state.summary.warnings.push(format!(
                    "baseline {}: {} more governed files than the kernel's {} file rules hold \
                     are not governed",
                    agent.baseline,
                    new.len() - room,
                    agentscope_common::enforce::MAX_FILE_RULES
                ));
                new.truncate(room);
            }
            if new.is_empty() {
                continue;
            }
            let first = agent.governed_files.len() as u32;
            if let Err(err) = self.kernel.write_agent_file_rules(agent.id, first, &new) {
                self.state.summary.warnings.push(err.to_string());
                continue;
            }
            rules += new.len();
            let paths = new.iter().map(|file| file.path.clone()).collect();
            let agent = &mut self.state.options.governed[index];
            agent.governed_files.extend(new);
            self.policy_reports.files_added(agent, paths);
        }
    }

    /// Enforcement's upkeep (disarms, policy changes made behind the collector's back,
    /// governed files found again, expired DNS answers), for a caller's timer: it also runs
    /// after each batch of events, but a quiet governed agent makes none. Returns the policy
    /// events it made.
    pub fn keep_enforcement(&mut self) -> Vec<Event> {
        self.apply_disarms();
        self.policy_reports.take()
    }

    /// The pin directory this collector owns, when it governs (or adopted) enforcement.
    pub fn enforcement_pin_dir(&self) -> Option<&Path> {
        self.enforcement_pins.as_ref().map(|pins| pins.dir())
    }

    /// Waits for events and returns the next batch (at most `max`).
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Event>, CollectorError> {
        // Policies reported at start come out at once, not after the kernel's first events.
        let reported = self.policy_reports.take();
        if !reported.is_empty() {
            return Ok(reported);
        }
        let mut out = Vec::new();
        let state = &mut self.state;
        state.packages.new_batch();
        self.kernel
            .read_batch(max, BATCH_BUDGET, |bytes| state.accept(bytes, &mut out))
            .await?;
        self.complete_batch(&mut out);
        Ok(out)
    }

    /// What a batch gets once its records are read, live or draining: ClientHellos stamped,
    /// left-out reports put before exits, disarms applied, policy reports appended.
    fn complete_batch(&mut self, out: &mut Vec<Event>) {
        self.settle_tls(out);
        crate::left_out_reports::before_exits(&mut self.kernel, out);
        self.apply_disarms();
        out.extend(self.policy_reports.take());
    }

    /// Stops capture: the kernel programs emit nothing more, so the ring buffer only empties
    /// from here on, however busy the machine is. Follow with [`Collector::drain_until`] and
    /// [`Collector::discard_rest`].
    pub fn stop_emitting(&mut self) {
        self.kernel.stop_emitting();
    }

    /// What the ring buffer holds, without waiting: at most `max` events, read until `until`.
    /// Also says whether the ring buffer was left empty.
    pub fn drain_until(&mut self, max: usize, until: Instant) -> (Vec<Event>, bool) {
        let mut out = self.policy_reports.take();
        let state = &mut self.state;
        state.packages.new_batch();
        let (_, emptied) = self
            .kernel
            .drain_now(max, until, |bytes| state.accept(bytes, &mut out));
        self.complete_batch(&mut out);
        (out, emptied)
    }

    /// After the stop's drain: what the kernel left out of each process not seen to exit
    /// (`payloads_left_out` events with `running` set; exited processes were reported before
    /// their exits). Call once, before [`Collector::discard_rest`].
    pub fn left_out_at_stop(&mut self) -> Vec<Event> {
        let ts_ns = clock_ns(libc::CLOCK_BOOTTIME);
        crate::left_out_reports::at_stop(
            &mut self.kernel,
            &self.state.processes,
            ts_ns,
            boot_time_ns().saturating_add(ts_ns),
        )
    }

    /// Reads and counts, without processing, what is left in the ring buffer after a stop's
    /// time ran out (a 64 MiB ring buffer can hold more than a second of processing): the
    /// count is `Summary::unprocessed_at_stop`. Takes at most `budget`.
    pub fn discard_rest(&mut self, budget: Duration) {
        let mut left = 0;
        self.kernel
            .drain_now(usize::MAX, Instant::now() + budget, |_| left += 1);
        self.state.summary.unprocessed_at_stop += left;
    }

    /// Counts events that were read before a stop but whose processing the stop's time did
    /// not allow (`Summary::read_unprocessed_at_stop`).
    pub fn count_read_unprocessed(&mut self, events: u64) {
        self.state.summary.read_unprocessed_at_stop += events;
    }

    /// Ends capture for good at the end of the process, without waiting for the kernel to
    /// unload the programs (see `KernelCapture::unload_in_background`).
    pub fn close(self) {
        self.kernel.unload_in_background();
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.state.processes
    }

    pub fn last_decode_error(&self) -> Option<&str> {
        self.state.last_decode_error.as_deref()
    }

    pub fn summary(&self) -> Summary {
        let mut summary = self.state.summary.clone();
        summary.kernel = self.kernel.stats();
        summary.tls_targets = self.tls.probed_count();
        summary.tls_libraries = self
            .tls
            .inspections()
            .filter_map(|library| match library.inspection {
                TlsInspection::Target(target) => Some(TlsLibrary {
                    path: library.shown.into(),
                    method: Some(target.method.name()),
                    anchors: target.method.anchors().to_vec(),
                    not_visible: None,
                }),
                TlsInspection::NotRecognised { why, .. } => Some(TlsLibrary {
                    path: library.shown.into(),
                    method: None,
                    anchors: Vec::new(),
                    not_visible: Some(why.clone()),
                }),
                TlsInspection::Nothing => None,
            })
            .collect();
        summary.tls_libraries.sort_by(|a, b| a.path.cmp(&b.path));
        summary.go_tls = self.go_tls.binaries().to_vec();
        summary.binaries_analysed = self.tls.analysed;
        summary.consumers = self.consumers();
        summary
            .warnings
            .extend(summary.consumers.iter().map(OutputConsumer::warning));
        summary
            .warnings
            .extend(self.kernel.warnings.iter().cloned());
        summary
    }
}

/// Keeps `path` for [`Collector::take_probed`], up to [`PROBED_KEPT`] untaken.
fn note_probed(probed: &mut Vec<ProbedFile>, path: &str, method: &'static str) {
    if probed.len() < PROBED_KEPT {
        probed.push(ProbedFile {
            path: path.to_string(),
            method,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_files_are_kept_in_order_up_to_a_bound() {
        let mut probed = Vec::new();
        for i in 0..PROBED_KEPT + 10 {
            note_probed(&mut probed, &format!("/opt/agent{i}"), "openssl (located)");
        }
        assert_eq!(probed.len(), PROBED_KEPT);
        assert_eq!(
            probed[0],
            ProbedFile {
                path: "/opt/agent0".into(),
                method: "openssl (located)"
            }
        );
        assert_eq!(
            probed[PROBED_KEPT - 1].path,
            format!("/opt/agent{}", PROBED_KEPT - 1)
        );
    }
}
