//! A baseline without an incident's evidence: what `b` in the console exports for an agent
//! that was attacked, so the exfiltration endpoint, the drop box's address and the tool the
//! injected instruction steered do not become approved behaviour.
//!
//! An entry is excluded when only the evidence stands for it: the observations the incident
//! rests on give entries ([`items_of`]), and those that any other observation of the agent
//! also gives (the model every call used, the tools it was offered) stay. The connection
//! under an exfiltration request (its connect, DNS query and TLS hello) is not evidence
//! itself, but it goes where the request went: the egress entries of a host the evidence
//! names are excluded too, unless something other than such plumbing went there.

use crate::reconstruct::{Observation, ObservationKind};

use super::format::{AgentBaseline, BaselineSpec, Item};
use super::items::items_of;

/// Entries left out of an exported baseline, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// Why, for the document's reader (`evidence of inc-1 (critical): …`).
    pub reason: String,
    pub items: Vec<Item>,
}

impl Exclusion {
    /// The entries only `evidence` stands for, of all the agent's observations (`evidence`
    /// and `others`).
    pub fn of_evidence<'a>(
        reason: String,
        evidence: impl IntoIterator<Item = &'a Observation>,
        others: impl IntoIterator<Item = &'a Observation>,
    ) -> Self {
        let mut candidates: Vec<Item> = evidence.into_iter().flat_map(items_of).collect();
        let hosts: Vec<String> = candidates.iter().filter_map(egress_host).collect();
        for host in &hosts {
            candidates.push(Item::EgressAddress(host.clone()));
            candidates.push(Item::EgressName(host.clone()));
        }
        let mut kept: Vec<Item> = Vec::new();
        for observation in others {
            let plumbing = matches!(
                observation.kind,
                ObservationKind::Connect { .. }
                    | ObservationKind::Dns { .. }
                    | ObservationKind::TlsHello { .. }
            );
            kept.extend(items_of(observation).into_iter().filter(|item| {
                !(plumbing && egress_host(item).is_some_and(|h| hosts.contains(&h)))
            }));
        }
        let mut items: Vec<Item> = Vec::new();
        for item in candidates {
            if !kept.contains(&item) && !items.contains(&item) {
                items.push(item);
            }
        }
        Self { reason, items }
    }

    /// Only the excluded entries `baseline` holds (what leaving them out changes).
    pub fn within(&self, baseline: &AgentBaseline) -> Self {
        let present = baseline.spec.items();
        Self {
            reason: self.reason.clone(),
            items: self
                .items
                .iter()
                .filter(|item| present.contains(item))
                .cloned()
                .collect(),
        }
    }

    /// `baseline` without the excluded entries.
    pub fn apply(&self, baseline: &AgentBaseline) -> AgentBaseline {
        let mut spec = BaselineSpec::default();
        for item in baseline.spec.items() {
            if !self.items.contains(&item) {
                item.insert_into(&mut spec);
            }
        }
        AgentBaseline {
            spec,
            ..baseline.clone()
        }
    }

    /// The exclusion as YAML comment lines, to head the exported document.
    pub fn comment(&self) -> String {
        let mut out = format!("# Excluded: {}\n", self.reason.replace('\n', " "));
        if self.items.is_empty() {
            out.push_str("#   (no entry only the evidence stands for)\n");
        }
        for item in &self.items {
            out.push_str(&format!(
                "#   {}: {}\n",
                item.section(),
                item.describe().replace('\n', " ")
            ));
        }
        out
    }
}

/// The host (`host` or `host:port`) an egress or endpoint entry goes to.
fn egress_host(item: &Item) -> Option<String> {
    match item {
        Item::Endpoint(endpoint) => Some(endpoint.host.clone()),
        Item::EgressAddress(host) | Item::EgressName(host) => Some(host.clone()),
        _ => None,
    }
}
