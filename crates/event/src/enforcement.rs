//! Enforcement decisions as events: a governed agent tried something its baseline's policy
//! does not allow, and the kernel let it through ("would block", audit mode) or denied it
//! ("blocked", enforce mode). Decoded from `agentscope_common::EnforceEvent`; the collector
//! adds the baseline the policy came from. And the policies themselves ([`EnforcePolicy`]):
//! the collector reports each governed agent's modes when enforcement starts, is adopted,
//! changes or is removed, so what is governed is known before any decision.

use agentscope_common as raw;
use serde::{Deserialize, Serialize};

/// What the decision was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforceCategory {
    Network,
    Exec,
    Files,
    Unknown,
}

/// What the kernel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforceAction {
    /// Audit mode: allowed, and reported.
    WouldBlock,
    /// Enforce mode: denied (`EPERM` for network calls).
    Blocked,
    /// Not a kernel decision: the collector's disarmer dropped the agent from enforce back to
    /// audit after too many blocks in a minute (`blocks_last_minute`).
    Disarmed,
    Unknown,
}

impl EnforceAction {
    /// "would block" / "blocked", for people.
    pub fn words(self) -> &'static str {
        match self {
            EnforceAction::WouldBlock => "would block",
            EnforceAction::Blocked => "blocked",
            EnforceAction::Disarmed => "disarmed",
            EnforceAction::Unknown => "decided",
        }
    }
}

/// One decision (the body of an `enforce` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforceDecision {
    /// The governed agent's number in this collector's policies.
    pub agent_id: u32,
    /// The baseline (its agent key) whose policy decided, when the collector knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The baseline's revision.
    pub revision: u32,
    pub category: EnforceCategory,
    pub action: EnforceAction,
    /// The kernel hook: `connect4`, `connect6`, `sendmsg4`, `sendmsg6`.
    pub hook: String,
    /// `tcp`, `udp` or `other`.
    pub protocol: String,
    /// `inet` (IPv4, IPv4-mapped IPv6 included) or `inet6`.
    pub family: String,
    pub addr: String,
    pub port: u16,
    /// Exec decisions: the executable, as the exec named it; file decisions: the governed
    /// file, as the agent names it (network ones: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why an allowed interpreter's exec was not allowed (`program from standard input`,
    /// `script not in the policy`); absent when the executable itself is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// File decisions: the opened file's super block dev_t and inode (`dev:ino`), read from
    /// the kernel's `struct file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<String>,
    /// File decisions: the matched rule's index in the collector's list of the agent's
    /// governed files (the collector turns it into `path`); not kept in outputs.
    #[serde(skip)]
    pub rule: Option<u32>,
    /// `Disarmed`: the blocks counted in the minute before (more than the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_last_minute: Option<u32>,
}

impl EnforceDecision {
    /// Decodes the record's fields (the header is decoded by the caller).
    pub fn from_raw(e: &raw::EnforceEvent) -> Self {
        use raw::enforce;
        let (family, addr) = match e.family as i32 {
            libc::AF_INET => (
                "inet",
                std::net::Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]).to_string(),
            ),
            libc::AF_INET6 => ("inet6", std::net::Ipv6Addr::from(e.addr).to_string()),
            _ => ("other", String::new()),
        };
        EnforceDecision {
            agent_id: e.agent,
            baseline: None,
            revision: e.revision,
            category: match e.category {
                enforce::CATEGORY_NETWORK => EnforceCategory::Network,
                enforce::CATEGORY_EXEC => EnforceCategory::Exec,
                enforce::CATEGORY_FILES => EnforceCategory::Files,
                _ => EnforceCategory::Unknown,
            },
            action: match e.action {
                enforce::ACTION_WOULD_BLOCK => EnforceAction::WouldBlock,
                enforce::ACTION_BLOCKED => EnforceAction::Blocked,
                _ => EnforceAction::Unknown,
            },
            hook: match e.hook {
                enforce::HOOK_CONNECT4 => "connect4",
                enforce::HOOK_CONNECT6 => "connect6",
                enforce::HOOK_SENDMSG4 => "sendmsg4",
                enforce::HOOK_SENDMSG6 => "sendmsg6",
                _ => "other",
            }
            .into(),
            protocol: match e.protocol as i32 {
                libc::IPPROTO_TCP => "tcp",
                libc::IPPROTO_UDP => "udp",
                _ => "other",
            }
            .into(),
            family: family.into(),
            addr,
            port: e.port,
            path: None,
            reason: None,
            inode: None,
            rule: None,
            blocks_last_minute: None,
        }
    }

    /// Decodes an exec decision's fields (the header is decoded by the caller).
    pub fn from_raw_exec(e: &raw::EnforceExecEvent) -> Self {
        let kept = (e.path_len as usize).min(raw::PATH_LEN);
        EnforceDecision {
            agent_id: e.agent,
            baseline: None,
            revision: e.revision,
            category: EnforceCategory::Exec,
            action: match e.action {
                raw::enforce::ACTION_WOULD_BLOCK => EnforceAction::WouldBlock,
                raw::enforce::ACTION_BLOCKED => EnforceAction::Blocked,
                _ => EnforceAction::Unknown,
            },
            hook: "sched_process_exec".into(),
            protocol: String::new(),
            family: String::new(),
            addr: String::new(),
            port: 0,
            path: Some(crate::event::c_string(&e.path[..kept])),
            reason: match e.reason {
                raw::enforce::EXEC_REASON_STDIN_PROGRAM => {
                    Some("program from standard input".into())
                }
                raw::enforce::EXEC_REASON_SCRIPT => Some("script not in the policy".into()),
                _ => None,
            },
            inode: None,
            rule: None,
            blocks_last_minute: None,
        }
    }

    /// Decodes a file decision's fields (the header is decoded by the caller). `path` is
    /// filled by the collector from `rule`.
    pub fn from_raw_file(e: &raw::EnforceFileEvent) -> Self {
        use raw::enforce;
        EnforceDecision {
            agent_id: e.agent,
            baseline: None,
            revision: e.revision,
            category: EnforceCategory::Files,
            action: match e.action {
                enforce::ACTION_WOULD_BLOCK => EnforceAction::WouldBlock,
                enforce::ACTION_BLOCKED => EnforceAction::Blocked,
                _ => EnforceAction::Unknown,
            },
            hook: match e.syscall {
                enforce::FILE_SYSCALL_OPEN => "sys_exit_open",
                enforce::FILE_SYSCALL_OPENAT => "sys_exit_openat",
                enforce::FILE_SYSCALL_OPENAT2 => "sys_exit_openat2",
                _ => "other",
            }
            .into(),
            protocol: String::new(),
            family: String::new(),
            addr: String::new(),
            port: 0,
            path: None,
            reason: None,
            inode: Some(format!("{}:{}", e.dev, e.ino)),
            rule: Some(e.rule),
            blocks_last_minute: None,
        }
    }

    /// The disarmer's decision that follows `last_block` (the block that went over the limit):
    /// the same agent and policy, every enforced category dropped to audit.
    pub fn disarmed(last_block: &EnforceDecision, blocks_last_minute: u32) -> Self {
        EnforceDecision {
            action: EnforceAction::Disarmed,
            hook: "disarmer".into(),
            blocks_last_minute: Some(blocks_last_minute),
            ..last_block.clone()
        }
    }

    /// The destination as `addr:port` (`[v6]:port`).
    pub fn destination(&self) -> String {
        if self.family == "inet6" {
            format!("[{}]:{}", self.addr, self.port)
        } else {
            format!("{}:{}", self.addr, self.port)
        }
    }

    /// One line for people: "blocked: tcp connect to 127.0.0.2:8080 denied by baseline KEY
    /// rev 3".
    pub fn describe(&self) -> String {
        let by = match &self.baseline {
            Some(key) => format!("baseline {key} rev {}", self.revision),
            None => format!("policy {} rev {}", self.agent_id, self.revision),
        };
        if self.action == EnforceAction::Disarmed {
            return format!(
                "disarmed: {by} dropped from enforce to audit after {} blocks in a minute",
                self.blocks_last_minute.unwrap_or(0)
            );
        }
        let killed = match self.action {
            EnforceAction::WouldBlock => "would be killed",
            _ => "killed",
        };
        if self.category == EnforceCategory::Files {
            let path = self.path.as_deref().unwrap_or("a governed file");
            return format!("{}: open of {path} {killed} by {by}", self.action.words());
        }
        if let Some(path) = &self.path {
            let why = match &self.reason {
                Some(reason) => format!(" ({reason})"),
                None => String::new(),
            };
            return format!("{}: exec {path}{why} {killed} by {by}", self.action.words());
        }
        let what = if self.hook.starts_with("sendmsg") {
            "send"
        } else {
            "connect"
        };
        let verdict = match self.action {
            EnforceAction::WouldBlock => "would be denied",
            _ => "denied",
        };
        format!(
            "{}: {} {what} to {} {verdict} by {by}",
            self.action.words(),
            self.protocol,
            self.destination()
        )
    }
}

/// A category's mode in a policy the kernel applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    Off,
    Audit,
    Enforce,
}

impl PolicyMode {
    pub fn name(self) -> &'static str {
        match self {
            PolicyMode::Off => "off",
            PolicyMode::Audit => "audit",
            PolicyMode::Enforce => "enforce",
        }
    }
}

/// Why the collector reports a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyChange {
    /// The collector was started with `--enforce` and wrote it into the kernel.
    Started,
    /// The collector found it pinned (left by a collector that has gone) and took it over.
    Adopted,
    /// The disarmer dropped its enforced categories to audit.
    Disarmed,
    /// The kernel's copy changed otherwise (another tool wrote the pinned maps).
    Changed,
    /// It is gone from the kernel (`agentscope enforce off`): every category is off.
    Removed,
    /// Sensitive files that were not in the agent's root when enforcement began (or were
    /// replaced by a new file since) are governed now (`files_added` names them).
    FilesAdded,
}

/// A governed agent's policy as the kernel applies it (the body of an `enforce_policy`
/// event): an observation of the collector's, not of a process, so its header names no
/// process (pid 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcePolicy {
    /// The governed agent's number in this collector's policies (as decisions carry it).
    pub agent_id: u32,
    /// The baseline (its agent key) the policy came from.
    pub baseline: String,
    pub revision: u32,
    /// Who is governed: `pid:PID` (a process tree, by its root) or `cgroup:ID`.
    pub scope: String,
    /// The process tree's root, for `pid:` scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_pid: Option<u32>,
    /// The cgroup v2 id, for `cgroup:` scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_cgroup_id: Option<u64>,
    pub network: PolicyMode,
    pub exec: PolicyMode,
    pub files: PolicyMode,
    pub change: PolicyChange,
    /// For `files_added`: the paths (as the agent names them) governed from now on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_added: Vec<String>,
}

impl EnforcePolicy {
    /// The three categories' modes, named, in a fixed order.
    pub fn modes(&self) -> [(&'static str, PolicyMode); 3] {
        [
            ("network", self.network),
            ("exec", self.exec),
            ("files", self.files),
        ]
    }

    /// One line for people: "policy started: baseline KEY rev 2 on pid:42: network enforce,
    /// exec off, files audit".
    pub fn describe(&self) -> String {
        let change = match self.change {
            PolicyChange::Started => "started",
            PolicyChange::Adopted => "adopted",
            PolicyChange::Disarmed => "disarmed",
            PolicyChange::Changed => "changed",
            PolicyChange::Removed => "removed",
            PolicyChange::FilesAdded => "files added",
        };
        let modes: Vec<String> = self
            .modes()
            .iter()
            .map(|(name, mode)| format!("{name} {}", mode.name()))
            .collect();
        let added = if self.files_added.is_empty() {
            String::new()
        } else {
            format!("; now governs {}", self.files_added.join(", "))
        };
        format!(
            "policy {change}: baseline {} rev {} on {}: {}{added}",
            self.baseline,
            self.revision,
            self.scope,
            modes.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(category: EnforceCategory, action: EnforceAction) -> EnforceDecision {
        EnforceDecision {
            agent_id: 1,
            baseline: Some("host:python agent.py".into()),
            revision: 2,
            category,
            action,
            hook: String::new(),
            protocol: String::new(),
            family: String::new(),
            addr: String::new(),
            port: 0,
            path: None,
            reason: None,
            inode: None,
            rule: None,
            blocks_last_minute: None,
        }
    }

    #[test]
    fn file_and_interpreter_decisions_say_what_was_killed_and_why() {
        let mut file = decision(EnforceCategory::Files, EnforceAction::Blocked);
        file.path = Some("/var/run/secrets/kubernetes.io/serviceaccount/token".into());
        assert_eq!(
            file.describe(),
            "blocked: open of /var/run/secrets/kubernetes.io/serviceaccount/token killed by \
             baseline host:python agent.py rev 2"
        );
        let mut exec = decision(EnforceCategory::Exec, EnforceAction::WouldBlock);
        exec.path = Some("/bin/sh".into());
        exec.reason = Some("program from standard input".into());
        assert_eq!(
            exec.describe(),
            "would block: exec /bin/sh (program from standard input) would be killed by \
             baseline host:python agent.py rev 2"
        );
    }
}
