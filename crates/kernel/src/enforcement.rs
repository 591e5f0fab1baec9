//! Enforcement in the kernel (issue 17), from userspace: which agents are governed (a cgroup v2
//! id, or a process tree), their modes and what their network and exec policies allow, written
//! into the maps of `collector-ebpf/src/enforce.rs` and `enforce_exec.rs`, that module's
//! socket-address programs attached once at the cgroup v2 root and the exec program at
//! `sched_process_exec` when an agent's exec mode is on (files: `crate::enforcement_files`,
//! whose open-exit programs are attached here too).
//! Nothing is attached unless an agent is governed, so a collector
//! that enforces nothing costs no socket anything.
//!
//! The links are taken from their programs so that `enforcement_pins` can pin them (with the
//! maps) and enforcement outlives the collector; `task_newtask` and `sched_process_exit`
//! programs of their own (`collector-ebpf/src/enforce_tree.rs`) keep the process trees current
//! meanwhile.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agentscope_common::{enforce, AgentPolicy, ExecAllowKey, NetAllowKey, PATH_LEN};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::HashMap as BpfHashMap;
use aya::programs::links::FdLink;
use aya::programs::{CgroupAttachMode, CgroupSockAddr, TracePoint};

use crate::error::CollectorError;
use crate::kernel::KernelCapture;
use crate::procfs;

/// The exec program (`collector-ebpf/src/enforce_exec.rs`), attached only when an agent's exec
/// mode is not off.
pub(crate) const EXEC_PROGRAM: &str = "enforce_sched_process_exec";

/// The tracepoint programs attached whenever anything is governed: those that keep process
/// trees current (`collector-ebpf/src/enforce_tree.rs`) and those that read DNS answers
/// (`enforce_dns.rs`). (program, tracepoint category, tracepoint).
const TRACEPOINT_PROGRAMS: [(&str, &str, &str); 4] = [
    ("enforce_task_newtask", "task", "task_newtask"),
    ("enforce_sched_process_exit", "sched", "sched_process_exit"),
    (
        "enforce_dns_recvfrom_enter",
        "syscalls",
        "sys_enter_recvfrom",
    ),
    ("enforce_dns_recvfrom_exit", "syscalls", "sys_exit_recvfrom"),
];

/// The socket-address programs, each attached at the cgroup v2 root.
const PROGRAMS: [&str; 4] = [
    "enforce_connect4",
    "enforce_connect6",
    "enforce_sendmsg4",
    "enforce_sendmsg6",
];

/// Who a governed agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentScope {
    /// Every process in this cgroup v2 (a container), by the cgroup's id (its directory's
    /// inode number).
    Cgroup(u64),
    /// This process and every descendant, present and future.
    ProcessTree(u32),
}

/// A category's mode, as the kernel reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Off,
    Audit,
    Enforce,
}

impl Mode {
    fn raw(self) -> u32 {
        match self {
            Mode::Off => enforce::MODE_OFF,
            Mode::Audit => enforce::MODE_AUDIT,
            Mode::Enforce => enforce::MODE_ENFORCE,
        }
    }
}

/// Transport of a network rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }
}

/// One destination a governed agent may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    pub protocol: Protocol,
    pub addr: IpAddr,
    /// Prefix length of `addr` (32 or 128 for one address).
    pub prefix: u8,
    /// 0: any port.
    pub port: u16,
}

impl NetRule {
    /// The LPM trie key: IPv4 mapped into IPv6 (the kernel looks IPv4 and IPv4-mapped IPv6
    /// destinations up that way), the prefix counted over the whole key.
    pub fn key(&self, agent: u32) -> Key<NetAllowKey> {
        let (addr, prefix) = match self.addr {
            IpAddr::V4(v4) => (
                v4.to_ipv6_mapped().octets(),
                96 + self.prefix.min(32) as u32,
            ),
            IpAddr::V6(v6) => (v6.octets(), self.prefix.min(128) as u32),
        };
        Key::new(
            enforce::NET_KEY_FIXED_BITS + prefix,
            NetAllowKey {
                agent,
                port: self.port,
                protocol: self.protocol.number(),
                _pad: 0,
                addr,
            },
        )
    }
}

/// One agent under enforcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernedAgent {
    /// The number the kernel's events carry (`EnforceEvent::agent`); unique per collector.
    pub id: u32,
    /// The baseline's agent key (named in the events its policy causes).
    pub baseline: String,
    pub scope: AgentScope,
    pub network: Mode,
    pub exec: Mode,
    pub files: Mode,
    /// The baseline revision the policy came from.
    pub revision: u32,
    pub net_rules: Vec<NetRule>,
    /// Executables the agent may run, as an exec names them.
    pub executables: Vec<String>,
    /// Those of `executables` that are interpreters, with their inline-code option letter
    /// (`b'c'` for `sh -c`): allowed only with inline code or a script of `scripts`.
    pub interpreters: Vec<(String, u8)>,
    /// Scripts an interpreter may be given, as its argument names them.
    pub scripts: Vec<String>,
    /// Sensitive files the agent may not open (its files mode decides what happens);
    /// a kernel event names one by its index here.
    pub governed_files: Vec<crate::enforcement_files::GovernedFile>,
    /// DNS names whose answers (to this agent) it may reach (crate::enforcement_dns).
    pub names: Vec<String>,
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a unified host,
/// `/sys/fs/cgroup/unified` in hybrid mode), from `/proc/self/mountinfo`.
pub fn cgroup2_root(proc_root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(proc_root.join("self/mountinfo")).ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        if fstype != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

/// The id of a cgroup v2 directory (what `bpf_get_current_cgroup_id` returns for its tasks).
pub fn cgroup_id(dir: &Path) -> Result<u64, CollectorError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)
        .map_err(|e| CollectorError::Enforcement(format!("cgroup {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(CollectorError::Enforcement(format!(
            "cgroup {}: not a directory",
            dir.display()
        )));
    }
    Ok(meta.ino())
}

impl KernelCapture {
    /// Writes the governed agents into the kernel's maps and attaches the socket-address
    /// programs at the cgroup v2 root. Process trees take in the descendants that exist now;
    /// later ones are added by `task_newtask` as they fork.
    pub fn govern(
        &mut self,
        agents: &[GovernedAgent],
        proc_root: &Path,
    ) -> Result<(), CollectorError> {
        if agents.is_empty() {
            return Ok(());
        }
        self.write_policies(agents, proc_root)?;
        self.attach_enforcement(
            agents.iter().any(|agent| agent.exec != Mode::Off),
            agents.iter().any(|agent| agent.files != Mode::Off),
            proc_root,
        )
    }

    /// Writes the agents' policies, allow-lists, labels and scopes into the maps.
    pub(crate) fn write_policies(
        &mut self,
        agents: &[GovernedAgent],
        proc_root: &Path,
    ) -> Result<(), CollectorError> {
        let map_error = |name: &str, e: &dyn std::fmt::Display| {
            CollectorError::Enforcement(format!("map {name}: {e}"))
        };
        {
            let mut policies: BpfHashMap<_, u32, AgentPolicy> = BpfHashMap::try_from(
                self.ebpf_mut()
                    .map_mut("AGENT_POLICIES")
                    .ok_or_else(|| map_error("AGENT_POLICIES", &"missing"))?,
            )
            .map_err(|e| map_error("AGENT_POLICIES", &e))?;
            for agent in agents {
                let policy = AgentPolicy {
                    network: agent.network.raw(),
                    exec: agent.exec.raw(),
                    files: agent.files.raw(),
                    revision: agent.revision,
                };
                policies
                    .insert(agent.id, policy, 0)
                    .map_err(|e| map_error("AGENT_POLICIES", &e))?;
            }
        }
        {
            let mut allow: LpmTrie<_, NetAllowKey, u8> = LpmTrie::try_from(
                self.ebpf_mut()
                    .map_mut("NET_ALLOW")
                    .ok_or_else(|| map_error("NET_ALLOW", &"missing"))?,
            )
            .map_err(|e| map_error("NET_ALLOW", &e))?;
            for agent in agents {
                for rule in &agent.net_rules {
                    allow
                        .insert(&rule.key(agent.id), 1, 0)
                        .map_err(|e| map_error("NET_ALLOW", &e))?;
                }
            }
        }
        {
            let mut cgroups: BpfHashMap<_, u64, u32> = BpfHashMap::try_from(
                self.ebpf_mut()
                    .map_mut("GOVERNED_CGROUPS")
                    .ok_or_else(|| map_error("GOVERNED_CGROUPS", &"missing"))?,
            )
            .map_err(|e| map_error("GOVERNED_CGROUPS", &e))?;
            for agent in agents {
                if let AgentScope::Cgroup(id) = agent.scope {
                    cgroups
                        .insert(id, agent.id, 0)
                        .map_err(|e| map_error("GOVERNED_CGROUPS", &e))?;
                }
            }
        }
        if agents.iter().any(|agent| agent.exec != Mode::Off) {
            let mut allow: BpfHashMap<_, ExecAllowKey, u32> = BpfHashMap::try_from(
                self.ebpf_mut()
                    .map_mut("EXEC_ALLOW")
                    .ok_or_else(|| map_error("EXEC_ALLOW", &"missing"))?,
            )
            .map_err(|e| map_error("EXEC_ALLOW", &e))?;
            for agent in agents {
                let interpreter = |path: &str| {
                    agent
                        .interpreters
                        .iter()
                        .find(|(p, _)| p == path)
                        .map(|(_, inline)| *inline)
                };
                let entries = agent
                    .executables
                    .iter()
                    .map(|path| match interpreter(path) {
                        Some(inline) => (
                            path,
                            enforce::EXEC_ALLOW_INTERPRETER | (u32::from(inline) << 8),
                        ),
                        None => (path, enforce::EXEC_ALLOW_PROGRAM),
                    })
                    .chain(
                        agent
                            .scripts
                            .iter()
                            .filter(|script| !agent.executables.contains(script))
                            .map(|script| (script, enforce::EXEC_ALLOW_SCRIPT)),
                    );
                for (path, value) in entries {
                    // A longer path than the kernel reads could never match: left out.
                    if path.len() >= PATH_LEN {
                        continue;
                    }
                    let mut key = ExecAllowKey {
                        agent: agent.id,
                        _pad: 0,
                        path: [0; PATH_LEN],
                    };
                    key.path[..path.len()].copy_from_slice(path.as_bytes());
                    allow
                        .insert(key, value, 0)
                        .map_err(|e| map_error("EXEC_ALLOW", &e))?;
                }
            }
        }
        {
            let mut labels: BpfHashMap<_, u32, agentscope_common::AgentLabel> =
                BpfHashMap::try_from(
                    self.ebpf_mut()
                        .map_mut("AGENT_LABELS")
                        .ok_or_else(|| map_error("AGENT_LABELS", &"missing"))?,
                )
                .map_err(|e| map_error("AGENT_LABELS", &e))?;
            for agent in agents {
                labels
                    .insert(agent.id, crate::enforcement_pins::label(agent), 0)
                    .map_err(|e| map_error("AGENT_LABELS", &e))?;
            }
        }
        self.write_dns_names(agents)?;
        self.write_file_rules(agents)?;
        self.govern_process_trees(agents, proc_root)
    }

    /// Attaches the enforcement programs (the exec one when `exec`, the open-exit ones when
    /// `files`) and keeps their links for pinning. The process-tree programs come first, so no
    /// child forked from here on escapes.
    pub fn attach_enforcement(
        &mut self,
        exec: bool,
        files: bool,
        proc_root: &Path,
    ) -> Result<(), CollectorError> {
        for (name, category, tracepoint) in TRACEPOINT_PROGRAMS {
            self.attach_enforcement_tracepoint(name, category, tracepoint)?;
        }
        if exec || files {
            // The exec program reads the new image's arguments, the open-exit programs the
            // opened file's dentry, through BTF offsets in this collector's own
            // `ENFORCE_OFFSETS` (not pinned): written again by a collector adopting pinned
            // enforcement, before its programs replace the pinned ones.
            self.write_enforce_offsets()?;
        }
        if exec {
            self.attach_enforcement_tracepoint(EXEC_PROGRAM, "sched", "sched_process_exec")?;
        }
        if files {
            self.attach_file_programs()?;
        }
        let root = cgroup2_root(proc_root).ok_or_else(|| CollectorError::MissingFeature {
            what: "cgroup v2".into(),
            detail: "no cgroup2 file system in /proc/self/mountinfo".into(),
            fix: "mount the unified hierarchy (cgroup2), e.g. at /sys/fs/cgroup/unified",
        })?;
        let dir = std::fs::File::open(&root)
            .map_err(|e| CollectorError::Enforcement(format!("opening {}: {e}", root.display())))?;
        for name in PROGRAMS {
            let program: &mut CgroupSockAddr = crate::kernel::program_mut(self.ebpf_mut(), name)?;
            // Not `load_error`: a refusal here is the policy programs', not a lack of privilege
            // (the tracepoints already loaded), and its verifier log says why.
            program.load().map_err(|e| {
                CollectorError::Enforcement(format!(
                    "loading {name}: {}",
                    crate::kernel::error_chain(&e)
                ))
            })?;
            // A bpf_link (what aya uses where the kernel has cgroup links) always runs beside
            // other programs and takes no attach flags; the older attach needs ALLOW_MULTI
            // not to replace (or be refused by) what others attached at the root.
            let id = program
                .attach(&dir, CgroupAttachMode::AllowMultiple)
                .or_else(|_| program.attach(&dir, CgroupAttachMode::Single))
                .map_err(|e| {
                    CollectorError::Enforcement(format!(
                        "attaching {name} at {}: {}",
                        root.display(),
                        crate::kernel::error_chain(&e)
                    ))
                })?;
            let link = program
                .take_link(id)
                .map_err(|e| CollectorError::Enforcement(format!("{name}'s link: {e}")))?;
            let link = FdLink::try_from(link).map_err(|e| {
                CollectorError::Enforcement(format!(
                    "{name} is attached without a bpf_link, which cannot be pinned: {e}"
                ))
            })?;
            self.enforcement_links.push((name, link));
        }
        Ok(())
    }

    pub(crate) fn attach_enforcement_tracepoint(
        &mut self,
        name: &'static str,
        category: &str,
        tracepoint: &str,
    ) -> Result<(), CollectorError> {
        let program: &mut TracePoint = crate::kernel::program_mut(self.ebpf_mut(), name)?;
        let failed = |what: &str, e: &dyn std::error::Error| {
            CollectorError::Enforcement(format!("{what} {name}: {}", crate::kernel::error_chain(e)))
        };
        program.load().map_err(|e| failed("loading", &e))?;
        let id = program
            .attach(category, tracepoint)
            .map_err(|e| failed("attaching", &e))?;
        let link = program
            .take_link(id)
            .map_err(|e| failed("taking the link of", &e))?;
        let link = FdLink::try_from(link).map_err(|e| failed("a bpf_link for", &e))?;
        self.enforcement_links.push((name, link));
        Ok(())
    }

    /// Seeds `GOVERNED_TGIDS` with each process tree as it is now. The fork tracepoint is
    /// already attached, so a child forked after the listing by a process seeded here is
    /// added by the kernel; one forked between the listing and its parent's seeding is caught
    /// by listing once more afterwards.
    fn govern_process_trees(
        &mut self,
        agents: &[GovernedAgent],
        proc_root: &Path,
    ) -> Result<(), CollectorError> {
        let roots: Vec<(u32, u32)> = agents
            .iter()
            .filter_map(|agent| match agent.scope {
                AgentScope::ProcessTree(pid) => Some((pid, agent.id)),
                AgentScope::Cgroup(_) => None,
            })
            .collect();
        if roots.is_empty() {
            return Ok(());
        }
        let mut tgids: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
            self.ebpf_mut()
                .map_mut("GOVERNED_TGIDS")
                .ok_or_else(|| CollectorError::Enforcement("map GOVERNED_TGIDS missing".into()))?,
        )
        .map_err(|e| CollectorError::Enforcement(format!("map GOVERNED_TGIDS: {e}")))?;
        for _pass in 0..2 {
            let processes = procfs::list_processes(proc_root);
            for &(root, agent) in &roots {
                if !processes.iter().any(|p| p.pid == root) {
                    return Err(CollectorError::NoSuchProcess(root));
                }
                let tree = procfs::with_descendants(&processes, &[root]);
                // Governing a tree the collector is in (pid 1, a shell that started it) would
                // govern the collector and everything else started from there.
                if tree.contains(&std::process::id()) {
                    return Err(CollectorError::Enforcement(format!(
                        "process {root} is an ancestor of the collector: governing its tree \
                         would govern the collector and every process started beside it; \
                         name the agent's own process"
                    )));
                }
                for pid in tree {
                    tgids.insert(pid, agent, 0).map_err(|e| {
                        CollectorError::Enforcement(format!("map GOVERNED_TGIDS: {e}"))
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_rules_are_keyed_ipv4_mapped_with_the_fixed_bits_counted() {
        let rule = NetRule {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            prefix: 32,
            port: 8080,
        };
        let key = rule.key(7);
        assert_eq!(key.prefix_len(), 64 + 128);
        let data = key.data();
        assert_eq!((data.agent, data.port, data.protocol), (7, 8080, 6));
        assert_eq!(
            data.addr,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
        );
        let net = NetRule {
            protocol: Protocol::Udp,
            addr: "10.1.0.0".parse().unwrap(),
            prefix: 16,
            port: 0,
        };
        assert_eq!(net.key(1).prefix_len(), 64 + 96 + 16);
        let v6 = NetRule {
            protocol: Protocol::Tcp,
            addr: "::1".parse().unwrap(),
            prefix: 128,
            port: 443,
        };
        assert_eq!(v6.key(1).prefix_len(), 64 + 128);
        assert_eq!(v6.key(1).data().addr[15], 1);
    }

    #[test]
    fn finds_the_cgroup2_mount() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        std::fs::write(
            dir.path().join("self/mountinfo"),
            "25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
             26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        assert_eq!(
            cgroup2_root(dir.path()),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }
}
