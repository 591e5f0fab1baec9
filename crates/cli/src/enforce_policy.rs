//! `collect --enforce SCOPE=FILE`: which agent a promoted baseline governs (a process tree or
//! a cgroup), and its `enforcement` section turned into what the kernel reads
//! (`agentscope_kernel::enforcement`). docs/enforcement.md.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agentscope_analysis::baseline::enforcement::{Enforcement, NetProtocol};
use agentscope_analysis::baseline::{interpreters, AgentBaseline, EnforceMode};
use agentscope_kernel::enforcement::{
    cgroup2_root, cgroup_id, AgentScope, GovernedAgent, Mode, NetRule, Protocol,
};
use agentscope_kernel::enforcement_file_refresh::GovernedFileFinder;
use anyhow::{bail, Context, Result};

/// One `--enforce` argument, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceArg {
    pub scope: ScopeArg,
    pub baseline: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeArg {
    /// `pid:N`: that process and its descendants.
    Pid(u32),
    /// `cgroup:PATH`: a cgroup v2 directory (absolute, or relative to the cgroup v2 mount).
    Cgroup(PathBuf),
}

/// Parses `pid:N=FILE` or `cgroup:PATH=FILE` (clap's value parser).
pub fn parse_enforce_arg(text: &str) -> Result<EnforceArg, String> {
    let usage = "expected pid:PID=BASELINE.yaml or cgroup:PATH=BASELINE.yaml";
    let (scope, file) = text.split_once('=').ok_or(usage)?;
    if file.is_empty() {
        return Err(usage.into());
    }
    let scope = if let Some(pid) = scope.strip_prefix("pid:") {
        ScopeArg::Pid(
            pid.parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("\"{pid}\" is not a process id; {usage}"))?,
        )
    } else if let Some(path) = scope.strip_prefix("cgroup:") {
        if path.is_empty() {
            return Err(usage.into());
        }
        ScopeArg::Cgroup(PathBuf::from(path))
    } else {
        return Err(usage.into());
    };
    Ok(EnforceArg {
        scope,
        baseline: PathBuf::from(file),
    })
}

fn mode(mode: EnforceMode) -> Mode {
    match mode {
        EnforceMode::Off => Mode::Off,
        EnforceMode::Audit => Mode::Audit,
        EnforceMode::Enforce => Mode::Enforce,
    }
}

/// The kernel's network rules for a policy (`any` protocol: a TCP and a UDP rule).
pub fn net_rules(policy: &Enforcement) -> Result<Vec<NetRule>> {
    let mut rules = Vec::new();
    for allow in &policy.allow.network {
        let (addr, prefix) = allow.prefix().map_err(anyhow::Error::msg)?;
        let protocols: &[Protocol] = match allow.protocol {
            NetProtocol::Any => &[Protocol::Tcp, Protocol::Udp],
            NetProtocol::Tcp => &[Protocol::Tcp],
            NetProtocol::Udp => &[Protocol::Udp],
        };
        for &protocol in protocols {
            rules.push(NetRule {
                protocol,
                addr,
                prefix,
                port: allow.port,
            });
        }
    }
    Ok(rules)
}

/// The resolvers a governed agent may always reach, on port 53 over UDP and TCP (the DNS names
/// of its policy are allowed by their answers, which come from them).
fn resolver_rules(resolvers: &[IpAddr]) -> Vec<NetRule> {
    resolvers
        .iter()
        .flat_map(|&addr| {
            [Protocol::Udp, Protocol::Tcp].map(|protocol| NetRule {
                protocol,
                addr,
                prefix: if addr.is_ipv4() { 32 } else { 128 },
                port: 53,
            })
        })
        .collect()
}

/// The `nameserver` addresses of a resolv.conf. Read by hand: one keyword's lines is all that
/// is needed, and a line that does not parse is skipped as the C library's resolver does.
pub fn resolv_conf_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next()?.split('%').next()?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The processes of a governed agent, as far as finding its files needs: its root is theirs.
#[derive(Debug, Clone)]
enum Members {
    /// A process tree, by its root.
    Tree(u32),
    /// A cgroup v2 directory.
    Cgroup(PathBuf),
}

impl Members {
    /// A process of the agent now, if one is left.
    fn any(&self, proc_root: &Path) -> Option<u32> {
        match self {
            Members::Tree(pid) => proc_root.join(pid.to_string()).exists().then_some(*pid),
            Members::Cgroup(dir) => std::fs::read_to_string(dir.join("cgroup.procs"))
                .ok()
                .and_then(|procs| procs.lines().next()?.trim().parse().ok()),
        }
    }
}

/// The governed agents, and how to find their governed files again while enforcing (when any
/// agent's files mode is on).
#[derive(Debug)]
pub struct Governed {
    pub agents: Vec<GovernedAgent>,
    pub file_finder: Option<GovernedFileFinder>,
}

/// Finds each files-governing agent's governed files in the root of one of its processes, as
/// when enforcement began (crate::governed_files).
fn file_finder(
    agents: Vec<(u32, Members, BTreeSet<String>)>,
    proc_root: &Path,
) -> Option<GovernedFileFinder> {
    if agents.is_empty() {
        return None;
    }
    let proc_root = proc_root.to_path_buf();
    Some(GovernedFileFinder(std::sync::Arc::new(move |id| {
        let (_, members, allowed) = agents.iter().find(|(agent, _, _)| *agent == id)?;
        let pid = members.any(&proc_root)?;
        let root = proc_root.join(pid.to_string()).join("root");
        Some(crate::governed_files::governed_files(&root, allowed))
    })))
}

/// Reads each baseline and turns it into a governed agent (numbered from 1 in order), each
/// allowed to reach `resolvers`.
pub fn governed_agents(
    args: &[EnforceArg],
    proc_root: &Path,
    resolvers: &[IpAddr],
) -> Result<Governed> {
    let mut agents = Vec::new();
    let mut file_scopes = Vec::new();
    for (index, arg) in args.iter().enumerate() {
        let baseline = AgentBaseline::read_from(&arg.baseline)?;
        let Some(policy) = &baseline.enforcement else {
            bail!(
                "{} has no enforcement section: promote it first (agentscope baseline promote {} --network audit -w FILE)",
                arg.baseline.display(),
                arg.baseline.display()
            );
        };
        let id = index as u32 + 1;
        let (scope, members) = match &arg.scope {
            ScopeArg::Pid(pid) => (AgentScope::ProcessTree(*pid), Members::Tree(*pid)),
            ScopeArg::Cgroup(path) => {
                let dir = if path.is_absolute() {
                    path.clone()
                } else {
                    cgroup2_root(proc_root)
                        .context("no cgroup v2 mount to resolve a relative cgroup path")?
                        .join(path)
                };
                (AgentScope::Cgroup(cgroup_id(&dir)?), Members::Cgroup(dir))
            }
        };
        // A process of the agent, whose root its files are resolved in.
        let member = members.any(proc_root);
        let governed_files = if policy.files == EnforceMode::Off {
            Vec::new()
        } else {
            file_scopes.push((id, members, policy.allow.files.clone()));
            let Some(pid) = member else {
                bail!(
                    "{}: files enforcement needs a process of the agent to find its files in; {:?} has none",
                    arg.baseline.display(),
                    arg.scope
                );
            };
            crate::governed_files::governed_files(
                &proc_root.join(pid.to_string()).join("root"),
                &policy.allow.files,
            )
        };
        let interpreters = policy
            .allow
            .executables
            .iter()
            .filter_map(|path| Some((path.clone(), interpreters::inline_option(path)?)))
            .collect();
        agents.push(GovernedAgent {
            id,
            baseline: baseline.metadata.agent.clone(),
            scope,
            network: mode(policy.network),
            exec: mode(policy.exec),
            files: mode(policy.files),
            revision: policy.revision,
            net_rules: net_rules(policy)
                .with_context(|| format!("{}: enforcement.allow.network", arg.baseline.display()))?
                .into_iter()
                .chain(resolver_rules(resolvers))
                .collect(),
            executables: policy.allow.executables.iter().cloned().collect(),
            interpreters,
            scripts: policy.allow.scripts.iter().cloned().collect(),
            governed_files,
            names: policy.allow.names.iter().cloned().collect(),
        });
    }
    Ok(Governed {
        agents,
        file_finder: file_finder(file_scopes, proc_root),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_from_resolv_conf() {
        let text =
            "# comment\nsearch example.com\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n\
                    nameserver not-an-address\noptions ndots:5\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "10.96.0.10".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn enforce_arguments_parse_or_say_what_is_expected() {
        assert_eq!(
            parse_enforce_arg("pid:42=agent.yaml").unwrap(),
            EnforceArg {
                scope: ScopeArg::Pid(42),
                baseline: "agent.yaml".into()
            }
        );
        assert_eq!(
            parse_enforce_arg("cgroup:/sys/fs/cgroup/unified/pod=a=b.yaml")
                .unwrap()
                .scope,
            ScopeArg::Cgroup("/sys/fs/cgroup/unified/pod".into())
        );
        for bad in [
            "agent.yaml",
            "pid:x=a.yaml",
            "pid:0=a.yaml",
            "pid:3=",
            "host:1=a",
        ] {
            let err = parse_enforce_arg(bad).unwrap_err();
            assert!(
                err.contains("expected pid:PID=BASELINE.yaml"),
                "{bad}: {err}"
            );
        }
    }
}
