//! The posture pane's lines: the selected agent's gaps between what it may do and what it was
//! seen doing, each with its risk and first line of evidence, from
//! `agentscope_analysis::posture` over the observations the console has taken in. The
//! declared side is the last snapshot of the cluster's objects the collector put in the
//! session (its `cluster_objects` events): with one, RBAC, NetworkPolicy and secrets gaps are
//! shown too; without one (a collector without the Kubernetes API, an older recording), only
//! the parts that need none (tools offered and never called, databases reached and never
//! queried), and the pane says where the rest is (`agentscope posture --cluster`,
//! docs/posture.md).

use agentscope_analysis::model::Agent;
use agentscope_analysis::posture::{agent_posture, RecordedCluster, Usage};
use ratatui::text::{Line, Span};

use super::format::one_line;
use super::theme::Styles;

/// Evidence is the observed processes' text (tool names): one line each, cut.
const EVIDENCE_CHARS: usize = 160;

pub fn posture_lines(
    agent: &Agent,
    usage: Option<&Usage>,
    cluster: Option<&RecordedCluster>,
    styles: &Styles,
) -> Vec<Line<'static>> {
    let empty = Usage::default();
    let posture = agent_posture(
        agent,
        usage.unwrap_or(&empty),
        cluster.map(|cluster| &*cluster.state),
    );
    let mut lines = vec![Line::styled(
        format!(
            "May do against does: {} gaps, score {}",
            posture.gaps.len(),
            posture.score
        ),
        styles.accent,
    )];
    if posture.gaps.is_empty() {
        let what = match cluster {
            Some(_) => "  no gap",
            None => "  no gap in tools or data",
        };
        lines.push(Line::styled(what, styles.muted));
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
    match cluster {
        Some(cluster) => {
            // Why RBAC, network or secrets were not compared (the pod not among the objects).
            for note in &posture.notes {
                lines.push(Line::styled(
                    format!("  note: {}", one_line(note, EVIDENCE_CHARS)),
                    styles.muted,
                ));
            }
            lines.push(Line::styled(
                format!(
                    "  declared side: {}",
                    one_line(&cluster.describe(), EVIDENCE_CHARS)
                ),
                styles.muted,
            ));
        }
        None => lines.push(Line::styled(
            "  RBAC, network policy, secrets: agentscope posture --cluster (docs/posture.md)",
            styles.muted,
        )),
    }
    lines
}
