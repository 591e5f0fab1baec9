//! Probes with no program behind them, for agent_overhead's floor windows: what the kernel
//! charges a probed process before any of the collector's code runs.
//!
//! Uprobes (`p:`) and uretprobes (`r:`) are registered through tracefs (`uprobe_events`) at the
//! file offsets the collector would probe (`agentscope_kernel::tls_targets::inspect` and
//! `go_tls_targets::analyse`, the same placement as `collect`), and the collector's
//! tracepoints are enabled too if asked. A probe
//! is only inserted while an event is enabled somewhere, so they are enabled in a tracing
//! instance of their own whose ring buffer is switched off: a hit then costs the trap and the
//! event's dispatch, which finds the buffer off and records nothing. Events are named after the
//! bench's pid (`agentscope_floor_PID`), so that benches running beside each other do not mix,
//! and removed (instance and `uprobe_events` entries) when the guard is dropped, also while a
//! panic unwinds; what a killed bench left is removed by the next one (its pid is gone).
//! By hand: `echo '-:agentscope_floor_PID/NAME' >> /sys/kernel/tracing/uprobe_events` after
//! `rmdir /sys/kernel/tracing/instances/agentscope_floor_PID`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One point to probe: a file and an offset in it, with or without a return probe.
#[derive(Clone, Debug)]
pub struct ProbePoint {
    pub path: PathBuf,
    pub offset: u64,
    pub returns: bool,
    /// The collector's name for the function, for the bench's output.
    pub function: &'static str,
}

/// What a floor window hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// Entry uprobes only.
    Uprobes,
    /// Entry uprobes and uretprobes where the collector has both.
    UprobesAndReturns,
    /// Both, and every tracepoint the collector attaches to.
    ProbesAndTracepoints,
}

impl Floor {
    pub const ALL: [Floor; 3] = [
        Floor::Uprobes,
        Floor::UprobesAndReturns,
        Floor::ProbesAndTracepoints,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Floor::Uprobes => "floor: uprobes",
            Floor::UprobesAndReturns => "floor: +uretprobes",
            Floor::ProbesAndTracepoints => "floor: +tracepoints",
        }
    }
}

/// The registered events; removed when dropped.
pub struct BareProbes {
    tracefs: PathBuf,
    group: String,
    instance: PathBuf,
    /// Event names registered in `uprobe_events` under `group`.
    uprobes: Vec<String>,
    /// Enable files switched on in the instance.
    enabled: Vec<PathBuf>,
}

/// Where tracefs is mounted; mounts it on /sys/kernel/tracing when it is not.
fn tracefs() -> std::io::Result<PathBuf> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("uprobe_events").exists() {
            return Ok(PathBuf::from(dir));
        }
    }
    // SAFETY: mount(2) with NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::other(format!(
            "tracefs is not mounted and mounting it on /sys/kernel/tracing failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(PathBuf::from("/sys/kernel/tracing"))
}

fn append(file: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)?
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| std::io::Error::other(format!("{line:?} >> {}: {e}", file.display())))
}

const GROUP_PREFIX: &str = "agentscope_floor_";

/// Removes the events and instances of floor benches whose process is gone.
fn remove_stale(tracefs: &Path) {
    let events = std::fs::read_to_string(tracefs.join("uprobe_events")).unwrap_or_default();
    let mut stale_groups = Vec::new();
    for line in events.lines() {
        // `p:GROUP/NAME PATH:OFFSET`
        let Some(event) = line.split_whitespace().next() else {
            continue;
        };
        let Some((group, _)) = event.get(2..).and_then(|e| e.split_once('/')) else {
            continue;
        };
        let Some(pid) = group.strip_prefix(GROUP_PREFIX) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            stale_groups.push(group.to_string());
            let _ = append(
                &tracefs.join("uprobe_events"),
                &format!("-:{}", &event[2..]),
            );
        }
    }
    for group in stale_groups {
        let instance = tracefs.join("instances").join(&group);
        if instance.exists() {
            let _ = std::fs::remove_dir(&instance);
        }
    }
}

impl BareProbes {
    /// Registers `points` (the return probes too if `floor` says so) and enables them, and the
    /// collector's tracepoints for [`Floor::ProbesAndTracepoints`].
    pub fn register(points: &[ProbePoint], floor: Floor) -> std::io::Result<BareProbes> {
        let tracefs = tracefs()?;
        remove_stale(&tracefs);
        let group = format!("{GROUP_PREFIX}{}", std::process::id());
        let instance = tracefs.join("instances").join(&group);
        std::fs::create_dir(&instance)
            .map_err(|e| std::io::Error::other(format!("mkdir {}: {e}", instance.display())))?;
        let mut probes = BareProbes {
            tracefs,
            group,
            instance,
            uprobes: Vec::new(),
            enabled: Vec::new(),
        };
        // Nothing is recorded: a hit finds the buffer off.
        std::fs::write(probes.instance.join("tracing_on"), "0")?;
        let _ = std::fs::write(probes.instance.join("buffer_size_kb"), "4");
        let with_returns = floor != Floor::Uprobes;
        for (i, point) in points.iter().enumerate() {
            let mut kinds = vec![('p', "e")];
            if with_returns && point.returns {
                kinds.push(('r', "r"));
            }
            for (kind, prefix) in kinds {
                let name = format!("{prefix}{i}");
                append(
                    &probes.tracefs.join("uprobe_events"),
                    &format!(
                        "{kind}:{}/{name} {}:{:#x}",
                        probes.group,
                        point.path.display(),
                        point.offset
                    ),
                )?;
                probes.uprobes.push(name);
            }
        }
        if !probes.uprobes.is_empty() {
            probes.enable(
                probes
                    .instance
                    .join("events")
                    .join(&probes.group)
                    .join("enable"),
            )?;
        }
        if floor == Floor::ProbesAndTracepoints {
            for (category, name) in agentscope_kernel::kernel::attached_tracepoints() {
                let enable = probes
                    .instance
                    .join("events")
                    .join(category)
                    .join(name)
                    .join("enable");
                // Optional tracepoints this kernel lacks are skipped, as the collector does.
                if enable.exists() {
                    probes.enable(enable)?;
                }
            }
        }
        Ok(probes)
    }

    fn enable(&mut self, file: PathBuf) -> std::io::Result<()> {
        std::fs::write(&file, "1")
            .map_err(|e| std::io::Error::other(format!("enabling {}: {e}", file.display())))?;
        self.enabled.push(file);
        Ok(())
    }
}

impl Drop for BareProbes {
    fn drop(&mut self) {
        for file in self.enabled.iter().rev() {
            let _ = std::fs::write(file, "0");
        }
        if let Err(e) = std::fs::remove_dir(&self.instance) {
            eprintln!(
                "agent_overhead: could not remove {}: {e}",
                self.instance.display()
            );
        }
        for name in &self.uprobes {
            if let Err(e) = append(
                &self.tracefs.join("uprobe_events"),
                &format!("-:{}/{name}", self.group),
            ) {
                eprintln!("agent_overhead: could not remove uprobe {name}: {e}");
            }
        }
    }
}

/// The points the collector would probe in the files process `pid` maps (OpenSSL's API
/// exported by a shared libssl or an executable, the stacks it locates, Go's crypto/tls):
/// entry probes on each, return probes where the collector has them (not on aws-lc's seals,
/// never on Go code).
pub fn collector_probe_points(pid: u32) -> Vec<ProbePoint> {
    use agentscope_kernel::go_tls_targets::{self, GoTlsAnalysis};
    use agentscope_kernel::tls_targets::{self, aws_lc};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut files: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    files.sort();
    files.dedup();
    let mut points = Vec::new();
    for path in files {
        let Ok(Some(target)) = tls_targets::inspect(&path) else {
            if let Ok(GoTlsAnalysis::Probeable(go)) = go_tls_targets::analyse(&path) {
                // Go's crypto/tls: entry probes only, never a uretprobe (as `attach_go_tls`).
                let go_points = [
                    ("(*Conn).Write", go.write_probe.offset()),
                    ("(*Conn).Read", go.read_probe.offset()),
                ]
                .into_iter()
                .chain(
                    go.read_result
                        .offsets()
                        .iter()
                        .map(|offset| ("(*Conn).Read result", *offset)),
                );
                for (function, offset) in go_points {
                    points.push(ProbePoint {
                        path: path.clone(),
                        offset,
                        returns: false,
                        function,
                    });
                }
            }
            continue;
        };
        for (function, offset) in &target.functions {
            points.push(ProbePoint {
                path: path.clone(),
                offset: *offset,
                returns: *function != aws_lc::SEAL && *function != aws_lc::SEAL_SCATTER,
                function,
            });
        }
    }
    points
}
