//! Mapping cgroup ids to cgroup paths.
//!
//! The kernel programs record `bpf_get_current_cgroup_id()`: the id of the task's cgroup in
//! the cgroup v2 hierarchy, which is also the inode number of that cgroup's directory in any
//! cgroup2 mount (kernfs uses the node id as inode number on 64-bit kernels). So an id turns
//! into a path by finding a directory with that inode under the cgroup2 mount. The mount is
//! found in /proc/self/mountinfo, never assumed: hosts mount it at /sys/fs/cgroup (unified),
//! /sys/fs/cgroup/unified (hybrid) or elsewhere.
//!
//! Lookups are cached forever (cgroup2 ids are 64-bit and never reused). On a miss the cheap
//! way is tried first: `/proc/PID/cgroup` names the process's cgroup, and its directory inode
//! confirms it. Failing that (the process has exited or moved) the whole tree is walked, at
//! most once per [`RESCAN_INTERVAL`], so a burst of unknown ids costs one walk.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The least time between two walks of the cgroup tree.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Walks stop this deep; real hierarchies are about ten levels deep.
const MAX_DEPTH: usize = 64;

/// A cgroup2 mount as /proc/self/mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Which cgroup is the mount's root (`/` unless mounted from inside a cgroup namespace).
    pub root: String,
}

/// Finds the first cgroup2 mount in mountinfo content.
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<Cgroup2Mount> {
    cgroup2_mounts(mountinfo).into_iter().next()
}

/// Every cgroup2 mount in mountinfo content, in order.
///
/// Fields (proc(5)): id, parent id, major:minor, root, mount point, options, optional fields
/// ending with `-`, then filesystem type, source and super options. Paths escape space, tab,
/// newline and backslash as octal (`\040`).
pub fn cgroup2_mounts(mountinfo: &str) -> Vec<Cgroup2Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            // Six fixed fields come before the optional ones and the separator.
            let separator = fields.iter().skip(6).position(|f| *f == "-")? + 6;
            if fields.get(separator + 1) != Some(&"cgroup2") {
                return None;
            }
            Some(Cgroup2Mount {
                root: unescape_mountinfo(fields.get(3)?),
                mount_point: PathBuf::from(unescape_mountinfo(fields.get(4)?)),
            })
        })
        .collect()
}

fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 path of a process from `/proc/PID/cgroup` content (the `0::` line).
pub fn unified_path_from_proc_cgroup(content: &str) -> Option<&str> {
    content.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Joins a mount root and a path relative to the mount into a path from the hierarchy root.
fn hierarchy_path(mount_root: &str, relative: &str) -> String {
    let root = mount_root.trim_end_matches('/');
    let relative = relative.trim_start_matches('/');
    match (root.is_empty(), relative.is_empty()) {
        (true, true) => "/".to_string(),
        (true, false) => format!("/{relative}"),
        (false, true) => root.to_string(),
        (false, false) => format!("{root}/{relative}"),
    }
}

/// Cgroup id to path, filled lazily.
#[derive(Debug)]
pub struct CgroupIndex {
    mount: Option<Cgroup2Mount>,
    proc_root: PathBuf,
    paths: HashMap<u64, String>,
    last_walk: Option<Instant>,
}

impl CgroupIndex {
    /// `mount_point` overrides the mount found in `<proc_root>/self/mountinfo`.
    pub fn new(proc_root: &Path, mount_point: Option<PathBuf>) -> CgroupIndex {
        let mount = match mount_point {
            Some(mount_point) => Some(Cgroup2Mount {
                mount_point,
                root: "/".to_string(),
            }),
            None => find_mount(proc_root),
        };
        CgroupIndex {
            mount,
            proc_root: proc_root.to_path_buf(),
            paths: HashMap::new(),
            last_walk: None,
        }
    }

    /// The cgroup2 mount in use, if there is one.
    pub fn mount(&self) -> Option<&Cgroup2Mount> {
        self.mount.as_ref()
    }

    /// The path of cgroup `id` (from the hierarchy root, e.g. `/kubepods.slice/...`), using
    /// `pid`'s own cgroup as the first guess.
    pub fn path_of(&mut self, id: u64, pid: u32) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        let mount = self.mount.clone()?;
        if let Some(path) = self.path_via_process(&mount, id, pid) {
            self.paths.insert(id, path.clone());
            return Some(path);
        }
        let due = self
            .last_walk
            .is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL);
        if due {
            self.last_walk = Some(Instant::now());
            // Rebuilt rather than extended, so removed cgroups do not pile up.
            self.paths = walk(&mount);
        }
        self.paths.get(&id).cloned()
    }

    fn path_via_process(&self, mount: &Cgroup2Mount, id: u64, pid: u32) -> Option<String> {
        let content =
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup")).ok()?;
        let relative = unified_path_from_proc_cgroup(&content)?;
        // In another cgroup namespace than ours the path climbs out with `..`; the walk finds it.
        if relative.split('/').any(|s| s == "..") {
            return None;
        }
        let dir = mount.mount_point.join(relative.trim_start_matches('/'));
        let inode = std::fs::metadata(&dir).ok()?.ino();
        (inode == id).then(|| hierarchy_path(&mount.root, relative))
    }
}

/// The cgroup2 mount to read. A node container (host PID namespace) in a cgroup namespace of
/// its own (Kubernetes' default with cgroup v2, `podman --cgroupns=private`) sees, at best,
/// its own subtree in its own mount, and other processes' `/proc/PID/cgroup` climb out of it
/// with `..`. The host's hierarchy, bound into the container (the DaemonSet mounts the host's
/// /sys/fs/cgroup, see deploy/), shows in mountinfo with a root that climbs out too
/// (`/../..`): that mount is used. Its root is the hierarchy's when it climbs exactly as far
/// as our namespace's root is deep, which PID 1 tells: init lives at the top of the host's
/// hierarchy (`/` or `/init.scope`), so the `..` its `/proc/1/cgroup` starts with, seen from
/// our namespace, count our root's depth. Paths are then absolute, as on the host.
fn find_mount(proc_root: &Path) -> Option<Cgroup2Mount> {
    let mounts = std::fs::read_to_string(proc_root.join("self/mountinfo"))
        .map(|m| cgroup2_mounts(&m))
        .unwrap_or_default();
    let climbs = |path: &str| {
        path.split('/')
            .filter(|s| !s.is_empty())
            .take_while(|s| *s == "..")
            .count()
    };
    let Some(host) = mounts.iter().find(|m| climbs(&m.root) > 0) else {
        return mounts.into_iter().next();
    };
    let mut host = host.clone();
    let depth_of_our_root = std::fs::read_to_string(proc_root.join("1/cgroup"))
        .ok()
        .and_then(|content| unified_path_from_proc_cgroup(&content).map(climbs));
    let only_climbs = host
        .root
        .split('/')
        .filter(|s| !s.is_empty())
        .all(|s| s == "..");
    if only_climbs && depth_of_our_root == Some(climbs(&host.root)) {
        host.root = "/".into();
    }
    Some(host)
}

fn walk(mount: &Cgroup2Mount) -> HashMap<u64, String> {
    let mut paths = HashMap::new();
    let mut stack = vec![(mount.mount_point.clone(), String::new(), 0usize)];
    while let Some((dir, relative, depth)) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        paths.insert(meta.ino(), hierarchy_path(&mount.root, &relative));
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                stack.push((entry.path(), format!("{relative}/{name}"), depth + 1));
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A node container in a cgroup namespace of its own, with the host's hierarchy bound in:
    /// that mount is used, and its root is the hierarchy's when it climbs as far as PID 1's
    /// cgroup (init, at the top of the host's hierarchy) does.
    #[test]
    fn a_private_cgroup_namespace_uses_the_hosts_hierarchy_bound_in() {
        let proc_root = tempfile::tempdir().unwrap();
        let proc_root = proc_root.path();
        for pid in ["self", "1"] {
            std::fs::create_dir_all(proc_root.join(pid)).unwrap();
        }
        let mountinfo = "50 40 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                         51 40 0:38 /../.. /host/sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        std::fs::write(proc_root.join("self/mountinfo"), mountinfo).unwrap();
        for init in ["0::/../../init.scope\n", "0::/../..\n"] {
            std::fs::write(proc_root.join("1/cgroup"), init).unwrap();
            let mount = find_mount(proc_root).unwrap();
            assert_eq!(mount.mount_point, Path::new("/host/sys/fs/cgroup/unified"));
            assert_eq!(mount.root, "/", "{init}");
        }
        // Our namespace's root is deeper than the mount's root climbs: kept as it is.
        std::fs::write(proc_root.join("1/cgroup"), "0::/../../../init.scope\n").unwrap();
        assert_eq!(find_mount(proc_root).unwrap().root, "/../..");
        // Our own namespace's mount only: that one.
        std::fs::write(
            proc_root.join("self/mountinfo"),
            "50 40 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        assert_eq!(
            find_mount(proc_root).unwrap().mount_point,
            Path::new("/sys/fs/cgroup")
        );
    }

    #[test]
    fn finds_the_hybrid_cgroup2_mount() {
        assert_eq!(
            find_cgroup2_mount(HYBRID),
            Some(Cgroup2Mount {
                mount_point: PathBuf::from("/sys/fs/cgroup/unified"),
                root: "/".into()
            })
        );
    }

    #[test]
    fn optional_fields_and_escapes() {
        let unified = "29 23 0:26 /kubepods.slice/pod\\040x /sys/fs/cg\\134roup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_cgroup2_mount(unified),
            Some(Cgroup2Mount {
                mount_point: PathBuf::from("/sys/fs/cg\\roup"),
                root: "/kubepods.slice/pod x".into()
            })
        );
    }

    #[test]
    fn no_cgroup2_or_garbage() {
        assert_eq!(find_cgroup2_mount(""), None);
        assert_eq!(
            find_cgroup2_mount("32 31 0:29 / /x rw - cgroup cgroup rw\n"),
            None
        );
        assert_eq!(
            find_cgroup2_mount("- cgroup2\n\\\n-\n 1 2 3 - cgroup2"),
            None
        );
        assert_eq!(unescape_mountinfo("a\\04"), "a\\04");
        assert_eq!(unescape_mountinfo("\\999"), "\\999");
    }

    #[test]
    fn unified_line_of_proc_cgroup() {
        let content = "9:name=systemd:/\n4:memory:/x\n0::/kubepods.slice/a.scope\n";
        assert_eq!(
            unified_path_from_proc_cgroup(content),
            Some("/kubepods.slice/a.scope")
        );
        assert_eq!(unified_path_from_proc_cgroup("1:cpu:/\n"), None);
    }

    #[test]
    fn hierarchy_paths() {
        assert_eq!(hierarchy_path("/", ""), "/");
        assert_eq!(hierarchy_path("/", "/a/b"), "/a/b");
        assert_eq!(hierarchy_path("/ns", "/a"), "/ns/a");
        assert_eq!(hierarchy_path("/ns/", "/"), "/ns");
    }

    #[test]
    fn walks_a_directory_tree_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kubepods.slice/pod.slice")).unwrap();
        let inode = std::fs::metadata(dir.path().join("kubepods.slice/pod.slice"))
            .unwrap()
            .ino();
        let proc_root = tempfile::tempdir().unwrap();
        let mut index = CgroupIndex::new(proc_root.path(), Some(dir.path().to_path_buf()));
        assert_eq!(
            index.path_of(inode, 1).as_deref(),
            Some("/kubepods.slice/pod.slice")
        );
        let root_inode = std::fs::metadata(dir.path()).unwrap().ino();
        assert_eq!(index.path_of(root_inode, 1).as_deref(), Some("/"));
        assert_eq!(index.path_of(0, 1), None);
        // A directory made after the walk is found on a later walk only, once the interval
        // has passed: until then misses cost nothing.
        std::fs::create_dir(dir.path().join("later")).unwrap();
        let later = std::fs::metadata(dir.path().join("later")).unwrap().ino();
        assert_eq!(index.path_of(later, 1), None);
        index.last_walk = Some(Instant::now() - RESCAN_INTERVAL);
        assert_eq!(index.path_of(later, 1).as_deref(), Some("/later"));
    }

    #[test]
    fn process_cgroup_is_tried_first_and_checked_by_inode() {
        let cgroups = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(cgroups.path().join("a/b")).unwrap();
        let inode = std::fs::metadata(cgroups.path().join("a/b")).unwrap().ino();
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_root.path().join("42")).unwrap();
        std::fs::write(proc_root.path().join("42/cgroup"), "0::/a/b\n").unwrap();
        let mut index = CgroupIndex::new(proc_root.path(), Some(cgroups.path().to_path_buf()));
        assert_eq!(index.path_of(inode, 42).as_deref(), Some("/a/b"));
        assert!(index.last_walk.is_none(), "no walk was needed");
        // A process whose cgroup has another inode does not mislead: the walk decides.
        std::fs::write(proc_root.path().join("42/cgroup"), "0::/a\n").unwrap();
        let mut index = CgroupIndex::new(proc_root.path(), Some(cgroups.path().to_path_buf()));
        assert_eq!(index.path_of(inode, 42).as_deref(), Some("/a/b"));
        assert!(index.last_walk.is_some());
    }
}
