//! A baseline's `enforcement` section (issue 17): per category (`network`, `exec`, `files`)
//! whether the kernel leaves the agent alone (`off`), reports what the baseline does not allow
//! (`audit`) or denies it (`enforce`), and what is allowed, derived from the learned entries.
//! [`promote`] is what `agentscope baseline promote` does to a document: it refuses a baseline
//! that cannot be trusted as a policy (its learning partial or unfinished, or evidence of an
//! incident learned as normal), derives the allow-lists on the first promotion, sets the
//! modes asked for and bumps the revision.
//!
//! Network destinations are parsed here (an address or a CIDR prefix, and a port): the
//! standard library's `IpAddr` reads the address; the prefix and port are one number each.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::format::{AgentBaseline, BaselineSpec, BaselineStatus, FileAccess};

/// What the kernel does with one category of an agent's actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforceMode {
    /// Not checked.
    #[default]
    Off,
    /// Checked: what the baseline does not allow runs, and is reported as "would block".
    Audit,
    /// Checked: what the baseline does not allow is denied (network: `EPERM`) and reported
    /// as "blocked".
    Enforce,
}

impl EnforceMode {
    pub fn name(self) -> &'static str {
        match self {
            EnforceMode::Off => "off",
            EnforceMode::Audit => "audit",
            EnforceMode::Enforce => "enforce",
        }
    }
}

/// Transport of a network rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetProtocol {
    /// TCP and UDP (what a learned `address:port` allows: the baseline does not say which).
    #[default]
    Any,
    Tcp,
    Udp,
}

/// One destination the agent may reach.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetAllow {
    #[serde(default)]
    pub protocol: NetProtocol,
    /// An address (`127.0.0.1`, `::1`) or a prefix (`10.0.0.0/8`, `fd00::/8`).
    pub address: String,
    /// 0: any port.
    #[serde(default)]
    pub port: u16,
}

impl NetAllow {
    /// The address and its prefix length (32 or 128 for a single address).
    pub fn prefix(&self) -> Result<(IpAddr, u8), String> {
        let (addr, bits) = match self.address.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (self.address.as_str(), None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("\"{}\" is not an IP address or prefix", self.address))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("\"{}\": prefix length out of range", self.address))?,
        };
        Ok((addr, bits))
    }
}

/// What the policy allows, per category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Allowed {
    /// Destinations (from `egress.addresses`).
    pub network: BTreeSet<NetAllow>,
    /// DNS names whose answers the agent may reach (from `egress.names`). Not enforced yet:
    /// docs/enforcement.md says how they will be.
    pub names: BTreeSet<String>,
    /// Executables the agent may run (from `executables`). Interpreters among them
    /// (`super::interpreters`) only with inline code or a script of `scripts`.
    pub executables: BTreeSet<String>,
    /// Scripts an interpreter may be given (from the learned arguments of interpreters).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub scripts: BTreeSet<String>,
    /// Sensitive files the agent may read (from `data.files` of a secret class).
    pub files: BTreeSet<String>,
}

/// The `enforcement` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enforcement {
    /// Bumped by every promotion; events name it ("denied by baseline KEY rev 3").
    pub revision: u32,
    #[serde(default)]
    pub network: EnforceMode,
    #[serde(default)]
    pub exec: EnforceMode,
    #[serde(default)]
    pub files: EnforceMode,
    #[serde(default)]
    pub allow: Allowed,
}

/// The allow-lists a spec's learned entries stand for.
pub fn derive_allowed(spec: &BaselineSpec) -> Allowed {
    let network = spec
        .egress
        .addresses
        .iter()
        .filter_map(|entry| {
            // `a.b.c.d:port` or `[v6]:port`; `unix:` paths are not network destinations.
            let (addr, port) = entry.rsplit_once(':')?;
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            addr.parse::<IpAddr>().ok()?;
            Some(NetAllow {
                protocol: NetProtocol::Any,
                address: addr.to_string(),
                port: port.parse().ok()?,
            })
        })
        .collect();
    let files = spec
        .data
        .files
        .iter()
        .filter(|(_, file)| {
            file.class.starts_with("secret") && file.access.contains(&FileAccess::Read)
        })
        .map(|(path, _)| path.clone())
        .collect();
    Allowed {
        network,
        names: spec.egress.names.clone(),
        executables: spec.executables.keys().cloned().collect(),
        scripts: super::interpreters::learned_scripts(&spec.executables),
        files,
    }
}

/// The modes `promote` was asked for (`None`: keep what the document says, `off` if nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromoteRequest {
    pub network: Option<EnforceMode>,
    pub exec: Option<EnforceMode>,
    pub files: Option<EnforceMode>,
}

/// Why a baseline cannot become a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromoteRefusal {
    #[error("baseline of {agent} is {status}: {why}; learn again until it is complete")]
    NotComplete {
        agent: String,
        status: &'static str,
        why: String,
    },
    #[error("baseline of {agent} holds evidence of an open incident ({incidents}): what it learned includes an attack, so it cannot be a policy; investigate, then learn again from a clean period")]
    OpenIncident { agent: String, incidents: String },
    #[error("nothing to promote: say at least one of --network, --exec, --files")]
    NothingAsked,
    #[error("enforcement.allow.network: {0}")]
    BadRule(String),
}

/// Turns `baseline` into the next revision of its policy with the modes `request` asks for.
pub fn promote(
    baseline: &AgentBaseline,
    request: PromoteRequest,
) -> Result<AgentBaseline, PromoteRefusal> {
    if request == PromoteRequest::default() {
        return Err(PromoteRefusal::NothingAsked);
    }
    let agent = baseline.metadata.agent.clone();
    match baseline.metadata.status {
        BaselineStatus::Complete => {}
        BaselineStatus::Learning => {
            return Err(PromoteRefusal::NotComplete {
                agent,
                status: "still learning",
                why: "its learning period has not ended".into(),
            })
        }
        BaselineStatus::Partial => {
            let loss = &baseline.metadata.loss;
            let mut why = Vec::new();
            if loss.dropped_events > 0 {
                why.push(format!(
                    "{} events dropped while learning",
                    loss.dropped_events
                ));
            }
            if loss.gap_bytes > 0 {
                why.push(format!(
                    "{} payload bytes lost while learning",
                    loss.gap_bytes
                ));
            }
            if baseline.metadata.truncated {
                why.push("the entry limit was reached".into());
            }
            if why.is_empty() {
                why.push("events were lost while learning".into());
            }
            return Err(PromoteRefusal::NotComplete {
                agent,
                status: "partial",
                why: why.join(", "),
            });
        }
    }
    if !baseline.metadata.incidents.is_empty() {
        return Err(PromoteRefusal::OpenIncident {
            agent,
            incidents: baseline.metadata.incidents.join("; "),
        });
    }
    let mut out = baseline.clone();
    let previous = baseline.enforcement.clone();
    let allow = match &previous {
        // A policy promoted before keeps its allow-lists (they may have been edited).
        Some(previous) => previous.allow.clone(),
        None => derive_allowed(&baseline.spec),
    };
    for rule in &allow.network {
        rule.prefix().map_err(PromoteRefusal::BadRule)?;
    }
    let before = previous.clone().unwrap_or_default();
    out.enforcement = Some(Enforcement {
        revision: before.revision.saturating_add(1),
        network: request.network.unwrap_or(before.network),
        exec: request.exec.unwrap_or(before.exec),
        files: request.files.unwrap_or(before.files),
        allow,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(address: &str) -> NetAllow {
        NetAllow {
            protocol: NetProtocol::Any,
            address: address.into(),
            port: 0,
        }
    }

    #[test]
    fn rules_read_addresses_and_prefixes_or_say_why_not() {
        assert_eq!(
            rule("127.0.0.1").prefix().unwrap(),
            ("127.0.0.1".parse().unwrap(), 32)
        );
        assert_eq!(
            rule("10.0.0.0/8").prefix().unwrap(),
            ("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(
            rule("[::1]").prefix().unwrap(),
            ("::1".parse().unwrap(), 128)
        );
        assert_eq!(
            rule("fd00::/8").prefix().unwrap(),
            ("fd00::".parse().unwrap(), 8)
        );
        for bad in ["example.com", "10.0.0.0/33", "::/129", "1.2.3.4/x", ""] {
            assert!(rule(bad).prefix().is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_lists_come_from_the_learned_entries() {
        let mut spec = BaselineSpec::default();
        for address in ["127.0.0.1:5432", "[::1]:8443", "unix:/run/x.sock"] {
            spec.egress.addresses.insert(address.into());
        }
        spec.egress.names.insert("api.openai.com".into());
        spec.executables
            .insert("/usr/bin/psql".into(), BTreeSet::from([vec!["-c".into()]]));
        for (path, class, access) in [
            ("/home/a/.ssh/id_rsa", "secret/ssh_key", FileAccess::Read),
            ("/etc/hosts", "system", FileAccess::Read),
            ("/tmp/token", "secret/token", FileAccess::Write),
        ] {
            spec.data.files.insert(
                path.into(),
                super::super::format::FileBaseline {
                    class: class.into(),
                    sensitivity: "high".into(),
                    access: BTreeSet::from([access]),
                },
            );
        }
        let allowed = derive_allowed(&spec);
        let network: Vec<(String, u16)> = allowed
            .network
            .iter()
            .map(|r| (r.address.clone(), r.port))
            .collect();
        assert_eq!(
            network,
            vec![("127.0.0.1".into(), 5432), ("::1".into(), 8443)]
        );
        assert!(allowed
            .network
            .iter()
            .all(|r| r.protocol == NetProtocol::Any));
        assert_eq!(
            allowed.names,
            BTreeSet::from(["api.openai.com".to_string()])
        );
        assert_eq!(
            allowed.executables,
            BTreeSet::from(["/usr/bin/psql".to_string()])
        );
        // Sensitive files read; not system files, not secrets only written.
        assert_eq!(
            allowed.files,
            BTreeSet::from(["/home/a/.ssh/id_rsa".to_string()])
        );
    }

    #[test]
    fn promote_needs_a_mode_and_keeps_what_is_not_asked() {
        let mut baseline = AgentBaseline::from_yaml(
            "apiVersion: agentscope.dev/v1\nkind: AgentBaseline\nmetadata:\n  agent: host:a\n  \
             status: complete\n  learningPeriodSeconds: 1\nspec: {}\n",
            "test",
        )
        .unwrap();
        assert_eq!(
            promote(&baseline, PromoteRequest::default()).unwrap_err(),
            PromoteRefusal::NothingAsked
        );
        let first = promote(
            &baseline,
            PromoteRequest {
                exec: Some(EnforceMode::Audit),
                ..Default::default()
            },
        )
        .unwrap();
        let policy = first.enforcement.clone().unwrap();
        assert_eq!(
            (policy.revision, policy.network, policy.exec, policy.files),
            (1, EnforceMode::Off, EnforceMode::Audit, EnforceMode::Off)
        );
        let second = promote(
            &first,
            PromoteRequest {
                network: Some(EnforceMode::Enforce),
                ..Default::default()
            },
        )
        .unwrap()
        .enforcement
        .unwrap();
        assert_eq!(
            (second.revision, second.network, second.exec),
            (2, EnforceMode::Enforce, EnforceMode::Audit)
        );
        // A rule edited by hand into something unreadable is refused, not half-applied.
        baseline.enforcement = Some(Enforcement {
            allow: Allowed {
                network: BTreeSet::from([rule("not-an-address")]),
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(matches!(
            promote(
                &baseline,
                PromoteRequest {
                    network: Some(EnforceMode::Audit),
                    ..Default::default()
                }
            ),
            Err(PromoteRefusal::BadRule(_))
        ));
    }
}
