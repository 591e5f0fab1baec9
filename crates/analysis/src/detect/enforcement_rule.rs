//! Enforcement decisions as findings: the kernel denied (or, in audit mode, would have denied)
//! an agent's attempt its promoted baseline does not allow. The finding names the tool call
//! the attempt was linked to, joins the agent's open chain (the incident an injection opened)
//! and adds a line to that incident's `chain.enforcement`: "blocked: http_post
//! (url=http://127.0.0.2:43497/collect) → tcp connect to 127.0.0.2:43497 denied by baseline
//! … rev 3". The disarmer's decision (an agent dropped back to audit after too many blocks a
//! minute) is a finding too, of high severity: enforcement is off for that agent until someone
//! promotes it again.

use agentscope_event::enforcement::{EnforceAction, EnforceCategory, EnforceDecision};

use crate::model::{Evidence, Model};
use crate::pipeline::AttributedObservation;

use super::engine::{Detector, Occurrence};
use super::finding::{FindingDetail, FindingKind, Severity};
use super::labels;

impl Detector {
    pub(super) fn enforcement(
        &mut self,
        agent: &str,
        attributed: &AttributedObservation,
        decision: &EnforceDecision,
        model: &Model,
    ) {
        let observation = &attributed.observation;
        let link = attributed
            .links
            .iter()
            .find(|link| link.action.kind == "enforce");
        let tool = link.map(|link| {
            let url = link.evidence.iter().find_map(|evidence| match evidence {
                Evidence::ArgumentMatch { argument, value } => {
                    Some(format!("({argument}={value})"))
                }
                _ => None,
            });
            format!(
                "{}{}",
                link.call_name,
                url.map(|u| format!(" {u}")).unwrap_or_default()
            )
        });
        let described = decision.describe();
        let line = match (&tool, described.split_once(": ")) {
            _ if decision.action == EnforceAction::Disarmed => described.clone(),
            (Some(tool), Some((verdict, rest))) => format!("{verdict}: {tool} → {rest}"),
            _ => described.clone(),
        };
        let severity = match decision.action {
            // The policy is off for this agent from now on: someone must look.
            EnforceAction::Disarmed => Severity::High,
            EnforceAction::Blocked => Severity::Medium,
            _ => Severity::Low,
        };
        let finding = Occurrence::from(observation).finding(
            FindingKind::Enforcement,
            agent,
            severity,
            line.clone(),
            vec![labels::ASI02_TOOL_MISUSE],
            FindingDetail::Enforcement {
                action: decision.action,
                destination: match decision.category {
                    EnforceCategory::Network => decision.destination(),
                    _ => decision.path.clone().unwrap_or_default(),
                },
                protocol: decision.protocol.clone(),
                baseline: decision.baseline.clone(),
                revision: decision.revision,
                tool: link.map(|l| l.call_name.clone()),
                call_id: link.and_then(|l| l.call_id.clone()),
            },
        );
        let Some(index) = self.book.push_finding(finding) else {
            return;
        };
        if let Some(incident) = self.open_chain(agent, observation.ts_ns) {
            self.book.join(incident, index);
            self.book.add_enforcement(incident, line);
            self.retell(incident, model);
        }
    }
}
