//! How a process becomes an agent: its key (independent of how the process was first seen),
//! its identity nodes, and the frameworks its module loads name.

use crate::process_table::ProcessTable;
use crate::reconstruct::{EventRange, Observation};

use super::graph::{EdgeKind, NodeKind};
use super::{
    agent_key, agents, ActorIdentity, Agent, AiBom, IdentityLookup, Model, MODULE_HINT_PIDS,
    PACKAGE_HINTS_PER_PID,
};

impl Model {
    /// Makes `pid` an agent (or another process of one); returns the agent key.
    pub(super) fn discover_agent(
        &mut self,
        observation: &Observation,
        processes: &ProcessTable,
        identity: &mut dyn IdentityLookup,
    ) -> String {
        let actor = &observation.actor;
        if let Some(key) = self.agent_pids.key_at(actor.pid, observation.ts_ns) {
            return key.to_string();
        }
        let info = processes.get(actor.pid);
        let exe = info.and_then(|p| p.exe.as_deref());
        let argv = info.map(|p| p.argv.as_slice()).unwrap_or_default();
        let program = agents::program_of(exe, argv, &actor.comm);
        let who = identity.lookup(actor.pid, actor.cgroup_id, actor.uid);
        // Not `program`: how the process was first seen must not change the key.
        let key = who.agent_key(&agent_key::program_key(exe, argv, &actor.comm));
        let ts = observation.ts_ns;
        let agent = self.agents.entry(key.clone()).or_insert_with(|| Agent {
            key: key.clone(),
            name: agents::display_name(&program),
            program: program.clone(),
            pids: Default::default(),
            identity: who.clone(),
            first_seen_ns: ts,
            last_seen_ns: ts,
            llm_calls: 0,
            tool_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            aibom: AiBom::default(),
            plaintext_not_visible: None,
            enforcement: Default::default(),
        });
        agent.add_pid(actor.pid);
        agent.identity = who.clone();
        if let Some(hints) = self.module_hints.remove(&actor.pid) {
            agent
                .aibom
                .frameworks
                .extend(hints.iter().map(|s| s.to_string()));
        }
        for package in self.package_hints.remove(&actor.pid).unwrap_or_default() {
            agent.aibom.add_package(&package);
        }
        let name = agent.name.clone();
        if info.is_some_and(|p| p.exited) {
            // Reported after the process exited (its connection closed at exit).
            self.agent_pids
                .insert_exited(actor.pid, key.clone(), observation.ts_ns);
        } else {
            self.agent_pids.insert(actor.pid, key.clone());
        }
        let node = self
            .graph
            .node(NodeKind::Agent, format!("agent:{key}"), &name, ts);
        self.graph
            .set_attribute(&node, "program", serde_json::json!(program));
        self.link_identity(&node, &who, observation.ts_ns, &observation.events);
        self.apply_known_policies(&key, actor, processes, observation.ts_ns);
        key
    }

    pub(super) fn link_identity(
        &mut self,
        agent_node: &str,
        who: &ActorIdentity,
        ts: u64,
        events: &[EventRange],
    ) {
        let user = match &who.user {
            Some(name) => format!("{name} (uid {})", who.uid),
            None => format!("uid {}", who.uid),
        };
        let mut identities = vec![(format!("identity:user:{}:{}", who.workload, who.uid), user)];
        if let Some(sa) = &who.service_account {
            identities.push((
                format!("identity:service_account:{sa}"),
                format!("serviceaccount {sa}"),
            ));
        }
        for role in &who.cloud_roles {
            identities.push((format!("identity:cloud_role:{role}"), role.clone()));
        }
        for (id, label) in identities {
            let node = self.graph.node(NodeKind::Identity, id, &label, ts);
            self.graph
                .edge(agent_node, &node, EdgeKind::RunsAs, ts, events);
        }
    }

    /// A module load whose path names an agent framework: into the agent's AI-BOM, or
    /// remembered for the pid until it becomes an agent (bounded: [`MODULE_HINT_PIDS`]).
    pub(super) fn note_framework_module(&mut self, pid: u32, path: &str, ts_ns: u64) {
        if let Some(framework) = agents::framework_in_module_path(path) {
            match self.agent_pids.key_at(pid, ts_ns).map(str::to_string) {
                Some(key) => {
                    if let Some(agent) = self.agents.get_mut(&key) {
                        agent.aibom.frameworks.insert(framework.to_string());
                    }
                }
                None if self.module_hints.len() < MODULE_HINT_PIDS
                    || self.module_hints.contains_key(&pid) =>
                {
                    let hints = self.module_hints.entry(pid).or_default();
                    if !hints.contains(&framework) {
                        hints.push(framework);
                    }
                }
                None => {}
            }
        }
    }

    /// A package a process loaded: into the AI-BOM of the agent it works for (its own or an
    /// ancestor's), or remembered for the pid until it becomes an agent (bounded like module
    /// hints: most programs import their SDK before their first model call).
    pub(super) fn note_package(
        &mut self,
        pid: u32,
        package: &agentscope_event::package::PackageFound,
        processes: &ProcessTable,
        ts_ns: u64,
    ) {
        let lineage = processes.lineage(pid);
        if let Some(agent) = self
            .agent_of(&lineage, ts_ns)
            .and_then(|key| self.agents.get_mut(&key))
        {
            agent.aibom.add_package(package);
            return;
        }
        if self.package_hints.len() < MODULE_HINT_PIDS || self.package_hints.contains_key(&pid) {
            let hints = self.package_hints.entry(pid).or_default();
            if hints.len() < PACKAGE_HINTS_PER_PID && !hints.contains(package) {
                hints.push(package.clone());
            }
        }
    }
}
