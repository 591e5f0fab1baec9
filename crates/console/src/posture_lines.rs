//! The posture section of the AI-BOM pane: the selected agent's gaps between what it may do
//! and what it was seen doing, each with its risk and first line of evidence, from
//! `agentscope_analysis::posture` over the observations the console has taken in. The console
//! has no cluster objects, so it shows the parts that need none (tools offered and never
//! called, databases reached and never queried) and says where the rest is
//! (`agentscope posture --cluster`, docs/posture.md).

use agentscope_analysis::model::Agent;
use agentscope_analysis::posture::{agent_posture, Usage};
use ratatui::text::{Line, Span};

use super::format::one_line;
use super::theme::Styles;

/// Evidence is the observed processes' text (tool names): one line each, cut.
const EVIDENCE_CHARS: usize = 160;

pub fn posture_lines(agent: &Agent, usage: Option<&Usage>, styles: &Styles) -> Vec<Line<'static>> {
    let empty = Usage::default();
    let posture = agent_posture(agent, usage.unwrap_or(&empty), None);
    let mut lines = vec![
        Line::raw(""),
        Line::styled(
            format!(
                "Posture: may do against does ({} gaps, score {})",
                posture.gaps.len(),
                posture.score
            ),
            styles.accent,
        ),
    ];
    if posture.gaps.is_empty() {
        lines.push(Line::styled("  no gap in tools or data", styles.muted));
    }
    for gap in &posture.gaps {
        let risk_style = if gap.risk >= 7 {
            styles.error
        } else if gap.risk >= 4 {
            styles.warning
        } else {
            styles.muted
        };
        let labels = if gap.labels.is_empty() {
            String::new()
        } else {
            format!("  {}", gap.labels.join(", "))
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  risk {:>2} ", gap.risk), risk_style),
            Span::styled(one_line(&gap.title, EVIDENCE_CHARS), styles.text),
            Span::styled(labels, styles.muted),
        ]));
        if let Some(evidence) = gap.evidence.first() {
            lines.push(Line::styled(
                format!("           {}", one_line(evidence, EVIDENCE_CHARS)),
                styles.muted,
            ));
        }
    }
    lines.push(Line::styled(
        "  RBAC, network policy, secrets: agentscope posture --cluster (docs/posture.md)",
        styles.muted,
    ));
    lines
}
