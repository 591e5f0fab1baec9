//! Agents' AI-BOMs as one CycloneDX 1.6 document: each agent an `application` component; its
//! models `machine-learning-model` components with their provider as supplier; the packages
//! its processes loaded (versions the collector read from their metadata) `framework`
//! components for AI frameworks and `library` components otherwise, with their purl;
//! frameworks known only from User-Agent headers or module paths `framework` components
//! without a version; MCP servers services with their tools as nested services; tools offered
//! to models, and the APIs the agent (or what it ran) called, services; data stores and
//! retrieval sources `data` components. The agent depends on all of them (`dependencies`).
//!
//! The document carries no timestamp and no serial number: it is a function of what was
//! observed, so a replay of a recording gives the document the live run gave.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use agentscope_event::package::{PackageEcosystem, PackageFound};

use super::types::*;
use crate::model::agents::framework_of_package;
use crate::model::{Agent, EdgeKind, GraphSnapshot, NodeKind};

/// What made the document.
pub struct Producer<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

/// The CycloneDX document of `agents` (their graph: `graph`).
pub fn aibom_document(agents: &[&Agent], graph: &GraphSnapshot, producer: &Producer) -> Bom {
    let mut components: BTreeMap<String, Component> = BTreeMap::new();
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    let mut dependencies = Vec::new();
    let mut agent_components = Vec::new();
    for agent in agents {
        let mut depends_on = BTreeSet::new();
        let mut add_component = |component: Component, depends_on: &mut BTreeSet<String>| {
            let bom_ref = component.bom_ref.clone().unwrap_or_default();
            depends_on.insert(bom_ref.clone());
            components.entry(bom_ref).or_insert(component);
        };
        for component in models(agent, graph) {
            add_component(component, &mut depends_on);
        }
        let mut frameworks_with_packages = BTreeSet::new();
        for package in agent.aibom.packages.values() {
            if let Some(framework) = framework_of_package(&package.name) {
                frameworks_with_packages.insert(framework);
            }
            add_component(package_component(package), &mut depends_on);
        }
        for framework in &agent.aibom.frameworks {
            if frameworks_with_packages.contains(framework.as_str()) {
                continue;
            }
            let mut component = Component::new(
                ComponentType::Framework,
                Some(format!("framework:{framework}")),
                framework.clone(),
            );
            component.properties.push(Property::new(
                "agentscope:evidence",
                "User-Agent header or module path (version not read)",
            ));
            add_component(component, &mut depends_on);
        }
        for source in &agent.aibom.retrieval_sources {
            let mut component = Component::new(
                ComponentType::Data,
                Some(format!("retrieval:{source}")),
                source.clone(),
            );
            component.data.push(ComponentData {
                kind: "dataset",
                name: source.clone(),
            });
            component
                .properties
                .push(Property::new("agentscope:retrieval_source", "true"));
            add_component(component, &mut depends_on);
        }
        for component in reachable_data(agent, graph) {
            add_component(component, &mut depends_on);
        }
        let mut add_service = |service: Service, depends_on: &mut BTreeSet<String>| {
            depends_on.insert(service.bom_ref.clone());
            services.entry(service.bom_ref.clone()).or_insert(service);
        };
        for service in mcp_servers(agent) {
            add_service(service, &mut depends_on);
        }
        for (tool, description) in &agent.aibom.tools_offered {
            let mut service = Service::new(format!("tool:{}:{tool}", agent.key), tool.clone());
            service.description = description.clone();
            service
                .properties
                .push(Property::new("agentscope:tool", "offered to the model"));
            add_service(service, &mut depends_on);
        }
        for service in reachable_apis(agent, graph) {
            add_service(service, &mut depends_on);
        }
        let agent_ref = format!("agent:{}", agent.key);
        dependencies.push(Dependency {
            reference: agent_ref.clone(),
            depends_on: depends_on.into_iter().collect(),
        });
        agent_components.push(agent_component(agent, agent_ref));
    }
    // One agent: the document is about it (`metadata.component`); several: they are listed.
    let about = (agent_components.len() == 1).then(|| agent_components.remove(0));
    let mut all_components = agent_components;
    all_components.extend(components.into_values());
    for dependency in &mut dependencies {
        dependency.depends_on.sort();
    }
    Bom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        version: 1,
        metadata: Metadata {
            tools: Tools {
                components: vec![{
                    let mut tool = Component::new(ComponentType::Application, None, producer.name);
                    tool.version = Some(producer.version.to_string());
                    tool
                }],
            },
            component: about,
            properties: Vec::new(),
        },
        components: all_components,
        services: services.into_values().collect(),
        dependencies: with_leaves(dependencies),
    }
}

/// Every referenced component and service gets a dependency entry of its own (CycloneDX
/// readers expect each `ref` to be listed), with nothing it depends on.
fn with_leaves(mut dependencies: Vec<Dependency>) -> Vec<Dependency> {
    let listed: BTreeSet<String> = dependencies.iter().map(|d| d.reference.clone()).collect();
    let leaves: BTreeSet<String> = dependencies
        .iter()
        .flat_map(|d| d.depends_on.iter().cloned())
        .filter(|r| !listed.contains(r))
        .collect();
    dependencies.extend(leaves.into_iter().map(|reference| Dependency {
        reference,
        depends_on: Vec::new(),
    }));
    dependencies
}

fn agent_component(agent: &Agent, bom_ref: String) -> Component {
    let mut component = Component::new(ComponentType::Application, Some(bom_ref), &agent.name);
    component.description = Some(agent.program.clone());
    let identity = &agent.identity;
    let mut properties = vec![
        Property::new("agentscope:agent.key", &agent.key),
        Property::new("agentscope:identity.workload", &identity.workload),
        Property::new("agentscope:identity.uid", identity.uid.to_string()),
    ];
    let optional = [
        ("agentscope:identity.user", &identity.user),
        ("agentscope:identity.container_id", &identity.container_id),
        ("agentscope:identity.pod", &identity.pod),
        (
            "agentscope:identity.service_account",
            &identity.service_account,
        ),
        (
            "agentscope:plaintext_not_visible",
            &agent.plaintext_not_visible,
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            properties.push(Property::new(name, value.clone()));
        }
    }
    for role in &identity.cloud_roles {
        properties.push(Property::new(
            "agentscope:identity.cloud_role",
            role.clone(),
        ));
    }
    for api in &agent.aibom.apis {
        if let Some(api) = serde_json::to_value(api)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
        {
            properties.push(Property::new("agentscope:llm.api", api));
        }
    }
    component.properties = properties;
    component
}

fn models(agent: &Agent, graph: &GraphSnapshot) -> Vec<Component> {
    let mut out = Vec::new();
    for (provider, models) in &agent.aibom.providers {
        let supplier = Some(OrganizationalEntity {
            name: provider.clone(),
        });
        if models.is_empty() {
            // Known from a TLS server name only: the provider, no model.
            let mut component = Component::new(
                ComponentType::MachineLearningModel,
                Some(format!("model:{provider}/")),
                format!("{provider} (model not seen)"),
            );
            component.supplier = supplier.clone();
            component
                .properties
                .push(Property::new("gen_ai.provider.name", provider.clone()));
            out.push(component);
        }
        for model in models {
            let id = format!("model:{provider}/{model}");
            let mut component =
                Component::new(ComponentType::MachineLearningModel, Some(id.clone()), model);
            component.supplier = supplier.clone();
            component
                .properties
                .push(Property::new("gen_ai.provider.name", provider.clone()));
            if let Some(address) = graph
                .nodes
                .iter()
                .find(|n| n.id == id)
                .and_then(|n| n.attributes.get("server.address"))
                .and_then(|v| v.as_str())
            {
                component
                    .properties
                    .push(Property::new("server.address", address));
            }
            out.push(component);
        }
    }
    out
}

/// A purl's name and version, percent-encoded where the purl specification asks.
fn purl_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `pkg:pypi/openai@1.54.3`, `pkg:npm/%40modelcontextprotocol/sdk@1.20.2`.
pub fn purl(package: &PackageFound) -> Option<String> {
    let version = package.version.as_deref()?;
    let name = match package.ecosystem {
        // PyPI names are case-insensitive and `_` is `-` (the purl specification's pypi type).
        PackageEcosystem::Pypi => purl_encode(&package.name.to_ascii_lowercase().replace('_', "-")),
        PackageEcosystem::Npm => match package.name.split_once('/') {
            Some((scope, name)) => format!("{}/{}", purl_encode(scope), purl_encode(name)),
            None => purl_encode(&package.name),
        },
    };
    Some(format!(
        "pkg:{}/{name}@{}",
        package.ecosystem.purl_type(),
        purl_encode(version)
    ))
}

fn package_component(package: &PackageFound) -> Component {
    let kind = if framework_of_package(&package.name).is_some() {
        ComponentType::Framework
    } else {
        ComponentType::Library
    };
    let purl = purl(package);
    let bom_ref = purl.clone().unwrap_or_else(|| {
        format!(
            "package:{}:{}:{}",
            package.ecosystem.purl_type(),
            package.name,
            package.package_dir
        )
    });
    let (group, name) = match (package.ecosystem, package.name.split_once('/')) {
        (PackageEcosystem::Npm, Some((scope, name))) => (Some(scope.to_string()), name.to_string()),
        _ => (None, package.name.clone()),
    };
    let mut component = Component::new(kind, Some(bom_ref), name);
    component.group = group;
    component.version = package.version.clone();
    component.purl = purl;
    component.properties.push(Property::new(
        "agentscope:package.dir",
        package.package_dir.clone(),
    ));
    if let Some(path) = &package.metadata_path {
        component.properties.push(Property::new(
            "agentscope:package.metadata_path",
            path.clone(),
        ));
    }
    if let Some(error) = &package.error {
        component
            .properties
            .push(Property::new("agentscope:package.error", error.clone()));
    }
    component
}

fn mcp_servers(agent: &Agent) -> Vec<Service> {
    let mut out = Vec::new();
    for (key, server) in &agent.aibom.mcp_servers {
        let bom_ref = format!("mcp_server:{key}");
        let mut service = Service::new(bom_ref.clone(), &server.name);
        service.version = server.version.clone();
        service.description = Some("MCP server".to_string());
        if let Some(endpoint) = &server.endpoint {
            if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
                service.endpoints.push(endpoint.clone());
            }
            service
                .properties
                .push(Property::new("agentscope:mcp.endpoint", endpoint.clone()));
        }
        service
            .properties
            .push(Property::new("network.transport", server.transport.clone()));
        for (tool, description) in &server.tools {
            let mut nested = Service::new(format!("{bom_ref}/tool:{tool}"), tool.clone());
            nested.description = description.clone();
            nested
                .properties
                .push(Property::new("agentscope:tool", "MCP tool"));
            service.services.push(nested);
        }
        out.push(service);
    }
    out
}

/// The graph's nodes reachable from the agent's node (not through its identities), in
/// breadth-first order: what it and what it ran (tools, MCP servers, commands) touched.
fn reachable<'a>(agent: &Agent, graph: &'a GraphSnapshot) -> Vec<&'a crate::model::graph::Node> {
    let start = format!("agent:{}", agent.key);
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in &graph.edges {
        if edge.kind != EdgeKind::RunsAs {
            edges
                .entry(edge.from.as_str())
                .or_default()
                .push(edge.to.as_str());
        }
    }
    let nodes: BTreeMap<&str, &crate::model::graph::Node> =
        graph.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut seen: BTreeSet<&str> = BTreeSet::from([start.as_str()]);
    let mut queue: VecDeque<&str> = VecDeque::from([start.as_str()]);
    let mut out = Vec::new();
    while let Some(id) = queue.pop_front() {
        for &next in edges.get(id).into_iter().flatten() {
            // Another agent (an MCP client the agent runs) has a document entry of its own.
            if seen.insert(next) && !next.starts_with("agent:") {
                if let Some(node) = nodes.get(next) {
                    out.push(*node);
                }
                queue.push_back(next);
            }
        }
    }
    out
}

/// Data stores the agent reached (tables, keys, buckets, vector collections; files are what
/// it did, not what it is built on, and are left out).
fn reachable_data(agent: &Agent, graph: &GraphSnapshot) -> Vec<Component> {
    reachable(agent, graph)
        .into_iter()
        .filter(|n| n.kind == NodeKind::Data && !n.id.starts_with("data:file:"))
        .map(|node| {
            let mut component =
                Component::new(ComponentType::Data, Some(node.id.clone()), &node.label);
            component.data.push(ComponentData {
                kind: "dataset",
                name: node.label.clone(),
            });
            component.properties = string_attributes(&node.attributes);
            component
        })
        .collect()
}

/// APIs the agent (or what it ran) called.
fn reachable_apis(agent: &Agent, graph: &GraphSnapshot) -> Vec<Service> {
    reachable(agent, graph)
        .into_iter()
        .filter(|n| n.kind == NodeKind::Api)
        .map(|node| {
            let mut service = Service::new(node.id.clone(), &node.label);
            service.properties = string_attributes(&node.attributes);
            service
        })
        .collect()
}

/// A node's attributes whose values are strings or numbers, as properties.
fn string_attributes(attributes: &BTreeMap<String, serde_json::Value>) -> Vec<Property> {
    attributes
        .iter()
        .filter_map(|(name, value)| match value {
            serde_json::Value::String(s) => Some(Property::new(name, s.clone())),
            serde_json::Value::Number(n) => Some(Property::new(name, n.to_string())),
            serde_json::Value::Bool(b) => Some(Property::new(name, b.to_string())),
            _ => None,
        })
        .collect()
}
