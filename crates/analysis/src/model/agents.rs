//! Agents and their AI bill of materials.
//!
//! A process becomes an agent when it calls an LLM API or acts as an MCP client. The agent's
//! key is built from its workload identity and executable, never from pod names or pids, so
//! its history survives restarts and rescheduling.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::reconstruct::llm::LlmApi;
use agentscope_event::package::PackageFound;

/// Who a process runs as, as far as the identity sources could tell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorIdentity {
    /// Stable workload part of agent keys: `k8s:namespace/Kind/name/container` in Kubernetes,
    /// `container:<id>` in other containers, `host` otherwise.
    pub workload: String,
    pub uid: u32,
    pub user: Option<String>,
    pub container_id: Option<String>,
    /// `namespace/name` of the pod, when known.
    pub pod: Option<String>,
    /// `namespace/name` of the Kubernetes service account.
    pub service_account: Option<String>,
    /// Cloud roles the workload can assume (`aws:arn:...`, `gcp:sa@...`, `azure:client-id`).
    pub cloud_roles: Vec<String>,
    /// The full identity record from the resolver.
    pub details: serde_json::Value,
}

impl ActorIdentity {
    /// The agent key for a program run under this identity: `<workload>:<program key>`
    /// (the program key from [`super::agent_key::program_key`]).
    pub fn agent_key(&self, program: &str) -> String {
        format!("{}:{program}", self.workload)
    }
}

/// One answer of an identity source. Captures record them, so a replay gives the answers the
/// live capture got, without the Kubernetes API or the /proc of the machine that recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityAnswer {
    pub pid: u32,
    pub cgroup_id: u64,
    pub uid: u32,
    pub identity: ActorIdentity,
}

/// Resolves who a process runs as. The live collector backs this with cgroups, the
/// Kubernetes API and /proc; replays and tests can supply their own.
pub trait IdentityLookup {
    fn lookup(&mut self, pid: u32, cgroup_id: u64, uid: u32) -> ActorIdentity;

    /// A process started a program (exec): a live source reads what it needs of it now,
    /// while it runs, so a lookup made after it exited (events are processed behind the
    /// kernel) still finds where it ran. Answers nothing, and a replay ignores it.
    fn process_started(&mut self, _pid: u32, _cgroup_id: u64, _uid: u32) {}

    /// The process exited: per-pid state can go.
    fn forget(&mut self, _pid: u32) {}

    /// An answer recorded earlier (a replay passes on its capture's answers); live sources
    /// ignore it.
    fn remember(&mut self, _answer: IdentityAnswer) {}

    /// Problems worth telling the user (no API access, no cgroup2 mount).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An identity source that knows nothing beyond the uid: every process is on the host.
#[derive(Debug, Default)]
pub struct HostOnlyIdentity;

impl IdentityLookup for HostOnlyIdentity {
    fn lookup(&mut self, _pid: u32, _cgroup_id: u64, uid: u32) -> ActorIdentity {
        ActorIdentity {
            workload: "host".into(),
            uid,
            ..Default::default()
        }
    }
}

// What program a process runs is decided with the process table, below reconstruction, which
// needs it too.
pub use crate::program::{basename, display_name, program_of};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct McpServerEntry {
    pub name: String,
    pub version: Option<String>,
    pub transport: String,
    pub endpoint: Option<String>,
    /// Tool name → description (descriptions are model input: tool poisoning lives there).
    pub tools: BTreeMap<String, Option<String>>,
}

/// What an agent is built from and talks to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AiBom {
    /// `gen_ai.provider.name` → models requested or reported.
    pub providers: BTreeMap<String, BTreeSet<String>>,
    pub apis: BTreeSet<LlmApi>,
    /// Keyed by server name (or endpoint when unnamed).
    pub mcp_servers: BTreeMap<String, McpServerEntry>,
    /// Tools offered to models, name → description.
    pub tools_offered: BTreeMap<String, Option<String>>,
    /// SDKs and frameworks seen in User-Agent headers and loaded modules.
    pub frameworks: BTreeSet<String>,
    /// Retrieval (RAG) sources: vector databases and pgvector tables.
    pub retrieval_sources: BTreeSet<String>,
    /// Packages the agent's processes loaded, with the versions the collector read from their
    /// metadata (`package` events), keyed `ecosystem:name@version`; at most
    /// [`PACKAGES_PER_AGENT`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<String, PackageFound>,
}

/// Packages kept per agent; later ones are left out.
pub const PACKAGES_PER_AGENT: usize = 1024;

impl AiBom {
    /// Adds a package the agent loaded (bounded: [`PACKAGES_PER_AGENT`]); an AI framework
    /// among them is named in `frameworks` too.
    pub fn add_package(&mut self, package: &PackageFound) {
        let key = format!(
            "{}:{}@{}",
            package.ecosystem.purl_type(),
            package.name,
            package.version.as_deref().unwrap_or_default()
        );
        if self.packages.len() >= PACKAGES_PER_AGENT && !self.packages.contains_key(&key) {
            return;
        }
        if let Some(framework) = framework_of_package(&package.name) {
            self.frameworks.insert(framework.to_string());
        }
        self.packages.insert(key, package.clone());
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agent {
    pub key: String,
    pub name: String,
    pub program: String,
    /// Processes seen acting as this agent (most recent kept).
    pub pids: BTreeSet<u32>,
    pub identity: ActorIdentity,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub llm_calls: u64,
    pub tool_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub aibom: AiBom,
    /// Set when the agent is known only from the server names of its TLS connections (an LLM
    /// provider's API host) because agentscope cannot read its plaintext: why not
    /// (`plaintext not visible: TLS stack not recognised`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_not_visible: Option<String>,
    /// What kernel enforcement decided for the agent's processes (issue 17); left out when
    /// nothing was decided.
    #[serde(
        default,
        skip_serializing_if = "super::agent_enforcement::AgentEnforcement::is_empty"
    )]
    pub enforcement: super::agent_enforcement::AgentEnforcement,
}

/// Pids remembered per agent; older ones are dropped first.
pub const PIDS_PER_AGENT: usize = 64;

/// Heap estimate of a small map entry or set item besides its strings.
const ENTRY_BYTES: usize = 64;

impl Agent {
    /// Upper-bound estimate of the heap the record takes, for the memory budget: a fixed part
    /// (the record, its pid set at [`PIDS_PER_AGENT`], enforcement decisions) and its strings
    /// and AI-BOM entries. A heap profile of the footprint bench's synthetic agents (a model
    /// or an MCP server each, a few tools) put record and AI-BOM at about 4 KiB an agent; the
    /// recorded incident agent (five tools, two MCP servers, pod identity) is charged 10 KiB.
    pub fn estimate_bytes(&self) -> usize {
        const FIXED: usize = 3072;
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let described = |tools: &BTreeMap<String, Option<String>>| {
            tools
                .iter()
                .map(|(name, description)| ENTRY_BYTES + name.len() + text(description))
                .sum::<usize>()
        };
        let identity = &self.identity;
        let aibom = &self.aibom;
        FIXED
            + 2 * self.key.len()
            + self.name.len()
            + self.program.len()
            + self.plaintext_not_visible.as_ref().map_or(0, String::len)
            + identity.workload.len()
            + text(&identity.user)
            + text(&identity.container_id)
            + text(&identity.pod)
            + text(&identity.service_account)
            + identity
                .cloud_roles
                .iter()
                .map(|r| ENTRY_BYTES + r.len())
                .sum::<usize>()
            + crate::memory_budget::json_value_bytes(&identity.details)
            + aibom
                .providers
                .iter()
                .map(|(provider, models)| {
                    ENTRY_BYTES
                        + provider.len()
                        + models.iter().map(|m| ENTRY_BYTES + m.len()).sum::<usize>()
                })
                .sum::<usize>()
            + ENTRY_BYTES * aibom.apis.len()
            + aibom
                .mcp_servers
                .iter()
                .map(|(key, server)| {
                    2 * ENTRY_BYTES
                        + key.len()
                        + server.name.len()
                        + text(&server.version)
                        + server.transport.len()
                        + text(&server.endpoint)
                        + described(&server.tools)
                })
                .sum::<usize>()
            + described(&aibom.tools_offered)
            + aibom
                .frameworks
                .iter()
                .chain(&aibom.retrieval_sources)
                .map(|s| ENTRY_BYTES + s.len())
                .sum::<usize>()
            + aibom
                .packages
                .iter()
                .map(|(key, package)| {
                    2 * ENTRY_BYTES
                        + key.len()
                        + package.name.len()
                        + text(&package.version)
                        + package.package_dir.len()
                        + text(&package.metadata_path)
                        + text(&package.error)
                })
                .sum::<usize>()
    }

    pub fn add_pid(&mut self, pid: u32) {
        self.pids.insert(pid);
        while self.pids.len() > PIDS_PER_AGENT {
            // Pids are not ordered by age; dropping the smallest is a cheap, bounded choice.
            let first = *self.pids.iter().next().expect("non-empty");
            self.pids.remove(&first);
        }
    }
}

/// Frameworks recognised in User-Agent-style strings (lower-cased substring → name).
const UA_FRAMEWORKS: &[(&str, &str)] = &[
    ("openai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("anthropic/js", "anthropic-node"),
    ("google-genai-sdk", "google-genai"),
    ("langchain", "langchain"),
    ("llamaindex", "llama-index"),
    ("llama-index", "llama-index"),
    ("litellm", "litellm"),
    ("ollama-python", "ollama-python"),
    ("ollama-js", "ollama-js"),
    ("python-httpx", "httpx"),
    ("python-requests", "requests"),
    ("python-urllib", "urllib"),
    ("aiohttp", "aiohttp"),
    ("node-fetch", "node-fetch"),
    ("undici", "node-fetch (undici)"),
    ("mcp", "mcp-sdk"),
];

/// Packages recognised in module paths (`site-packages/<name>/`, `node_modules/<name>/`).
const MODULE_FRAMEWORKS: &[(&str, &str)] = &[
    ("openai", "openai-sdk"),
    ("anthropic", "anthropic-sdk"),
    ("langchain", "langchain"),
    ("langchain_core", "langchain"),
    ("langgraph", "langgraph"),
    ("llama_index", "llama-index"),
    ("crewai", "crewai"),
    ("autogen", "autogen"),
    ("autogen_agentchat", "autogen"),
    ("semantic_kernel", "semantic-kernel"),
    ("haystack", "haystack"),
    ("dspy", "dspy"),
    ("pydantic_ai", "pydantic-ai"),
    ("smolagents", "smolagents"),
    ("google/genai", "google-genai"),
    ("mcp", "mcp-sdk"),
    ("litellm", "litellm"),
    ("@modelcontextprotocol/sdk", "mcp-sdk"),
    ("@langchain", "langchain"),
    ("@anthropic-ai/sdk", "anthropic-sdk"),
    ("ai", "vercel-ai-sdk"),
];

pub fn frameworks_in_user_agent(user_agent: &str) -> Vec<&'static str> {
    let lower = user_agent.to_ascii_lowercase();
    UA_FRAMEWORKS
        .iter()
        .filter(|(needle, _)| lower.contains(needle))
        .map(|(_, name)| *name)
        .collect()
}

/// The AI framework a package is, by the name its metadata gives (`openai`, `mcp`,
/// `@modelcontextprotocol/sdk`, `langchain-core`): `None` for other libraries.
pub fn framework_of_package(name: &str) -> Option<&'static str> {
    // Distribution names use `-` where module names use `_` (`langchain-core`, `llama_index`).
    let name = name.to_ascii_lowercase().replace(['-', '.', '/'], "_");
    MODULE_FRAMEWORKS
        .iter()
        .find(|(package, _)| package.replace(['-', '.', '/'], "_") == name)
        .map(|(_, framework)| *framework)
        .or_else(|| {
            PACKAGE_FRAMEWORKS
                .iter()
                .find(|(package, _)| *package == name)
                .map(|(_, framework)| *framework)
        })
}

/// Distribution names of AI frameworks whose module names differ (after `-` → `_`).
const PACKAGE_FRAMEWORKS: &[(&str, &str)] = &[
    ("google_genai", "google-genai"),
    ("llama_index_core", "llama-index"),
    ("autogen_agentchat", "autogen"),
    ("pyautogen", "autogen"),
    ("haystack_ai", "haystack"),
    ("semantic_kernel", "semantic-kernel"),
    ("crewai", "crewai"),
    ("@openai_agents", "openai-agents"),
    ("openai_agents", "openai-agents"),
];

/// Where packages are installed, in the order asked: each file an interpreter opens is looked
/// up, so the searchers are built once (`str::split_once` built one per call and marker).
static PACKAGE_DIRECTORIES: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
    std::sync::LazyLock::new(|| {
        ["/site-packages/", "/dist-packages/", "/node_modules/"]
            .map(|marker| memchr::memmem::Finder::new(marker).into_owned())
    });

pub fn framework_in_module_path(path: &str) -> Option<&'static str> {
    let rest = PACKAGE_DIRECTORIES.iter().find_map(|marker| {
        let at = marker.find(path.as_bytes())?;
        // The marker is ASCII, so the byte after it starts a character.
        path.get(at + marker.needle().len()..)
    })?;
    MODULE_FRAMEWORKS
        .iter()
        .find(|(package, _)| {
            rest.strip_prefix(package)
                .is_some_and(|after| after.starts_with('/') || after.starts_with(".py"))
        })
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frameworks_from_user_agents_and_module_paths() {
        assert_eq!(
            frameworks_in_user_agent("OpenAI/Python 1.54.3"),
            vec!["openai-python"]
        );
        assert_eq!(
            framework_in_module_path(
                "/usr/lib/python3/dist-packages/langchain_core/runnables/base.py"
            ),
            Some("langchain")
        );
        assert_eq!(
            framework_in_module_path("/app/node_modules/@modelcontextprotocol/sdk/dist/index.js"),
            Some("mcp-sdk")
        );
        assert_eq!(
            framework_in_module_path("/app/node_modules/aiohttp-thing/x.js"),
            None
        );
        assert_eq!(
            framework_in_module_path("/usr/lib/python3.11/json/__init__.py"),
            None
        );
    }

    #[test]
    fn frameworks_from_package_names() {
        assert_eq!(framework_of_package("openai"), Some("openai-sdk"));
        assert_eq!(framework_of_package("langchain-core"), Some("langchain"));
        assert_eq!(framework_of_package("mcp"), Some("mcp-sdk"));
        assert_eq!(
            framework_of_package("@modelcontextprotocol/sdk"),
            Some("mcp-sdk")
        );
        assert_eq!(framework_of_package("google-genai"), Some("google-genai"));
        assert_eq!(framework_of_package("pydantic"), None);
        assert_eq!(framework_of_package("ai-thing"), None);
    }
}
