//! The execution graph of the selected agent as an expandable tree: the agent's edges grouped
//! by what they lead to (models, MCP servers, tools, commands, APIs, data, identities), and
//! under each node the edges leaving it (a tool → what carried it out → the data it touched).
//!
//! The tree is flattened into rows when the graph or the expansion changes, not per frame,
//! and only the rows on screen are drawn; a graph of 10,000 nodes renders as fast as one of
//! ten. Edges new relative to the agent's baseline are highlighted ([`EdgeNovelty`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use agentscope_analysis::model::graph::Edge;
use agentscope_analysis::model::{EdgeKind, Graph, NodeKind};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::edge_novelty::{EdgeMark, EdgeNovelty};
use super::format::{format_count, format_time};
use super::list::{render_rows, ListCursor};
use super::search_query::SearchQuery;
use super::text::fit_columns;
use super::theme::Styles;

/// Order and names of the groups under the agent.
const GROUPS: &[(NodeKind, &str)] = &[
    (NodeKind::Model, "Models"),
    (NodeKind::McpServer, "MCP servers"),
    (NodeKind::Tool, "Tools"),
    (NodeKind::Command, "Commands"),
    (NodeKind::Api, "APIs"),
    (NodeKind::Data, "Data"),
    (NodeKind::Identity, "Identities"),
    (NodeKind::Agent, "Agents"),
];

/// Deepest level drawn (cycles are cut earlier: a node never repeats on its own path).
const MAX_DEPTH: usize = 8;

/// An edge as the tree shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeView {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub label: String,
    pub node_kind: NodeKind,
    pub count: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// The baseline does not hold it (see [`EdgeNovelty`]).
    pub new: bool,
    /// It rests on an event of the finding being walked (marked `◆`, as the timeline's rows).
    pub evidence: bool,
}

/// Siblings that would read the same but are different nodes (Debian's `/usr/bin/psql`
/// wrapper and the `/usr/lib/postgresql/15/bin/psql` it runs are both "psql") are labelled
/// with their node ids instead, without the kind prefix, so two rows never look like one.
fn disambiguate_labels(views: &mut [Arc<EdgeView>]) {
    let mut targets: HashMap<&str, HashSet<&str>> = HashMap::new();
    for view in views.iter() {
        targets.entry(&view.label).or_default().insert(&view.to);
    }
    let ambiguous: HashSet<String> = targets
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(label, _)| label.to_string())
        .collect();
    if ambiguous.is_empty() {
        return;
    }
    for view in views.iter_mut() {
        if ambiguous.contains(&view.label) {
            let id = view
                .to
                .split_once(':')
                .map_or(view.to.as_str(), |(_, rest)| rest);
            let mut relabelled = (**view).clone();
            relabelled.label = id.to_string();
            *view = Arc::new(relabelled);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowContent {
    Group {
        kind: NodeKind,
        name: &'static str,
        count: usize,
    },
    /// Shared with the adjacency the rows were made from: rows are rebuilt often.
    Edge(Arc<EdgeView>),
}

/// Identity of a row across rebuilds: a hash of the group and the edges down to it.
pub type RowKey = u64;

fn row_key(parent: RowKey, to: &str, kind: EdgeKind) -> RowKey {
    let mut hasher = DefaultHasher::new();
    parent.hash(&mut hasher);
    to.hash(&mut hasher);
    kind.hash(&mut hasher);
    hasher.finish()
}

fn group_key(name: &str) -> RowKey {
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphRow {
    pub key: RowKey,
    pub depth: usize,
    pub content: RowContent,
    pub expandable: bool,
    pub expanded: bool,
}

#[derive(Default)]
pub struct GraphPane {
    /// `agent:<key>` of the agent shown.
    root: Option<String>,
    /// Out-edges of every node reachable from the root, sorted for display.
    adjacency: HashMap<String, Vec<Arc<EdgeView>>>,
    rows: Vec<GraphRow>,
    /// Rows whose expansion the user flipped from the default.
    toggled: HashSet<RowKey>,
    selected_key: Option<RowKey>,
    pub cursor: ListCursor,
    pub filter: String,
    pub reachable_nodes: usize,
    pub reachable_edges: usize,
    /// Rows drawn in the last frame, for mouse hit tests.
    pub last_area: Rect,
    /// How the edges under each node are ordered.
    pub order: super::list_sort::EdgeOrder,
    /// What "new" is relative to, for the shown agent.
    pub novelty: EdgeNovelty,
    /// The raw events of the finding whose evidence is being walked: edges resting on one are
    /// marked. An edge keeps its latest event ranges only, so an edge used often since the
    /// evidence may no longer show it.
    pub evidence: Vec<agentscope_reconstruct::EventRange>,
}

/// The edges reachable from `root` (following edges forwards, each once: one pass over the
/// graph's edges to index them by source, then a walk from the root) and how many nodes they
/// reach (the root included).
fn reachable<'g>(graph: &'g Graph, root: &str) -> (Vec<&'g Edge>, usize) {
    let mut out: HashMap<&str, Vec<&Edge>> = HashMap::new();
    for edge in graph.edges() {
        out.entry(edge.from.as_str()).or_default().push(edge);
    }
    let mut reached = Vec::new();
    let mut seen: HashSet<&str> = HashSet::from([root]);
    let mut queue = vec![root];
    while let Some(node) = queue.pop() {
        for edge in out.get(node).into_iter().flatten() {
            reached.push(*edge);
            if seen.insert(edge.to.as_str()) && graph.get_node(&edge.to).is_some() {
                queue.push(edge.to.as_str());
            }
        }
    }
    (reached, seen.len())
}

fn node_kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Agent => "agent",
        NodeKind::Model => "model",
        NodeKind::Tool => "tool",
        NodeKind::McpServer => "mcp",
        NodeKind::Api => "api",
        NodeKind::Data => "data",
        NodeKind::Identity => "identity",
        NodeKind::Command => "command",
    }
}

/// How an edge below the first level reads: `tool ─via→ /srv/x`.
pub fn edge_verb(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::InvokesModel => "invokes",
        EdgeKind::CallsTool => "calls tool",
        EdgeKind::ConnectsMcp => "connects",
        EdgeKind::Provides => "provides",
        EdgeKind::ExecutedVia => "via",
        EdgeKind::CallsApi => "calls",
        EdgeKind::Accesses => "accesses",
        EdgeKind::Executes => "runs",
        EdgeKind::RunsAs => "runs as",
    }
}

/// Rows open by default: the groups, and tools and MCP servers so that what carried out each
/// tool call is one glance away.
fn open_by_default(row: &GraphRow) -> bool {
    match &row.content {
        RowContent::Group { .. } => true,
        RowContent::Edge(edge) => {
            row.depth == 1 && matches!(edge.node_kind, NodeKind::Tool | NodeKind::McpServer)
        }
    }
}

impl GraphPane {
    pub fn rows(&self) -> &[GraphRow] {
        &self.rows
    }

    pub fn selected(&self) -> Option<&GraphRow> {
        self.rows.get(self.cursor.selected)
    }

    /// Shows `agent_key`'s graph (forgetting expansion state when the agent changes).
    pub fn set_agent(&mut self, agent_key: Option<&str>, graph: &Graph) {
        let root = agent_key.map(|k| format!("agent:{k}"));
        if root != self.root {
            self.root = root;
            self.toggled.clear();
            self.selected_key = None;
            self.cursor = ListCursor::default();
        }
        self.rebuild(graph);
    }

    /// Re-reads the graph: one pass over its edges, then the rows.
    pub fn rebuild(&mut self, graph: &Graph) {
        self.adjacency.clear();
        self.reachable_nodes = 0;
        self.reachable_edges = 0;
        if let Some(root) = &self.root {
            let (edges, nodes) = reachable(graph, root);
            self.reachable_nodes = nodes;
            for edge in edges {
                let Some(target) = graph.get_node(&edge.to) else {
                    continue;
                };
                self.reachable_edges += 1;
                let view = Arc::new(EdgeView {
                    from: edge.from.clone(),
                    to: edge.to.clone(),
                    kind: edge.kind,
                    label: target.label.clone(),
                    node_kind: target.kind,
                    count: edge.count,
                    first_seen_ns: edge.first_seen_ns,
                    last_seen_ns: edge.last_seen_ns,
                    new: self.novelty.mark(edge, target.kind),
                    evidence: crate::timeline_pane::overlaps(&self.evidence, &edge.events),
                });
                match self.adjacency.get_mut(edge.from.as_str()) {
                    Some(views) => views.push(view),
                    None => {
                        self.adjacency.insert(edge.from.clone(), vec![view]);
                    }
                }
            }
            for views in self.adjacency.values_mut() {
                disambiguate_labels(views);
            }
            self.sort_edges();
        }
        self.flatten();
    }

    fn sort_edges(&mut self) {
        let order = self.order;
        for views in self.adjacency.values_mut() {
            views.sort_unstable_by(|a, b| order.compare(a, b));
        }
    }

    /// Orders the edges under each node by `order`, the same row staying selected.
    pub fn set_order(&mut self, order: super::list_sort::EdgeOrder) {
        self.order = order;
        self.sort_edges();
        self.flatten();
    }

    /// Turns the adjacency and expansion state into rows.
    fn flatten(&mut self) {
        let mut rows = Vec::new();
        if let Some(root) = &self.root {
            let query = SearchQuery::parse(&self.filter);
            let children = self.adjacency.get(root.as_str());
            for (kind, name) in GROUPS {
                let edges: Vec<&Arc<EdgeView>> = children
                    .into_iter()
                    .flatten()
                    .filter(|e| e.node_kind == *kind)
                    .collect();
                if edges.is_empty() {
                    continue;
                }
                let mut group = GraphRow {
                    key: group_key(name),
                    depth: 0,
                    content: RowContent::Group {
                        kind: *kind,
                        name,
                        count: edges.len(),
                    },
                    expandable: true,
                    expanded: false,
                };
                group.expanded = open_by_default(&group) != self.toggled.contains(&group.key);
                let at = rows.len();
                let key = group.key;
                let open = group.expanded || !query.is_empty();
                rows.push(group);
                let mut stack = vec![root.as_str()];
                let mut any = false;
                for edge in edges {
                    any |= self.push_edge(&mut rows, edge, key, 1, open, &mut stack, &query);
                }
                if !query.is_empty() && !any {
                    rows.truncate(at);
                }
            }
        }
        self.rows = rows;
        // Keep the selection on the same row when it still exists.
        if let Some(key) = self.selected_key {
            if let Some(index) = self.rows.iter().position(|r| r.key == key) {
                self.cursor.selected = index;
            }
        }
        self.cursor.clamp(self.rows.len());
        self.selected_key = self.rows.get(self.cursor.selected).map(|r| r.key);
    }

    /// Adds an edge row (when `visible`) and its open subtree; returns whether it or anything
    /// below it matched the filter.
    #[allow(clippy::too_many_arguments)]
    fn push_edge<'a>(
        &'a self,
        rows: &mut Vec<GraphRow>,
        edge: &'a Arc<EdgeView>,
        parent: RowKey,
        depth: usize,
        visible: bool,
        stack: &mut Vec<&'a str>,
        query: &SearchQuery,
    ) -> bool {
        let key = row_key(parent, &edge.to, edge.kind);
        let children: &[Arc<EdgeView>] = self
            .adjacency
            .get(edge.to.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let children: Vec<&Arc<EdgeView>> = children
            .iter()
            .filter(|c| !stack.contains(&c.to.as_str()))
            .collect();
        let expandable = !children.is_empty() && depth < MAX_DEPTH;
        let mut row = GraphRow {
            key,
            depth,
            content: RowContent::Edge(edge.clone()),
            expandable,
            expanded: false,
        };
        row.expanded = expandable && (open_by_default(&row) != self.toggled.contains(&row.key));
        let filtering = !query.is_empty();
        let matched_self = filtering
            && query.matches(&[&edge.label, &edge.to, node_kind_name(edge.node_kind)][..]);
        let open = visible && (row.expanded || filtering);
        if !visible {
            return matched_self;
        }
        let at = rows.len();
        rows.push(row);
        let mut matched_below = false;
        if open && expandable {
            stack.push(edge.to.as_str());
            for child in children {
                matched_below |= self.push_edge(rows, child, key, depth + 1, true, stack, query);
            }
            stack.pop();
        }
        if filtering && !matched_self && !matched_below {
            rows.truncate(at);
            return false;
        }
        if filtering {
            rows[at].expanded = matched_below;
        }
        true
    }

    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.flatten();
    }

    pub fn move_by(&mut self, delta: isize) {
        self.cursor.move_by(delta, self.rows.len());
        self.remember_selection();
    }

    pub fn select(&mut self, index: usize) {
        self.cursor.select(index, self.rows.len());
        self.remember_selection();
    }

    fn remember_selection(&mut self) {
        self.selected_key = self.rows.get(self.cursor.selected).map(|r| r.key);
    }

    /// Opens or closes the selected row; returns whether anything changed.
    pub fn toggle(&mut self) -> bool {
        let Some(row) = self.rows.get(self.cursor.selected) else {
            return false;
        };
        if !row.expandable {
            return false;
        }
        let key = row.key;
        if !self.toggled.remove(&key) {
            self.toggled.insert(key);
        }
        self.flatten();
        true
    }

    /// Left: close the row, or go to its parent.
    pub fn collapse_or_parent(&mut self) {
        let Some(row) = self.rows.get(self.cursor.selected) else {
            return;
        };
        if row.expanded {
            self.toggle();
            return;
        }
        let depth = row.depth;
        if depth == 0 {
            return;
        }
        if let Some(parent) = self.rows[..self.cursor.selected]
            .iter()
            .rposition(|r| r.depth < depth)
        {
            self.select(parent);
        }
    }

    /// Right: open the row, or go to its first child.
    pub fn expand_or_child(&mut self) {
        let Some(row) = self.rows.get(self.cursor.selected) else {
            return;
        };
        if row.expandable && !row.expanded {
            self.toggle();
        } else if row.expanded {
            self.move_by(1);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn render(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        block: Block<'_>,
        styles: &Styles,
        now_ns: u64,
        new_edge_ns: u64,
        boot_offset: Option<i128>,
    ) {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        self.last_area = inner;
        if self.rows.is_empty() {
            let text = match (&self.root, self.filter.is_empty()) {
                (None, _) => {
                    "Select an agent to see what it reached: models, tools, APIs, data, identities."
                }
                (Some(_), false) => "No node matches the filter.",
                (Some(_), true) => "No edges yet for this agent.",
            };
            frame.render_widget(
                Paragraph::new(Line::styled(text, styles.muted))
                    .wrap(ratatui::widgets::Wrap { trim: true }),
                inner,
            );
            return;
        }
        let height = inner.height as usize;
        self.cursor.scroll_into_view(height, self.rows.len());
        let width = inner.width as usize;
        let lines = self.rows[self.cursor.offset..]
            .iter()
            .take(height)
            .map(|row| {
                let mark = match &row.content {
                    RowContent::Edge(edge) => {
                        self.novelty
                            .edge_mark(edge.new, edge.first_seen_ns, now_ns, new_edge_ns)
                    }
                    RowContent::Group { .. } => EdgeMark::Plain,
                };
                row_line(row, styles, width, mark, boot_offset)
            });
        render_rows(
            frame,
            inner,
            lines,
            Some(self.cursor.selected - self.cursor.offset),
            styles.selection,
        );
    }
}

fn row_line(
    row: &GraphRow,
    styles: &Styles,
    width: usize,
    mark: EdgeMark,
    boot_offset: Option<i128>,
) -> Line<'static> {
    let marker = if !row.expandable {
        "  "
    } else if row.expanded {
        "▾ "
    } else {
        "▸ "
    };
    let indent = "  ".repeat(row.depth);
    let mut left = vec![Span::styled(format!("{indent}{marker}"), styles.muted)];
    let mut right = Vec::new();
    match &row.content {
        RowContent::Group { kind, name, count } => {
            left.push(Span::styled(
                format!("{name} ({count})"),
                styles.node(*kind),
            ));
        }
        RowContent::Edge(edge) => {
            if row.depth > 1 {
                left.push(Span::styled(
                    format!("{} ", edge_verb(edge.kind)),
                    styles.muted,
                ));
            }
            if edge.evidence {
                // Marked, not only coloured (NO_COLOR).
                left.push(Span::styled("◆", styles.error));
            }
            let label_style = if mark == EdgeMark::Plain {
                styles.node(edge.node_kind)
            } else {
                styles.new_edge
            };
            left.push(Span::styled(edge.label.clone(), label_style));
            match mark {
                EdgeMark::New => right.push(Span::styled("new ", styles.new_edge)),
                EdgeMark::Recent => right.push(Span::styled("recent ", styles.new_edge)),
                EdgeMark::Plain => {}
            }
            right.push(Span::styled(
                format!("×{} ", format_count(edge.count)),
                styles.text,
            ));
            right.push(Span::styled(
                format_time(edge.last_seen_ns, boot_offset),
                styles.muted,
            ));
        }
    }
    fit_columns(left, right, width)
}
