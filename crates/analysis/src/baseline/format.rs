//! The baseline snapshot format (`apiVersion: agentscope.dev/v1`, `kind: AgentBaseline`):
//! the serialisable document, the [`Item`]s its sections hold, and reading and writing it as
//! YAML (one file per agent, or a directory of them). docs/baseline.md documents every field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `apiVersion` of the documents this version writes and reads.
pub const API_VERSION: &str = "agentscope.dev/v1";
/// `kind` of a baseline document.
pub const KIND: &str = "AgentBaseline";

/// Where a baseline stands in its learning period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineStatus {
    /// The learning period has not ended (in event time): entries are still being added.
    Learning,
    /// The learning period ended and nothing was lost while learning.
    Complete,
    /// The learning period ended but events were dropped or payload bytes lost while learning
    /// (or an entry limit was reached): the baseline may miss normal behaviour.
    Partial,
}

/// What was lost while the baseline learned.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase", default)]
pub struct LossCounts {
    /// Events the kernel dropped (ring buffer full) while this agent was learning.
    pub dropped_events: u64,
    /// Payload bytes announced but never delivered (reconstruction's `gap_bytes`).
    pub gap_bytes: u64,
}

impl LossCounts {
    pub fn is_empty(&self) -> bool {
        self.dropped_events == 0 && self.gap_bytes == 0
    }
}

/// Who the agent ran as when the baseline was taken (descriptive; the judged identities are
/// in `spec.identities`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentitySummary {
    pub workload: String,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub pod: Option<String>,
    pub service_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineMetadata {
    /// The agent key (`<workload>:<program>`): stable across pod restarts and rescheduling.
    pub agent: String,
    /// Short display name (the script or executable's file name).
    #[serde(default)]
    pub name: String,
    pub status: BaselineStatus,
    /// Length of the learning period, from the agent's first observation, in event time.
    pub learning_period_seconds: u64,
    /// Wall-clock time (RFC 3339, from the events) of the first and last observation learned.
    #[serde(default)]
    pub learned_from: Option<String>,
    #[serde(default)]
    pub learned_to: Option<String>,
    /// Observations that went into the baseline.
    #[serde(default)]
    pub observations: u64,
    /// Raw events those observations were built from (sum of their event ranges).
    #[serde(default)]
    pub events: u64,
    #[serde(default)]
    pub loss: LossCounts,
    /// Entries were not added because the per-agent limit was reached.
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub identity: IdentitySummary,
    /// Incidents detection raised for this agent while it learned (`inc-N: story`): what
    /// was learned includes an attack, so `baseline promote` refuses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<String>,
}

/// Tools the agent's model was offered and asked to call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ToolsBaseline {
    /// Tool names offered to the model in requests.
    pub offered: BTreeSet<String>,
    /// Tool name → argument shapes the model called it with.
    pub called: BTreeMap<String, BTreeSet<String>>,
}

/// One MCP server the agent talks to (as a client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct McpServerBaseline {
    /// The server's own name (`serverInfo.name`), when seen.
    pub name: Option<String>,
    /// `stdio` or `http`.
    pub transport: Option<String>,
    /// Tools the server listed (`tools/list`).
    pub tools: BTreeSet<String>,
    /// Tool name → argument shapes of the agent's `tools/call`s.
    pub called: BTreeMap<String, BTreeSet<String>>,
}

/// An API the agent called: scheme, host (with port when not the scheme's default), method
/// and route template.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ApiEndpoint {
    /// `http` or `https` (TLS seen through the TLS library hooks).
    pub scheme: String,
    pub host: String,
    pub method: String,
    pub route: String,
}

impl std::fmt::Display for ApiEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}://{}{}",
            self.method, self.scheme, self.host, self.route
        )
    }
}

/// How a file was opened.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FileAccess {
    Read,
    Write,
}

impl FileAccess {
    pub fn name(self) -> &'static str {
        match self {
            FileAccess::Read => "read",
            FileAccess::Write => "write",
        }
    }
}

/// Files under one path pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct FileBaseline {
    /// The file class of the first file seen under the pattern (`secret/ssh_key`, `system`,
    /// `application_data`).
    pub class: String,
    pub sensitivity: String,
    pub access: BTreeSet<FileAccess>,
}

/// Data objects: files, tables, keys, objects and collections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct DataBaseline {
    /// Path pattern → class and access modes.
    pub files: BTreeMap<String, FileBaseline>,
    /// `database.table`, as the SQL named it.
    pub tables: BTreeSet<String>,
    /// Databases used by statements that named no table (`SELECT 1`, `BEGIN`).
    pub databases: BTreeSet<String>,
    /// Redis key patterns.
    pub redis_keys: BTreeSet<String>,
    /// Object-store locations: `service://bucket/prefix/*`.
    pub objects: BTreeSet<String>,
    /// Vector-database collections: `system/collection`.
    pub vector_collections: BTreeSet<String>,
}

/// Where the agent's connections and lookups went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EgressBaseline {
    /// DNS names queried, and host names of HTTP requests and LLM calls.
    pub names: BTreeSet<String>,
    /// `address:port` of connections.
    pub addresses: BTreeSet<String>,
}

/// Identities the agent acted with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentityBaseline {
    /// Unix users of the agent's processes, as `uid:N`.
    pub users: BTreeSet<String>,
    /// Kubernetes service accounts (`namespace/name`).
    pub service_accounts: BTreeSet<String>,
    /// Cloud roles the workload can assume.
    pub cloud_roles: BTreeSet<String>,
    /// Users presented to data systems: `postgres:user@database`, `s3:ACCESS_KEY_ID`.
    pub data_users: BTreeSet<String>,
}

/// Everything the agent was seen doing during its learning period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct BaselineSpec {
    /// `gen_ai.provider.name` → models requested or reported.
    pub models: BTreeMap<String, BTreeSet<String>>,
    pub tools: ToolsBaseline,
    /// Server endpoint (URL for HTTP, command line for stdio) → what it offered and was asked.
    pub mcp_servers: BTreeMap<String, McpServerBaseline>,
    pub endpoints: BTreeSet<ApiEndpoint>,
    pub data: DataBaseline,
    /// Executable path → argument patterns.
    pub executables: BTreeMap<String, BTreeSet<Vec<String>>>,
    pub egress: EgressBaseline,
    pub identities: IdentityBaseline,
}

/// One baseline document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentBaseline {
    pub api_version: String,
    pub kind: String,
    pub metadata: BaselineMetadata,
    pub spec: BaselineSpec,
    /// What the kernel enforces from this baseline (`baseline promote`); absent: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<super::enforcement::Enforcement>,
}

/// One entry of a baseline section, as derived from an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Model {
        provider: String,
        model: String,
    },
    ToolOffered(String),
    ToolCalled {
        name: String,
        shape: String,
    },
    McpServer {
        endpoint: String,
        name: Option<String>,
        transport: String,
    },
    McpToolListed {
        endpoint: String,
        tool: String,
    },
    McpToolCalled {
        endpoint: String,
        tool: String,
        shape: String,
    },
    Endpoint(ApiEndpoint),
    File {
        path: String,
        access: FileAccess,
        class: String,
        sensitivity: String,
    },
    Table(String),
    Database(String),
    RedisKey(String),
    Object(String),
    VectorCollection(String),
    Executable {
        path: String,
        args: Vec<String>,
    },
    EgressName(String),
    EgressAddress(String),
    User(u32),
    ServiceAccount(String),
    CloudRole(String),
    DataUser(String),
}

/// What kind of never-seen thing a deviation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Model,
    Tool,
    ToolArguments,
    ToolOffered,
    McpServer,
    Endpoint,
    Data,
    Executable,
    Egress,
    Identity,
}

/// How an item compares with a baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Novelty {
    pub category: Category,
    /// The new thing, for people: `tool query_database`, `table crm.customers`.
    pub description: String,
}

impl Item {
    /// The section the item belongs to, as named in the document (`data.tables`).
    pub fn section(&self) -> &'static str {
        match self {
            Item::Model { .. } => "models",
            Item::ToolOffered(_) => "tools.offered",
            Item::ToolCalled { .. } => "tools.called",
            Item::McpServer { .. } => "mcpServers",
            Item::McpToolListed { .. } => "mcpServers.tools",
            Item::McpToolCalled { .. } => "mcpServers.called",
            Item::Endpoint(_) => "endpoints",
            Item::File { .. } => "data.files",
            Item::Table(_) => "data.tables",
            Item::Database(_) => "data.databases",
            Item::RedisKey(_) => "data.redisKeys",
            Item::Object(_) => "data.objects",
            Item::VectorCollection(_) => "data.vectorCollections",
            Item::Executable { .. } => "executables",
            Item::EgressName(_) => "egress.names",
            Item::EgressAddress(_) => "egress.addresses",
            Item::User(_) => "identities.users",
            Item::ServiceAccount(_) => "identities.serviceAccounts",
            Item::CloudRole(_) => "identities.cloudRoles",
            Item::DataUser(_) => "identities.dataUsers",
        }
    }

    /// The entry as one line of text (diffs, deviations): unique within its section.
    pub fn describe(&self) -> String {
        match self {
            Item::Model { provider, model } => format!("{provider}/{model}"),
            Item::ToolOffered(name) => name.clone(),
            Item::ToolCalled { name, shape } => format!("{name} {shape}"),
            Item::McpServer { endpoint, .. } => endpoint.clone(),
            Item::McpToolListed { endpoint, tool } => format!("{tool} on {endpoint}"),
            Item::McpToolCalled {
                endpoint,
                tool,
                shape,
            } => format!("{tool} {shape} on {endpoint}"),
            Item::Endpoint(endpoint) => endpoint.to_string(),
            Item::File { path, access, .. } => format!("{path} ({})", access.name()),
            Item::Table(s)
            | Item::Database(s)
            | Item::RedisKey(s)
            | Item::Object(s)
            | Item::VectorCollection(s)
            | Item::EgressName(s)
            | Item::EgressAddress(s)
            | Item::ServiceAccount(s)
            | Item::CloudRole(s)
            | Item::DataUser(s) => s.clone(),
            Item::Executable { path, args } => format!("{path} {}", args.join(" ")),
            Item::User(uid) => format!("uid:{uid}"),
        }
    }

    /// Adds the item to `spec`; true when the spec changed.
    pub fn insert_into(&self, spec: &mut BaselineSpec) -> bool {
        fn add(set: &mut BTreeSet<String>, value: &str) -> bool {
            !set.contains(value) && set.insert(value.to_string())
        }
        match self {
            Item::Model { provider, model } => {
                add(spec.models.entry(provider.clone()).or_default(), model)
            }
            Item::ToolOffered(name) => add(&mut spec.tools.offered, name),
            Item::ToolCalled { name, shape } => {
                add(spec.tools.called.entry(name.clone()).or_default(), shape)
            }
            Item::McpServer {
                endpoint,
                name,
                transport,
            } => {
                let new = !spec.mcp_servers.contains_key(endpoint);
                let server = spec.mcp_servers.entry(endpoint.clone()).or_default();
                let mut changed = new;
                if name.is_some() && server.name != *name {
                    server.name = name.clone();
                    changed = true;
                }
                if server.transport.is_none() {
                    server.transport = Some(transport.clone());
                    changed = true;
                }
                changed
            }
            Item::McpToolListed { endpoint, tool } => add(
                &mut spec.mcp_servers.entry(endpoint.clone()).or_default().tools,
                tool,
            ),
            Item::McpToolCalled {
                endpoint,
                tool,
                shape,
            } => add(
                spec.mcp_servers
                    .entry(endpoint.clone())
                    .or_default()
                    .called
                    .entry(tool.clone())
                    .or_default(),
                shape,
            ),
            Item::Endpoint(endpoint) => spec.endpoints.insert(endpoint.clone()),
            Item::File {
                path,
                access,
                class,
                sensitivity,
            } => {
                let entry = spec
                    .data
                    .files
                    .entry(path.clone())
                    .or_insert_with(|| FileBaseline {
                        class: class.clone(),
                        sensitivity: sensitivity.clone(),
                        access: BTreeSet::new(),
                    });
                entry.access.insert(*access)
            }
            Item::Table(s) => add(&mut spec.data.tables, s),
            Item::Database(s) => add(&mut spec.data.databases, s),
            Item::RedisKey(s) => add(&mut spec.data.redis_keys, s),
            Item::Object(s) => add(&mut spec.data.objects, s),
            Item::VectorCollection(s) => add(&mut spec.data.vector_collections, s),
            Item::Executable { path, args } => spec
                .executables
                .entry(path.clone())
                .or_default()
                .insert(args.clone()),
            Item::EgressName(s) => add(&mut spec.egress.names, s),
            Item::EgressAddress(s) => add(&mut spec.egress.addresses, s),
            Item::User(uid) => add(&mut spec.identities.users, &format!("uid:{uid}")),
            Item::ServiceAccount(s) => add(&mut spec.identities.service_accounts, s),
            Item::CloudRole(s) => add(&mut spec.identities.cloud_roles, s),
            Item::DataUser(s) => add(&mut spec.identities.data_users, s),
        }
    }

    /// `None` when `spec` already holds the item; otherwise what is new about it (a tool the
    /// model never called, or a known tool called with a new argument shape).
    pub fn novelty(&self, spec: &BaselineSpec) -> Option<Novelty> {
        let new = |category: Category, description: String| {
            Some(Novelty {
                category,
                description,
            })
        };
        let has = |set: &BTreeSet<String>, value: &str| set.contains(value);
        match self {
            Item::Model { provider, model } => {
                if spec.models.get(provider).is_some_and(|m| m.contains(model)) {
                    None
                } else {
                    new(Category::Model, format!("model {provider}/{model}"))
                }
            }
            Item::ToolOffered(name) => (!has(&spec.tools.offered, name)).then(|| Novelty {
                category: Category::ToolOffered,
                description: format!("tool offered {name}"),
            }),
            Item::ToolCalled { name, shape } => match spec.tools.called.get(name) {
                None => new(Category::Tool, format!("tool {name}")),
                Some(shapes) if !shapes.contains(shape) => new(
                    Category::ToolArguments,
                    format!("tool {name} arguments {shape}"),
                ),
                Some(_) => None,
            },
            Item::McpServer { endpoint, .. } => {
                (!spec.mcp_servers.contains_key(endpoint)).then(|| Novelty {
                    category: Category::McpServer,
                    description: format!("mcp server {endpoint}"),
                })
            }
            Item::McpToolListed { endpoint, tool } => {
                let known = spec
                    .mcp_servers
                    .get(endpoint)
                    .is_some_and(|s| s.tools.contains(tool));
                (!known).then(|| Novelty {
                    category: Category::ToolOffered,
                    description: format!("mcp tool offered {tool} on {endpoint}"),
                })
            }
            Item::McpToolCalled {
                endpoint,
                tool,
                shape,
            } => match spec
                .mcp_servers
                .get(endpoint)
                .and_then(|s| s.called.get(tool))
            {
                None => new(Category::Tool, format!("mcp tool {tool} on {endpoint}")),
                Some(shapes) if !shapes.contains(shape) => new(
                    Category::ToolArguments,
                    format!("mcp tool {tool} on {endpoint} arguments {shape}"),
                ),
                Some(_) => None,
            },
            Item::Endpoint(endpoint) => (!spec.endpoints.contains(endpoint)).then(|| Novelty {
                category: Category::Endpoint,
                description: format!("endpoint {endpoint}"),
            }),
            Item::File { path, access, .. } => {
                let known = spec
                    .data
                    .files
                    .get(path)
                    .is_some_and(|f| f.access.contains(access));
                (!known).then(|| Novelty {
                    category: Category::Data,
                    description: format!("file {path} ({})", access.name()),
                })
            }
            Item::Table(s) => (!has(&spec.data.tables, s)).then(|| Novelty {
                category: Category::Data,
                description: format!("table {s}"),
            }),
            Item::Database(s) => (!has(&spec.data.databases, s)).then(|| Novelty {
                category: Category::Data,
                description: format!("database {s}"),
            }),
            Item::RedisKey(s) => (!has(&spec.data.redis_keys, s)).then(|| Novelty {
                category: Category::Data,
                description: format!("redis key {s}"),
            }),
            Item::Object(s) => (!has(&spec.data.objects, s)).then(|| Novelty {
                category: Category::Data,
                description: format!("object {s}"),
            }),
            Item::VectorCollection(s) => {
                (!has(&spec.data.vector_collections, s)).then(|| Novelty {
                    category: Category::Data,
                    description: format!("vector collection {s}"),
                })
            }
            Item::Executable { path, args } => match spec.executables.get(path) {
                None => new(
                    Category::Executable,
                    format!("executable {path} ({})", args.join(" ")),
                ),
                Some(patterns) if !patterns.contains(args) => new(
                    Category::Executable,
                    format!("executable {path} with arguments {}", args.join(" ")),
                ),
                Some(_) => None,
            },
            Item::EgressName(s) => (!has(&spec.egress.names, s)).then(|| Novelty {
                category: Category::Egress,
                description: format!("egress name {s}"),
            }),
            Item::EgressAddress(s) => (!has(&spec.egress.addresses, s)).then(|| Novelty {
                category: Category::Egress,
                description: format!("egress address {s}"),
            }),
            Item::User(uid) => {
                (!has(&spec.identities.users, &format!("uid:{uid}"))).then(|| Novelty {
                    category: Category::Identity,
                    description: format!("user uid:{uid}"),
                })
            }
            Item::ServiceAccount(s) => {
                (!has(&spec.identities.service_accounts, s)).then(|| Novelty {
                    category: Category::Identity,
                    description: format!("service account {s}"),
                })
            }
            Item::CloudRole(s) => (!has(&spec.identities.cloud_roles, s)).then(|| Novelty {
                category: Category::Identity,
                description: format!("cloud role {s}"),
            }),
            Item::DataUser(s) => (!has(&spec.identities.data_users, s)).then(|| Novelty {
                category: Category::Identity,
                description: format!("data user {s}"),
            }),
        }
    }
}

impl BaselineSpec {
    /// Every entry, section by section, in a stable order (diffs and exports walk this).
    pub fn items(&self) -> Vec<Item> {
        let mut out = Vec::new();
        for (provider, models) in &self.models {
            for model in models {
                out.push(Item::Model {
                    provider: provider.clone(),
                    model: model.clone(),
                });
            }
        }
        out.extend(self.tools.offered.iter().cloned().map(Item::ToolOffered));
        for (name, shapes) in &self.tools.called {
            for shape in shapes {
                out.push(Item::ToolCalled {
                    name: name.clone(),
                    shape: shape.clone(),
                });
            }
        }
        for (endpoint, server) in &self.mcp_servers {
            out.push(Item::McpServer {
                endpoint: endpoint.clone(),
                name: server.name.clone(),
                transport: server.transport.clone().unwrap_or_default(),
            });
            for tool in &server.tools {
                out.push(Item::McpToolListed {
                    endpoint: endpoint.clone(),
                    tool: tool.clone(),
                });
            }
            for (tool, shapes) in &server.called {
                for shape in shapes {
                    out.push(Item::McpToolCalled {
                        endpoint: endpoint.clone(),
                        tool: tool.clone(),
                        shape: shape.clone(),
                    });
                }
            }
        }
        out.extend(self.endpoints.iter().cloned().map(Item::Endpoint));
        for (path, file) in &self.data.files {
            for access in &file.access {
                out.push(Item::File {
                    path: path.clone(),
                    access: *access,
                    class: file.class.clone(),
                    sensitivity: file.sensitivity.clone(),
                });
            }
        }
        out.extend(self.data.tables.iter().cloned().map(Item::Table));
        out.extend(self.data.databases.iter().cloned().map(Item::Database));
        out.extend(self.data.redis_keys.iter().cloned().map(Item::RedisKey));
        out.extend(self.data.objects.iter().cloned().map(Item::Object));
        out.extend(
            self.data
                .vector_collections
                .iter()
                .cloned()
                .map(Item::VectorCollection),
        );
        for (path, patterns) in &self.executables {
            for args in patterns {
                out.push(Item::Executable {
                    path: path.clone(),
                    args: args.clone(),
                });
            }
        }
        out.extend(self.egress.names.iter().cloned().map(Item::EgressName));
        out.extend(
            self.egress
                .addresses
                .iter()
                .cloned()
                .map(Item::EgressAddress),
        );
        for user in &self.identities.users {
            match user.strip_prefix("uid:").and_then(|u| u.parse().ok()) {
                Some(uid) => out.push(Item::User(uid)),
                // Written by hand in an unexpected form: kept as a data user would be, so a
                // diff still shows it.
                None => out.push(Item::DataUser(user.clone())),
            }
        }
        out.extend(
            self.identities
                .service_accounts
                .iter()
                .cloned()
                .map(Item::ServiceAccount),
        );
        out.extend(
            self.identities
                .cloud_roles
                .iter()
                .cloned()
                .map(Item::CloudRole),
        );
        out.extend(
            self.identities
                .data_users
                .iter()
                .cloned()
                .map(Item::DataUser),
        );
        out
    }

    /// Number of entries (what the per-agent limit counts).
    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }
}

/// Why a baseline document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: not a valid baseline document: {message}")]
    Parse { context: String, message: String },
    #[error("{context}: unsupported apiVersion \"{found}\" or kind \"{kind}\" (this version reads {API_VERSION} {KIND})")]
    Version {
        context: String,
        found: String,
        kind: String,
    },
    #[error(
        "{first} and {second} both hold revision {revision} of agent \"{agent}\"'s baseline \
         (one of them was not approved: move it out of the directory)"
    )]
    Duplicate {
        agent: String,
        first: PathBuf,
        second: PathBuf,
        revision: u32,
    },
}

impl AgentBaseline {
    /// The document as YAML.
    pub fn to_yaml(&self) -> String {
        // Serialising plain maps, sets and strings cannot fail.
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Reads a document; `context` names its origin in errors (a file name).
    pub fn from_yaml(text: &str, context: &str) -> Result<Self, BaselineError> {
        // The version is checked before the full shape, so an unknown version says so rather
        // than reporting a missing field.
        let header: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| BaselineError::Parse {
                context: context.into(),
                message: e.to_string(),
            })?;
        let field = |name: &str| {
            header
                .get(name)
                .and_then(serde_norway::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (found, kind) = (field("apiVersion"), field("kind"));
        if found != API_VERSION || kind != KIND {
            return Err(BaselineError::Version {
                context: context.into(),
                found,
                kind,
            });
        }
        serde_norway::from_value(header).map_err(|e| BaselineError::Parse {
            context: context.into(),
            message: e.to_string(),
        })
    }

    pub fn write_to(&self, path: &Path) -> Result<(), BaselineError> {
        crate::output_file::write_atomically(
            path,
            &crate::output_file::Inputs::none(),
            self.to_yaml().as_bytes(),
        )
        .map_err(|source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read_from(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }
}

/// File name for an agent's baseline in a baseline directory: the key percent-encoded (keys
/// hold `/`, `:` and spaces), so every key has its own file and the name reads back.
pub fn file_name_for(agent: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(agent, percent_encoding::NON_ALPHANUMERIC);
    format!("{encoded}.yaml")
}

/// A baseline file [`load_baseline_dir_revisions`] did not use: another file of the same agent
/// holds a later revision of its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub agent: String,
    pub path: PathBuf,
    /// Its `enforcement.revision` (0: no enforcement section).
    pub revision: u32,
    /// The file used instead, and its revision.
    pub used: PathBuf,
    pub used_revision: u32,
}

impl std::fmt::Display for SetAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (rev {}) set aside for {} (rev {}) of agent \"{}\"",
            self.path.display(),
            self.revision,
            self.used.display(),
            self.used_revision,
            self.agent
        )
    }
}

/// The approved baselines of a directory, one per agent, and the files set aside.
#[derive(Debug, Clone, Default)]
pub struct BaselineDir {
    pub baselines: BTreeMap<String, AgentBaseline>,
    pub set_aside: Vec<SetAside>,
}

/// A document's policy revision (0 before its first promotion).
fn policy_revision(baseline: &AgentBaseline) -> u32 {
    baseline.enforcement.as_ref().map_or(0, |e| e.revision)
}

/// Loads every `*.yaml` / `*.yml` baseline in `dir`, keyed by the agent key inside each
/// document (the file name does not matter); see [`load_baseline_dir_revisions`].
pub fn load_baseline_dir(dir: &Path) -> Result<BTreeMap<String, AgentBaseline>, BaselineError> {
    Ok(load_baseline_dir_revisions(dir)?.baselines)
}

/// Loads every `*.yaml` / `*.yml` baseline in `dir`, keyed by the agent key inside each
/// document (the file name does not matter).
///
/// Several files of one agent are the revisions promotion leaves (`baseline promote -w`, the
/// console's `P` writes `<name>.rev<N>.yaml` beside its input and never deletes the reviewed
/// file): the one with the highest `enforcement.revision` is used, and the others are
/// returned in `set_aside` for the caller to name. Two files of one agent with the same
/// revision are an error: nothing says which one was approved.
pub fn load_baseline_dir_revisions(dir: &Path) -> Result<BaselineDir, BaselineError> {
    let io = |source| BaselineError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    paths.sort();
    // Per agent, every file and its revision.
    let mut found: BTreeMap<String, Vec<(u32, PathBuf, AgentBaseline)>> = BTreeMap::new();
    for path in paths {
        let baseline = AgentBaseline::read_from(&path)?;
        found
            .entry(baseline.metadata.agent.clone())
            .or_default()
            .push((policy_revision(&baseline), path, baseline));
    }
    let mut out = BaselineDir::default();
    for (agent, mut files) in found {
        // Highest revision first; a stable sort keeps the paths' order among equals.
        files.sort_by_key(|file| std::cmp::Reverse(file.0));
        let mut files = files.into_iter();
        let Some((used_revision, used, baseline)) = files.next() else {
            continue;
        };
        for (revision, path, _) in files {
            if revision == used_revision {
                return Err(BaselineError::Duplicate {
                    agent,
                    first: used,
                    second: path,
                    revision,
                });
            }
            out.set_aside.push(SetAside {
                agent: agent.clone(),
                path,
                revision,
                used: used.clone(),
                used_revision,
            });
        }
        out.baselines.insert(agent, baseline);
    }
    Ok(out)
}
