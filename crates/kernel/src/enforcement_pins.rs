//! Enforcement that outlives the collector (issue 17): the enforcement maps and the links of
//! the enforcement programs pinned in a bpffs directory (`/sys/fs/bpf/agentscope` by default),
//! so a collector that exits, is restarted or crashes leaves its agents governed; a new
//! collector adopts what is pinned (the same maps; its own programs replace the pinned links,
//! one for one, so the programs never stack and the decisions reach the new collector's ring
//! buffer); `agentscope enforce off` removes it all.
//!
//! When `/sys/fs/bpf` is not a bpffs (some hosts do not mount one), a collector asked to enforce
//! there mounts it, as it mounts tracefs; it stays mounted, since the pins live in it.
//!
//! Layout: `DIR/maps/NAME` (the maps of [`PINNED_MAPS`]) and `DIR/links/PROGRAM`. A collector
//! holds an exclusive `flock` on `DIR` while it runs: the kernel drops it however the process
//! ends (SIGKILL included), so a directory that can be locked has no living owner and may be
//! adopted, and one that cannot is another collector's (left alone, or refused when this one
//! was asked to enforce). Links are replaced by pinning the new one beside the old and renaming
//! it over it: at every instant one of the two is pinned, so a crash during adoption leaves
//! enforcement in place.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use agentscope_common::{
    enforce, enforce_scope, AgentLabel, AgentPolicy, DnsAllowKey, DnsAllowValue, DnsNameKey,
    DnsNameState, ExecAllowKey, FileId, FileInodeRuleKey, FileNameRuleKey, FileRulePath,
    NetAllowKey, AGENT_LABEL_LEN,
};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap as BpfHashMap, Map, MapData, MapInfo};
use aya::programs::links::FdLink;

use crate::enforcement::{AgentScope, GovernedAgent, Mode};
use crate::enforcement_files::{rule_path_text, GovernedFile, FILE_PROGRAMS};
use crate::error::CollectorError;
use crate::kernel::KernelCapture;

/// Where enforcement is pinned unless told otherwise (`--pin-dir`).
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/agentscope";

/// The maps pinned with the enforcement, with the key and value sizes this version expects
/// (a map pinned by a version with other layouts is refused rather than misread).
pub const PINNED_MAPS: [(&str, usize, usize); 11] = [
    ("GOVERNED_CGROUPS", 8, 4),
    ("GOVERNED_TGIDS", 4, 4),
    ("AGENT_POLICIES", 4, std::mem::size_of::<AgentPolicy>()),
    // An LPM trie's key is its prefix length, then the data.
    ("NET_ALLOW", 4 + std::mem::size_of::<NetAllowKey>(), 1),
    ("EXEC_ALLOW", std::mem::size_of::<ExecAllowKey>(), 4),
    ("AGENT_LABELS", 4, std::mem::size_of::<AgentLabel>()),
    (
        "DNS_NAMES",
        std::mem::size_of::<DnsNameKey>(),
        std::mem::size_of::<DnsNameState>(),
    ),
    (
        "DNS_ALLOW",
        std::mem::size_of::<DnsAllowKey>(),
        std::mem::size_of::<DnsAllowValue>(),
    ),
    (
        "FILE_INODE_RULES",
        std::mem::size_of::<FileInodeRuleKey>(),
        4,
    ),
    ("FILE_NAME_RULES", std::mem::size_of::<FileNameRuleKey>(), 4),
    ("FILE_RULE_PATHS", 8, std::mem::size_of::<FileRulePath>()),
];

/// bpffs's `f_type` (`BPF_FS_MAGIC`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A link being pinned before it is renamed over the one it replaces.
const NEW_PREFIX: &str = "new-";

/// Where bpffs is mounted by convention.
const BPFFS_MOUNT: &str = "/sys/fs/bpf";

fn mount_bpffs() -> Result<(), CollectorError> {
    let (source, target) = (c"bpf", c"/sys/fs/bpf");
    // SAFETY: plain mount(2) with static NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(pin_error(format!(
            "mounting bpffs at {BPFFS_MOUNT}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn pin_error(what: impl std::fmt::Display) -> CollectorError {
    CollectorError::Enforcement(what.to_string())
}

/// A pin directory this collector owns while it runs (its lock is held by the open directory).
#[derive(Debug)]
pub struct EnforcementPins {
    dir: PathBuf,
    _lock: File,
    /// Whether the directory held pinned links when it was claimed (enforcement to adopt).
    pub found: bool,
}

/// Is `path` on a bpffs?
fn on_bpffs(path: &Path) -> bool {
    let Ok(text) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: a valid path and an out-parameter of the right type.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(text.as_ptr(), &mut stat) } == 0) && stat.f_type as i64 == BPF_FS_MAGIC
}

/// Opens `dir` and takes its lock; `Ok(None)` when another living process holds it.
fn lock_dir(dir: &Path) -> Result<Option<File>, CollectorError> {
    let file = File::open(dir).map_err(|e| pin_error(format!("opening {}: {e}", dir.display())))?;
    // SAFETY: flock on an fd this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(pin_error(format!("locking {}: {err}", dir.display())))
    }
}

impl EnforcementPins {
    /// Claims `dir` for this collector. `governing`: it was asked to enforce (the directory is
    /// created; one owned by a running collector is an error). Otherwise it adopts what a
    /// collector that has gone left there, and `Ok(None)` means there is nothing to adopt (no
    /// directory, or a running collector's).
    pub fn claim(dir: &Path, governing: bool) -> Result<Option<EnforcementPins>, CollectorError> {
        if !dir.exists() {
            if !governing {
                return Ok(None);
            }
            let parent = dir.parent().unwrap_or(Path::new("/"));
            if !on_bpffs(parent) && parent == Path::new(BPFFS_MOUNT) {
                // Where bpffs belongs (systemd mounts it there at boot; some hosts do not), as
                // the collector mounts tracefs. It stays mounted: the pins live in it.
                mount_bpffs()?;
            }
            if !on_bpffs(parent) {
                return Err(CollectorError::MissingFeature {
                    what: "a BPF file system".into(),
                    detail: format!(
                        "{} is not on a bpffs, so enforcement cannot be pinned there",
                        parent.display()
                    ),
                    fix: "mount one: mount -t bpf bpf /sys/fs/bpf (in a pod: mount the host's /sys/fs/bpf)",
                });
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| pin_error(format!("creating {}: {e}", dir.display())))?;
        }
        for sub in ["maps", "links"] {
            let path = dir.join(sub);
            if !path.exists() {
                std::fs::create_dir(&path)
                    .map_err(|e| pin_error(format!("creating {}: {e}", path.display())))?;
            }
        }
        let Some(lock) = lock_dir(dir)? else {
            if governing {
                return Err(pin_error(format!(
                    "{} is held by a running collector: stop it, or give this one another \
                     --pin-dir (agentscope enforce status --pin-dir {} says who is governed)",
                    dir.display(),
                    dir.display()
                )));
            }
            return Ok(None);
        };
        let pins = EnforcementPins {
            dir: dir.to_path_buf(),
            _lock: lock,
            found: false,
        };
        pins.check_map_layouts()?;
        let found = !pins.pinned_links().is_empty();
        if !found && !governing {
            // An empty directory (enforcement switched off, or a collector that died before
            // pinning anything): nothing to adopt.
            return Ok(None);
        }
        Ok(Some(EnforcementPins { found, ..pins }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where each pinned map is (for `EbpfLoader::map_pin_path`).
    pub fn map_paths(&self) -> Vec<(&'static str, PathBuf)> {
        PINNED_MAPS
            .iter()
            .map(|(name, _, _)| (*name, self.dir.join("maps").join(name)))
            .collect()
    }

    /// The programs whose links are pinned.
    pub fn pinned_links(&self) -> Vec<String> {
        pinned_links(&self.dir)
    }

    fn check_map_layouts(&self) -> Result<(), CollectorError> {
        for (name, key, value) in PINNED_MAPS {
            let path = self.dir.join("maps").join(name);
            if !path.exists() {
                continue;
            }
            let info = MapInfo::from_pin(&path)
                .map_err(|e| pin_error(format!("pinned map {}: {e}", path.display())))?;
            if (info.key_size() as usize, info.value_size() as usize) != (key, value) {
                return Err(pin_error(format!(
                    "pinned map {} has {}-byte keys and {}-byte values, this version {key} and \
                     {value}: it was pinned by another version of agentscope; remove it with \
                     `agentscope enforce off --pin-dir {}`",
                    path.display(),
                    info.key_size(),
                    info.value_size(),
                    self.dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Pins `link` (the attached `program`) as `links/PROGRAM`, replacing the link pinned there
    /// (which, its collector gone, is then detached).
    pub fn pin_link(&self, program: &str, link: FdLink) -> Result<(), CollectorError> {
        let links = self.dir.join("links");
        // bpffs refuses names with a dot.
        let fresh = links.join(format!("{NEW_PREFIX}{program}"));
        let _ = std::fs::remove_file(&fresh);
        link.pin(&fresh).map_err(|e| {
            pin_error(format!(
                "pinning {}: {}",
                fresh.display(),
                crate::kernel::error_chain(&e)
            ))
        })?;
        std::fs::rename(&fresh, links.join(program))
            .map_err(|e| pin_error(format!("replacing the pinned link of {program}: {e}")))?;
        Ok(())
    }
}

fn pinned_links(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("links"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with(NEW_PREFIX))
        .collect();
    names.sort();
    names
}

fn open_pinned(dir: &Path, name: &str) -> Result<Map, CollectorError> {
    let path = dir.join("maps").join(name);
    let data = MapData::from_pin(&path)
        .map_err(|e| pin_error(format!("pinned map {}: {e}", path.display())))?;
    Map::from_map_data(data).map_err(|e| pin_error(format!("pinned map {}: {e}", path.display())))
}

fn mode(raw: u32) -> Mode {
    match raw {
        enforce::MODE_AUDIT => Mode::Audit,
        enforce::MODE_ENFORCE => Mode::Enforce,
        _ => Mode::Off,
    }
}

/// A label for an agent's pinned record.
pub fn label(agent: &GovernedAgent) -> AgentLabel {
    let mut label = AgentLabel {
        scope_kind: 0,
        name_len: 0,
        scope: 0,
        name: [0; AGENT_LABEL_LEN],
    };
    (label.scope_kind, label.scope) = match agent.scope {
        AgentScope::Cgroup(id) => (enforce_scope::CGROUP, id),
        AgentScope::ProcessTree(pid) => (enforce_scope::PROCESS_TREE, u64::from(pid)),
    };
    // Cut at a character boundary: the name is read back as UTF-8.
    let mut len = agent.baseline.len().min(AGENT_LABEL_LEN);
    while !agent.baseline.is_char_boundary(len) {
        len -= 1;
    }
    label.name[..len].copy_from_slice(&agent.baseline.as_bytes()[..len]);
    label.name_len = len as u32;
    label
}

/// The agents pinned in `dir`, as their labels and policies say (no allow-lists: those stay in
/// the kernel's maps).
pub fn pinned_agents(dir: &Path) -> Result<Vec<GovernedAgent>, CollectorError> {
    let labels: BpfHashMap<_, u32, AgentLabel> =
        BpfHashMap::try_from(open_pinned(dir, "AGENT_LABELS")?)
            .map_err(|e| pin_error(format!("AGENT_LABELS: {e}")))?;
    let policies: BpfHashMap<_, u32, AgentPolicy> =
        BpfHashMap::try_from(open_pinned(dir, "AGENT_POLICIES")?)
            .map_err(|e| pin_error(format!("AGENT_POLICIES: {e}")))?;
    let mut files = pinned_files(dir)?;
    let mut agents = Vec::new();
    for entry in labels.iter() {
        let (id, label) = entry.map_err(|e| pin_error(format!("AGENT_LABELS: {e}")))?;
        let policy = policies.get(&id, 0).unwrap_or_default();
        let name_len = (label.name_len as usize).min(AGENT_LABEL_LEN);
        agents.push(GovernedAgent {
            id,
            baseline: String::from_utf8_lossy(&label.name[..name_len]).into_owned(),
            scope: if label.scope_kind == enforce_scope::CGROUP {
                AgentScope::Cgroup(label.scope)
            } else {
                AgentScope::ProcessTree(label.scope as u32)
            },
            network: mode(policy.network),
            exec: mode(policy.exec),
            files: mode(policy.files),
            revision: policy.revision,
            net_rules: Vec::new(),
            executables: Vec::new(),
            names: Vec::new(),
            interpreters: Vec::new(),
            scripts: Vec::new(),
            // The rules themselves stay in the kernel's maps; these name the decisions.
            governed_files: files.remove(&id).unwrap_or_default(),
        });
    }
    agents.sort_by_key(|agent| agent.id);
    Ok(agents)
}

/// The governed files pinned in `dir`, per agent, indexed by rule (as the kernel's decisions
/// name them): each one's path from `FILE_RULE_PATHS`, its inode and, for a file of an
/// atomically written volume, its name, from the rule maps. A directory pinned before file
/// enforcement was pinned has none.
fn pinned_files(
    dir: &Path,
) -> Result<std::collections::BTreeMap<u32, Vec<GovernedFile>>, CollectorError> {
    let mut out: std::collections::BTreeMap<u32, Vec<GovernedFile>> = Default::default();
    if !dir.join("maps").join("FILE_RULE_PATHS").exists() {
        return Ok(out);
    }
    let paths: BpfHashMap<_, u64, FileRulePath> =
        BpfHashMap::try_from(open_pinned(dir, "FILE_RULE_PATHS")?)
            .map_err(|e| pin_error(format!("FILE_RULE_PATHS: {e}")))?;
    let mut by_rule: std::collections::BTreeMap<(u32, u32), GovernedFile> = Default::default();
    for entry in paths.iter() {
        let (key, path) = entry.map_err(|e| pin_error(format!("FILE_RULE_PATHS: {e}")))?;
        by_rule.insert(
            ((key >> 32) as u32, key as u32),
            GovernedFile {
                path: rule_path_text(&path),
                id: FileId {
                    dev: 0,
                    _pad: 0,
                    ino: 0,
                },
                atomic_name: None,
            },
        );
    }
    if dir.join("maps").join("FILE_INODE_RULES").exists() {
        let inodes: BpfHashMap<_, FileInodeRuleKey, u32> =
            BpfHashMap::try_from(open_pinned(dir, "FILE_INODE_RULES")?)
                .map_err(|e| pin_error(format!("FILE_INODE_RULES: {e}")))?;
        for (key, rule) in inodes.iter().flatten() {
            if let Some(file) = by_rule.get_mut(&(key.agent, rule)) {
                file.id = FileId {
                    dev: key.dev,
                    _pad: 0,
                    ino: key.ino,
                };
            }
        }
    }
    if dir.join("maps").join("FILE_NAME_RULES").exists() {
        let names: BpfHashMap<_, FileNameRuleKey, u32> =
            BpfHashMap::try_from(open_pinned(dir, "FILE_NAME_RULES")?)
                .map_err(|e| pin_error(format!("FILE_NAME_RULES: {e}")))?;
        for (key, rule) in names.iter().flatten() {
            if let Some(file) = by_rule.get_mut(&(key.agent, rule)) {
                let len = key
                    .name
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(key.name.len());
                file.atomic_name = Some(String::from_utf8_lossy(&key.name[..len]).into_owned());
            }
        }
    }
    // Rules are numbered from 0 per agent; a gap (a rule whose path did not fit) keeps the
    // numbering with an empty path.
    for ((agent, rule), file) in by_rule {
        let files = out.entry(agent).or_default();
        while files.len() < rule as usize {
            files.push(GovernedFile {
                path: String::new(),
                id: FileId {
                    dev: 0,
                    _pad: 0,
                    ino: 0,
                },
                atomic_name: None,
            });
        }
        files.push(file);
    }
    Ok(out)
}

/// What `agentscope enforce status` reports of a pin directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PinnedStatus {
    pub dir: PathBuf,
    /// A running collector holds it (its events reach that collector).
    pub owned_by_running_collector: bool,
    pub links: Vec<String>,
    /// Programs loaded in the kernel that use the pinned maps: one per pinned link (more, while
    /// a collector runs, only if programs stacked).
    pub programs_using_maps: usize,
    /// Processes governed as process trees, now.
    pub governed_processes: usize,
    pub agents: Vec<PinnedAgent>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PinnedAgent {
    pub id: u32,
    pub baseline: String,
    pub revision: u32,
    /// `cgroup:ID` or `pid:PID` (the process tree's root).
    pub scope: String,
    pub network: &'static str,
    pub exec: &'static str,
    pub files: &'static str,
    /// The sensitive files its files mode governs (as the agent names them).
    pub governed_files: Vec<String>,
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Off => "off",
        Mode::Audit => "audit",
        Mode::Enforce => "enforce",
    }
}

/// The state pinned in `dir`, or `None` when nothing is.
pub fn status(dir: &Path) -> Result<Option<PinnedStatus>, CollectorError> {
    if !dir.join("maps").join("AGENT_POLICIES").exists() {
        return Ok(None);
    }
    let owned_by_running_collector = lock_dir(dir)?.is_none();
    let agents = pinned_agents(dir)?
        .into_iter()
        .map(|agent| PinnedAgent {
            id: agent.id,
            baseline: agent.baseline,
            revision: agent.revision,
            scope: match agent.scope {
                AgentScope::Cgroup(id) => format!("cgroup:{id}"),
                AgentScope::ProcessTree(pid) => format!("pid:{pid}"),
            },
            network: mode_name(agent.network),
            exec: mode_name(agent.exec),
            files: mode_name(agent.files),
            governed_files: agent
                .governed_files
                .into_iter()
                .map(|file| file.path)
                .collect(),
        })
        .collect();
    let map_ids: Vec<u32> = PINNED_MAPS
        .iter()
        .filter_map(|(name, _, _)| MapInfo::from_pin(dir.join("maps").join(name)).ok())
        .map(|info| info.id())
        .collect();
    let programs_using_maps = aya::programs::loaded_programs()
        .flatten()
        .filter(|program| {
            program
                .map_ids()
                .ok()
                .flatten()
                .is_some_and(|ids| ids.iter().any(|id| map_ids.contains(id)))
        })
        .count();
    let governed_processes =
        BpfHashMap::<_, u32, u32>::try_from(open_pinned(dir, "GOVERNED_TGIDS")?)
            .map(|tgids| tgids.keys().flatten().count())
            .unwrap_or(0);
    Ok(Some(PinnedStatus {
        dir: dir.to_path_buf(),
        owned_by_running_collector,
        links: pinned_links(dir),
        programs_using_maps,
        governed_processes,
        agents,
    }))
}

/// Empties the governing maps of `dir` (policies first: from then on nobody is judged), so
/// programs a running collector still holds allow everything.
fn clear_maps(dir: &Path) -> Result<(), CollectorError> {
    fn clear_hash<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> Result<(), CollectorError> {
        if !dir.join("maps").join(name).exists() {
            return Ok(());
        }
        let mut hash: BpfHashMap<_, K, V> = BpfHashMap::try_from(open_pinned(dir, name)?)
            .map_err(|e| pin_error(format!("{name}: {e}")))?;
        let keys: Vec<K> = hash.keys().flatten().collect();
        for key in keys {
            let _ = hash.remove(&key);
        }
        Ok(())
    }
    clear_hash::<u32, AgentPolicy>(dir, "AGENT_POLICIES")?;
    clear_hash::<u64, u32>(dir, "GOVERNED_CGROUPS")?;
    clear_hash::<u32, u32>(dir, "GOVERNED_TGIDS")?;
    clear_hash::<ExecAllowKey, u32>(dir, "EXEC_ALLOW")?;
    clear_hash::<u32, AgentLabel>(dir, "AGENT_LABELS")?;
    clear_hash::<DnsNameKey, DnsNameState>(dir, "DNS_NAMES")?;
    clear_hash::<DnsAllowKey, DnsAllowValue>(dir, "DNS_ALLOW")?;
    clear_hash::<FileInodeRuleKey, u32>(dir, "FILE_INODE_RULES")?;
    clear_hash::<FileNameRuleKey, u32>(dir, "FILE_NAME_RULES")?;
    clear_hash::<u64, FileRulePath>(dir, "FILE_RULE_PATHS")?;
    if dir.join("maps").join("NET_ALLOW").exists() {
        let mut trie: LpmTrie<_, NetAllowKey, u8> =
            LpmTrie::try_from(open_pinned(dir, "NET_ALLOW")?)
                .map_err(|e| pin_error(format!("NET_ALLOW: {e}")))?;
        let keys: Vec<Key<NetAllowKey>> = trie.keys().flatten().collect();
        for key in keys {
            let _ = trie.remove(&key);
        }
    }
    Ok(())
}

/// `agentscope enforce off`: clears the maps (enforcement stops at once, even under a running
/// collector), then removes every pin and the directory (the pinned programs are detached as
/// their last reference goes). Returns whether there was anything.
pub fn remove(dir: &Path) -> Result<bool, CollectorError> {
    if !dir.exists() {
        return Ok(false);
    }
    if dir.join("maps").exists() {
        clear_maps(dir)?;
    }
    std::fs::remove_dir_all(dir)
        .map_err(|e| pin_error(format!("removing {}: {e}", dir.display())))?;
    Ok(true)
}

/// Governs through the pins: with `governed` agents, the pinned state is replaced by theirs;
/// without, the pinned agents are adopted (and `governed` filled with them, so their events are
/// named). Either way this collector's programs are attached and replace the pinned links.
pub fn govern_pinned(
    kernel: &mut KernelCapture,
    pins: &EnforcementPins,
    governed: &mut Vec<GovernedAgent>,
    proc_root: &Path,
) -> Result<(), CollectorError> {
    let links = pins.pinned_links();
    let exec_pinned = links
        .iter()
        .any(|link| link == crate::enforcement::EXEC_PROGRAM);
    let files_pinned = links
        .iter()
        .any(|link| FILE_PROGRAMS.iter().any(|(program, _)| link == program));
    if governed.is_empty() {
        *governed = pinned_agents(&pins.dir)?;
    } else {
        kernel.clear_pinned_enforcement(pins)?;
        kernel.write_policies(governed, proc_root)?;
    }
    // A pinned program is replaced even when no agent needs it any more (its link would
    // otherwise stay pinned, running a program of the old collector's).
    let exec = exec_pinned || governed.iter().any(|agent| agent.exec != Mode::Off);
    let files = files_pinned || governed.iter().any(|agent| agent.files != Mode::Off);
    kernel.attach_enforcement(exec, files, proc_root)?;
    kernel.pin_enforcement(pins)
}

impl KernelCapture {
    /// Clears the pinned state a new `--enforce` replaces (its agents are numbered afresh).
    pub fn clear_pinned_enforcement(
        &mut self,
        pins: &EnforcementPins,
    ) -> Result<(), CollectorError> {
        clear_maps(&pins.dir)
    }

    /// Pins the links [`KernelCapture::attach_enforcement`] took, each replacing the one pinned
    /// for its program.
    pub fn pin_enforcement(&mut self, pins: &EnforcementPins) -> Result<(), CollectorError> {
        for (program, link) in std::mem::take(&mut self.enforcement_links) {
            pins.pin_link(program, link)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_the_name_whole_or_cut_at_a_character() {
        let mut agent = GovernedAgent {
            id: 3,
            baseline: "host:python agent.py".into(),
            scope: AgentScope::ProcessTree(42),
            network: Mode::Enforce,
            exec: Mode::Off,
            files: Mode::Off,
            revision: 2,
            net_rules: Vec::new(),
            executables: Vec::new(),
            names: Vec::new(),
            interpreters: Vec::new(),
            scripts: Vec::new(),
            governed_files: Vec::new(),
        };
        let short = label(&agent);
        assert_eq!(
            (short.scope_kind, short.scope, short.name_len),
            (enforce_scope::PROCESS_TREE, 42, 20)
        );
        assert_eq!(&short.name[..20], b"host:python agent.py");
        agent.baseline = "é".repeat(200);
        let long = label(&agent);
        assert_eq!(long.name_len, 240);
        assert!(std::str::from_utf8(&long.name[..240]).is_ok());
    }

    #[test]
    fn a_directory_off_bpffs_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = EnforcementPins::claim(&dir.path().join("pins"), true).unwrap_err();
        assert!(err.to_string().contains("mount -t bpf"), "{err}");
        // Nothing to adopt where nothing is pinned.
        assert!(EnforcementPins::claim(&dir.path().join("absent"), false)
            .unwrap()
            .is_none());
    }
}
