//! The AI-BOM pane: what the selected agent is built from and talks to (providers and models,
//! API dialects, MCP servers and their tools, tools offered to models, frameworks, packages with
//! the versions the collector read, retrieval sources), from [`Agent::aibom`], headed by why the
//! plaintext is not visible when it is not.

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

    if !bom.packages.is_empty() {
        // Left out when none were read (recordings made before the collector read them).
        heading(&mut lines, format!("Packages ({})", bom.packages.len()));
        for package in bom.packages.values() {
            let version = package.version.as_deref().unwrap_or("?");
            let note = match &package.error {
                Some(why) => one_line(why, DESCRIPTION_CHARS),
                None => package.ecosystem.purl_type().to_string(),
            };
            item(
                &mut lines,
                NodeKind::Command,
                format!("{} {version}", package.name),
                note,
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{ColorMode, Theme};
    use agentscope_event::package::{PackageEcosystem, PackageFound};

    #[test]
    fn packages_are_listed_with_their_versions_or_why_not() {
        let mut agent = Agent {
            key: "host:python agent.py".into(),
            name: "agent.py".into(),
            program: "/usr/bin/python3 agent.py".into(),
            pids: Default::default(),
            identity: Default::default(),
            first_seen_ns: 0,
            last_seen_ns: 0,
            llm_calls: 0,
            tool_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            aibom: Default::default(),
            plaintext_not_visible: None,
            enforcement: Default::default(),
        };
        let text = |agent: &Agent| {
            aibom_lines(
                agent,
                &Styles::new(&Theme::preset("dark").unwrap(), ColorMode::None),
            )
            .iter()
            .map(|line| line.to_string())
            .collect::<Vec<_>>()
            .join("\n")
        };
        assert!(!text(&agent).contains("Packages"));
        for (name, version, error) in [
            ("mcp", Some("2.3.0"), None),
            ("broken", None, Some("package.json is not JSON")),
        ] {
            agent.aibom.add_package(&PackageFound {
                ecosystem: PackageEcosystem::Npm,
                name: name.into(),
                version: version.map(str::to_string),
                package_dir: format!("/app/node_modules/{name}"),
                metadata_path: None,
                error: error.map(str::to_string),
            });
        }
        let text = text(&agent);
        assert!(text.contains("Packages (2)"), "{text}");
        assert!(text.contains("mcp 2.3.0  npm"), "{text}");
        assert!(
            text.contains("broken ?  package.json is not JSON"),
            "{text}"
        );
    }
}
