//! The agents pane: every agent the model knows, as a tree of where it runs — Kubernetes
//! namespace → workload → pod → agent, other containers by id, and processes of the node
//! itself under one "node (host)" group — with activity counts and a marker on agents that
//! have findings.
//!
//! The tree items are rebuilt when the model or the logs changed (a few hundred agents at
//! most), not per frame.

use std::collections::{BTreeMap, HashSet};

use agentscope_analysis::model::{ActorIdentity, Agent, NodeKind};
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;
use tui_tree_widget::{Tree, TreeItem, TreeState};

use super::findings::FindingsPane;
use super::format::format_count;
use super::log::ObservationLogs;
use super::search_query::SearchQuery;
use super::text::visible;
use super::theme::Styles;

/// Where an agent sits in the tree: its group path (id, label) from the top.
pub fn placement(identity: &ActorIdentity) -> Vec<(String, String)> {
    let workload = identity.workload.as_str();
    if let Some(rest) = workload.strip_prefix("k8s:") {
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        let namespace = parts.first().copied().unwrap_or("?");
        let kind = parts.get(1).copied().unwrap_or("?");
        let name = parts.get(2).copied().unwrap_or("?");
        let pod = identity
            .pod
            .as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .unwrap_or_else(|| "(pod unknown)".into());
        vec![
            (format!("ns:{namespace}"), format!("namespace {namespace}")),
            (format!("wl:{kind}/{name}"), format!("{kind}/{name}")),
            (format!("pod:{pod}"), format!("pod {pod}")),
        ]
    } else if let Some(id) = workload.strip_prefix("container:") {
        let short: String = id.chars().take(12).collect();
        vec![
            ("containers".into(), "containers".into()),
            (format!("ctr:{id}"), format!("container {short}")),
        ]
    } else if workload == "host" {
        vec![("host".into(), "node (host processes)".into())]
    } else {
        vec![(format!("other:{workload}"), workload.to_string())]
    }
}

/// Kubernetes first, then other containers, then the host.
fn group_rank(id: &str) -> u8 {
    if id.starts_with("ns:") {
        0
    } else if id == "containers" {
        1
    } else if id == "host" {
        3
    } else {
        2
    }
}

/// The container an agent runs in, from its Kubernetes workload key.
fn container_of(identity: &ActorIdentity) -> Option<&str> {
    let rest = identity.workload.strip_prefix("k8s:")?;
    rest.splitn(4, '/').nth(3)
}

/// The agents list's compact enforcement column: per category that is audited or enforced
/// (by the policy the collector reported, or its decisions) or has decisions, its name, its
/// mode (`A` audit, `E` enforce, `-` off, `?` not known) and the would-block / blocked
/// counts, e.g. `net A3/0 exec E0/2`. The agent's Detail spells it out.
pub fn enforcement_column(
    enforcement: &agentscope_analysis::model::agent_enforcement::AgentEnforcement,
) -> Option<String> {
    use agentscope_analysis::model::agent_enforcement::KnownMode;
    let parts: Vec<String> = enforcement
        .categories()
        .into_iter()
        .filter(|(_, c)| {
            c.decisions() > 0 || matches!(c.mode, Some(KnownMode::Audit | KnownMode::Enforce))
        })
        .map(|(name, c)| {
            let mode = match c.mode {
                Some(KnownMode::Audit) => 'A',
                Some(KnownMode::Enforce) => 'E',
                Some(KnownMode::Off) => '-',
                None => '?',
            };
            let name = if name == "network" { "net" } else { name };
            format!(
                "{name} {mode}{}/{}",
                format_count(c.would_block),
                format_count(c.blocked)
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[derive(Default)]
struct Group {
    label: String,
    activity: u64,
    children: BTreeMap<(u8, String, String), Group>,
    agents: Vec<TreeItem<'static, String>>,
}

#[derive(Default)]
pub struct AgentsPane {
    items: Vec<TreeItem<'static, String>>,
    pub state: TreeState<String>,
    pub filter: String,
    /// Tree path of each agent shown, by key.
    paths: BTreeMap<String, Vec<String>>,
    /// Groups opened once already (new groups start open; a group the user closed stays so).
    seen_groups: HashSet<Vec<String>>,
    pub agent_count: usize,
}

impl AgentsPane {
    pub fn rebuild<'a>(
        &mut self,
        agents: impl Iterator<Item = &'a Agent>,
        logs: &ObservationLogs,
        findings: &FindingsPane,
        styles: &Styles,
    ) {
        let query = SearchQuery::parse(&self.filter);
        let mut root = Group::default();
        let mut paths = BTreeMap::new();
        let mut count = 0;
        for agent in agents {
            count += 1;
            let place = placement(&agent.identity);
            let container = container_of(&agent.identity);
            let fields = [
                agent.key.as_str(),
                agent.name.as_str(),
                agent.identity.workload.as_str(),
                agent.identity.pod.as_deref().unwrap_or(""),
                container.unwrap_or(""),
            ];
            if !query.matches(&fields[..]) {
                continue;
            }
            let activity = logs.agent(&agent.key).map_or(0, |l| l.total);
            let mut group = &mut root;
            let mut path = Vec::new();
            for (id, label) in place {
                path.push(id.clone());
                group.activity += activity;
                group = group
                    .children
                    .entry((group_rank(&id), label.clone(), id))
                    .or_insert_with(|| Group {
                        label,
                        ..Default::default()
                    });
            }
            group.activity += activity;
            let id = format!("agent:{}", agent.key);
            path.push(id.clone());
            paths.insert(agent.key.clone(), path);
            let marker = match findings.worst_for(&agent.key) {
                Some(severity) => Span::styled("● ", styles.severity(severity)),
                None => Span::raw("  "),
            };
            let mut spans = vec![marker];
            if agent.plaintext_not_visible.is_some() {
                // Known from its TLS server names only: marked before its name, where a
                // narrow pane still shows it (the AI-BOM and the detail say why).
                spans.push(Span::styled("⊘ ", styles.warning));
            }
            spans.push(Span::styled(
                visible(&agent.name),
                styles.node(NodeKind::Agent),
            ));
            if let Some(container) = container {
                spans.push(Span::styled(
                    format!(" [{}]", visible(container)),
                    styles.muted,
                ));
            }
            spans.push(Span::styled(
                format!("  {}", format_count(activity)),
                styles.muted,
            ));
            if let Some(column) = enforcement_column(&agent.enforcement) {
                spans.push(Span::styled(format!("  {column}"), styles.warning));
            }
            group.agents.push(TreeItem::new_leaf(id, Line::from(spans)));
        }
        self.agent_count = count;
        let mut new_groups = Vec::new();
        self.items = Self::group_items(root, &[], styles, &mut new_groups);
        for path in new_groups {
            if self.seen_groups.insert(path.clone()) {
                self.state.open(path);
            }
        }
        self.paths = paths;
        if self.selected_agent().is_none() && self.state.selected().is_empty() {
            if let Some(first) = self.paths.values().next().cloned() {
                self.state.select(first);
            }
        }
    }

    fn group_items(
        group: Group,
        parent: &[String],
        styles: &Styles,
        new_groups: &mut Vec<Vec<String>>,
    ) -> Vec<TreeItem<'static, String>> {
        let mut items = Vec::new();
        for ((_, _, id), child) in group.children {
            let mut path = parent.to_vec();
            path.push(id.clone());
            let text = Line::from(vec![
                Span::styled(visible(&child.label), styles.text),
                Span::styled(format!("  {}", format_count(child.activity)), styles.muted),
            ]);
            // Subgroups first, then agents, each in a stable order.
            let children = Self::group_items(child, &path, styles, new_groups);
            new_groups.push(path);
            if let Ok(item) = TreeItem::new(id, text, children) {
                items.push(item);
            }
        }
        items.extend(group.agents);
        items
    }

    /// The agent on the selected row, if an agent row is selected.
    pub fn selected_agent(&self) -> Option<&str> {
        self.state
            .selected()
            .last()
            .and_then(|id| id.strip_prefix("agent:"))
    }

    pub fn select_agent(&mut self, key: &str) -> bool {
        match self.paths.get(key) {
            Some(path) => {
                for depth in 1..path.len() {
                    self.state.open(path[..depth].to_vec());
                }
                self.state.select(path.clone());
                self.state.scroll_selected_into_view();
                true
            }
            None => false,
        }
    }

    pub fn click(&mut self, position: Position) -> bool {
        self.state.click_at(position)
    }

    pub fn render(&mut self, frame: &mut Frame, area: Rect, block: Block<'_>, styles: &Styles) {
        if self.items.is_empty() {
            let inner = block.inner(area);
            frame.render_widget(block, area);
            let text = if self.agent_count == 0 {
                vec![
                    Line::styled("No agents yet.", styles.muted),
                    Line::styled(
                        "A process becomes an agent when it calls an LLM API or acts as an MCP client.",
                        styles.muted,
                    ),
                ]
            } else {
                vec![Line::styled("No agent matches the filter.", styles.muted)]
            };
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), inner);
            return;
        }
        let Ok(tree) = Tree::new(&self.items) else {
            return;
        };
        let tree = tree
            .block(block)
            .style(styles.text)
            .highlight_style(styles.selection)
            .node_closed_symbol("▸ ")
            .node_open_symbol("▾ ");
        frame.render_stateful_widget(tree, area, &mut self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_placed_by_where_they_run() {
        let k8s = ActorIdentity {
            workload: "k8s:crm/Deployment/support-agent/agent".into(),
            pod: Some("crm/support-agent-7d9f-abcde".into()),
            ..Default::default()
        };
        assert_eq!(
            placement(&k8s),
            vec![
                ("ns:crm".to_string(), "namespace crm".to_string()),
                (
                    "wl:Deployment/support-agent".to_string(),
                    "Deployment/support-agent".to_string()
                ),
                (
                    "pod:support-agent-7d9f-abcde".to_string(),
                    "pod support-agent-7d9f-abcde".to_string()
                ),
            ]
        );
        assert_eq!(container_of(&k8s), Some("agent"));
        let host = ActorIdentity {
            workload: "host".into(),
            ..Default::default()
        };
        assert_eq!(placement(&host)[0].0, "host");
        let container = ActorIdentity {
            workload: "container:0123456789abcdef".into(),
            ..Default::default()
        };
        assert_eq!(placement(&container)[1].1, "container 0123456789ab");
        assert!(group_rank("ns:a") < group_rank("containers"));
        assert!(group_rank("containers") < group_rank("host"));
    }
}
