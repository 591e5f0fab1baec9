//! An LLM call into the model: the model node and its token counts, the agent's AI-BOM, the
//! tool calls it requested (opened for attribution) and the results that close earlier ones.

use crate::reconstruct::llm::LlmCall;
use crate::reconstruct::Observation;

use super::graph::{self, EdgeKind, NodeKind};
use super::{agents, Model, ToolCallRecord};

impl Model {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_llm(
        &mut self,
        key: &str,
        observation: &Observation,
        call: &LlmCall,
        host: Option<&str>,
        port: Option<u16>,
        user_agent: Option<&str>,
        end_ts_ns: u64,
    ) {
        let ts = observation.ts_ns;
        self.llm_calls += 1;
        let agent_node = format!("agent:{key}");
        let model_name = call
            .response_model
            .clone()
            .or_else(|| call.request_model.clone())
            .unwrap_or_else(|| "unknown".into());
        let model_node = self.graph.node(
            NodeKind::Model,
            format!("model:{}/{}", call.provider, model_name),
            &model_name,
            ts,
        );
        self.graph.set_attribute(
            &model_node,
            "gen_ai.provider.name",
            serde_json::json!(call.provider),
        );
        if let Some(host) = host {
            let endpoint = match port {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            self.graph
                .set_attribute(&model_node, "server.address", serde_json::json!(endpoint));
        }
        if let Some(edge) = self.graph.edge(
            &agent_node,
            &model_node,
            EdgeKind::InvokesModel,
            ts,
            &observation.events,
        ) {
            let tokens = |edge: &mut graph::Edge, name: &str, add: Option<u64>| {
                let total = edge
                    .attributes
                    .get(name)
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
                    + add.unwrap_or(0);
                edge.attributes
                    .insert(name.into(), serde_json::json!(total));
            };
            tokens(edge, "gen_ai.usage.input_tokens", call.usage.input_tokens);
            tokens(edge, "gen_ai.usage.output_tokens", call.usage.output_tokens);
            if let Some(protocol) = observation.protocol {
                edge.note_protocol(protocol.as_str());
            }
        }
        if let Some(agent) = self.agents.get_mut(key) {
            agent.last_seen_ns = agent.last_seen_ns.max(ts);
            agent.llm_calls += 1;
            agent.input_tokens += call.usage.input_tokens.unwrap_or(0);
            agent.output_tokens += call.usage.output_tokens.unwrap_or(0);
            let models = agent
                .aibom
                .providers
                .entry(call.provider.clone())
                .or_default();
            models.extend(call.request_model.iter().cloned());
            models.extend(call.response_model.iter().cloned());
            agent.aibom.apis.insert(call.api);
            for tool in &call.tools_offered {
                agent
                    .aibom
                    .tools_offered
                    .insert(tool.name.clone(), tool.description.clone());
            }
            if let Some(ua) = user_agent {
                agent.aibom.frameworks.extend(
                    agents::frameworks_in_user_agent(ua)
                        .iter()
                        .map(|s| s.to_string()),
                );
            }
            agent.tool_calls += call.tool_calls.len() as u64;
        }
        // Results flowing back close the calls they answer.
        for result in &call.tool_results {
            self.attribution
                .close_call(key, observation.actor.pid, result, ts);
        }
        for tool_call in &call.tool_calls {
            let tool_node = self.graph.node(
                NodeKind::Tool,
                format!("tool:{key}:{}", tool_call.name),
                &tool_call.name,
                end_ts_ns,
            );
            self.graph.edge(
                &agent_node,
                &tool_node,
                EdgeKind::CallsTool,
                end_ts_ns,
                &observation.events,
            );
            let record = ToolCallRecord::new(
                key.to_string(),
                observation.actor.pid,
                tool_call,
                call.provider.clone(),
                call.request_model
                    .clone()
                    .or_else(|| call.response_model.clone()),
                end_ts_ns,
                tool_node,
            );
            let links = self.attribution.open_call(record);
            self.add_links(links);
        }
    }
}
