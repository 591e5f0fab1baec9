//! An MCP client's exchange into the model: the server node, the tools it provides, and the
//! agent's AI-BOM entry for the server.

use crate::reconstruct::mcp::{McpDetail, McpExchange, McpTransport};
use crate::reconstruct::Observation;

use super::graph::{EdgeKind, NodeKind};
use super::{actions, agents, Model};

impl Model {
    /// An MCP client's exchange: the server, its tools and the AI-BOM.
    pub(super) fn apply_mcp_client(
        &mut self,
        key: &str,
        observation: &Observation,
        exchange: &McpExchange,
        transport: McpTransport,
        endpoint: Option<&str>,
    ) {
        let ts = observation.ts_ns;
        let endpoint = endpoint.unwrap_or("unknown").to_string();
        let agent_node = format!("agent:{key}");
        let server_node = actions::mcp_server_node(&endpoint);
        let transport_name = match transport {
            McpTransport::Stdio => "pipe",
            McpTransport::Http => "tcp",
        };
        let entry_name = {
            let agent = self.agents.get_mut(key);
            let Some(agent) = agent else { return };
            let entry = agent
                .aibom
                .mcp_servers
                .entry(endpoint.clone())
                .or_insert_with(|| agents::McpServerEntry {
                    name: endpoint.clone(),
                    version: None,
                    transport: transport_name.into(),
                    endpoint: Some(endpoint.clone()),
                    tools: Default::default(),
                });
            match &exchange.detail {
                McpDetail::Initialize(init) => {
                    if let Some(server) = &init.server {
                        if let Some(name) = &server.name {
                            entry.name = name.clone();
                        }
                        entry.version = server.version.clone().or(entry.version.take());
                    }
                }
                McpDetail::ToolsList(list) => {
                    for tool in &list.tools {
                        entry
                            .tools
                            .insert(tool.name.clone(), tool.description.clone());
                    }
                }
                _ => {}
            }
            (entry.name.clone(), entry.version.clone())
        };
        let node = self
            .graph
            .node(NodeKind::McpServer, server_node.clone(), &entry_name.0, ts);
        self.graph
            .set_attribute(&node, "name", serde_json::json!(entry_name.0));
        self.graph.set_attribute(
            &node,
            "network.transport",
            serde_json::json!(transport_name),
        );
        if let Some(version) = entry_name.1 {
            self.graph
                .set_attribute(&node, "version", serde_json::json!(version));
        }
        if let (Some(edge), Some(protocol)) = (
            self.graph.edge(
                &agent_node,
                &node,
                EdgeKind::ConnectsMcp,
                ts,
                &observation.events,
            ),
            observation.protocol,
        ) {
            edge.note_protocol(protocol.as_str());
        }
        if let McpDetail::ToolsList(list) = &exchange.detail {
            for tool in &list.tools {
                let tool_node = self.graph.node(
                    NodeKind::Tool,
                    format!("tool:{key}:{}", tool.name),
                    &tool.name,
                    ts,
                );
                self.graph
                    .set_attribute(&tool_node, "mcp.server", serde_json::json!(endpoint));
                if let Some(description) = &tool.description {
                    self.graph.set_attribute(
                        &tool_node,
                        "description",
                        serde_json::json!(description),
                    );
                }
                self.graph.edge(
                    &node,
                    &tool_node,
                    EdgeKind::Provides,
                    ts,
                    &observation.events,
                );
            }
        }
    }
}
