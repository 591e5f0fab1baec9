//! File enforcement and interpreter arguments, from userspace (issue 17): the governed
//! sensitive files of each agent written into the kernel's rule maps of
//! `collector-ebpf/src/enforce_file.rs` (by inode, and by file system and name for volumes the
//! kubelet writes atomically), the open-exit programs attached when an agent's files mode is
//! on (their links pinned like the other enforcement programs', so file enforcement outlives
//! the collector), the paths of the rules (pinned, for an adopting collector's events), and
//! the struct offsets (from the kernel's BTF) that the file check and the exec check's
//! interpreter arguments follow.
//!
//! The collector resolves each governed path inside the agent's own root once, when
//! enforcement begins (the caller does that: it knows the process roots); this module takes
//! the resolved identities.

use agentscope_common::{
    enforce, FileId, FileInodeRuleKey, FileNameRuleKey, FileRulePath, PATH_LEN,
};
use aya::maps::{Array, HashMap as BpfHashMap};

use crate::enforcement::{GovernedAgent, Mode};
use crate::error::CollectorError;
use crate::kernel::KernelCapture;

/// The open-exit programs, each on its syscall's exit tracepoint.
pub(crate) const FILE_PROGRAMS: [(&str, &str); 3] = [
    ("enforce_sys_exit_open", "sys_exit_open"),
    ("enforce_sys_exit_openat", "sys_exit_openat"),
    ("enforce_sys_exit_openat2", "sys_exit_openat2"),
];

/// (struct, member) pairs summed into each `enforce::OFF_*` offset, in index order.
pub const KERNEL_FIELDS: [&[(&str, &str)]; enforce::OFFSETS_COUNT as usize] = [
    &[("file", "f_path"), ("path", "dentry")],
    &[("dentry", "d_name"), ("qstr", "name")],
    &[("task_struct", "mm")],
    &[("mm_struct", "arg_start")],
    &[("mm_struct", "arg_end")],
];

/// A governed sensitive file as the collector found it in the agent's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernedFile {
    /// The path as the agent names it (what events report).
    pub path: String,
    /// The file it resolved to when enforcement began.
    pub id: FileId,
    /// Set for a file in a volume the kubelet writes atomically (its directory holds a
    /// `..data` link to the current generation): the file's name, governed in that file
    /// system whatever generation (inode) it is.
    pub atomic_name: Option<String>,
}

/// The longest name a name rule holds: the kernel reads names into `FILE_NAME_LEN` bytes with
/// their NUL, and a longer name read there is cut to `FILE_NAME_LEN - 1` bytes; a rule at most
/// one byte shorter can never be matched by a cut name.
pub const MAX_RULE_NAME: usize = enforce::FILE_NAME_LEN - 2;

fn map_error(name: &str, e: &dyn std::fmt::Display) -> CollectorError {
    CollectorError::Enforcement(format!("map {name}: {e}"))
}

impl KernelCapture {
    /// Writes the BTF offsets the file and interpreter checks need. An error when the
    /// kernel's BTF lacks them: file enforcement and interpreter judging cannot work without.
    pub(crate) fn write_enforce_offsets(&mut self) -> Result<(), CollectorError> {
        let btf = crate::kernel_btf::KernelBtf::from_sys_fs().map_err(|e| {
            CollectorError::Enforcement(format!("file and exec enforcement need BTF: {e}"))
        })?;
        let mut offsets: Array<_, u64> = Array::try_from(
            self.ebpf_mut()
                .map_mut("ENFORCE_OFFSETS")
                .ok_or_else(|| map_error("ENFORCE_OFFSETS", &"missing"))?,
        )
        .map_err(|e| map_error("ENFORCE_OFFSETS", &e))?;
        for (index, fields) in KERNEL_FIELDS.iter().enumerate() {
            let mut sum = 0;
            for (name, member) in fields.iter() {
                sum += btf
                    .member_offset(name, member)
                    .map_err(|e| CollectorError::Enforcement(format!("kernel BTF: {e}")))?;
            }
            offsets
                .set(index as u32, sum, 0)
                .map_err(|e| map_error("ENFORCE_OFFSETS", &e))?;
        }
        Ok(())
    }

    /// Writes every governed agent's file rules (only agents whose files mode is on) and the
    /// paths they name (`FILE_RULE_PATHS`, pinned, so that an adopting collector names them).
    /// The open-exit programs are attached by [`KernelCapture::attach_file_programs`].
    pub(crate) fn write_file_rules(
        &mut self,
        agents: &[GovernedAgent],
    ) -> Result<(), CollectorError> {
        for agent in agents.iter().filter(|a| a.files != Mode::Off) {
            self.write_agent_file_rules(agent.id, 0, &agent.governed_files)?;
        }
        Ok(())
    }

    /// Writes one agent's rules for `files`, numbered from `first_rule` (a rule's number is
    /// its index in the agent's `governed_files`, which the kernel's decisions carry): by
    /// inode, by file system and name for a file of an atomically written volume, and the
    /// path each names.
    pub(crate) fn write_agent_file_rules(
        &mut self,
        agent: u32,
        first_rule: u32,
        files: &[GovernedFile],
    ) -> Result<(), CollectorError> {
        let numbered = || (first_rule..).zip(files.iter());
        {
            let mut inodes: BpfHashMap<_, FileInodeRuleKey, u32> = BpfHashMap::try_from(
                self.ebpf_mut()
                    .map_mut("FILE_INODE_RULES")
                    .ok_or_else(|| map_error("FILE_INODE_RULES", &"missing"))?,
            )
            .map_err(|e| map_error("FILE_INODE_RULES", &e))?;
            for (rule, file) in numbered() {
                let key = FileInodeRuleKey {
                    agent,
                    dev: file.id.dev,
                    ino: file.id.ino,
                };
                inodes
                    .insert(key, rule, 0)
                    .map_err(|e| map_error("FILE_INODE_RULES", &e))?;
            }
        }
        {
            let mut names: BpfHashMap<_, FileNameRuleKey, u32> = BpfHashMap::try_from(
                self.ebpf_mut()
                    .map_mut("FILE_NAME_RULES")
                    .ok_or_else(|| map_error("FILE_NAME_RULES", &"missing"))?,
            )
            .map_err(|e| map_error("FILE_NAME_RULES", &e))?;
            for (rule, file) in numbered() {
                let Some(name) = &file.atomic_name else {
                    continue;
                };
                if name.is_empty() || name.len() > MAX_RULE_NAME {
                    continue;
                }
                let mut key = FileNameRuleKey {
                    agent,
                    dev: file.id.dev,
                    name: [0; enforce::FILE_NAME_LEN],
                };
                key.name[..name.len()].copy_from_slice(name.as_bytes());
                names
                    .insert(key, rule, 0)
                    .map_err(|e| map_error("FILE_NAME_RULES", &e))?;
            }
        }
        {
            let mut paths: BpfHashMap<_, u64, FileRulePath> = BpfHashMap::try_from(
                self.ebpf_mut()
                    .map_mut("FILE_RULE_PATHS")
                    .ok_or_else(|| map_error("FILE_RULE_PATHS", &"missing"))?,
            )
            .map_err(|e| map_error("FILE_RULE_PATHS", &e))?;
            for (rule, file) in numbered() {
                paths
                    .insert(rule_path_key(agent, rule), rule_path(&file.path), 0)
                    .map_err(|e| map_error("FILE_RULE_PATHS", &e))?;
            }
        }
        Ok(())
    }

    /// Attaches the open-exit programs, their links kept for pinning (as the other
    /// enforcement programs': `crate::enforcement_pins`).
    pub(crate) fn attach_file_programs(&mut self) -> Result<(), CollectorError> {
        for (program_name, tracepoint) in FILE_PROGRAMS {
            self.attach_enforcement_tracepoint(program_name, "syscalls", tracepoint)?;
        }
        Ok(())
    }
}

/// The key of `FILE_RULE_PATHS` for an agent's rule.
pub fn rule_path_key(agent: u32, rule: u32) -> u64 {
    (u64::from(agent) << 32) | u64::from(rule)
}

/// A path as `FILE_RULE_PATHS` holds it (cut at a character boundary within `PATH_LEN`).
fn rule_path(path: &str) -> FileRulePath {
    let mut value = FileRulePath {
        path_len: 0,
        _pad: 0,
        path: [0; PATH_LEN],
    };
    let mut len = path.len().min(PATH_LEN);
    while !path.is_char_boundary(len) {
        len -= 1;
    }
    value.path[..len].copy_from_slice(&path.as_bytes()[..len]);
    value.path_len = len as u32;
    value
}

/// The path a `FILE_RULE_PATHS` value holds.
pub fn rule_path_text(value: &FileRulePath) -> String {
    let len = (value.path_len as usize).min(PATH_LEN);
    String::from_utf8_lossy(&value.path[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_has_the_fields_enforcement_needs() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return;
        }
        let btf = crate::kernel_btf::KernelBtf::from_sys_fs().unwrap();
        for fields in KERNEL_FIELDS {
            for (name, member) in fields {
                btf.member_offset(name, member).unwrap();
            }
        }
    }
}
