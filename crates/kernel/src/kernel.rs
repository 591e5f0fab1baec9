//! Loading and attaching the kernel programs, and access to their maps.
//!
//! This is the only module that talks to the kernel. It turns every failure into a
//! [`CollectorError`] that says what is missing and how to fix it.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use agentscope_common::{config, stat, Consumer, FileId, LeftOutBytes, MutedSocketKey};
use aya::maps::{
    Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf,
};
use aya::programs::uprobe::UProbeScope;
use aya::programs::{TracePoint, UProbe};
use aya::{Ebpf, EbpfLoader};
use tokio::io::unix::AsyncFd;

use crate::error::CollectorError;
use crate::go_tls_targets::{EntryProbe, GoTlsTarget, ReadResultProbe};
use crate::tls_targets::{aws_lc, openssl3, TlsMethod, TlsTarget};

#[cfg(not(agentscope_ebpf_skipped))]
pub(crate) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agentscope-collector-ebpf"));
#[cfg(agentscope_ebpf_skipped)]
pub(crate) static EBPF_OBJECT: &[u8] = &[];

/// (program, tracepoint category, tracepoint, required). Optional ones may be absent on some
/// architectures (no legacy `open` on arm64) and are skipped with a warning.
const TRACEPOINTS: &[(&str, &str, &str, bool)] = &[
    ("task_newtask", "task", "task_newtask", true),
    ("sched_process_exit", "sched", "sched_process_exit", true),
    ("sys_enter_execve", "syscalls", "sys_enter_execve", true),
    ("sys_exit_execve", "syscalls", "sys_exit_execve", true),
    (
        "sys_enter_execveat",
        "syscalls",
        "sys_enter_execveat",
        false,
    ),
    ("sys_exit_execveat", "syscalls", "sys_exit_execveat", false),
    (
        "sys_enter_exit_group",
        "syscalls",
        "sys_enter_exit_group",
        true,
    ),
    ("sys_enter_exit", "syscalls", "sys_enter_exit", true),
    ("sys_enter_open", "syscalls", "sys_enter_open", false),
    ("sys_exit_opens", "syscalls", "sys_exit_open", false),
    ("sys_enter_openat", "syscalls", "sys_enter_openat", true),
    ("sys_exit_opens", "syscalls", "sys_exit_openat", true),
    ("sys_enter_openat2", "syscalls", "sys_enter_openat2", false),
    ("sys_exit_opens", "syscalls", "sys_exit_openat2", false),
    ("sys_enter_connect", "syscalls", "sys_enter_connect", true),
    ("sys_exit_connect", "syscalls", "sys_exit_connect", true),
    ("sys_enter_accept", "syscalls", "sys_enter_accept", false),
    ("sys_exit_accept", "syscalls", "sys_exit_accept", false),
    ("sys_enter_accept4", "syscalls", "sys_enter_accept4", true),
    ("sys_exit_accept4", "syscalls", "sys_exit_accept4", true),
    ("sys_enter_close", "syscalls", "sys_enter_close", true),
    ("inet_sock_set_state", "sock", "inet_sock_set_state", true),
    ("sys_enter_write", "syscalls", "sys_enter_write", true),
    ("sys_exit_io", "syscalls", "sys_exit_write", true),
    ("sys_enter_read", "syscalls", "sys_enter_read", true),
    ("sys_exit_io", "syscalls", "sys_exit_read", true),
    ("sys_enter_sendto", "syscalls", "sys_enter_sendto", true),
    ("sys_exit_io", "syscalls", "sys_exit_sendto", true),
    ("sys_enter_recvfrom", "syscalls", "sys_enter_recvfrom", true),
    ("sys_enter_sendmsg", "syscalls", "sys_enter_sendmsg", true),
    ("sys_exit_io", "syscalls", "sys_exit_sendmsg", true),
    ("sys_enter_recvmsg", "syscalls", "sys_enter_recvmsg", true),
    ("sys_exit_io", "syscalls", "sys_exit_recvmsg", true),
    ("sys_enter_sendmmsg", "syscalls", "sys_enter_sendmmsg", true),
    ("sys_exit_io", "syscalls", "sys_exit_recvfrom", true),
    // Pipe tracking. arm64 has neither pipe nor dup2 (only pipe2 and dup3).
    ("sys_enter_pipe", "syscalls", "sys_enter_pipe", false),
    ("sys_exit_pipe", "syscalls", "sys_exit_pipe", false),
    ("sys_enter_pipe2", "syscalls", "sys_enter_pipe2", true),
    ("sys_exit_pipe2", "syscalls", "sys_exit_pipe2", true),
    (
        "sys_enter_socketpair",
        "syscalls",
        "sys_enter_socketpair",
        true,
    ),
    (
        "sys_exit_socketpair",
        "syscalls",
        "sys_exit_socketpair",
        true,
    ),
    ("sys_enter_dup", "syscalls", "sys_enter_dup", true),
    ("sys_exit_dup", "syscalls", "sys_exit_dup", true),
    ("sys_enter_dup2", "syscalls", "sys_enter_dup2", false),
    ("sys_exit_dup2", "syscalls", "sys_exit_dup2", false),
    ("sys_enter_dup3", "syscalls", "sys_enter_dup3", true),
    ("sys_exit_dup3", "syscalls", "sys_exit_dup3", true),
    ("sys_enter_fcntl", "syscalls", "sys_enter_fcntl", true),
    ("sys_exit_fcntl", "syscalls", "sys_exit_fcntl", true),
    (
        "sys_enter_close_range",
        "syscalls",
        "sys_enter_close_range",
        false,
    ),
    // Reads and writes of the collector's output by other processes (see output_tracking);
    // readv and writev also carry socket and pipe payloads (vectored_io).
    ("sys_enter_readv", "syscalls", "sys_enter_readv", true),
    ("sys_exit_io", "syscalls", "sys_exit_readv", true),
    ("sys_enter_pread64", "syscalls", "sys_enter_pread64", false),
    ("sys_enter_preadv", "syscalls", "sys_enter_preadv", false),
    ("sys_enter_writev", "syscalls", "sys_enter_writev", true),
    ("sys_exit_io", "syscalls", "sys_exit_writev", true),
    (
        "sys_enter_pwrite64",
        "syscalls",
        "sys_enter_pwrite64",
        false,
    ),
    ("sys_enter_pwritev", "syscalls", "sys_enter_pwritev", false),
    ("sys_enter_splice", "syscalls", "sys_enter_splice", false),
    (
        "sys_enter_copy_file_range",
        "syscalls",
        "sys_enter_copy_file_range",
        false,
    ),
    (
        "sys_enter_sendfile64",
        "syscalls",
        "sys_enter_sendfile64",
        false,
    ),
    ("sys_enter_tee", "syscalls", "sys_enter_tee", false),
];

/// Every tracepoint the collector attaches a program to, as (category, name), whether or not
/// this kernel has it: what `agent_overhead`'s floor windows enable without a program, to
/// measure what hooking these syscalls costs before any program runs.
pub fn attached_tracepoints() -> impl Iterator<Item = (&'static str, &'static str)> {
    TRACEPOINTS
        .iter()
        .chain(crate::escape_syscalls::TRACEPOINTS)
        .map(|&(_, category, name, _)| (category, name))
}

/// Entry probe per OpenSSL function; every return goes to `ssl_exit_probe`.
const SSL_ENTRY_PROGRAMS: [(&str, &str); 4] = [
    ("SSL_write", "ssl_write_enter"),
    ("SSL_write_ex", "ssl_write_ex_enter"),
    ("SSL_read", "ssl_read_enter"),
    ("SSL_read_ex", "ssl_read_ex_enter"),
];
const SSL_EXIT_PROGRAM: &str = "ssl_exit_probe";
/// Entry probes for functions located in stripped binaries (BoringSSL): they check each call
/// before it can be emitted (`collector-ebpf/src/tls_located.rs`).
const LOCATED_ENTRY_PROGRAMS: [(&str, &str); 2] = [
    ("SSL_write", "located_ssl_write_enter"),
    ("SSL_read", "located_ssl_read_enter"),
];
/// Entry probes for OpenSSL 3's internal functions located in stripped static binaries
/// (Codex CLI), checked like BoringSSL's; the write function's shape decides the program.
/// `SSL_do_handshake` has its own return probe: it marks ClientHellos, it captures nothing.
const LOCATED_OPENSSL3_PROGRAMS: [(&str, &str); 6] = [
    (openssl3::READ_LEGACY, "located_openssl30_read_enter"),
    (openssl3::WRITE_LEGACY, "located_openssl30_write_enter"),
    (openssl3::READ, "located_openssl3_read_enter"),
    (openssl3::WRITE, "located_openssl3_write_enter"),
    (
        openssl3::WRITE_WITH_FLAGS,
        "located_openssl3_write_flags_enter",
    ),
    (openssl3::HANDSHAKE, "located_openssl3_handshake_enter"),
];
const HANDSHAKE_EXIT_PROGRAM: &str = "located_openssl3_handshake_exit";
/// aws-lc's AEAD under rustls (`collector-ebpf/src/tls_rustls.rs`): an entry probe on the
/// seals (the plaintext is copied before it is encrypted in place; `seal_scatter` seals
/// TLS 1.2's AES-GCM records), entry and return probes on the open (the plaintext is there
/// once it returns).
const RUSTLS_SEAL_PROGRAM: &str = "rustls_seal_enter";
const RUSTLS_SEAL_SCATTER_PROGRAM: &str = "rustls_seal_scatter_enter";
const RUSTLS_OPEN_PROGRAM: &str = "rustls_open_enter";
const RUSTLS_OPEN_EXIT_PROGRAM: &str = "rustls_open_exit";

/// Go `crypto/tls` programs (collector-ebpf/src/go_tls.rs): entries of `(*Conn).Write` and
/// `(*Conn).Read` on their stack checks' `JBE` (or, unrecognised, their first instruction), and
/// `(*Conn).Read`'s copy into the caller's buffer (or each of its `RET`s). Never a uretprobe on
/// Go code.
const GO_WRITE_CHECK_PROGRAM: &str = "go_tls_write_check";
const GO_WRITE_ENTRY_PROGRAM: &str = "go_tls_write_enter";
const GO_READ_CHECK_PROGRAM: &str = "go_tls_read_check";
const GO_READ_ENTRY_PROGRAM: &str = "go_tls_read_enter";
const GO_READ_COPY_PROGRAM: &str = "go_tls_read_copy";
const GO_READ_RETURN_PROGRAM: &str = "go_tls_read_return";

/// What the kernel programs counted, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStats {
    pub emitted: u64,
    pub dropped: u64,
    pub lost_bytes: u64,
    /// The part of `lost_bytes` the traced processes wrote, and the part they read: a byte
    /// moved between two traced processes is captured (and can be lost) on both sides.
    pub lost_egress_bytes: u64,
    pub lost_ingress_bytes: u64,
    /// Payload bytes of processes that read the collector's output, and of pipes that carry
    /// it, not captured on purpose.
    pub consumer_bytes: u64,
    /// Calls to located TLS functions (BoringSSL, OpenSSL 3, aws-lc's AEAD under rustls)
    /// rejected by the kernel programs' checks.
    pub tls_rejected: u64,
    /// rustls application-data records decrypted whose connection could not be proven, so
    /// not emitted (`collector-ebpf/src/tls_rustls.rs`).
    pub tls_unbound: u64,
    /// Read-only opens of runtime noise (interpreter modules, shared libraries, locale and
    /// time-zone data: `agentscope_common::noise_paths`) left out by the kernel programs
    /// rather than sent; 0 when the collector keeps runtime noise.
    pub noise_opens_filtered: u64,
    /// Payload bytes of plain sockets the collector asked to leave out (reconstruction found
    /// no protocol it reads in their first bytes): moved, neither copied nor sent.
    pub opaque_socket_bytes: u64,
    /// Payload bytes of processes whose payloads the collector was told to leave out
    /// (`CollectorOptions::payloads_off`, their later children too): moved, neither copied
    /// nor sent.
    pub payloads_off_bytes: u64,
    /// Payload bytes of connections sampled out (`KernelOptions::sample_connections`): moved,
    /// neither copied nor sent.
    pub sampled_out_bytes: u64,
    /// Records dropped on each CPU.
    pub dropped_per_cpu: Vec<u64>,
}

pub struct KernelOptions {
    pub ring_buffer_bytes: u32,
    pub self_tgid: u32,
    pub target_pids: Vec<u32>,
    /// Processes whose payloads the programs leave out and count (`PAYLOADS_OFF`).
    pub payloads_off_pids: Vec<u32>,
    pub capture_socket_data: bool,
    pub capture_pipe_data: bool,
    /// Send every open, runtime noise too (`config::KEEP_RUNTIME_NOISE`).
    pub keep_runtime_noise: bool,
    /// One inet connection in this many keeps its payloads (`config::SAMPLE_CONNECTIONS`); 0
    /// and 1 keep every connection's.
    pub sample_connections: u32,
    /// Enforcement maps to share through bpffs (name, pin path): opened when pinned, created
    /// and pinned otherwise (crate::enforcement_pins).
    pub pinned_maps: Vec<(&'static str, std::path::PathBuf)>,
}

pub struct KernelCapture {
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    attached_tls: HashSet<(u64, u64)>,
    attached_go_tls: HashSet<(u64, u64)>,
    pub warnings: Vec<String>,
    /// The enforcement programs' links, taken from their programs to be pinned (or, when
    /// nothing is pinned, detached with the collector).
    pub(crate) enforcement_links: Vec<(&'static str, aya::programs::links::FdLink)>,
}

/// A seed for the kernel's sampling choices that differs from run to run: the standard
/// library's per-process random hasher keys (from the OS's random source), so no crate is
/// needed for one number.
fn sampling_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn ensure_tracefs() -> Result<(), CollectorError> {
    let tracing = Path::new("/sys/kernel/tracing");
    if tracing.join("events").exists() {
        return Ok(());
    }
    let source = c"tracefs";
    let target = c"/sys/kernel/tracing";
    // SAFETY: plain mount(2) with static NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(CollectorError::Tracefs(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    Ok(())
}

fn raise_memlock_limit() {
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones ignore it.
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
}

fn is_permission_error(text: &str) -> bool {
    text.contains("Operation not permitted")
        || text.contains("EPERM")
        || text.contains("Permission denied")
}

impl KernelCapture {
    pub fn load(options: &KernelOptions) -> Result<Self, CollectorError> {
        if EBPF_OBJECT.is_empty() {
            return Err(CollectorError::BuiltWithoutKernelPrograms);
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(CollectorError::NotPrivileged);
        }
        if !Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(CollectorError::MissingFeature {
                what: "kernel BTF".into(),
                detail: "/sys/kernel/btf/vmlinux is absent".into(),
                fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            });
        }
        ensure_tracefs()?;
        raise_memlock_limit();
        let mut output_tracking_warning = None;
        let ring_bytes = options.ring_buffer_bytes.max(4096).next_power_of_two();
        let mut loader = EbpfLoader::new();
        loader.map_max_entries("EVENTS", ring_bytes);
        for (name, path) in &options.pinned_maps {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(|e| {
            let text = format!("{e:#}");
            if is_permission_error(&text) {
                CollectorError::NotPrivileged
            } else {
                CollectorError::Load(text)
            }
        })?;

        {
            let mut cfg: Array<_, u64> = Array::try_from(
                ebpf.map_mut("CONFIG")
                    .ok_or_else(|| missing_map("CONFIG"))?,
            )
            .map_err(|e| CollectorError::Load(e.to_string()))?;
            let set = |cfg: &mut Array<_, u64>, index: u32, value: u64| {
                cfg.set(index, value, 0)
                    .map_err(|e| CollectorError::Load(format!("setting config {index}: {e}")))
            };
            set(&mut cfg, config::SELF_TGID, options.self_tgid as u64)?;
            set(
                &mut cfg,
                config::FILTER_PIDS,
                (!options.target_pids.is_empty()) as u64,
            )?;
            set(
                &mut cfg,
                config::CAPTURE_SOCKET_DATA,
                options.capture_socket_data as u64,
            )?;
            set(
                &mut cfg,
                config::CAPTURE_PIPE_DATA,
                options.capture_pipe_data as u64,
            )?;
            set(
                &mut cfg,
                config::KEEP_RUNTIME_NOISE,
                options.keep_runtime_noise as u64,
            )?;
            set(
                &mut cfg,
                config::SAMPLE_CONNECTIONS,
                options.sample_connections as u64,
            )?;
            set(&mut cfg, config::SAMPLE_SEED, sampling_seed())?;
            match crate::output_tracking::kernel_offsets() {
                Ok(offsets) => {
                    for (index, offset) in offsets {
                        set(&mut cfg, index, offset)?;
                    }
                    set(&mut cfg, config::OUTPUT_TRACKING, 1)?;
                }
                Err(err) => output_tracking_warning = Some(err),
            }
        }
        if !options.target_pids.is_empty() {
            let mut targets: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(
                ebpf.map_mut("TARGETS")
                    .ok_or_else(|| missing_map("TARGETS"))?,
            )
            .map_err(|e| CollectorError::Load(e.to_string()))?;
            for pid in &options.target_pids {
                let _ = targets.insert(pid, 1, 0);
            }
        }
        if !options.payloads_off_pids.is_empty() {
            let mut off: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(
                ebpf.map_mut("PAYLOADS_OFF")
                    .ok_or_else(|| missing_map("PAYLOADS_OFF"))?,
            )
            .map_err(|e| CollectorError::Load(e.to_string()))?;
            for pid in &options.payloads_off_pids {
                off.insert(pid, 1, 0).map_err(|e| {
                    CollectorError::Load(format!("cannot leave out the payloads of {pid}: {e}"))
                })?;
            }
        }

        let ring = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or_else(|| missing_map("EVENTS"))?,
        )
        .map_err(|e| CollectorError::Load(e.to_string()))?;
        // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd, so the fd stays open
        // for as long as it is registered.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| CollectorError::RingBuffer(e.to_string()))?;
        let mut capture = KernelCapture {
            ebpf,
            ring,
            attached_tls: HashSet::new(),
            attached_go_tls: HashSet::new(),
            warnings: Vec::new(),
            enforcement_links: Vec::new(),
        };
        if let Some(err) = output_tracking_warning {
            capture.warnings.push(format!(
                "the collector cannot recognise readers of its own output ({err}); do not \
                 pipe its output into a traced process"
            ));
        }
        capture.attach_tracepoints()?;
        capture.load_uprobes()?;
        Ok(capture)
    }

    fn attach_tracepoints(&mut self) -> Result<(), CollectorError> {
        for &(program, category, name, required) in TRACEPOINTS
            .iter()
            .chain(crate::escape_syscalls::TRACEPOINTS)
        {
            if !Path::new("/sys/kernel/tracing/events")
                .join(category)
                .join(name)
                .exists()
            {
                if required {
                    return Err(CollectorError::MissingFeature {
                        what: format!("tracepoint {category}:{name}"),
                        detail: "not present in /sys/kernel/tracing/events".into(),
                        fix: "use a kernel with CONFIG_FTRACE_SYSCALLS and tracepoints enabled",
                    });
                }
                if crate::escape_syscalls::absence_is_a_blind_spot(
                    name,
                    Path::new("/proc/modules").exists(),
                ) {
                    self.warnings
                        .push(format!("tracepoint {category}:{name} absent; skipped"));
                }
                continue;
            }
            let prog: &mut TracePoint = program_mut(&mut self.ebpf, program)?;
            // One program may serve several tracepoints (`sys_exit_io`): loaded (and verified)
            // once, attached to each.
            if prog.fd().is_err() {
                prog.load().map_err(|e| load_error(program, e))?;
            }
            prog.attach(category, name)
                .map_err(|e| load_error(program, e))?;
        }
        Ok(())
    }

    fn load_uprobes(&mut self) -> Result<(), CollectorError> {
        for program in SSL_ENTRY_PROGRAMS
            .iter()
            .chain(LOCATED_ENTRY_PROGRAMS.iter())
            .chain(LOCATED_OPENSSL3_PROGRAMS.iter())
            .map(|(_, p)| *p)
            .chain([
                SSL_EXIT_PROGRAM,
                HANDSHAKE_EXIT_PROGRAM,
                RUSTLS_SEAL_PROGRAM,
                RUSTLS_SEAL_SCATTER_PROGRAM,
                RUSTLS_OPEN_PROGRAM,
                RUSTLS_OPEN_EXIT_PROGRAM,
                GO_WRITE_CHECK_PROGRAM,
                GO_WRITE_ENTRY_PROGRAM,
                GO_READ_CHECK_PROGRAM,
                GO_READ_ENTRY_PROGRAM,
                GO_READ_COPY_PROGRAM,
                GO_READ_RETURN_PROGRAM,
            ])
        {
            let prog: &mut UProbe = program_mut(&mut self.ebpf, program)?;
            prog.load().map_err(|e| load_error(program, e))?;
        }
        Ok(())
    }

    /// Attaches the OpenSSL probes to a library or executable (once per file).
    pub fn attach_tls(&mut self, target: &TlsTarget) -> Result<usize, CollectorError> {
        if !self.attached_tls.insert((target.dev, target.ino)) {
            return Ok(0);
        }
        let mut attached = 0;
        let entries: &[(&str, &str)] = match target.method {
            TlsMethod::OpenSslExported => &SSL_ENTRY_PROGRAMS,
            TlsMethod::BoringSslLocated { .. } => &LOCATED_ENTRY_PROGRAMS,
            TlsMethod::OpenSsl3Located { .. } => &LOCATED_OPENSSL3_PROGRAMS,
            TlsMethod::RustlsLocated { .. } => &[],
        };
        for (function, offset) in &target.functions {
            let programs: &[&str] = if *function == aws_lc::SEAL {
                &[RUSTLS_SEAL_PROGRAM]
            } else if *function == aws_lc::SEAL_SCATTER {
                &[RUSTLS_SEAL_SCATTER_PROGRAM]
            } else if *function == aws_lc::OPEN {
                &[RUSTLS_OPEN_PROGRAM, RUSTLS_OPEN_EXIT_PROGRAM]
            } else if let Some((_, entry)) = entries.iter().find(|(f, _)| f == function) {
                if *function == openssl3::HANDSHAKE {
                    &[*entry, HANDSHAKE_EXIT_PROGRAM]
                } else {
                    &[*entry, SSL_EXIT_PROGRAM]
                }
            } else {
                continue;
            };
            for program in programs {
                let prog: &mut UProbe = program_mut(&mut self.ebpf, program)?;
                prog.attach(*offset, target.attach_path(), UProbeScope::AllProcesses)
                    .map_err(|e| {
                        CollectorError::AttachTls(format!(
                            "uprobe {function} at offset {offset:#x} in {}: {}",
                            target.path.display(),
                            error_chain(&e)
                        ))
                    })?;
                attached += 1;
            }
        }
        Ok(attached)
    }

    /// Attaches the Go `crypto/tls` probes to an executable (once per file): uprobes at the
    /// entries of `Write` and `Read` and where `Read`'s result is known (see
    /// [`crate::go_tls_targets`] for the placements). Returns the probes attached.
    /// On a failure the probes attached so far stay (each is harmless alone) and the error
    /// says which one failed.
    pub fn attach_go_tls(&mut self, target: &GoTlsTarget) -> Result<usize, CollectorError> {
        if !self.attached_go_tls.insert((target.dev, target.ino)) {
            return Ok(0);
        }
        let entry = |probe: EntryProbe, on_check: &'static str, on_first: &'static str| match probe
        {
            EntryProbe::StackCheck(offset) => (on_check, offset),
            EntryProbe::FirstInstruction(offset) => (on_first, offset),
        };
        let result_program = match target.read_result {
            ReadResultProbe::Copy(_) => GO_READ_COPY_PROGRAM,
            ReadResultProbe::Returns(_) => GO_READ_RETURN_PROGRAM,
        };
        let points = [
            entry(
                target.write_probe,
                GO_WRITE_CHECK_PROGRAM,
                GO_WRITE_ENTRY_PROGRAM,
            ),
            entry(
                target.read_probe,
                GO_READ_CHECK_PROGRAM,
                GO_READ_ENTRY_PROGRAM,
            ),
        ]
        .into_iter()
        .chain(
            target
                .read_result
                .offsets()
                .iter()
                .map(|offset| (result_program, *offset)),
        );
        let mut attached = 0;
        for (program, offset) in points {
            let prog: &mut UProbe = program_mut(&mut self.ebpf, program)?;
            prog.attach(offset, &target.path, UProbeScope::AllProcesses)
                .map_err(|e| {
                    CollectorError::AttachTls(format!(
                        "uprobe {program} at offset {offset:#x} in {}: {}",
                        target.path.display(),
                        error_chain(&e)
                    ))
                })?;
            attached += 1;
        }
        Ok(attached)
    }

    pub(crate) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Seeds the kernel's pid → parent map (for processes that existed before the collector).
    pub fn seed_parents(&mut self, pairs: impl IntoIterator<Item = (u32, u32)>) {
        if let Some(map) = self.ebpf.map_mut("PARENTS") {
            if let Ok(mut parents) = BpfHashMap::<_, u32, u32>::try_from(map) {
                for (pid, ppid) in pairs {
                    let _ = parents.insert(pid, ppid, 0);
                }
            }
        }
    }

    /// Seeds the kernel's pipe tracking with pipe ends processes already hold, as (pid, fd),
    /// so MCP stdio sessions that started before the collector are captured too. The
    /// JSON-start rule applies to them as to new ones.
    pub fn seed_pipes(&mut self, ends: impl IntoIterator<Item = (u32, i32)>) {
        if let Some(map) = self.ebpf.map_mut("PIPES") {
            // Key and value mirror the kernel's `SockKey { tgid, fd }` and
            // `PipeState { flags, _pad }`, both two 32-bit fields.
            if let Ok(mut pipes) = BpfHashMap::<_, [u32; 2], [u32; 2]>::try_from(map) {
                for (pid, fd) in ends {
                    let _ = pipes.insert([pid, fd as u32], [0, 0], 0);
                }
            }
        }
    }

    /// Asks the kernel programs to stop copying the payloads of `socket` (see
    /// [`agentscope_common::MutedSocketKey`]).
    pub fn mute_socket(&mut self, socket: agentscope_event::SocketRef) {
        if let Some(map) = self.ebpf.map_mut("MUTED_SOCKETS") {
            if let Ok(mut muted) = BpfHashMap::<_, MutedSocketKey, u64>::try_from(map) {
                let key = MutedSocketKey {
                    tgid: socket.pid,
                    fd: socket.fd,
                };
                let _ = muted.insert(key, socket.id, 0);
            }
        }
    }

    /// What the kernel left out of `pid`'s payloads so far (`LEFT_OUT_BY_PROCESS`, summed
    /// over CPUs), taking its entry out: called once the process has exited, so its pid's next
    /// owner starts from nothing. `None` when nothing was left out.
    pub fn take_left_out(&mut self, pid: u32) -> Option<LeftOutBytes> {
        let map = self.ebpf.map_mut("LEFT_OUT_BY_PROCESS")?;
        let mut counts = PerCpuHashMap::<_, u32, LeftOutBytes>::try_from(map).ok()?;
        let values = counts.get(&pid, 0).ok()?;
        let _ = counts.remove(&pid);
        Some(sum_left_out(&values))
    }

    /// Every process's entry of `LEFT_OUT_BY_PROCESS`, taken out (capture is stopping: the
    /// processes still running report what was left out of them so far).
    pub fn take_all_left_out(&mut self) -> Vec<(u32, LeftOutBytes)> {
        let Some(map) = self.ebpf.map_mut("LEFT_OUT_BY_PROCESS") else {
            return Vec::new();
        };
        let Ok(mut counts) = PerCpuHashMap::<_, u32, LeftOutBytes>::try_from(map) else {
            return Vec::new();
        };
        let mut out: Vec<(u32, LeftOutBytes)> = counts
            .iter()
            .filter_map(Result::ok)
            .map(|(pid, values)| (pid, sum_left_out(&values)))
            .collect();
        for (pid, _) in &out {
            let _ = counts.remove(pid);
        }
        out.sort_by_key(|(pid, _)| *pid);
        out
    }

    /// Tells the kernel programs that `file` carries the collector's output: whoever reads
    /// it becomes a consumer.
    pub fn mark_output(&mut self, file: FileId) {
        if let Some(map) = self.ebpf.map_mut("OUTPUTS") {
            if let Ok(mut outputs) = BpfHashMap::<_, FileId, u8>::try_from(map) {
                let _ = outputs.insert(file, 1, 0);
            }
        }
    }

    /// Processes that read the collector's output: (pid, what the kernel recorded, exited).
    pub fn consumers(&self) -> Vec<(u32, Consumer, bool)> {
        let mut out = Vec::new();
        for (name, exited) in [("CONSUMERS", false), ("CONSUMERS_GONE", true)] {
            let Some(map) = self.ebpf.map(name) else {
                continue;
            };
            let Ok(consumers) = BpfHashMap::<_, u32, Consumer>::try_from(map) else {
                continue;
            };
            for (pid, consumer) in consumers.iter().flatten() {
                out.push((pid, consumer, exited));
            }
        }
        out
    }

    /// Stops the kernel programs from emitting anything more, so a final drain of the ring
    /// buffer ends however busy the machine is.
    pub fn stop_emitting(&mut self) {
        if let Some(map) = self.ebpf.map_mut("CONFIG") {
            if let Ok(mut cfg) = Array::<_, u64>::try_from(map) {
                let _ = cfg.set(config::STOPPING, 1, 0);
            }
        }
    }

    /// Lets this process exit at once, leaving the unloading to a child. Dropping the object
    /// closes its ~60 perf event links one after the other, and the kernel waits for an RCU
    /// grace period on each (about 65 ms here: four seconds in all, in parallel no faster).
    /// The programs emit nothing once stopping, so a forked child that keeps only the eBPF
    /// fds (every other fd, the output pipes included, is closed first) unloads them after
    /// this process has gone. For the end of the process only.
    ///
    /// "Gone" means every thread of this process has exited, so that its references to the
    /// programs were dropped first and the child's are the last (the slow release is the
    /// child's). The child watches a pidfd of this process, which the kernel makes readable
    /// only once the whole thread group has exited. Watching for its own re-parenting is not
    /// enough: the child is re-parented when the thread that forked it exits, and if the
    /// other threads are still exiting (a writer blocked on a full pipe) the child went first
    /// and left the slow release to this process's last thread: seconds of a stop's exit
    /// (seen in CI as a collector reaped 4 s after its "stopped in" line).
    pub fn unload_in_background(self) {
        let mut keep = Vec::new();
        let mut highest = 2;
        for entry in std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            highest = highest.max(fd);
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if target.starts_with("anon_inode:[perf_event]") || target.starts_with("anon_inode:bpf")
            {
                keep.push(fd);
            }
        }
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: pidfd_open on our own pid; the result is an fd or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) } as i32;
        if pidfd >= 0 {
            keep.push(pidfd);
            highest = highest.max(pidfd);
        }
        keep.sort_unstable();
        // SAFETY: the child only makes async-signal-safe system calls (prctl, close, poll,
        // getppid, nanosleep, _exit) and touches memory allocated before the fork.
        match unsafe { libc::fork() } {
            0 => unsafe {
                libc::prctl(libc::PR_SET_NAME, c"agentscope-unld".as_ptr());
                for fd in 0..=highest {
                    if keep.binary_search(&fd).is_err() {
                        libc::close(fd);
                    }
                }
                // Hold the last references: wait (at most a minute) for every thread of the
                // collector to have exited.
                if pidfd >= 0 {
                    let mut watched = libc::pollfd {
                        fd: pidfd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    for _ in 0..60 {
                        if libc::poll(&mut watched, 1, 1000) != 0 {
                            break;
                        }
                    }
                } else {
                    // No pidfd (a kernel before 5.3): the collector's re-parenting, then a
                    // moment for its last threads.
                    let tick = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 10_000_000,
                    };
                    for _ in 0..6000 {
                        if libc::getppid() != parent {
                            break;
                        }
                        libc::nanosleep(&tick, std::ptr::null_mut());
                    }
                    let settle = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 200_000_000,
                    };
                    libc::nanosleep(&settle, std::ptr::null_mut());
                }
                libc::_exit(0)
            },
            // No child: unload here, slowly.
            -1 => drop(self),
            // The fds stay open in this process until it exits, which only drops references.
            _ => std::mem::forget(self),
        }
    }

    pub fn stats(&self) -> KernelStats {
        let mut out = KernelStats::default();
        let Some(map) = self.ebpf.map("STATS") else {
            return out;
        };
        let Ok(stats) = PerCpuArray::<_, u64>::try_from(map) else {
            return out;
        };
        let sum = |index: u32| {
            stats
                .get(&index, 0)
                .map(|v| v.iter().sum::<u64>())
                .unwrap_or(0)
        };
        out.emitted = sum(stat::EMITTED);
        out.dropped = sum(stat::DROPPED);
        out.lost_bytes = sum(stat::LOST_BYTES);
        out.lost_egress_bytes = sum(stat::LOST_EGRESS_BYTES);
        out.lost_ingress_bytes = sum(stat::LOST_INGRESS_BYTES);
        out.consumer_bytes = sum(stat::CONSUMER_BYTES);
        out.tls_rejected = sum(stat::TLS_REJECTED);
        out.tls_unbound = sum(stat::TLS_UNBOUND);
        out.noise_opens_filtered = sum(stat::NOISE_OPENS_FILTERED);
        out.opaque_socket_bytes = sum(stat::OPAQUE_SOCKET_BYTES);
        out.payloads_off_bytes = sum(stat::PAYLOADS_OFF_BYTES);
        out.sampled_out_bytes = sum(stat::SAMPLED_OUT_BYTES);
        if let Ok(values) = stats.get(&stat::DROPPED, 0) {
            out.dropped_per_cpu = values.iter().copied().collect();
        }
        out
    }

    /// Waits until records are available, then passes up to `max` of them to `sink`, for at
    /// most `budget` (so a full ring buffer cannot hold the caller away from its signals).
    /// Returns how many were passed.
    ///
    /// Most records do not wake the reader (`agentscope_common::ring_wakeup`): it also reads
    /// the ring every `READER_POLL_MS` without being woken, so a record waits at most that long.
    pub async fn read_batch(
        &mut self,
        max: usize,
        budget: Duration,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<usize, CollectorError> {
        loop {
            let woken = tokio::time::timeout(READER_POLL, self.ring.readable_mut()).await;
            let until = Instant::now() + budget;
            let count = match woken {
                Ok(guard) => {
                    let mut guard = guard.map_err(|e| CollectorError::RingBuffer(e.to_string()))?;
                    let (count, emptied) = drain_ring(guard.get_inner_mut(), max, until, &mut sink);
                    if emptied {
                        guard.clear_ready();
                    }
                    count
                }
                // Not woken: what was written without a wake-up.
                Err(_) => drain_ring(self.ring.get_mut(), max, until, &mut sink).0,
            };
            if count > 0 {
                return Ok(count);
            }
        }
    }

    /// Reads what is available now without waiting, until `max` records or `until`.
    /// Returns how many were passed and whether the ring buffer was left empty.
    pub fn drain_now(
        &mut self,
        max: usize,
        until: Instant,
        mut sink: impl FnMut(&[u8]),
    ) -> (usize, bool) {
        drain_ring(self.ring.get_mut(), max, until, &mut sink)
    }
}

/// How often [`KernelCapture::read_batch`] reads the ring without being woken.
const READER_POLL: Duration = Duration::from_millis(agentscope_common::ring_wakeup::READER_POLL_MS);

fn drain_ring(
    ring: &mut RingBuf<MapData>,
    max: usize,
    until: Instant,
    sink: &mut impl FnMut(&[u8]),
) -> (usize, bool) {
    let mut count = 0;
    while count < max {
        // One look at the clock per record: a record (decoded, redacted) can take far longer
        // than reading the clock, in a debug build especially.
        if count > 0 && Instant::now() >= until {
            break;
        }
        let Some(item) = ring.next() else {
            return (count, true);
        };
        sink(&item);
        count += 1;
    }
    (count, false)
}

/// A program of the object, as its concrete type.
pub(crate) fn program_mut<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<&'a mut T, CollectorError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| {
            CollectorError::Load(format!("program {name} missing from the eBPF object"))
        })?
        .try_into()
        .map_err(|e| CollectorError::Load(format!("{name}: {e}")))
}

fn missing_map(name: &str) -> CollectorError {
    CollectorError::Load(format!("map {name} missing from the eBPF object"))
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn load_error(program: &str, err: impl std::error::Error) -> CollectorError {
    load_error_of(program, &error_chain(&err))
}

/// Lines of a verifier log a refusal shows: its last ones say why.
const VERIFIER_LOG_LINES_SHOWN: usize = 12;

/// What `text`, the error loading or attaching `program`, tells the user. The verifier refuses a
/// program with EACCES, the error a missing privilege gives too, but with its log: that is the
/// kernel judging the program (the caller is root by then), so the message is the log's end,
/// not advice to run as root.
fn load_error_of(program: &str, text: &str) -> CollectorError {
    if let Some((call, log)) = text.split_once("Verifier output:") {
        let lines: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        let end = &lines[lines.len().saturating_sub(VERIFIER_LOG_LINES_SHOWN)..];
        return CollectorError::Load(format!(
            "{program}: the kernel's verifier refused it ({}); the end of its log:\n  {}",
            call.trim().trim_end_matches('.'),
            end.join("\n  ")
        ));
    }
    if is_permission_error(text) {
        CollectorError::NotPrivileged
    } else {
        CollectorError::Load(format!("{program}: {text}"))
    }
}

/// One process's left-out bytes, summed over the CPUs' slots.
fn sum_left_out(values: &PerCpuValues<LeftOutBytes>) -> LeftOutBytes {
    values
        .iter()
        .fold(LeftOutBytes::default(), |sum, cpu| LeftOutBytes {
            opaque_socket: sum.opaque_socket.saturating_add(cpu.opaque_socket),
            on_request: sum.on_request.saturating_add(cpu.on_request),
            sampled_out: sum.sampled_out.saturating_add(cpu.sampled_out),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aya's text for a program the verifier refused (`ProgramError::LoadError` and its
    /// source, as `error_chain` joins them), from a real refusal of `sys_enter_read` on 6.18,
    /// its log shortened.
    const REFUSED: &str = "the BPF_PROG_LOAD syscall returned Permission denied (os error 13). \
        Verifier output: 0: R1=ctx() R10=fp0\n\
        1: (bf) r6 = r1                       ; R1=ctx() R6=ctx()\n\
        2: (85) call bpf_get_current_pid_tgid#14      ; R0=scalar()\n\
        3: (bf) r7 = r0                       ; R0=scalar(id=1) R7=scalar(id=1)\n\
        4: (77) r7 >>= 32                     ; R7=scalar(smin=0,smax=umax=0xffffffff)\n\
        5: (63) *(u32 *)(r10 -4) = r0         ; R0=scalar(id=1) R10=fp0\n\
        6: (bf) r2 = r10                      ; R2=fp0 R10=fp0\n\
        ; let mode: u16 = kernel_read(inode + config(config::OFF_INODE_MODE))?; @ fd_file.rs:90\n\
        358: (63) *(u32 *)(r10 -8) = r2\n\
        R2 !read_ok\n\
        verification time 3029 usec\n\
        stack depth 168+0\n\
        processed 1396 insns (limit 1000000) max_states_per_insn 2 total_states 103\n\
        : Permission denied (os error 13)";

    #[test]
    fn a_refusal_by_the_verifier_is_reported_with_its_log_not_as_missing_privilege() {
        let CollectorError::Load(message) = load_error_of("sys_enter_read", REFUSED) else {
            panic!("a verifier refusal was reported as something else");
        };
        assert!(message.starts_with("sys_enter_read: the kernel's verifier refused it"));
        assert!(message.contains("R2 !read_ok"), "{message}");
        assert!(
            !message.contains("R1=ctx()"),
            "only the log's end: {message}"
        );
        let lines = message.lines().count();
        assert_eq!(lines, 1 + VERIFIER_LOG_LINES_SHOWN, "{message}");
    }

    #[test]
    fn a_refusal_for_want_of_privilege_still_says_so() {
        for text in [
            "the BPF_PROG_LOAD syscall returned Operation not permitted (os error 1)",
            "`perf_event_open` failed: Permission denied (os error 13)",
        ] {
            assert!(matches!(
                load_error_of("sys_enter_read", text),
                CollectorError::NotPrivileged
            ));
        }
        assert!(matches!(
            load_error_of("sys_enter_read", "No such file or directory (os error 2)"),
            CollectorError::Load(_)
        ));
    }
}
