//! The kernel's own accounting of a collector's programs, for the benches that measure what
//! they cost (enforce_connect, enforce_exec_open, agent_overhead): `kernel.bpf_stats_enabled`
//! switched on while measuring, and each program's `run_cnt`/`run_time_ns` read through the
//! fds the collector holds.

use std::collections::BTreeMap;

/// `kernel.bpf_stats_enabled` on while this lives (the kernel counts programs' runs and time
/// only then), set back to what it was when dropped.
pub struct KernelProgramStats {
    before: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl KernelProgramStats {
    pub fn enable() -> KernelProgramStats {
        let before = std::fs::read_to_string(BPF_STATS).unwrap_or_default();
        let _ = std::fs::write(BPF_STATS, "1");
        KernelProgramStats { before }
    }
}

impl Drop for KernelProgramStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.before.trim());
    }
}

/// The programs process `collector` holds (its fds name them; the kernel's info counts them).
fn held_programs(collector: u32) -> impl Iterator<Item = aya::programs::ProgramInfo> {
    let ids: Vec<u32> = std::fs::read_dir(format!("/proc/{collector}/fdinfo"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| {
            let text = std::fs::read_to_string(fd.path()).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    aya::programs::loaded_programs()
        .flatten()
        .filter(move |info| ids.contains(&info.id()))
}

/// Runs and nanoseconds so far of the programs process `collector` holds that `wanted`
/// accepts.
// agent_overhead reads them per program ([`runs_by_program`]).
#[allow(dead_code)]
pub fn program_runs(
    collector: u32,
    wanted: impl Fn(&aya::programs::ProgramInfo) -> bool,
) -> (u64, u64) {
    held_programs(collector)
        .filter(|info| wanted(info))
        .fold((0, 0), |(runs, ns), info| {
            (
                runs + info.run_count(),
                ns + info.run_time().as_nanos() as u64,
            )
        })
}

/// Runs and nanoseconds so far of each program process `collector` holds, by the name the
/// kernel keeps (the first 15 bytes; programs of one name are summed).
// The enforcement benches sum the programs they are about ([`program_runs`]).
#[allow(dead_code)]
pub fn runs_by_program(collector: u32) -> BTreeMap<String, (u64, u64)> {
    let mut by_name = BTreeMap::new();
    for info in held_programs(collector) {
        let name = info.name_as_str().unwrap_or("?").to_string();
        let entry: &mut (u64, u64) = by_name.entry(name).or_default();
        entry.0 += info.run_count();
        entry.1 += info.run_time().as_nanos() as u64;
    }
    by_name
}

/// Each program that ran between two [`runs_by_program`] readings, by name: its runs and
/// nanoseconds per `calls` (a request, a syscall: whatever the bench counted).
// The enforcement benches sum the programs they are about ([`program_runs`]).
#[allow(dead_code)]
pub fn per_call(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
    calls: u64,
) -> Vec<(String, f64, f64)> {
    let calls = calls as f64;
    after
        .iter()
        .filter_map(|(name, &(runs, ns))| {
            let (runs_before, ns_before) = before.get(name).copied().unwrap_or_default();
            (runs > runs_before).then(|| {
                (
                    name.clone(),
                    (runs - runs_before) as f64 / calls,
                    ns.saturating_sub(ns_before) as f64 / calls,
                )
            })
        })
        .collect()
}
