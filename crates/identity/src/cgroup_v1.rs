//! Container placement from the cgroup v1 hierarchies, for processes the unified (v2) one does
//! not place.
//!
//! The kernel programs record the task's cgroup v2 id. On a host with cgroup v1 only (no
//! unified hierarchy) or hybrid with the runtime in the v1 controllers (Docker's or the
//! kubelet's cgroupfs driver on older hosts; every process in the unified root, `0::/`), that
//! id is the v2 root for everyone and names no container. The v1 lines of `/proc/PID/cgroup`
//! (`ID:CONTROLLERS:PATH`, proc(7)) still do, in the same path layouts
//! (see [`crate::container`]), so they are read instead.
//!
//! Which hierarchy: the first, in this order, whose path names a container or a pod:
//! `name=systemd` (systemd creates the runtimes' scopes and slices there, and runc's cgroupfs
//! driver joins it too), then `pids`, `memory` and `cpu`/`cpuacct` (the controllers every
//! runtime sets limits in, so a container always has its own cgroup there), then any other
//! in file order. Trying them in order rather than taking one means a controller a runtime
//! left out (no `pids` on an old kernel, a runtime that skips `name=systemd`) costs nothing.
//!
//! The lines are split by hand: the format is three colon-separated fields where the path,
//! last, may itself hold colons, which `splitn(3, ':')` states exactly; no crate adds to that.

use std::path::Path;

use serde::Serialize;

use crate::container::{parse_cgroup_path, CgroupClues};

/// `/proc/PID/cgroup` is a line per hierarchy; more than this is not a real one.
const MAX_PROC_CGROUP_BYTES: u64 = 64 * 1024;

/// Where a process's container was read when it came from a cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupV1Placement {
    /// The hierarchy's controllers as `/proc/PID/cgroup` names them: `name=systemd`, `pids`,
    /// `memory`, `cpu,cpuacct`, ...
    pub hierarchy: String,
    /// The process's path in that hierarchy, e.g. `/kubepods/burstable/pod<uid>/<id>`.
    pub path: String,
}

/// One v1 line of `/proc/PID/cgroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V1Line<'a> {
    pub hierarchy: &'a str,
    pub path: &'a str,
}

/// The v1 lines of `/proc/PID/cgroup` content, in the order they are tried (see the module
/// documentation). The unified line (`0::`) and malformed lines are left out.
pub fn v1_lines_by_preference(content: &str) -> Vec<V1Line<'_>> {
    let mut lines: Vec<V1Line<'_>> = content
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let id = fields.next()?;
            let hierarchy = fields.next()?;
            let path = fields.next()?;
            let v1 = !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && id != "0"
                && !hierarchy.is_empty()
                && path.starts_with('/');
            v1.then_some(V1Line { hierarchy, path })
        })
        .collect();
    // Stable: lines of equal rank keep the file's order.
    lines.sort_by_key(|line| preference(line.hierarchy));
    lines
}

fn preference(hierarchy: &str) -> u8 {
    let controllers = || hierarchy.split(',');
    if hierarchy == "name=systemd" {
        0
    } else if controllers().any(|c| c == "pids") {
        1
    } else if controllers().any(|c| c == "memory") {
        2
    } else if controllers().any(|c| c == "cpu" || c == "cpuacct") {
        3
    } else {
        4
    }
}

/// The container (and pod) the first preferred v1 line names, with where it was read; `None`
/// when no v1 line names one (a host process, a v2-only host).
pub fn placement_from_proc_cgroup(content: &str) -> Option<(CgroupClues, CgroupV1Placement)> {
    v1_lines_by_preference(content)
        .into_iter()
        .find_map(|line| {
            let clues = parse_cgroup_path(line.path);
            let named = clues.container.is_some() || clues.pod_uid.is_some();
            named.then(|| {
                let placement = CgroupV1Placement {
                    hierarchy: line.hierarchy.to_string(),
                    path: line.path.to_string(),
                };
                (clues, placement)
            })
        })
}

/// [`placement_from_proc_cgroup`] of `<proc_root>/PID/cgroup`; `None` also when the process
/// has gone or the file cannot be read.
pub fn placement_of_process(
    proc_root: &Path,
    pid: u32,
) -> Option<(CgroupClues, CgroupV1Placement)> {
    use std::io::Read as _;
    let file = std::fs::File::open(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    let mut content = String::new();
    file.take(MAX_PROC_CGROUP_BYTES)
        .read_to_string(&mut content)
        .ok()?;
    placement_from_proc_cgroup(&content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContainerRuntime;

    const ID: &str = "4f2a9c1b7d3e4a5b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";

    #[test]
    fn preference_order_and_file_order_among_equals() {
        let content = "12:devices:/a\n11:cpu,cpuacct:/b\n10:memory:/c\n9:pids:/d\n\
                       8:net_cls,net_prio:/e\n1:name=systemd:/f\n0::/g\n";
        let order: Vec<&str> = v1_lines_by_preference(content)
            .iter()
            .map(|l| l.path)
            .collect();
        assert_eq!(order, ["/f", "/d", "/c", "/b", "/a", "/e"]);
    }

    #[test]
    fn a_later_hierarchy_names_the_container_when_an_earlier_does_not() {
        // A runtime that left name=systemd alone (the process's login session is there).
        let content = format!(
            "9:name=systemd:/user.slice/user-0.slice/session-1.scope\n8:pids:/docker/{ID}\n0::/\n"
        );
        let (clues, placement) = placement_from_proc_cgroup(&content).unwrap();
        assert_eq!(
            clues.container,
            Some((ID.to_string(), ContainerRuntime::Docker))
        );
        assert_eq!(placement.hierarchy, "pids");
        assert_eq!(placement.path, format!("/docker/{ID}"));
    }

    #[test]
    fn paths_may_hold_colons() {
        let content = format!("3:memory:/odd:name/docker/{ID}\n");
        let (clues, placement) = placement_from_proc_cgroup(&content).unwrap();
        assert_eq!(clues.container.unwrap().0, ID);
        assert_eq!(placement.path, format!("/odd:name/docker/{ID}"));
    }

    #[test]
    fn malformed_lines_are_skipped_without_panicking() {
        for content in [
            "",
            "\n\n",
            "garbage",
            "::",
            "x:memory:/docker/abc",
            ":memory:/a",
            "4::/a",
            "4:memory:relative",
            "0::/only-unified",
            "4:memory",
            "\u{0}:\u{0}:\u{0}",
        ] {
            assert_eq!(placement_from_proc_cgroup(content), None, "{content:?}");
        }
        let with_garbage = format!("garbage\n:::\n4:memory:/docker/{ID}\n");
        assert!(placement_from_proc_cgroup(&with_garbage).is_some());
    }

    #[test]
    fn a_missing_process_has_no_placement() {
        let proc_root = tempfile::tempdir().unwrap();
        assert_eq!(placement_of_process(proc_root.path(), 4242), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_content_never_panics(content in "[0-9a-z=,:/\\n-]{0,400}") {
            let _ = placement_from_proc_cgroup(&content);
        }
    }
}
