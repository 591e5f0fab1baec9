//! What this node's kernel offers the collector, read without loading anything (for
//! `agentscope --version` and bug reports): the release, BTF, tracefs, the cgroup v2
//! hierarchy and the BPF filesystem, and a digest of the kernel programs this build carries.

use std::path::Path;

/// Each feature as found on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFeatures {
    /// `uname -r`.
    pub release: String,
    /// `/sys/kernel/btf/vmlinux` (field offsets come from it).
    pub btf: bool,
    /// Where tracefs is mounted, if it is (the collector mounts it when it is not).
    pub tracefs: Option<&'static str>,
    /// Where the cgroup v2 hierarchy is (`/sys/fs/cgroup` on v2 hosts, `.../unified` on
    /// hybrid ones).
    pub cgroup_v2: Option<&'static str>,
    /// `/sys/fs/bpf` is a BPF filesystem (pinned maps and links live there).
    pub bpffs: bool,
}

impl KernelFeatures {
    pub fn detect() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .into_iter()
            .find(|dir| Path::new(dir).join("events").is_dir());
        let cgroup_v2 = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|dir| Path::new(dir).join("cgroup.controllers").exists());
        // A BPF filesystem's root holds no regular entries the kernel made, so look at the
        // mount table rather than guess from the directory.
        let bpffs = std::fs::read_to_string("/proc/self/mounts")
            .map(|mounts| {
                mounts.lines().any(|line| {
                    let mut fields = line.split(' ');
                    (fields.nth(1), fields.next()) == (Some("/sys/fs/bpf"), Some("bpf"))
                })
            })
            .unwrap_or(false);
        Self {
            release,
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            tracefs,
            cgroup_v2,
            bpffs,
        }
    }

    /// One line per feature, for `--version`.
    pub fn describe(&self) -> String {
        let yes_no = |found: bool| if found { "yes" } else { "NO" };
        format!(
            "kernel      {}\n\
             btf         {}\n\
             tracefs     {}\n\
             cgroup v2   {}\n\
             bpffs       {}",
            self.release,
            yes_no(self.btf),
            self.tracefs
                .unwrap_or("not mounted (the collector mounts it)"),
            self.cgroup_v2.unwrap_or("NO"),
            if self.bpffs {
                "/sys/fs/bpf"
            } else {
                "not mounted"
            }
        )
    }
}

/// The kernel programs this build embeds (empty in a build with `AYA_BUILD_SKIP`).
pub fn kernel_programs_object() -> &'static [u8] {
    crate::kernel::EBPF_OBJECT
}
