//! Which files a process writes lie on a host path mounted into its container (a `hostPath`
//! volume, `podman run -v /srv:/data`): the collector reads the process's mount table
//! (`/proc/PID/mountinfo`) the first time it sees a write-open in a mount namespace, and
//! stamps the write with the host directory behind it. The mount table is what knows: the pod
//! spec says what was asked for, the kernel what was mounted, and only the collector reads
//! /proc while the process lives (a replay has the stamped events).
//!
//! A mount is a host path when it is not the container's root, its file system is a disk's
//! (not `overlay`, `tmpfs`, `proc` and the other virtual ones) and its root is not in the
//! kubelet's or a container runtime's own storage (`/var/lib/kubelet/pods/…` volumes,
//! `/var/lib/containers/…`): those are the pod's secrets, config maps, empty dirs and the
//! runtime's `/etc/hosts`. Processes in the collector's own mount namespace are on the host:
//! nothing of theirs is "mounted into a pod".
//!
//! mountinfo is parsed here by hand (a line of space-separated fields with octal escapes,
//! proc(5)): the `procfs` crate is not a dependency, and this needs four fields.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Mount namespaces whose tables are kept; beyond it the cache starts again.
const MAX_NAMESPACES: usize = 256;
/// Mounts kept of one table (a pod has tens; a table beyond this is judged on its first ones).
const MAX_MOUNTS: usize = 4096;

/// File systems that are not a disk's: a mount of one is never a host directory.
const VIRTUAL_FILE_SYSTEMS: [&str; 24] = [
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "overlay",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "pstore",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "ramfs",
    "efivarfs",
    "rpc_pipefs",
    "shm",
];

/// Where the kubelet and container runtimes keep what they mount into containers themselves.
const RUNTIME_STORAGE: [&str; 9] = [
    "/var/lib/kubelet/",
    "/var/lib/containers/",
    "/var/lib/docker/",
    "/var/lib/containerd/",
    "/run/containerd/",
    "/run/containers/",
    "/var/run/containerd/",
    "/var/run/containers/",
    "/run/k3s/",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    mount_point: String,
    /// The directory of the file system mounted there (a bind mount's source).
    root: String,
    host: bool,
}

/// A write under a host path: where it is mounted and the host directory the file is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    pub mount_point: String,
    /// The file's path on the host's file system (relative to that file system's root).
    pub host_path: String,
}

/// Mount tables by mount namespace, read from `/proc` as writes arrive.
pub struct HostMounts {
    proc_root: PathBuf,
    own_namespace: Option<u64>,
    by_namespace: HashMap<u64, Arc<Vec<Mount>>>,
}

fn namespace_of(proc_root: &Path, pid: &str) -> Option<u64> {
    let link = std::fs::read_link(proc_root.join(pid).join("ns/mnt")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or_default();
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .take(MAX_MOUNTS)
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let root = unescape(fields.get(3)?);
            let mount_point = unescape(fields.get(4)?);
            let fstype = after.split(' ').next()?;
            let host = mount_point != "/"
                && !VIRTUAL_FILE_SYSTEMS.contains(&fstype)
                && !fstype.starts_with("fuse.")
                && !RUNTIME_STORAGE
                    .iter()
                    .any(|prefix| format!("{root}/").starts_with(prefix));
            Some(Mount {
                mount_point,
                root,
                host,
            })
        })
        .collect()
}

/// The mount `path` (absolute, normalised by the caller's kernel) lies on: the last mounted
/// of the longest mount points that contain it.
fn mount_of<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for mount in mounts {
        let point = mount.mount_point.as_str();
        let inside = point == "/"
            || path == point
            || path
                .strip_prefix(point)
                .is_some_and(|rest| rest.starts_with('/'));
        if inside && best.is_none_or(|b| point.len() >= b.mount_point.len()) {
            best = Some(mount);
        }
    }
    best
}

impl HostMounts {
    pub fn new(proc_root: &Path) -> Self {
        Self {
            proc_root: proc_root.to_path_buf(),
            own_namespace: namespace_of(proc_root, "self"),
            by_namespace: HashMap::new(),
        }
    }

    /// The host path `path` is written to by `lineage`'s first live process (the writer, else
    /// its nearest living ancestor: a shell's redirect has often exited by now, and mount
    /// namespaces are inherited), if it lies on a host path mounted into its container.
    pub fn host_path(&mut self, lineage: &[u32], path: &str) -> Option<HostPath> {
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return None;
        }
        let (namespace, pid) = lineage
            .iter()
            .find_map(|pid| namespace_of(&self.proc_root, &pid.to_string()).map(|ns| (ns, *pid)))?;
        if Some(namespace) == self.own_namespace {
            return None;
        }
        let mounts = match self.by_namespace.get(&namespace) {
            Some(mounts) => mounts.clone(),
            None => {
                let text =
                    std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("mountinfo"))
                        .ok()?;
                if self.by_namespace.len() >= MAX_NAMESPACES {
                    self.by_namespace.clear();
                }
                let mounts = Arc::new(parse_mountinfo(&text));
                self.by_namespace.insert(namespace, mounts.clone());
                mounts
            }
        };
        let mount = mount_of(&mounts, path)?;
        if !mount.host {
            return None;
        }
        let rest = path[mount.mount_point.len()..].trim_start_matches('/');
        Some(HostPath {
            mount_point: mount.mount_point.clone(),
            host_path: format!("{}/{rest}", mount.root.trim_end_matches('/')),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod's mount table (containerd): overlay root, the kubelet's volumes, a hostPath.
    const POD: &str = "\
1187 1101 0:310 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/containerd/l
1188 1187 0:313 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1195 1187 253:1 /var/lib/kubelet/pods/0b6b/etc-hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw
1196 1187 253:1 /var/lib/kubelet/pods/0b6b/volumes/kubernetes.io~empty-dir/cache /cache rw - ext4 /dev/vda1 rw
1197 1187 0:280 / /var/run/secrets/kubernetes.io/serviceaccount ro,relatime - tmpfs tmpfs rw
1198 1187 253:1 /srv/shared\\040data /data rw,relatime - ext4 /dev/vda1 rw
1199 1198 0:290 / /data/scratch rw - tmpfs tmpfs rw
";

    #[test]
    fn host_path_volumes_are_found_and_the_pods_own_mounts_are_not() {
        let mounts = parse_mountinfo(POD);
        let host: Vec<&str> = mounts
            .iter()
            .filter(|m| m.host)
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(host, ["/data"]);
        let data = mount_of(&mounts, "/data/report.csv").unwrap();
        assert_eq!(data.root, "/srv/shared data");
        assert!(!mount_of(&mounts, "/data/scratch/x").unwrap().host);
        assert!(!mount_of(&mounts, "/database/x").unwrap().host);
        assert!(!mount_of(&mounts, "/cache/x").unwrap().host);
        assert_eq!(mount_of(&mounts, "/etc/passwd").unwrap().mount_point, "/");
    }

    #[test]
    fn the_collectors_own_namespace_is_the_host() {
        let mut mounts = HostMounts::new(Path::new("/proc"));
        let me = std::process::id();
        assert_eq!(mounts.host_path(&[me], "/tmp/anything"), None);
        assert_eq!(mounts.host_path(&[u32::MAX], "/tmp/anything"), None);
    }
}
