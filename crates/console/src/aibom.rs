//! The AI-BOM pane: what the selected agent is built from and talks to (providers and models,
//! API dialects, MCP servers and their tools, tools offered to models, frameworks, retrieval
//! sources), from [`Agent::aibom`], headed by why the plaintext is not visible when it is not.

use agentscope_analysis::model::{Agent, NodeKind};
use ratatui::text::{Line, Span};

use super::format::one_line;
use super::theme::Styles;

/// Tool descriptions are model input (tool poisoning hides there): shown, but cut to a line.
const DESCRIPTION_CHARS: usize = 160;

pub fn aibom_lines(agent: &Agent, styles: &Styles) -> Vec<Line<'static>> {
    let bom = &agent.aibom;
    let mut lines = Vec::new();
    let heading = |lines: &mut Vec<Line<'static>>, text: String| {
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(text, styles.accent));
    };
    let item = |lines: &mut Vec<Line<'static>>, kind: NodeKind, text: String, note: String| {
        let mut spans = vec![Span::raw("  "), Span::styled(text, styles.node(kind))];
        if !note.is_empty() {
            spans.push(Span::styled(format!("  {note}"), styles.muted));
        }
        lines.push(Line::from(spans));
    };

    if let Some(why) = &agent.plaintext_not_visible {
        // Everything below is what could be known without the plaintext: say so first.
        lines.push(Line::styled(
            one_line(why, DESCRIPTION_CHARS),
            styles.warning,
        ));
    }
    heading(
        &mut lines,
        format!(
            "Models ({})",
            bom.providers.values().map(|m| m.len()).sum::<usize>()
        ),
    );
    for (provider, models) in &bom.providers {
        if models.is_empty() {
            // A provider known from a TLS server name: its models were never seen.
            item(
                &mut lines,
                NodeKind::Model,
                provider.clone(),
                "model not seen".into(),
            );
        }
        for model in models {
            item(&mut lines, NodeKind::Model, model.clone(), provider.clone());
        }
    }
    if !bom.apis.is_empty() {
        let apis: Vec<String> = bom
            .apis
            .iter()
            .filter_map(|api| serde_json::to_value(api).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        lines.push(Line::from(vec![
            Span::styled("  APIs ", styles.muted),
            Span::styled(apis.join(", "), styles.text),
        ]));
    }

    heading(
        &mut lines,
        format!("MCP servers ({})", bom.mcp_servers.len()),
    );
    for server in bom.mcp_servers.values() {
        let version = server.version.as_deref().unwrap_or("");
        item(
            &mut lines,
            NodeKind::McpServer,
            format!("{} {version}", server.name).trim_end().to_string(),
            format!(
                "{} {}",
                server.transport,
                server.endpoint.as_deref().unwrap_or_default()
            ),
        );
        for (tool, description) in &server.tools {
            let description = description
                .as_deref()
                .map(|d| one_line(d, DESCRIPTION_CHARS))
                .unwrap_or_default();
            item(&mut lines, NodeKind::Tool, format!("  {tool}"), description);
        }
    }

    heading(
        &mut lines,
        format!("Tools offered to models ({})", bom.tools_offered.len()),
    );
    for (tool, description) in &bom.tools_offered {
        let description = description
            .as_deref()
            .map(|d| one_line(d, DESCRIPTION_CHARS))
            .unwrap_or_default();
        item(&mut lines, NodeKind::Tool, tool.clone(), description);
    }

    heading(&mut lines, format!("Frameworks ({})", bom.frameworks.len()));
    for framework in &bom.frameworks {
        item(
            &mut lines,
            NodeKind::Command,
            framework.clone(),
            String::new(),
        );
    }

    heading(
        &mut lines,
        format!("Retrieval sources ({})", bom.retrieval_sources.len()),
    );
    for source in &bom.retrieval_sources {
        item(&mut lines, NodeKind::Data, source.clone(), String::new());
    }
    lines
}
