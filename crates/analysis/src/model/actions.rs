//! How each kind of observation appears in the graph, and what its text looks like to
//! tool-call argument matching.

use serde_json::json;

use crate::process_table::ProcessTable;
use crate::reconstruct::file_access::FileCategory;
use crate::reconstruct::http::{HttpExchange, WireProtocol};
use crate::reconstruct::mcp::McpDetail;
use crate::reconstruct::postgres::SqlStatement;
use crate::reconstruct::{Observation, ObservationKind, Role};

use super::agents::basename;
use super::graph::{EdgeKind, NodeKind};

/// The graph side of an action.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static str,
    pub node_kind: NodeKind,
    pub node_id: String,
    pub label: String,
    pub edge_kind: EdgeKind,
    pub summary: String,
    pub descriptors: Vec<String>,
    /// An MCP client's `tools/call` (name, arguments).
    pub mcp_tool: Option<(String, serde_json::Value)>,
    /// An MCP server handling `tools/call` (name, arguments).
    pub mcp_served: Option<(String, serde_json::Value)>,
    /// The command node of the acting process, used when it is not the agent itself.
    pub via_command: Option<(String, String)>,
    pub attributes: Vec<(String, serde_json::Value)>,
    /// Further nodes the same action touched (a join reads several tables), id and label.
    pub more_nodes: Vec<(String, String)>,
    /// A retrieval (RAG) source for the agent's AI-BOM.
    pub retrieval_source: Option<String>,
    /// The wire protocol that carried the action (HTTP-family calls), for the edge's
    /// `protocol` attribute.
    pub protocol: Option<WireProtocol>,
}

impl Target {
    fn new(
        kind: &'static str,
        node_kind: NodeKind,
        node_id: String,
        label: String,
        edge_kind: EdgeKind,
    ) -> Self {
        Self {
            kind,
            node_kind,
            node_id,
            label,
            edge_kind,
            summary: String::new(),
            descriptors: Vec::new(),
            mcp_tool: None,
            mcp_served: None,
            via_command: None,
            attributes: Vec::new(),
            more_nodes: Vec::new(),
            retrieval_source: None,
            protocol: None,
        }
    }
}

fn command_of(processes: &ProcessTable, pid: u32, comm: &str) -> (String, String) {
    let exe = processes
        .get(pid)
        .and_then(|p| p.exe.clone())
        .unwrap_or_else(|| comm.to_string());
    (format!("command:{exe}"), basename(&exe).to_string())
}

/// Graph id of an MCP server: its URL (HTTP) or command line (stdio).
pub fn mcp_server_node(endpoint: &str) -> String {
    format!("mcp_server:{endpoint}")
}

/// Replaces path segments that are identifiers (numbers, UUIDs, long hex or mixed tokens)
/// with `{id}`, so `/orders/42` and `/orders/43` are one API.
pub fn route_template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.split('/')
        .map(|segment| {
            let digits = segment.chars().filter(char::is_ascii_digit).count();
            let is_number = !segment.is_empty() && digits == segment.len();
            let is_hex =
                segment.len() >= 16 && segment.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            let is_token = segment.len() >= 20 && digits >= 4;
            if is_number || is_hex || is_token {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn url_of(exchange: &HttpExchange) -> String {
    let scheme = if exchange.tls { "https" } else { "http" };
    let host = exchange.host.as_deref().unwrap_or("unknown");
    let host = match (exchange.port, host.contains(':')) {
        (Some(port), false) if !matches!((scheme, port), ("https", 443) | ("http", 80)) => {
            format!("{host}:{port}")
        }
        _ => host.to_string(),
    };
    format!("{scheme}://{host}{}", exchange.request.target)
}

fn body_text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(8192)]).into_owned()
}

/// File opens of runtime noise (libraries, locale, /proc/self) and served HTTP requests (the
/// peer's actions; the server side matters for MCP): never actions, whatever else they hold.
/// [`describe`] returns `None` for them; the baseline asks this of every observation not yet
/// attributed, without building a target.
pub fn never_an_action(kind: &ObservationKind) -> bool {
    match kind {
        ObservationKind::FileOpen { class, .. } => {
            matches!(class.category, FileCategory::RuntimeNoise)
        }
        ObservationKind::Http { role, .. } => *role == Role::Server,
        _ => false,
    }
}

/// The graph's labels of the tables a statement names: `database.table` (the database
/// `postgres` when the session did not say).
pub fn table_labels(statement: &SqlStatement) -> impl Iterator<Item = String> + '_ {
    let database = statement.database.as_deref().unwrap_or("postgres");
    statement
        .tables
        .iter()
        .map(move |table| format!("{database}.{table}"))
}

/// The graph side of an observation; `None` for observations that are not actions.
pub fn describe(observation: &Observation, processes: &ProcessTable) -> Option<Target> {
    let actor = &observation.actor;
    let mut target = match &observation.kind {
        ObservationKind::Exec { filename, argv } => {
            let mut t = Target::new(
                "exec",
                NodeKind::Command,
                format!("command:{filename}"),
                basename(filename).to_string(),
                EdgeKind::Executes,
            );
            let line = argv.join(" ");
            t.summary = format!("exec {line}");
            t.descriptors = vec![format!("{filename} {line}")];
            // The exec'd process is its own command: the edge comes from its parent.
            t.via_command = Some(command_of(processes, actor.ppid, &actor.comm))
                .filter(|(id, _)| *id != format!("command:{filename}"));
            return Some(t);
        }
        ObservationKind::FileOpen { path, class, write } => {
            if never_an_action(&observation.kind) {
                return None;
            }
            let mut t = Target::new(
                "file",
                NodeKind::Data,
                format!("data:file:{path}"),
                path.clone(),
                EdgeKind::Accesses,
            );
            t.summary = format!("{} {path}", if *write { "write" } else { "open" });
            t.descriptors = vec![path.clone()];
            t.attributes = vec![
                ("data.kind".into(), json!("file")),
                (
                    "class".into(),
                    serde_json::to_value(class).unwrap_or_default(),
                ),
            ];
            t
        }
        ObservationKind::Http { exchange, .. } => {
            if never_an_action(&observation.kind) {
                return None;
            }
            let route = route_template(exchange.request.path());
            let host = exchange.host.clone().unwrap_or_else(|| "unknown".into());
            let method = exchange.request.method.clone();
            let mut t = Target::new(
                "http",
                NodeKind::Api,
                format!("api:{method} {host}{route}"),
                format!("{method} {host}{route}"),
                EdgeKind::CallsApi,
            );
            let url = url_of(exchange);
            t.summary = format!(
                "{method} {url} → {}",
                exchange
                    .response
                    .as_ref()
                    .map_or("no response".into(), |r| r.status.to_string())
            );
            t.descriptors = vec![format!("{method} {url}"), body_text(&exchange.request.body)];
            t.attributes = vec![
                ("server.address".into(), json!(host)),
                ("http.request.method".into(), json!(method)),
                ("url.template".into(), json!(route)),
            ];
            t
        }
        ObservationKind::Sql { statement, peer } => {
            let database = statement
                .database
                .clone()
                .unwrap_or_else(|| "postgres".into());
            let server = peer
                .as_ref()
                .map_or("unknown".into(), |p| format!("{}:{}", p.addr, p.port));
            let mut nodes: Vec<(String, String)> = table_labels(statement)
                .map(|label| (format!("data:table:{label}"), label))
                .collect();
            if nodes.is_empty() {
                nodes.push((
                    format!("data:database:{server}/{database}"),
                    format!("database {database}"),
                ));
            }
            let (id, label) = nodes.remove(0);
            let mut t = Target::new("sql", NodeKind::Data, id, label, EdgeKind::Accesses);
            t.more_nodes = nodes;
            // The first 200 characters, sliced rather than collected one `char` at a time.
            let text = statement
                .text
                .char_indices()
                .nth(200)
                .map_or(statement.text.as_str(), |(end, _)| &statement.text[..end]);
            t.summary = match &statement.error {
                Some(error) => format!("{text} → {error}"),
                None => format!(
                    "{text} → {} rows",
                    statement.rows.map_or("?".into(), |r| r.to_string())
                ),
            };
            t.descriptors = vec![statement.text.clone()];
            t.attributes = vec![
                ("data.kind".into(), json!("table")),
                ("db.system.name".into(), json!("postgresql")),
                ("db.namespace".into(), json!(database)),
                ("server.address".into(), json!(server)),
            ];
            if statement.vector_search {
                t.retrieval_source = Some(format!("pgvector:{}", t.label));
            }
            t
        }
        ObservationKind::Redis { command, peer } => {
            let server = peer
                .as_ref()
                .map_or("unknown".into(), |p| format!("{}:{}", p.addr, p.port));
            let mut nodes: Vec<(String, String)> = command
                .keys
                .iter()
                .take(16)
                .map(|key| (format!("data:redis:{server}/{key}"), format!("redis {key}")))
                .collect();
            if nodes.is_empty() {
                nodes.push((format!("data:redis:{server}"), format!("redis {server}")));
            }
            let (id, label) = nodes.remove(0);
            let mut t = Target::new("redis", NodeKind::Data, id, label, EdgeKind::Accesses);
            t.more_nodes = nodes;
            t.summary = format!("{} {}", command.command, command.keys.join(" "));
            t.descriptors = vec![t.summary.clone()];
            t.attributes = vec![
                ("data.kind".into(), json!("redis")),
                ("db.system.name".into(), json!("redis")),
            ];
            if command.vector_search {
                t.retrieval_source = Some(format!("redis:{server}"));
            }
            t
        }
        ObservationKind::ObjectStore { access } => {
            let service = serde_json::to_value(access.service).unwrap_or_default();
            let service = service.as_str().unwrap_or("object_store").to_string();
            let bucket = access.bucket.clone().unwrap_or_default();
            let key = access.key.clone().unwrap_or_default();
            let path = if key.is_empty() {
                bucket.clone()
            } else {
                format!("{bucket}/{key}")
            };
            let mut t = Target::new(
                "object_store",
                NodeKind::Data,
                format!("data:object:{service}/{path}"),
                format!("{service}://{path}"),
                EdgeKind::Accesses,
            );
            let operation = serde_json::to_value(access.operation).unwrap_or_default();
            t.summary = format!(
                "{} {service}://{path}",
                operation.as_str().unwrap_or("access")
            );
            t.descriptors = vec![path.clone(), t.summary.clone()];
            t.attributes = vec![("data.kind".into(), json!("object"))];
            t
        }
        ObservationKind::Retrieval { call } => {
            let system = serde_json::to_value(call.system).unwrap_or_default();
            let system = system.as_str().unwrap_or("vector_db").to_string();
            let collection = call.collection.clone().unwrap_or_else(|| "default".into());
            let mut t = Target::new(
                "retrieval",
                NodeKind::Data,
                format!("data:vector:{system}/{collection}"),
                format!("{system} {collection}"),
                EdgeKind::Accesses,
            );
            let operation = serde_json::to_value(call.operation).unwrap_or_default();
            t.summary = format!(
                "{} {system}/{collection}",
                operation.as_str().unwrap_or("query")
            );
            t.descriptors = vec![collection.clone()];
            t.descriptors.extend(call.query_text.clone());
            t.attributes = vec![
                ("data.kind".into(), json!("vector_collection")),
                ("db.system.name".into(), json!(system)),
            ];
            // Over gRPC: the method and the latest call's status (OpenTelemetry's names).
            if let Some(method) = &call.grpc_method {
                t.attributes.push(("rpc.method".into(), json!(method)));
            }
            if let Some(status) = call.grpc_status {
                t.attributes
                    .push(("rpc.grpc.status_code".into(), json!(status)));
            }
            t.retrieval_source = Some(format!("{system}:{collection}"));
            t
        }
        ObservationKind::Mcp {
            exchange,
            role,
            endpoint,
            ..
        } => {
            let endpoint = endpoint.clone().unwrap_or_else(|| "unknown".into());
            let (what, descriptor, tool) = match &exchange.detail {
                McpDetail::ToolsCall(call) => {
                    let name = call.name.clone().unwrap_or_default();
                    let arguments = call.arguments.clone().unwrap_or(serde_json::Value::Null);
                    (
                        format!("tools/call {name} {arguments}"),
                        arguments.to_string(),
                        Some((name, arguments)),
                    )
                }
                McpDetail::ResourcesRead(read) => {
                    let uri = read.uri.clone().unwrap_or_default();
                    (format!("resources/read {uri}"), uri, None)
                }
                McpDetail::PromptsGet(prompt) => {
                    let name = prompt.name.clone().unwrap_or_default();
                    (format!("prompts/get {name}"), name, None)
                }
                _ => return None,
            };
            let mut t = Target::new(
                "mcp_call",
                NodeKind::McpServer,
                mcp_server_node(&endpoint),
                endpoint.clone(),
                EdgeKind::ConnectsMcp,
            );
            t.summary = format!("{what} → {endpoint}");
            t.descriptors = vec![descriptor];
            match role {
                Role::Client => t.mcp_tool = tool,
                Role::Server => {
                    t.mcp_served = tool.or(Some((String::new(), serde_json::Value::Null)))
                }
            }
            if *role == Role::Server && !matches!(exchange.detail, McpDetail::ToolsCall(_)) {
                return None;
            }
            // The client is the agent itself: no command in between.
            return Some(t);
        }
        ObservationKind::Enforce { decision }
            if decision.category == agentscope_event::enforcement::EnforceCategory::Files =>
        {
            // An open of a governed file the policy killed (or would have): the file, the
            // same node as the agent's reads of it.
            let path = decision.path.clone().unwrap_or_default();
            let mut t = Target::new(
                "enforce",
                NodeKind::Data,
                format!("data:file:{path}"),
                path.clone(),
                EdgeKind::Accesses,
            );
            t.summary = decision.describe();
            t.descriptors = vec![path];
            t.attributes = vec![
                ("data.kind".into(), json!("file")),
                (
                    "enforcement.action".into(),
                    serde_json::to_value(decision.action).unwrap_or_default(),
                ),
                ("enforcement.hook".into(), json!(decision.hook)),
                (
                    "enforcement.baseline".into(),
                    json!(decision.baseline.clone().unwrap_or_default()),
                ),
                ("enforcement.revision".into(), json!(decision.revision)),
            ];
            t
        }
        ObservationKind::Enforce { decision } if decision.path.is_some() => {
            // An exec the policy killed (or would have): the command it was to run.
            let path = decision.path.clone().unwrap_or_default();
            let mut t = Target::new(
                "enforce",
                NodeKind::Command,
                format!("command:{path}"),
                basename(&path).to_string(),
                EdgeKind::Executes,
            );
            t.summary = decision.describe();
            t.descriptors = vec![path];
            t.attributes = vec![
                (
                    "enforcement.action".into(),
                    serde_json::to_value(decision.action).unwrap_or_default(),
                ),
                ("enforcement.hook".into(), json!(decision.hook)),
                (
                    "enforcement.baseline".into(),
                    json!(decision.baseline.clone().unwrap_or_default()),
                ),
                ("enforcement.revision".into(), json!(decision.revision)),
            ];
            t
        }
        ObservationKind::Enforce { decision } => {
            // The destination as an API node of its own (`net:` rather than `api:`: no request
            // was made), so the graph shows what the policy stopped and the tool call linked
            // to it.
            let destination = decision.destination();
            let mut t = Target::new(
                "enforce",
                NodeKind::Api,
                format!("net:{}:{destination}", decision.protocol),
                destination.clone(),
                EdgeKind::CallsApi,
            );
            t.summary = decision.describe();
            // Matched against URL arguments' authority (attribution's `enforce` rule).
            t.descriptors = vec![destination];
            t.attributes = vec![
                (
                    "enforcement.action".into(),
                    serde_json::to_value(decision.action).unwrap_or_default(),
                ),
                ("enforcement.hook".into(), json!(decision.hook)),
                ("network.transport".into(), json!(decision.protocol)),
            ];
            if let Some(baseline) = &decision.baseline {
                t.attributes
                    .push(("enforcement.baseline".into(), json!(baseline)));
            }
            t.attributes
                .push(("enforcement.revision".into(), json!(decision.revision)));
            t
        }
        _ => return None,
    };
    target.via_command = Some(command_of(processes, actor.pid, &actor.comm));
    target.protocol = observation.protocol;
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_hide_identifiers() {
        assert_eq!(route_template("/api/orders/42?x=1"), "/api/orders/{id}");
        assert_eq!(
            route_template("/v1/users/3f2b9c1e-8d4a-4b1e-9c2f-1a2b3c4d5e6f/profile"),
            "/v1/users/{id}/profile"
        );
        assert_eq!(
            route_template("/v1/chat/completions"),
            "/v1/chat/completions"
        );
    }
}
