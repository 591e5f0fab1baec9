//! Agent escape: an agent, or anything it starts, reaching past its container. Each finding
//! names one primitive ([`EscapePrimitive`]):
//!
//! - entering or making namespaces (`nsenter`, `unshare`, the `setns`/`unshare` syscalls),
//!   mounting (`mount` with something to mount, the `mount` syscall), changing root (`chroot`
//!   into another process's root, the `chroot`/`pivot_root` syscalls);
//! - loading a kernel module (`init_module`/`finit_module`, `insmod`/`modprobe`);
//! - `ptrace` attach or seize of a process outside the agent's own process tree;
//! - connecting to a container runtime's socket (Docker, containerd and its shims, CRI-O,
//!   Podman, cri-dockerd, BuildKit, the kubelet's);
//! - opening another pod's service-account token (under the kubelet's pod directories, or
//!   through another process's root in `/proc/PID/root/`);
//! - writing under a host directory mounted into the container (the collector reads the
//!   process's mount table: the kernel crate's `host_mounts`);
//! - asking the Kubernetes API to create pods or to exec, attach or port-forward into one, or
//!   to add an ephemeral container (the request read by [`super::kubernetes_request`]).
//!
//! The kernel reports the syscalls (`collector-ebpf/src/escape.rs`) and the whole Unix socket
//! path; what they mean is decided here, from the observation alone (and the ptrace target's
//! lineage the reconstructor recorded), so a replay raises what the live run raised.
//!
//! Findings go where other findings go: into the incident of the agent's open chain when a
//! tainted model turn led there, otherwise into an escape incident of their own (later escape
//! findings of the agent within [`super::engine::CHAIN_WINDOW_NS`] join it). Each adds a line
//! to its incident's `chain.escape`, which the story tells.

use serde::Serialize;

use agentscope_event::escape_syscall::{EscapeSyscall, EscapeSyscallName};

use crate::model::Model;
use crate::reconstruct::http::HttpExchange;

use super::engine::{agent_name, Context, Detector, Occurrence, CHAIN_WINDOW_NS};
use super::finding::{FindingDetail, FindingKind, Severity};
use super::kubernetes_request::{KubernetesRequest, KubernetesVerb, ResourceRequest};
use super::labels;

/// What the agent used to reach past its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapePrimitive {
    /// `nsenter`, `setns`: into another process's namespaces.
    NamespaceEntry,
    /// `unshare`: new namespaces (a user namespace makes the caller root in it).
    NamespaceCreation,
    /// `mount`: something mounted (a host file system, `/proc/1/root` bound elsewhere).
    Mount,
    /// `chroot` into another process's root, any `chroot` or `pivot_root` syscall.
    RootChange,
    /// `init_module`, `finit_module`, `insmod`, `modprobe`.
    KernelModule,
    /// `ptrace` attach or seize of a process outside the agent's tree.
    PtraceOutsideTree,
    /// A connection to a container runtime's API socket.
    RuntimeSocket,
    /// Another pod's service-account token opened.
    ForeignServiceAccountToken,
    /// Pods created, exec/attach/port-forward into a pod, an ephemeral container added.
    KubernetesPodControl,
    /// A file written under a host directory mounted into the container.
    HostPathWrite,
}

impl EscapePrimitive {
    /// What the agent did, when the observation shows it was done.
    pub fn words(self) -> &'static str {
        match self {
            EscapePrimitive::NamespaceEntry => "entered other namespaces",
            EscapePrimitive::NamespaceCreation => "made new namespaces",
            EscapePrimitive::Mount => "mounted a file system",
            EscapePrimitive::RootChange => "changed its root",
            EscapePrimitive::KernelModule => "loaded a kernel module",
            EscapePrimitive::PtraceOutsideTree => "attached to a process outside its tree",
            EscapePrimitive::RuntimeSocket => "connected to a container runtime socket",
            EscapePrimitive::ForeignServiceAccountToken => {
                "read another pod's service-account token"
            }
            EscapePrimitive::KubernetesPodControl => "asked the Kubernetes API for a pod",
            EscapePrimitive::HostPathWrite => "wrote under a host path",
        }
    }

    /// The act itself, for an attempt whose outcome is refused or not known.
    pub fn verb(self) -> &'static str {
        match self {
            EscapePrimitive::NamespaceEntry => "enter other namespaces",
            EscapePrimitive::NamespaceCreation => "make new namespaces",
            EscapePrimitive::Mount => "mount a file system",
            EscapePrimitive::RootChange => "change its root",
            EscapePrimitive::KernelModule => "load a kernel module",
            EscapePrimitive::PtraceOutsideTree => "attach to a process outside its tree",
            EscapePrimitive::RuntimeSocket => "connect to a container runtime socket",
            EscapePrimitive::ForeignServiceAccountToken => {
                "read another pod's service-account token"
            }
            EscapePrimitive::KubernetesPodControl => "ask the Kubernetes API for a pod",
            EscapePrimitive::HostPathWrite => "write under a host path",
        }
    }
}

/// What one observation shows, if it is an escape: the primitive and what it was aimed at.
struct Sighting {
    primitive: EscapePrimitive,
    /// The command, syscall, socket, file or API request, for people.
    target: String,
    /// The syscall's result, when the primitive is a syscall (`-EPERM`: refused).
    result: Option<i64>,
    /// Seen as a command run (`insmod`, `nsenter`, `mount`…): the exec tells what was asked,
    /// not whether it succeeded, so the finding says the command ran, not that it was done.
    from_command: bool,
}

impl Sighting {
    /// The finding's line: done, refused (a syscall's negative result), or asked by a command.
    fn line(&self) -> String {
        let refused = self.result.is_some_and(|r| r < 0);
        if refused {
            format!(
                "tried to {}: {} (refused)",
                self.primitive.verb(),
                self.target
            )
        } else if self.from_command {
            format!(
                "ran a command to {}: {}",
                self.primitive.verb(),
                self.target
            )
        } else {
            format!("{}: {}", self.primitive.words(), self.target)
        }
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `/proc/N/root` or below it, for a numeric `N` (another process's root directory).
fn in_process_root(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/proc/") else {
        return false;
    };
    let mut parts = rest.splitn(3, '/');
    let pid = parts.next().unwrap_or_default();
    !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && parts.next() == Some("root")
}

/// An exec that is an escape primitive, judged by the program's name and its arguments.
fn exec_sighting(filename: &str, argv: &[String]) -> Option<Sighting> {
    let program = argv
        .first()
        .map(|a| base_name(a))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| base_name(filename));
    let args = argv.get(1..).unwrap_or_default();
    let primitive = match program {
        "nsenter" => EscapePrimitive::NamespaceEntry,
        "unshare" => EscapePrimitive::NamespaceCreation,
        // Only into another process's root: chroot into a build tree is ordinary.
        "chroot" if args.iter().any(|a| in_process_root(a)) => EscapePrimitive::RootChange,
        "mount" if mount_mounts(args) => EscapePrimitive::Mount,
        "insmod" if insmod_loads(args) => EscapePrimitive::KernelModule,
        "modprobe" if modprobe_loads(args) => EscapePrimitive::KernelModule,
        _ => return None,
    };
    Some(Sighting {
        primitive,
        target: argv.join(" "),
        result: None,
        from_command: true,
    })
}

/// Whether `mount ARGS` mounts something: a device or directory given, `-a`, a bind or a move.
/// `mount` alone, `mount -l` and `mount -t TYPE` list the mounts.
fn mount_mounts(args: &[String]) -> bool {
    let mut positional = 0;
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        match arg.as_str() {
            "-a" | "--all" | "-B" | "--bind" | "-R" | "--rbind" | "-M" | "--move" => return true,
            "-t" | "--types" | "-o" | "--options" | "-O" | "--test-opts" | "-L" | "--label"
            | "-U" | "--uuid" | "-N" | "--namespace" => skip_value = true,
            a if a.starts_with('-') => {}
            _ => positional += 1,
        }
    }
    positional > 0
}

/// Whether `insmod ARGS` loads a module: it names a file. `insmod` alone, `--help` and
/// `--version` only print.
fn insmod_loads(args: &[String]) -> bool {
    let mut options_end = false;
    for arg in args {
        match arg.as_str() {
            "--" if !options_end => options_end = true,
            "-h" | "--help" | "-V" | "--version" if !options_end => return false,
            a if a.starts_with('-') && !options_end => {}
            _ => return true,
        }
    }
    false
}

/// kmod's `modprobe` options that make it do something other than load: remove, dry run,
/// show configuration, dependencies or versions, resolve an alias, print help or version.
const MODPROBE_LONG_NOT_LOADING: &[&str] = &[
    "--remove",
    "--remove-dependencies",
    "--dry-run",
    "--show",
    "--showconfig",
    "--show-config",
    "--show-depends",
    "--show-modversions",
    "--show-exports",
    "--dump-modversions",
    "--resolve-alias",
    "--version",
    "--help",
];
/// The short forms of [`MODPROBE_LONG_NOT_LOADING`].
const MODPROBE_SHORT_NOT_LOADING: &[char] = &['r', 'n', 'c', 'D', 'R', 'V', 'h'];
/// Short options of `modprobe` that take a value (the rest of the word, or the next word).
const MODPROBE_SHORT_WITH_VALUE: &[char] = &['C', 'd', 'S'];
/// Long options of `modprobe` that take a value (`--config=F` or `--config F`).
const MODPROBE_LONG_WITH_VALUE: &[&str] = &["--config", "--dirname", "--set-version"];

/// Whether `modprobe ARGS` loads a module: it names one, and no option turns it into a
/// removal, a dry run or a listing. Short options may be bundled (`-nv`, `-rq`), and `-C`,
/// `-d`, `-S` take a value, so reading each word whole would both miss `-nv`'s dry run and
/// take `-C /etc/x` for a module name.
fn modprobe_loads(args: &[String]) -> bool {
    let mut names_a_module = false;
    let mut options_end = false;
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        if options_end || !arg.starts_with('-') || arg == "-" {
            names_a_module = true;
            continue;
        }
        if arg == "--" {
            options_end = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let name = format!("--{}", long.split('=').next().unwrap_or_default());
            if MODPROBE_LONG_NOT_LOADING.contains(&name.as_str()) {
                return false;
            }
            skip_value = MODPROBE_LONG_WITH_VALUE.contains(&name.as_str()) && !long.contains('=');
            continue;
        }
        let flags: Vec<char> = arg.chars().skip(1).collect();
        for (i, flag) in flags.iter().enumerate() {
            if MODPROBE_SHORT_NOT_LOADING.contains(flag) {
                return false;
            }
            if MODPROBE_SHORT_WITH_VALUE.contains(flag) {
                skip_value = i + 1 == flags.len();
                break;
            }
        }
    }
    names_a_module
}

/// A syscall record that is an escape primitive. `outside_tree` says, for ptrace, whether the
/// target is outside the agent's tree.
fn syscall_sighting(call: &EscapeSyscall, outside_tree: bool) -> Option<Sighting> {
    let primitive = match call.syscall {
        EscapeSyscallName::Setns => EscapePrimitive::NamespaceEntry,
        EscapeSyscallName::Unshare => EscapePrimitive::NamespaceCreation,
        EscapeSyscallName::Mount => EscapePrimitive::Mount,
        EscapeSyscallName::Chroot | EscapeSyscallName::PivotRoot => EscapePrimitive::RootChange,
        EscapeSyscallName::InitModule | EscapeSyscallName::FinitModule => {
            EscapePrimitive::KernelModule
        }
        EscapeSyscallName::Ptrace if outside_tree => EscapePrimitive::PtraceOutsideTree,
        EscapeSyscallName::Ptrace | EscapeSyscallName::Unknown => return None,
    };
    Some(Sighting {
        primitive,
        target: call.describe(),
        result: Some(call.ret),
        from_command: false,
    })
}

/// File names of container runtimes' API sockets (Docker, containerd, CRI-O, Podman,
/// cri-dockerd, the old dockershim, BuildKit) and the kubelet's own (pod resources, device
/// plugins).
const RUNTIME_SOCKETS: [&str; 8] = [
    "docker.sock",
    "containerd.sock",
    "crio.sock",
    "podman.sock",
    "cri-dockerd.sock",
    "dockershim.sock",
    "buildkitd.sock",
    "kubelet.sock",
];

/// Whether a Unix socket name (a path, or `@name` for an abstract one) is a container
/// runtime's API: one of [`RUNTIME_SOCKETS`] by file name, or a containerd shim's abstract
/// socket (`@/containerd-shim/…`, the one CVE-2020-15257 reached from host-network pods).
pub fn is_runtime_socket(name: &str) -> bool {
    if name.starts_with("@/containerd-shim/") {
        return true;
    }
    if name.starts_with('@') {
        return false;
    }
    let file = base_name(name);
    RUNTIME_SOCKETS.contains(&file)
        || (file.starts_with("containerd-shim") && file.ends_with(".sock"))
}

/// Whether `path` is a service-account token that is not the opening process's own: its own
/// is under `/var/run/secrets/` (`/run/secrets/`); another pod's is reached through the
/// kubelet's pod directories or through another process's root.
pub fn is_foreign_token(path: &str, own_pid: u32) -> bool {
    let file = base_name(path);
    if file != "token" {
        return false;
    }
    let kubelet_volume = path.contains("/var/lib/kubelet/pods/")
        && (path.contains("kubernetes.io~projected") || path.contains("kubernetes.io~secret"));
    let through_root = in_process_root(path)
        && path.contains("/secrets/kubernetes.io/serviceaccount/")
        && !path.starts_with(&format!("/proc/{own_pid}/"));
    kubelet_volume || through_root
}

/// Whether a Kubernetes API request makes a pod or gets into one: pods created, exec,
/// attach or port-forward (whatever the method: upgraded GETs or POSTs), an ephemeral
/// container added.
pub fn controls_pods(request: &ResourceRequest) -> bool {
    if !request.group.is_empty() || request.resource != "pods" {
        return false;
    }
    match request.subresource.as_deref() {
        None => request.verb == KubernetesVerb::Create,
        Some("exec" | "attach" | "portforward") => true,
        Some("ephemeralcontainers") => request.verb.writes(),
        Some(_) => false,
    }
}

fn http_sighting(exchange: &HttpExchange) -> Option<Sighting> {
    let request = KubernetesRequest::of_exchange(exchange)?;
    controls_pods(request.resource()?).then(|| Sighting {
        primitive: EscapePrimitive::KubernetesPodControl,
        target: request.to_string(),
        result: exchange.response.as_ref().map(|r| i64::from(r.status)),
        from_command: false,
    })
}

impl Detector {
    /// Looks at one observation of an agent for an escape primitive.
    pub(super) fn agent_escape(&mut self, context: &Context<'_>, model: &Model) {
        use crate::reconstruct::ObservationKind;
        let observation = context.observation;
        let sighting = match &observation.kind {
            ObservationKind::Exec { filename, argv } => exec_sighting(filename, argv),
            ObservationKind::EscapeSyscall {
                call,
                target_lineage,
            } => {
                // In the agent's tree when the agent's outermost process (its session) is the
                // target or an ancestor of it.
                let outside = match context.session {
                    Some(session) => !target_lineage.contains(&session),
                    None => true,
                };
                syscall_sighting(call, outside)
            }
            ObservationKind::Connect { peer, .. }
                if peer.port == 0 && is_runtime_socket(&peer.addr) =>
            {
                Some(Sighting {
                    primitive: EscapePrimitive::RuntimeSocket,
                    target: peer.addr.clone(),
                    result: None,
                    from_command: false,
                })
            }
            ObservationKind::FileOpen { path, .. }
                if is_foreign_token(path, observation.actor.pid) =>
            {
                Some(Sighting {
                    primitive: EscapePrimitive::ForeignServiceAccountToken,
                    target: path.clone(),
                    result: None,
                    from_command: false,
                })
            }
            ObservationKind::Http { exchange, .. } => http_sighting(exchange),
            ObservationKind::HostPathWrite {
                path,
                mount_point,
                host_path,
            } => Some(Sighting {
                primitive: EscapePrimitive::HostPathWrite,
                target: format!("{path} (host {host_path}, mounted on {mount_point})"),
                result: None,
                from_command: false,
            }),
            _ => None,
        };
        if let Some(sighting) = sighting {
            self.escape_finding(context, sighting, model);
        }
    }

    fn escape_finding(&mut self, context: &Context<'_>, sighting: Sighting, model: &Model) {
        let agent = context.agent;
        let observation = context.observation;
        // A command and the syscalls it then makes are one attempt (`nsenter` and its
        // `setns`): one finding per primitive and process. Sockets, tokens and API requests
        // are one finding per target.
        let per_process = matches!(
            observation.kind,
            crate::reconstruct::ObservationKind::Exec { .. }
                | crate::reconstruct::ObservationKind::EscapeSyscall { .. }
        );
        let key = (
            FindingKind::AgentEscape,
            if per_process {
                format!("{:?}/pid {}", sighting.primitive, observation.actor.pid)
            } else {
                format!("{:?}/{}", sighting.primitive, sighting.target)
            },
        );
        if self.watch(agent).reported.contains_key(&key) {
            return;
        }
        let line = sighting.line();
        let summary = format!("{} {line}", agent_name(model, agent));
        let mut labels = match sighting.primitive {
            EscapePrimitive::ForeignServiceAccountToken | EscapePrimitive::KubernetesPodControl => {
                vec![
                    labels::ASI03_IDENTITY_AND_PRIVILEGE_ABUSE,
                    labels::LLM06_EXCESSIVE_AGENCY,
                    labels::ATLAS_AI_AGENT_TOOL_INVOCATION,
                ]
            }
            _ => vec![
                labels::ASI05_UNEXPECTED_CODE_EXECUTION,
                labels::LLM06_EXCESSIVE_AGENCY,
                labels::ATLAS_AI_AGENT_TOOL_INVOCATION,
            ],
        };
        labels.sort();
        let Some(index) = self
            .book
            .push_finding(Occurrence::from(observation).finding(
                FindingKind::AgentEscape,
                agent,
                Severity::High,
                summary,
                labels,
                FindingDetail::AgentEscape {
                    primitive: sighting.primitive,
                    target: sighting.target,
                    result: sighting.result,
                    command: observation.actor.comm.to_string(),
                },
            ))
        else {
            return;
        };
        self.watch(agent).reported.insert(key, index);
        let ts = observation.ts_ns;
        let incident = match self.open_chain(agent, ts) {
            Some(incident) => {
                self.book.join(incident, index);
                incident
            }
            None => match self.watch(agent).escape_incident {
                Some((incident, until)) if ts <= until => {
                    self.book.join(incident, index);
                    incident
                }
                _ => self.open_incident(agent, index, ts, format!("agent escape ({line})"), model),
            },
        };
        self.watch(agent).escape_incident = Some((incident, ts.saturating_add(CHAIN_WINDOW_NS)));
        self.book.add_escape(incident, line);
        self.retell(incident, model);
    }
}

/// A syscall record on fd 3 for tests; a ptrace of `target` seizes it.
#[cfg(test)]
pub(crate) fn test_syscall(
    syscall: agentscope_event::escape_syscall::EscapeSyscallName,
    ret: i64,
    target: Option<u32>,
) -> agentscope_event::escape_syscall::EscapeSyscall {
    agentscope_event::escape_syscall::EscapeSyscall {
        syscall,
        ret,
        namespaces: vec![],
        path: None,
        path2: None,
        fstype: None,
        flags: 0,
        fd: Some(3),
        target_pid: target,
        request: target.map(|_| "seize".to_string()),
        path_truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_string).collect()
    }

    /// An exec shows what was asked, a syscall's result whether it was done: the line says
    /// which, so a refused or merely attempted load never reads as a loaded module.
    #[test]
    fn the_line_says_whether_it_was_done_refused_or_only_asked_for() {
        use agentscope_event::escape_syscall::EscapeSyscallName;
        let command = exec_sighting("/usr/sbin/insmod", &argv("insmod /tmp/x.ko")).unwrap();
        assert_eq!(
            command.line(),
            "ran a command to load a kernel module: insmod /tmp/x.ko"
        );
        let syscall = |ret: i64| {
            syscall_sighting(
                &test_syscall(EscapeSyscallName::FinitModule, ret, None),
                false,
            )
            .unwrap()
        };
        assert_eq!(
            syscall(0).line(),
            "loaded a kernel module: finit_module(fd 3) = 0"
        );
        assert_eq!(
            syscall(-1).line(),
            "tried to load a kernel module: finit_module(fd 3) = -EPERM (refused)"
        );
    }

    #[test]
    fn mount_listing_is_not_mounting() {
        for listing in ["mount", "mount -l", "mount -t proc", "mount -l -t ext4"] {
            assert!(
                exec_sighting("/usr/bin/mount", &argv(listing)).is_none(),
                "{listing}"
            );
        }
        for mounting in [
            "mount -t tmpfs none /mnt",
            "mount --bind /proc/1/root /mnt",
            "mount /dev/vda1 /mnt",
            "mount -a",
        ] {
            let s = exec_sighting("/usr/bin/mount", &argv(mounting)).expect(mounting);
            assert_eq!(s.primitive, EscapePrimitive::Mount);
        }
    }

    #[test]
    fn module_loading_is_told_from_listing_removal_and_dry_runs() {
        for loads in [
            "insmod /tmp/rootkit.ko",
            "insmod -f ./x.ko param=1",
            "modprobe rootkit",
            "modprobe -v rootkit",
            "modprobe -a one two",
            "modprobe -C /etc/other.conf rootkit",
            "modprobe -C/etc/other.conf rootkit",
            "modprobe --config /etc/other.conf rootkit",
            "modprobe --config=/etc/other.conf -q rootkit",
            "modprobe -S 6.18.0 rootkit",
            "modprobe -- -oddly-named",
        ] {
            let sighting = exec_sighting("/usr/sbin/x", &argv(loads));
            assert_eq!(
                sighting.map(|s| s.primitive),
                Some(EscapePrimitive::KernelModule),
                "{loads}"
            );
        }
        for not_loading in [
            "insmod",
            "insmod --help",
            "insmod -V",
            "modprobe",
            "modprobe -r rootkit",
            "modprobe --remove rootkit",
            "modprobe -n rootkit",
            "modprobe -nv rootkit",
            "modprobe -vn rootkit",
            "modprobe --dry-run rootkit",
            "modprobe --show rootkit",
            "modprobe -c",
            "modprobe --showconfig",
            "modprobe -D rootkit",
            "modprobe --show-depends rootkit",
            "modprobe -R rootkit",
            "modprobe --version",
            "modprobe -C /etc/x.conf",
            "modprobe --config /etc/x.conf",
            "lsmod",
        ] {
            assert!(
                exec_sighting("/usr/sbin/x", &argv(not_loading)).is_none(),
                "{not_loading}"
            );
        }
    }

    #[test]
    fn chroot_counts_only_into_another_process_root() {
        assert!(exec_sighting("/usr/sbin/chroot", &argv("chroot /srv/build true")).is_none());
        let s = exec_sighting("/usr/sbin/chroot", &argv("chroot /proc/1/root sh")).unwrap();
        assert_eq!(s.primitive, EscapePrimitive::RootChange);
        assert!(exec_sighting("/usr/bin/nsenter", &argv("nsenter -t 1 -m sh")).is_some());
        assert!(!in_process_root("/proc/self/root"));
    }

    #[test]
    fn runtime_sockets_by_name() {
        for name in [
            "/var/run/docker.sock",
            "/run/containerd/containerd.sock",
            "/var/run/crio/crio.sock",
            "/run/podman/podman.sock",
            "/run/user/1000/podman/podman.sock",
            "@/containerd-shim/k8s.io/abc/shim.sock",
            "/var/lib/kubelet/pod-resources/kubelet.sock",
        ] {
            assert!(is_runtime_socket(name), "{name}");
        }
        for name in [
            "/run/agentscope/a/rather/long/path/to/metrics.sock",
            "@agentscope/benign",
            "/tmp/docker.sock.bak",
        ] {
            assert!(!is_runtime_socket(name), "{name}");
        }
    }

    #[test]
    fn pods_created_or_entered_and_not_read() {
        let controls = |method: &str, target: &str| {
            controls_pods(
                KubernetesRequest::classify(method, target)
                    .resource()
                    .unwrap(),
            )
        };
        assert!(controls("POST", "/api/v1/namespaces/shop/pods"));
        assert!(controls(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0/exec?command=sh"
        ));
        assert!(controls(
            "POST",
            "/api/v1/namespaces/shop/pods/web-0/attach"
        ));
        assert!(controls(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers"
        ));
        assert!(!controls("GET", "/api/v1/namespaces/shop/pods"));
        assert!(!controls("GET", "/api/v1/namespaces/shop/pods/web-0/log"));
        assert!(!controls(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers"
        ));
        assert!(!controls("DELETE", "/api/v1/namespaces/shop/pods/web-0"));
        assert!(!controls(
            "POST",
            "/apis/apps/v1/namespaces/shop/deployments"
        ));
    }

    #[test]
    fn own_token_is_not_foreign() {
        let own = "/var/run/secrets/kubernetes.io/serviceaccount/token";
        assert!(!is_foreign_token(own, 10));
        assert!(!is_foreign_token(
            "/run/secrets/kubernetes.io/serviceaccount/token",
            10
        ));
        assert!(is_foreign_token(
            "/proc/4242/root/run/secrets/kubernetes.io/serviceaccount/token",
            10
        ));
        assert!(!is_foreign_token(
            "/proc/10/root/run/secrets/kubernetes.io/serviceaccount/token",
            10
        ));
        assert!(is_foreign_token(
            "/var/lib/kubelet/pods/0b6b7c1e/volumes/kubernetes.io~projected/kube-api-access-x/token",
            10
        ));
        assert!(!is_foreign_token(
            "/var/lib/kubelet/pods/0b6b7c1e/etc-hosts",
            10
        ));
    }
}
