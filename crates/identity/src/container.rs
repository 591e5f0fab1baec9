//! Reading container and pod identity out of a cgroup path.
//!
//! Container runtimes and the kubelet name cgroups after what they hold, so a path alone tells
//! the container id, the runtime (when its name carries a prefix) and the pod UID:
//!
//! | layout | example segment |
//! | --- | --- |
//! | containerd, systemd driver | `cri-containerd-<64 hex>.scope` |
//! | CRI-O, systemd driver | `crio-<64 hex>.scope` |
//! | Docker, systemd driver | `docker-<64 hex>.scope` |
//! | Podman | `libpod-<64 hex>.scope` (or `/libpod_parent/libpod-<id>`) |
//! | Docker, cgroupfs driver | `/docker/<64 hex>` |
//! | kubelet, cgroupfs driver | `/kubepods/burstable/pod<uid>/<64 hex>` |
//! | kubelet, systemd driver | `kubepods-burstable-pod<uid with _ for ->.slice` |
//!
//! Nested layouts (a kind node is a Docker container holding a kubelet) hold several matches;
//! the innermost one is the process's own, so the last match wins. Monitor processes
//! (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) are not containers.

use serde::Serialize;

/// Which container runtime created a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRuntime {
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    Docker,
    Podman,
    /// The cgroup name carries no runtime prefix (kubelet's cgroupfs driver).
    Unknown,
}

impl ContainerRuntime {
    /// The runtime named by a Kubernetes `containerID` scheme (`containerd://<id>`).
    pub fn from_scheme(scheme: &str) -> ContainerRuntime {
        match scheme {
            "containerd" => ContainerRuntime::Containerd,
            "cri-o" => ContainerRuntime::CriO,
            "docker" => ContainerRuntime::Docker,
            "podman" => ContainerRuntime::Podman,
            _ => ContainerRuntime::Unknown,
        }
    }
}

/// What a cgroup path says about the process inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupClues {
    /// Container id and runtime, if the path names a container.
    pub container: Option<(String, ContainerRuntime)>,
    /// Pod UID in its canonical dashed form, if the path is under a kubelet pod cgroup.
    pub pod_uid: Option<String>,
}

/// Prefixed scope names, tried in order (`crio-conmon-` must not count as `crio-`).
const PREFIXED: &[(&str, Option<ContainerRuntime>)] = &[
    ("crio-conmon-", None),
    ("libpod-conmon-", None),
    ("cri-containerd-", Some(ContainerRuntime::Containerd)),
    ("crio-", Some(ContainerRuntime::CriO)),
    ("docker-", Some(ContainerRuntime::Docker)),
    ("libpod-", Some(ContainerRuntime::Podman)),
];

/// Runtime ids are 64 hex digits; shorter ones are accepted after a runtime prefix only, where
/// the prefix already says it is a container.
fn is_hex_id(s: &str, min_len: usize) -> bool {
    s.len() >= min_len && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses a cgroup path (as in `/proc/PID/cgroup`, relative to the cgroup2 root).
pub fn parse_cgroup_path(path: &str) -> CgroupClues {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut clues = CgroupClues::default();
    for (index, segment) in segments.iter().enumerate() {
        let parent = index.checked_sub(1).and_then(|i| segments.get(i)).copied();
        match container_in_segment(segment, parent) {
            Segment::Container(id, runtime) => clues.container = Some((id, runtime)),
            // The monitor runs beside the container; nothing outside it is this process's.
            Segment::Monitor => clues.container = None,
            Segment::Other => {}
        }
        if let Some(uid) = pod_uid_in_segment(segment, parent) {
            clues.pod_uid = Some(uid);
            // A container found above the pod belongs to an outer layer (the node's own
            // container), not to this pod.
            clues.container = None;
        }
    }
    clues
}

/// What one path segment says about containers.
enum Segment {
    Container(String, ContainerRuntime),
    /// A runtime's monitor process (conmon), not a container.
    Monitor,
    Other,
}

fn container_in_segment(segment: &str, parent: Option<&str>) -> Segment {
    let stem = segment.strip_suffix(".scope").unwrap_or(segment);
    for (prefix, runtime) in PREFIXED {
        if let Some(id) = stem.strip_prefix(prefix) {
            if !is_hex_id(id, 12) {
                continue;
            }
            return match runtime {
                Some(runtime) => Segment::Container(id.to_ascii_lowercase(), *runtime),
                None => Segment::Monitor,
            };
        }
    }
    if is_hex_id(segment, 64) {
        let runtime = match parent {
            Some("docker") => ContainerRuntime::Docker,
            Some("libpod_parent") => ContainerRuntime::Podman,
            _ => ContainerRuntime::Unknown,
        };
        return Segment::Container(segment.to_ascii_lowercase(), runtime);
    }
    Segment::Other
}

fn pod_uid_in_segment(segment: &str, parent: Option<&str>) -> Option<String> {
    // systemd driver: `kubepods-pod<uid>.slice`, `kubepods-burstable-pod<uid>.slice`, and under
    // kind `kubelet-kubepods-besteffort-pod<uid>.slice`; the UID's dashes became underscores.
    if let Some(stem) = segment.strip_suffix(".slice") {
        if stem.contains("kubepods") {
            let at = stem.rfind("-pod")?;
            let raw = stem.get(at + "-pod".len()..)?;
            return canonical_uid(&raw.replace('_', "-"));
        }
        return None;
    }
    // cgroupfs driver: `/kubepods/pod<uid>` or `/kubepods/<qos>/pod<uid>`.
    let raw = segment.strip_prefix("pod")?;
    let under_kubepods = matches!(parent, Some(p) if p == "kubepods" || p.ends_with("kubepods")
        || p == "burstable" || p == "besteffort");
    if !under_kubepods {
        return None;
    }
    canonical_uid(raw)
}

/// A UID in 8-4-4-4-12 hex form, lowercased; anything else is not a pod UID.
fn canonical_uid(raw: &str) -> Option<String> {
    let groups: Vec<&str> = raw.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8usize, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    shape_ok.then(|| raw.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2a9c1b7d3e4a5b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";
    const UID: &str = "1234abcd-5678-4ef0-9abc-def012345678";

    fn container(path: &str) -> Option<(String, ContainerRuntime)> {
        parse_cgroup_path(path).container
    }

    #[test]
    fn containerd_with_systemd_driver() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        let clues = parse_cgroup_path(&path);
        assert_eq!(
            clues.container,
            Some((ID.to_string(), ContainerRuntime::Containerd))
        );
        assert_eq!(clues.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn guaranteed_pod_sits_directly_under_kubepods() {
        let path = format!(
            "/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope",
            UID.replace('-', "_")
        );
        let clues = parse_cgroup_path(&path);
        assert_eq!(
            clues.container,
            Some((ID.to_string(), ContainerRuntime::CriO))
        );
        assert_eq!(clues.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn crio_container_subgroup_and_conmon() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{ID}.scope/container",
            UID.replace('-', "_")
        );
        assert_eq!(
            container(&path),
            Some((ID.to_string(), ContainerRuntime::CriO))
        );
        let conmon = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-conmon-{ID}.scope",
            UID.replace('-', "_")
        );
        let clues = parse_cgroup_path(&conmon);
        assert_eq!(clues.container, None);
        assert_eq!(clues.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn cgroupfs_driver() {
        let clues = parse_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(
            clues.container,
            Some((ID.to_string(), ContainerRuntime::Unknown))
        );
        assert_eq!(clues.pod_uid.as_deref(), Some(UID));
        let guaranteed = parse_cgroup_path(&format!("/kubepods/pod{UID}/{ID}"));
        assert_eq!(guaranteed.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn docker_both_drivers() {
        assert_eq!(
            container(&format!("/system.slice/docker-{ID}.scope")),
            Some((ID.to_string(), ContainerRuntime::Docker))
        );
        assert_eq!(
            container(&format!("/docker/{ID}")),
            Some((ID.to_string(), ContainerRuntime::Docker))
        );
    }

    #[test]
    fn podman_scopes() {
        assert_eq!(
            container(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            )),
            Some((ID.to_string(), ContainerRuntime::Podman))
        );
        assert_eq!(
            container(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
        assert_eq!(
            container(&format!("/libpod_parent/libpod-{ID}")),
            Some((ID.to_string(), ContainerRuntime::Podman))
        );
    }

    #[test]
    fn kind_node_gives_the_inner_pod_container() {
        let outer = "a".repeat(64);
        let path = format!(
            "/system.slice/docker-{outer}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        let clues = parse_cgroup_path(&path);
        assert_eq!(
            clues.container,
            Some((ID.to_string(), ContainerRuntime::Containerd))
        );
        assert_eq!(clues.pod_uid.as_deref(), Some(UID));
        // The pod's own cgroup (sandbox-less processes) is not the outer node container.
        let pod_only = path.rsplit_once('/').unwrap().0;
        let clues = parse_cgroup_path(pod_only);
        assert_eq!(clues.container, None);
        assert_eq!(clues.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn test_prefixes_before_the_kubepods_tree_do_not_matter() {
        let path = format!(
            "/agentscope-test-1a2b/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        assert_eq!(parse_cgroup_path(&path).pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn host_paths_and_lookalikes_name_nothing() {
        for path in [
            "/",
            "",
            "/user.slice/user-0.slice/session-3.scope",
            "/system.slice/containerd.service",
            "/system.slice/docker.service",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods.slice/kubepods-burstable-podnot-a-uid.slice",
            "/kubepods/burstable/podzz",
            "/other/pod1234abcd-5678-4ef0-9abc-def012345678",
            "/docker/abc",
            "/system.slice/docker-xyz.scope",
            "/cri-containerd-.scope",
            "//////",
            "/kubepods.slice/kubepods-pod.slice",
        ] {
            assert_eq!(parse_cgroup_path(path), CgroupClues::default(), "{path}");
        }
    }

    #[test]
    fn ids_are_lowercased_and_uppercase_hex_accepted() {
        let upper = ID.to_ascii_uppercase();
        assert_eq!(
            container(&format!("/docker/{upper}")),
            Some((ID.to_string(), ContainerRuntime::Docker))
        );
    }

    #[test]
    fn runtime_from_container_id_scheme() {
        assert_eq!(
            ContainerRuntime::from_scheme("containerd"),
            ContainerRuntime::Containerd
        );
        assert_eq!(
            ContainerRuntime::from_scheme("cri-o"),
            ContainerRuntime::CriO
        );
        assert_eq!(
            ContainerRuntime::from_scheme("docker"),
            ContainerRuntime::Docker
        );
        assert_eq!(
            ContainerRuntime::from_scheme("rkt"),
            ContainerRuntime::Unknown
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_paths_never_panic(path in ".{0,300}") {
            let _ = parse_cgroup_path(&path);
        }
    }
}
