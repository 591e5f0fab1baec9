//! What the enforcement benches share (enforce_connect, enforce_exec_open): a baseline promoted
//! to a policy, a bpffs of the bench's own for the pins (enforcement outlives its collector,
//! and a bench must never leave it in the host's /sys/fs/bpf), the cost per run of the
//! enforcement programs (read with support/program_stats.rs), and one criterion group per
//! variant.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::Criterion;

use crate::workload::Loop;

/// Writes a complete baseline of agent `bench` whose spec is `spec` (YAML under `spec:`,
/// indented by four), promotes it with `modes` (`--network enforce`, …) and returns the
/// promoted policy's path.
pub fn promoted_policy(dir: &Path, name: &str, spec: &str, modes: &[&str]) -> String {
    let baseline = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &baseline,
        format!(
            "apiVersion: agentscope.dev/v1\nkind: AgentBaseline\nmetadata:\n  agent: bench\n  \
             status: complete\n  learningPeriodSeconds: 600\nspec:\n{spec}"
        ),
    )
    .unwrap();
    let promoted = dir.join(format!("{name}-policy.yaml"));
    let status = Command::new(env!("CARGO_BIN_EXE_agentscope"))
        .args(["baseline", "promote"])
        .arg(&baseline)
        .args(modes)
        .arg("-w")
        .arg(&promoted)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "promote failed");
    promoted.display().to_string()
}

/// One criterion group `group`, one function `variant`: `workload`'s round trips, timed by the
/// workload itself.
pub fn measure(c: &mut Criterion, group: &str, variant: &str, workload: &mut Loop) {
    workload.measure(c, group, variant, 20, 5);
}

/// Prints what the kernel counted between two `program_stats::program_runs` readings.
pub fn print_program_cost(label: &str, before: (u64, u64), after: (u64, u64)) {
    let (runs, ns) = (after.0 - before.0, after.1 - before.1);
    if runs > 0 {
        println!(
            "{label}: the enforcement programs ran {runs} times, {:.0} ns per run (kernel accounting)",
            ns as f64 / runs as f64
        );
    }
}

/// A bpffs instance mounted on a directory of the bench's, unmounted (releasing whatever is
/// still pinned) when dropped.
pub struct PrivateBpffs(PathBuf);

impl PrivateBpffs {
    pub fn mount(dir: &Path) -> PrivateBpffs {
        let path = dir.join("bpffs");
        std::fs::create_dir_all(&path).unwrap();
        let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
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
        PrivateBpffs(path)
    }

    /// The `--pin-dir` a collector of the bench pins under.
    pub fn pin_dir(&self) -> String {
        self.0.join("agentscope").display().to_string()
    }

    /// `agentscope enforce off` on this bpffs: the next variant starts with nothing pinned.
    pub fn switch_off(&self) {
        let status = Command::new(env!("CARGO_BIN_EXE_agentscope"))
            .args(["enforce", "off", "--pin-dir", &self.pin_dir()])
            .status()
            .unwrap();
        assert!(status.success(), "agentscope enforce off");
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2(2) of the mount made in `mount`.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}
