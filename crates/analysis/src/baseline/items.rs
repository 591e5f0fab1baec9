//! From an observation to the baseline entries it stands for. Learning adds these entries;
//! judging looks them up, so both see an observation the same way.
//!
//! What the graph already derives is reused: [`actions::describe`] decides which observations
//! are actions (runtime-noise files and served requests are not) and names SQL tables as the
//! graph does; [`actions::route_template`] collapses routes. Collapsing beyond that is in
//! [`super::collapse`].

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::model::actions;
use crate::model::ActorIdentity;
use crate::process_table::ProcessTable;
use crate::reconstruct::file_access::{FileCategory, FileClass};
use crate::reconstruct::mcp::{McpDetail, McpTransport};
use crate::reconstruct::{Observation, ObservationKind, Role};

use super::collapse;
use super::format::{ApiEndpoint, FileAccess, Item};

/// `describe` looks up the acting command in a process table; the baseline does not use that
/// part, so an empty table serves.
fn no_processes() -> &'static ProcessTable {
    static EMPTY: OnceLock<ProcessTable> = OnceLock::new();
    EMPTY.get_or_init(ProcessTable::default)
}

/// `host` or `host:port`, the port only when it is not the scheme's default.
fn host_with_port(host: &str, port: Option<u16>, tls: bool) -> String {
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !host.ends_with(']')
        && host.matches(':').count() == 1;
    match port {
        Some(port) if !has_port && !matches!((tls, port), (true, 443) | (false, 80)) => {
            if host.parse::<std::net::Ipv6Addr>().is_ok() {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        _ => host.to_string(),
    }
}

/// The DNS name in a `host[:port]`, if it is a name rather than an address.
fn host_name(host: &str) -> Option<String> {
    let bare = if host.starts_with('[') {
        return None;
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    if bare.is_empty() || bare.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(bare.trim_end_matches('.').to_ascii_lowercase())
}

/// A connection peer as `address:port` (`[v6]:port`), or `unix:PATH` for local sockets.
fn peer_address(addr: &str, port: u16) -> Option<String> {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Some(format!("{ip}:{port}")),
        Ok(IpAddr::V6(ip)) => Some(format!("[{ip}]:{port}")),
        Err(_) if !addr.is_empty() => Some(format!("unix:{addr}")),
        Err(_) => None,
    }
}

fn file_class_name(class: &FileClass) -> (String, String) {
    let name = match serde_json::to_value(class.category).unwrap_or_default() {
        serde_json::Value::Object(map) => {
            let category = map
                .get("category")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown");
            match map.get("kind").and_then(|v| v.as_str()) {
                Some(kind) => format!("{category}/{kind}"),
                None => category.to_string(),
            }
        }
        _ => "unknown".into(),
    };
    let sensitivity = serde_json::to_value(class.sensitivity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    (name, sensitivity)
}

fn transport_name(transport: McpTransport) -> &'static str {
    match transport {
        McpTransport::Stdio => "stdio",
        McpTransport::Http => "http",
    }
}

/// The identity entries of an agent: its service account and cloud roles.
pub fn identity_items(identity: &ActorIdentity) -> Vec<Item> {
    let mut out = Vec::new();
    if let Some(sa) = &identity.service_account {
        out.push(Item::ServiceAccount(sa.clone()));
    }
    out.extend(identity.cloud_roles.iter().cloned().map(Item::CloudRole));
    out
}

/// Whether [`items_of`] has any entry for `observation`, without building them: the pipeline
/// asks it of every observation not yet attributed (to keep only what a baseline can learn
/// from), most of which are never learned.
pub fn has_items(observation: &Observation) -> bool {
    match &observation.kind {
        // The connection's connect (and usually a DNS query) already stands for a TLS hello;
        // its server name as a baseline entry of its own is left for later.
        ObservationKind::Exit { .. } | ObservationKind::TlsHello { .. } => false,
        // A decision against the baseline's own policy is not behaviour to learn (what was
        // tried is another observation, when it got as far as the kernel's record of it).
        ObservationKind::Enforce { .. }
        | ObservationKind::EnforcePolicy { .. }
        | ObservationKind::EscapeSyscall { .. }
        | ObservationKind::HostPathWrite { .. } => false,
        // What the agent is built from, not something it did.
        ObservationKind::Package { .. } => false,
        // What the cluster declares, read by the collector: no agent's act.
        ObservationKind::ClusterObjects { .. } => false,
        // What the kernel did not copy: the capture's coverage, not behaviour.
        ObservationKind::PayloadsLeftOut { .. } => false,
        // Runtime-noise files and served requests are not behaviour (the graph's rule).
        ObservationKind::FileOpen { .. } | ObservationKind::Http { .. } => {
            !actions::never_an_action(&observation.kind)
        }
        ObservationKind::Mcp { role, .. } => *role == Role::Client,
        ObservationKind::Exec { .. }
        | ObservationKind::Connect { .. }
        | ObservationKind::Dns { .. }
        | ObservationKind::Llm { .. }
        | ObservationKind::Sql { .. }
        | ObservationKind::Redis { .. }
        | ObservationKind::ObjectStore { .. }
        | ObservationKind::Retrieval { .. } => true,
    }
}

/// The baseline entries `observation` stands for (none for observations that are not
/// actions of the agent: exits, served requests, runtime-noise files; see [`has_items`]).
pub fn items_of(observation: &Observation) -> Vec<Item> {
    let mut out = Vec::new();
    if !has_items(observation) {
        return out;
    }
    let user = Item::User(observation.actor.uid);
    match &observation.kind {
        ObservationKind::Exec { filename, argv } => {
            out.push(Item::Executable {
                path: filename.clone(),
                args: collapse::argument_pattern(argv),
            });
        }
        ObservationKind::FileOpen { path, class, write } => {
            let (class_name, sensitivity) = file_class_name(class);
            out.push(Item::File {
                path: collapse::file_pattern(
                    path,
                    matches!(class.category, FileCategory::Secret(_)),
                ),
                access: if *write {
                    FileAccess::Write
                } else {
                    FileAccess::Read
                },
                class: class_name,
                sensitivity,
            });
        }
        ObservationKind::Connect { peer, .. } => {
            out.extend(peer_address(&peer.addr, peer.port).map(Item::EgressAddress));
        }
        ObservationKind::Dns { queries } => {
            out.extend(
                queries
                    .iter()
                    .filter_map(|q| host_name(q))
                    .map(Item::EgressName),
            );
        }
        ObservationKind::Http { exchange, .. } => {
            let host = exchange.host.clone().unwrap_or_else(|| "unknown".into());
            let host = host_with_port(&host, exchange.port, exchange.tls);
            out.extend(host_name(&host).map(Item::EgressName));
            out.push(Item::Endpoint(ApiEndpoint {
                scheme: if exchange.tls { "https" } else { "http" }.into(),
                host,
                method: exchange.request.method.to_ascii_uppercase(),
                route: actions::route_template(exchange.request.path()),
            }));
        }
        ObservationKind::Llm { call, host, .. } => {
            for model in call.request_model.iter().chain(&call.response_model) {
                let item = Item::Model {
                    provider: call.provider.clone(),
                    model: model.clone(),
                };
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            out.extend(host.as_deref().and_then(host_name).map(Item::EgressName));
            for tool in &call.tools_offered {
                out.push(Item::ToolOffered(tool.name.clone()));
            }
            for tool_call in &call.tool_calls {
                let item = Item::ToolCalled {
                    name: tool_call.name.clone(),
                    shape: collapse::argument_shape(&tool_call.arguments),
                };
                if !out.contains(&item) {
                    out.push(item);
                }
            }
        }
        ObservationKind::Mcp {
            exchange,
            transport,
            role: Role::Client,
            endpoint,
            ..
        } => {
            let endpoint = endpoint.clone().unwrap_or_else(|| "unknown".into());
            let name = match &exchange.detail {
                McpDetail::Initialize(init) => init.server.as_ref().and_then(|s| s.name.clone()),
                _ => None,
            };
            out.push(Item::McpServer {
                endpoint: endpoint.clone(),
                name,
                transport: transport_name(*transport).into(),
            });
            if let McpDetail::ToolsList(list) = &exchange.detail {
                for tool in &list.tools {
                    out.push(Item::McpToolListed {
                        endpoint: endpoint.clone(),
                        tool: tool.name.clone(),
                    });
                }
            }
            // The graph's view of the call: the tool and its arguments.
            if let Some((tool, arguments)) =
                actions::describe(observation, no_processes()).and_then(|target| target.mcp_tool)
            {
                out.push(Item::McpToolCalled {
                    endpoint,
                    tool,
                    shape: collapse::argument_shape(&arguments),
                });
            }
        }
        ObservationKind::Sql { statement, peer } => {
            if statement.tables.is_empty() {
                let database = statement.database.as_deref().unwrap_or("postgres");
                out.push(Item::Database(database.to_string()));
            } else {
                // The graph's table labels: `database.table`.
                out.extend(actions::table_labels(statement).map(Item::Table));
            }
            if let Some(db_user) = &statement.user {
                let database = statement.database.as_deref().unwrap_or("postgres");
                out.push(Item::DataUser(format!("postgres:{db_user}@{database}")));
            }
            if let Some(peer) = peer {
                out.extend(peer_address(&peer.addr, peer.port).map(Item::EgressAddress));
            }
        }
        ObservationKind::Redis { command, peer } => {
            for key in command.keys.iter().take(16) {
                let item = Item::RedisKey(collapse::redis_key_pattern(key));
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            if let Some(peer) = peer {
                out.extend(peer_address(&peer.addr, peer.port).map(Item::EgressAddress));
            }
        }
        ObservationKind::ObjectStore { access } => {
            let service = serde_json::to_value(access.service)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "object_store".into());
            if let Some(bucket) = &access.bucket {
                let location = collapse::object_pattern(bucket, access.key.as_deref());
                out.push(Item::Object(format!("{service}://{location}")));
            }
            if let Some(key_id) = &access.access_key_id {
                out.push(Item::DataUser(format!("{service}:{key_id}")));
            }
            if let Some(host) = &access.host {
                out.extend(host_name(host).map(Item::EgressName));
            }
        }
        ObservationKind::Retrieval { call } => {
            if let Some(target) = actions::describe(observation, no_processes()) {
                // `system collection`, as the graph labels it.
                out.push(Item::VectorCollection(target.label.replacen(' ', "/", 1)));
            }
            if let Some(host) = &call.host {
                out.extend(host_name(host).map(Item::EgressName));
            }
        }
        // The kinds `has_items` already turned away, and MCP servers' side (it names every
        // kind, so a new one is decided there).
        _ => return out,
    }
    out.push(user);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_and_names() {
        assert_eq!(
            host_with_port("127.0.0.1", Some(8080), false),
            "127.0.0.1:8080"
        );
        assert_eq!(
            host_with_port("api.example.com", Some(443), true),
            "api.example.com"
        );
        assert_eq!(
            host_with_port("127.0.0.1:8080", Some(8080), false),
            "127.0.0.1:8080"
        );
        assert_eq!(host_with_port("::1", Some(8080), false), "[::1]:8080");
        assert_eq!(
            host_name("API.Example.com:8443"),
            Some("api.example.com".into())
        );
        assert_eq!(host_name("127.0.0.1:8080"), None);
        assert_eq!(host_name("[::1]:80"), None);
        assert_eq!(host_name("::1"), None);
        assert_eq!(peer_address("10.0.0.7", 5432), Some("10.0.0.7:5432".into()));
        assert_eq!(peer_address("fe80::1", 443), Some("[fe80::1]:443".into()));
        assert_eq!(
            peer_address("/run/docker.sock", 0),
            Some("unix:/run/docker.sock".into())
        );
        assert_eq!(peer_address("", 0), None);
    }
}
