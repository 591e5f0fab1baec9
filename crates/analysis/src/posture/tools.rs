//! Tools an agent could use against tools it used: the tools offered to its models (the LLM
//! requests' `tools`) and those its MCP servers list (`tools/list`), against the tool calls
//! its models made. A tool with a dangerous capability that is offered and never called is
//! excess agency (OWASP LLM06): the agent can be talked into using it and does not need it.
//!
//! Capabilities are read from the tool's name and description, because that is all an agent
//! framework declares. The word lists are in docs/posture.md.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// What a tool can do that makes it dangerous to offer without need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Runs commands or code.
    Shell,
    /// Writes, moves or deletes files.
    FileWrite,
    /// Fetches or posts to hosts the model chooses.
    Http,
    /// Runs SQL.
    Sql,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Capability::Shell => "shell",
            Capability::FileWrite => "file write",
            Capability::Http => "HTTP to arbitrary hosts",
            Capability::Sql => "SQL",
        }
    }
}

/// Name words (whole words of a snake_case, kebab-case or camelCase name) per capability.
/// Words that name many harmless tools too (`create`, `query`, `web`) are left out, or only
/// count beside a word saying what they act on ([`FILE_WORDS`]).
const NAME_WORDS: &[(Capability, &[&str])] = &[
    (
        Capability::Shell,
        &[
            "bash",
            "shell",
            "sh",
            "exec",
            "terminal",
            "command",
            "cmd",
            "subprocess",
            "powershell",
            "python",
            "eval",
            "repl",
        ],
    ),
    (
        Capability::Http,
        &[
            "fetch", "http", "curl", "wget", "browse", "browser", "url", "navigate", "download",
        ],
    ),
    (
        Capability::Sql,
        &["sql", "postgres", "postgresql", "mysql", "sqlite", "psql"],
    ),
];

/// Verbs that write a file system when a name says they act on files (`write_file`,
/// `delete_directory`), or alone as a coding agent's tool names them (`Write`, `Edit`).
const WRITE_WORDS: &[&str] = &[
    "write",
    "edit",
    "multiedit",
    "delete",
    "remove",
    "rm",
    "move",
    "mv",
    "rename",
    "append",
    "replace",
    "create",
    "mkdir",
    "overwrite",
    "upload",
];
const FILE_WORDS: &[&str] = &[
    "file",
    "files",
    "dir",
    "directory",
    "folder",
    "path",
    "fs",
    "filesystem",
];

/// Description phrases (lower case) per capability.
const DESCRIPTION_PHRASES: &[(Capability, &[&str])] = &[
    (
        Capability::Shell,
        &[
            "shell command",
            "run a command",
            "runs a command",
            "execute a command",
            "executes a command",
            "bash",
            "arbitrary code",
            "run code",
            "execute code",
        ],
    ),
    (
        Capability::FileWrite,
        &[
            "write a file",
            "writes a file",
            "write to a file",
            "writes to a file",
            "write file",
            "delete a file",
            "edit a file",
            "edits a file",
            "create a file",
            "overwrite",
        ],
    ),
    (
        Capability::Http,
        &[
            "any url",
            "a url",
            "arbitrary url",
            "http request",
            "fetch a web",
            "fetches a web",
            "web page",
            "any host",
        ],
    ),
    (
        Capability::Sql,
        &["sql", "database query", "query the database"],
    ),
];

/// The words of a tool name, lower case.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && !current.is_empty()) {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            if !c.is_ascii_alphanumeric() {
                continue;
            }
        }
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// The dangerous capabilities a tool's name and description declare.
pub fn capabilities(name: &str, description: Option<&str>) -> BTreeSet<Capability> {
    let words = name_words(name);
    let mut found = BTreeSet::new();
    let writes = words.iter().any(|w| WRITE_WORDS.contains(&w.as_str()));
    if writes && (words.len() == 1 || words.iter().any(|w| FILE_WORDS.contains(&w.as_str()))) {
        found.insert(Capability::FileWrite);
    }
    for (capability, list) in NAME_WORDS {
        if words.iter().any(|w| list.contains(&w.as_str())) {
            found.insert(*capability);
        }
    }
    if let Some(description) = description {
        let lower = description.to_ascii_lowercase();
        for (capability, phrases) in DESCRIPTION_PHRASES {
            if phrases.iter().any(|p| lower.contains(p)) {
                found.insert(*capability);
            }
        }
    }
    found
}

/// Where a tool was offered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolSource {
    /// In an LLM request's `tools`.
    Model,
    /// In an MCP server's `tools/list`.
    Mcp { server: String },
}

/// One tool the agent could use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferedTool {
    pub name: String,
    pub sources: Vec<ToolSource>,
    pub capabilities: BTreeSet<Capability>,
    /// Tool calls of it seen.
    pub calls: u64,
}

/// Tools offered (by name: a model calls MCP tools by the names the agent gave them, usually
/// the MCP name itself or `mcp__server__name`), with their calls counted.
pub fn offered_tools(
    model_tools: &BTreeMap<String, Option<String>>,
    mcp_tools: &BTreeMap<String, BTreeMap<String, Option<String>>>,
    calls: &BTreeMap<String, u64>,
) -> Vec<OfferedTool> {
    let mut tools: BTreeMap<String, OfferedTool> = BTreeMap::new();
    let mut offer = |name: &str, description: Option<&str>, source: ToolSource| {
        let tool = tools
            .entry(name.to_string())
            .or_insert_with(|| OfferedTool {
                name: name.to_string(),
                sources: Vec::new(),
                capabilities: BTreeSet::new(),
                calls: 0,
            });
        tool.capabilities.extend(capabilities(name, description));
        if !tool.sources.contains(&source) {
            tool.sources.push(source);
        }
    };
    for (name, description) in model_tools {
        offer(name, description.as_deref(), ToolSource::Model);
    }
    for (server, listed) in mcp_tools {
        for (name, description) in listed {
            offer(
                name,
                description.as_deref(),
                ToolSource::Mcp {
                    server: server.clone(),
                },
            );
        }
    }
    for tool in tools.values_mut() {
        tool.calls = calls
            .iter()
            .filter(|(called, _)| called_as(called, &tool.name))
            .map(|(_, n)| *n)
            .sum();
    }
    tools.into_values().collect()
}

/// Whether a call named `called` is a call of the tool `name` (directly, or through an
/// MCP-prefixed name such as `mcp__crm__lookup` or `crm.lookup`).
fn called_as(called: &str, name: &str) -> bool {
    called == name
        || called.strip_suffix(name).is_some_and(|prefix| {
            prefix.ends_with("__") || prefix.ends_with('.') || prefix.ends_with('/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_from_names_and_descriptions() {
        assert_eq!(
            capabilities("run_shell_command", None),
            BTreeSet::from([Capability::Shell])
        );
        assert_eq!(
            capabilities("Bash", None),
            BTreeSet::from([Capability::Shell])
        );
        assert_eq!(
            capabilities("write_file", None),
            BTreeSet::from([Capability::FileWrite])
        );
        assert_eq!(
            capabilities("web_fetch", None),
            BTreeSet::from([Capability::Http])
        );
        assert_eq!(
            capabilities("runSqlQuery", None),
            BTreeSet::from([Capability::Sql])
        );
        assert_eq!(
            capabilities("Edit", None),
            BTreeSet::from([Capability::FileWrite])
        );
        assert!(capabilities("create_ticket", None).is_empty());
        assert!(capabilities("web_search", None).is_empty());
        assert!(capabilities("read_file", Some("Reads a file")).is_empty());
        assert!(capabilities("lookup_customer", Some("Look up a customer by id")).is_empty());
        assert_eq!(
            capabilities(
                "helper",
                Some("Executes a shell command and returns stdout")
            ),
            BTreeSet::from([Capability::Shell])
        );
    }

    #[test]
    fn offered_tools_count_their_calls_through_mcp_prefixes() {
        let model = BTreeMap::from([
            ("lookup_customer".to_string(), None),
            (
                "run_shell".to_string(),
                Some("Runs a shell command".to_string()),
            ),
        ]);
        let mcp = BTreeMap::from([(
            "crm".to_string(),
            BTreeMap::from([
                ("lookup_customer".to_string(), None),
                ("export_table".to_string(), Some("Runs SQL".to_string())),
            ]),
        )]);
        let calls = BTreeMap::from([("mcp__crm__lookup_customer".to_string(), 2)]);
        let tools = offered_tools(&model, &mcp, &calls);
        let by_name: BTreeMap<_, _> = tools.iter().map(|t| (t.name.as_str(), t)).collect();
        assert_eq!(by_name["lookup_customer"].calls, 2);
        assert_eq!(by_name["lookup_customer"].sources.len(), 2);
        assert_eq!(by_name["run_shell"].calls, 0);
        assert!(by_name["run_shell"]
            .capabilities
            .contains(&Capability::Shell));
        assert!(by_name["export_table"]
            .capabilities
            .contains(&Capability::Sql));
    }
}
