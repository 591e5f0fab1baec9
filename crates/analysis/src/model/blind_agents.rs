//! TLS the collector cannot read: every ClientHello goes into the coverage table, and a
//! process talking TLS to an LLM provider's API host without visible plaintext becomes an
//! agent whose AI-BOM and graph say "plaintext not visible: <why>".

use crate::process_table::ProcessTable;
use crate::reconstruct::{Observation, ObservationKind};

use super::graph::{EdgeKind, NodeKind};
use super::{agents, tls_coverage, IdentityLookup, Model};

impl Model {
    /// A ClientHello: the process into the TLS coverage table, and a process that talks TLS
    /// to an LLM provider's API host without visible plaintext made an agent all the same.
    pub(super) fn apply_tls_hello(
        &mut self,
        observation: &Observation,
        processes: &ProcessTable,
        identity: &mut dyn IdentityLookup,
    ) {
        let ObservationKind::TlsHello {
            server_name,
            alpn,
            peer,
            provider,
            coverage,
        } = &observation.kind
        else {
            return;
        };
        let pid = observation.actor.pid;
        let info = processes.get(pid);
        let program = agents::program_of(
            info.and_then(|p| p.exe.as_deref()),
            info.map(|p| p.argv.as_slice()).unwrap_or_default(),
            &observation.actor.comm,
        );
        let peer_name = server_name
            .clone()
            .or_else(|| peer.as_ref().map(|p| format!("{}:{}", p.addr, p.port)));
        self.tls_coverage.hello(tls_coverage::HelloSeen {
            pid,
            program,
            ts_ns: observation.ts_ns,
            peer: peer_name,
            alpn,
            provider: provider.as_deref(),
            coverage: coverage.as_ref(),
        });
        let blind = match coverage {
            Some(agentscope_event::TlsCoverage::NotVisible { reason }) => Some(reason),
            _ => None,
        };
        // A process that talks TLS to an LLM provider's API host whose plaintext cannot
        // be read is an agent all the same: the blind spot is reported, not hidden.
        let key = match (provider, server_name, blind) {
            (Some(provider), Some(host), Some(reason)) => {
                let key = self.discover_agent(observation, processes, identity);
                self.apply_blind_llm(&key, observation, provider, host, peer, reason);
                Some(key)
            }
            _ => self
                .agent_pids
                .key_at(pid, observation.ts_ns)
                .map(str::to_string),
        };
        if let Some(key) = key {
            if let Some(entry) = self.tls_coverage.get_mut(pid) {
                entry.agent = Some(key);
            }
        }
    }

    /// An agent known from a TLS server name only: the provider in its AI-BOM, an edge to the
    /// API host, and why its plaintext is not visible.
    pub(super) fn apply_blind_llm(
        &mut self,
        key: &str,
        observation: &Observation,
        provider: &str,
        host: &str,
        peer: &Option<crate::reconstruct::Peer>,
        reason: &agentscope_event::NotVisibleReason,
    ) {
        let ts = observation.ts_ns;
        let why = format!("plaintext not visible: {}", reason.describe());
        if let Some(agent) = self.agents.get_mut(key) {
            agent.last_seen_ns = agent.last_seen_ns.max(ts);
            agent
                .aibom
                .providers
                .entry(provider.to_string())
                .or_default();
            agent.plaintext_not_visible = Some(why.clone());
        }
        let agent_node = format!("agent:{key}");
        self.graph
            .set_attribute(&agent_node, "plaintext_not_visible", serde_json::json!(why));
        let endpoint = match peer {
            Some(peer) => format!("{host}:{}", peer.port),
            None => host.to_string(),
        };
        let api_node = self.graph.node(
            NodeKind::Api,
            format!("api:tls:{endpoint}"),
            &format!("{host} (TLS, plaintext not visible)"),
            ts,
        );
        self.graph.set_attribute(
            &api_node,
            "gen_ai.provider.name",
            serde_json::json!(provider),
        );
        self.graph
            .set_attribute(&api_node, "tls.server_name", serde_json::json!(host));
        self.graph.edge(
            &agent_node,
            &api_node,
            EdgeKind::CallsApi,
            ts,
            &observation.events,
        );
    }
}
