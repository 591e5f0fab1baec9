//! Container-escape syscalls as events: a traced process called `setns`, `unshare`, `mount`,
//! `chroot`, `pivot_root`, `init_module`, `finit_module`, or `ptrace` to attach to another
//! process (`collector-ebpf/src/escape.rs`). Decoded from `agentscope_common::EscapeSyscallEvent`
//! into the syscall's meaningful arguments: namespaces, paths, the mount's type, the ptrace
//! target.

use agentscope_common as raw;
use serde::{Deserialize, Serialize};

/// Which syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapeSyscallName {
    Setns,
    Unshare,
    Mount,
    Chroot,
    PivotRoot,
    InitModule,
    FinitModule,
    Ptrace,
    Unknown,
}

impl EscapeSyscallName {
    pub fn name(self) -> &'static str {
        match self {
            EscapeSyscallName::Setns => "setns",
            EscapeSyscallName::Unshare => "unshare",
            EscapeSyscallName::Mount => "mount",
            EscapeSyscallName::Chroot => "chroot",
            EscapeSyscallName::PivotRoot => "pivot_root",
            EscapeSyscallName::InitModule => "init_module",
            EscapeSyscallName::FinitModule => "finit_module",
            EscapeSyscallName::Ptrace => "ptrace",
            EscapeSyscallName::Unknown => "unknown",
        }
    }
}

/// One call (the body of an `escape_syscall` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscapeSyscall {
    pub syscall: EscapeSyscallName,
    /// 0 (or a pid, an fd) or `-errno`.
    pub ret: i64,
    /// setns and unshare: the namespaces named by the flags (`mnt`, `pid`, `net`, ...);
    /// setns with 0 (any type the fd is) leaves it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// mount: the source; chroot and pivot_root: the new root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// mount: the target; pivot_root: where the old root goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    /// mount: the file-system type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    /// The raw flags: unshare's, setns's namespace type, mount's `MS_*`.
    #[serde(default)]
    pub flags: u64,
    /// setns: the namespace fd; finit_module: the module's fd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// ptrace: the process attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_pid: Option<u32>,
    /// ptrace: `attach` or `seize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// A path was longer than the kernel record keeps.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

const NAMESPACE_FLAGS: [(u64, &str); 8] = [
    (0x0002_0000, "mnt"),
    (0x0200_0000, "cgroup"),
    (0x0400_0000, "uts"),
    (0x0800_0000, "ipc"),
    (0x1000_0000, "user"),
    (0x2000_0000, "pid"),
    (0x4000_0000, "net"),
    (0x0000_0080, "time"),
];

fn namespaces_of(flags: u64) -> Vec<String> {
    NAMESPACE_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

fn path_of(bytes: &[u8], len: u32) -> Option<String> {
    let len = (len as usize).min(bytes.len());
    (len > 0).then(|| crate::event::c_string(&bytes[..len]))
}

impl EscapeSyscall {
    pub fn from_raw(e: &raw::EscapeSyscallEvent) -> Self {
        use raw::escape;
        let syscall = match e.syscall {
            escape::SETNS => EscapeSyscallName::Setns,
            escape::UNSHARE => EscapeSyscallName::Unshare,
            escape::MOUNT => EscapeSyscallName::Mount,
            escape::CHROOT => EscapeSyscallName::Chroot,
            escape::PIVOT_ROOT => EscapeSyscallName::PivotRoot,
            escape::INIT_MODULE => EscapeSyscallName::InitModule,
            escape::FINIT_MODULE => EscapeSyscallName::FinitModule,
            escape::PTRACE => EscapeSyscallName::Ptrace,
            _ => EscapeSyscallName::Unknown,
        };
        let mut call = EscapeSyscall {
            syscall,
            ret: e.ret,
            namespaces: Vec::new(),
            path: path_of(&e.path, e.path_len),
            path2: path_of(&e.path2, e.path2_len),
            fstype: None,
            flags: 0,
            fd: None,
            target_pid: None,
            request: None,
            path_truncated: e.path_len as usize >= raw::PATH_LEN
                || e.path2_len as usize >= raw::PATH_LEN,
        };
        match syscall {
            EscapeSyscallName::Setns => {
                call.fd = Some(e.args[0] as i32);
                call.flags = e.args[1];
                call.namespaces = namespaces_of(e.args[1]);
            }
            EscapeSyscallName::Unshare => {
                call.flags = e.args[0];
                call.namespaces = namespaces_of(e.args[0]);
            }
            EscapeSyscallName::Mount => {
                call.flags = e.args[3];
                call.fstype = Some(crate::event::c_string(&e.fstype)).filter(|s| !s.is_empty());
            }
            EscapeSyscallName::FinitModule => call.fd = Some(e.args[0] as i32),
            EscapeSyscallName::Ptrace => {
                call.target_pid = Some(e.args[1] as u32);
                call.request = Some(
                    match e.args[0] {
                        escape::PTRACE_ATTACH => "attach",
                        escape::PTRACE_SEIZE => "seize",
                        _ => "other",
                    }
                    .to_string(),
                );
            }
            _ => {}
        }
        call
    }

    /// `mount(/proc/1/root → /mnt, type none) = 0`, for people.
    pub fn describe(&self) -> String {
        let args = match self.syscall {
            EscapeSyscallName::Setns => format!(
                "fd {}{}",
                self.fd.unwrap_or(-1),
                if self.namespaces.is_empty() {
                    String::new()
                } else {
                    format!(", {}", self.namespaces.join("|"))
                }
            ),
            EscapeSyscallName::Unshare => self.namespaces.join("|"),
            EscapeSyscallName::Mount => format!(
                "{} → {}{}",
                self.path.as_deref().unwrap_or("none"),
                self.path2.as_deref().unwrap_or("?"),
                self.fstype
                    .as_deref()
                    .map(|t| format!(", type {t}"))
                    .unwrap_or_default()
            ),
            EscapeSyscallName::Chroot => self.path.clone().unwrap_or_default(),
            EscapeSyscallName::PivotRoot => format!(
                "{}, {}",
                self.path.as_deref().unwrap_or("?"),
                self.path2.as_deref().unwrap_or("?")
            ),
            EscapeSyscallName::FinitModule => format!("fd {}", self.fd.unwrap_or(-1)),
            EscapeSyscallName::Ptrace => format!(
                "{} pid {}",
                self.request.as_deref().unwrap_or("?"),
                self.target_pid.unwrap_or(0)
            ),
            EscapeSyscallName::InitModule | EscapeSyscallName::Unknown => String::new(),
        };
        format!(
            "{}({args}) = {}",
            self.syscall.name(),
            result_text(self.ret)
        )
    }
}

/// `0`, or the errno's name (`-EPERM`).
fn result_text(ret: i64) -> String {
    if ret >= 0 {
        return ret.to_string();
    }
    let name = match -ret {
        1 => "EPERM",
        2 => "ENOENT",
        9 => "EBADF",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        20 => "ENOTDIR",
        22 => "EINVAL",
        38 => "ENOSYS",
        _ => return ret.to_string(),
    };
    format!("-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use raw::zerocopy::FromZeros;

    #[test]
    fn mount_names_its_paths_and_type() {
        let mut e = raw::EscapeSyscallEvent::new_zeroed();
        e.syscall = raw::escape::MOUNT;
        e.ret = -1;
        e.path[..13].copy_from_slice(b"/proc/1/root\0");
        e.path_len = 12;
        e.path2[..5].copy_from_slice(b"/mnt\0");
        e.path2_len = 4;
        e.fstype[..5].copy_from_slice(b"none\0");
        e.args[3] = 4096;
        let call = EscapeSyscall::from_raw(&e);
        assert_eq!(call.path.as_deref(), Some("/proc/1/root"));
        assert_eq!(call.flags, 4096);
        assert_eq!(
            call.describe(),
            "mount(/proc/1/root → /mnt, type none) = -EPERM"
        );
    }

    #[test]
    fn namespaces_and_ptrace_targets_are_named() {
        let mut e = raw::EscapeSyscallEvent::new_zeroed();
        e.syscall = raw::escape::SETNS;
        e.args = [3, 0x0002_0000 | 0x2000_0000, 0, 0];
        assert_eq!(
            EscapeSyscall::from_raw(&e).describe(),
            "setns(fd 3, mnt|pid) = 0"
        );
        e.syscall = raw::escape::PTRACE;
        e.args = [raw::escape::PTRACE_SEIZE, 4242, 0, 0];
        e.path_len = 9999;
        let call = EscapeSyscall::from_raw(&e);
        assert_eq!(call.target_pid, Some(4242));
        assert_eq!(call.describe(), "ptrace(seize pid 4242) = 0");
    }
}
