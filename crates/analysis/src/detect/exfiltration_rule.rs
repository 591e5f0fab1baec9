//! The exfiltration rule: data the agent read leaving in requests to a destination outside its
//! baseline, matched by content ([`super::exfiltration`]). It opens an incident of its own
//! unless a chain is open, and pulls in the sensitive reads whose data is leaving.

use crate::model::Model;
use crate::reconstruct::Observation;

use super::engine::{target_of, Context, Detector, Occurrence, SENSITIVE_LOOKBACK_NS};
use super::exfiltration::sent_fields;
use super::finding::{FindingDetail, FindingKind, Severity};
use super::incident_book::merge_events;
use super::labels;
use super::taint::MIN_EXFIL_BYTES;
use super::watch::AgentWatch;

impl Detector {
    pub(super) fn exfiltration(
        &mut self,
        context: &Context<'_>,
        exchange: &crate::reconstruct::http::HttpExchange,
        destination: &str,
        model: &Model,
    ) {
        let agent = context.agent;
        let observation = context.observation;
        let fields = sent_fields(exchange);
        let watch = self.watch(agent);
        let AgentWatch { read, egress, .. } = watch;
        let Some(totals) = egress.send(destination, observation.ts_ns, &fields, read) else {
            return;
        };
        if totals.matched_bytes < MIN_EXFIL_BYTES || !totals.this_request {
            return;
        }
        let first_contact = watch
            .first_contact
            .get(destination)
            .copied()
            .unwrap_or(observation.ts_ns);
        let Some(why_new) = self.destination_is_new(
            agent,
            observation,
            destination,
            first_contact,
            totals.first_read_ns,
        ) else {
            return;
        };
        let key = (FindingKind::Exfiltration, destination.to_string());
        let route = format!("{} {}", exchange.request.method, exchange.request.path());
        let summary = format!(
            "{} bytes of data read from {} sent to {destination} in {} request{} ({route})",
            totals.matched_bytes,
            totals.origins.join(", "),
            totals.requests,
            if totals.requests == 1 { "" } else { "s" },
        );
        let detail = FindingDetail::Exfiltration {
            destination: destination.to_string(),
            requests: totals.requests,
            matched_bytes: totals.matched_bytes,
            origins: totals.origins.clone(),
            samples: totals.samples.clone(),
            why_new,
        };
        if let Some(&index) = self.watch(agent).reported.get(&key) {
            let finding = &mut self.book.findings[index];
            finding.summary = summary;
            finding.detail = detail;
            merge_events(&mut finding.events, &observation.events);
            self.book.changes.finding(index);
            if let Some(incident) = finding
                .incident
                .clone()
                .and_then(|id| self.book.incident_index(&id))
            {
                self.book.set_egress(incident, index);
                merge_events(
                    &mut self.book.incidents[incident].events,
                    &observation.events,
                );
                self.retell(incident, model);
            }
            return;
        }
        let mut labels = vec![
            labels::LLM02_SENSITIVE_INFORMATION_DISCLOSURE,
            labels::ASI02_TOOL_MISUSE,
        ];
        labels.sort();
        let Some(index) = self
            .book
            .push_finding(Occurrence::from(observation).finding(
                FindingKind::Exfiltration,
                agent,
                Severity::High,
                summary,
                labels,
                detail,
            ))
        else {
            return;
        };
        self.watch(agent).reported.insert(key, index);
        let incident = match self.open_chain(agent, observation.ts_ns) {
            Some(incident) => {
                self.book.join(incident, index);
                incident
            }
            None => {
                let trigger = format!(
                    "data the agent read ({}) sent to {destination}",
                    totals.origins.join(", ")
                );
                let incident = self.open_incident(agent, index, observation.ts_ns, trigger, model);
                // The sensitive reads whose data is leaving belong to the story.
                let since = totals.first_read_ns.saturating_sub(SENSITIVE_LOOKBACK_NS);
                let earlier: Vec<usize> = (0..index)
                    .filter(|&i| {
                        let f = &self.book.findings[i];
                        f.agent == agent
                            && f.kind == FindingKind::SensitiveAccess
                            && f.incident.is_none()
                            && f.ts_ns >= since
                    })
                    .collect();
                for finding in earlier {
                    self.book.join(incident, finding);
                    let target = target_of(&self.book.findings[finding]);
                    self.book.add_data(incident, target);
                }
                incident
            }
        };
        self.book.set_egress(incident, index);
        self.retell(incident, model);
    }

    /// Why `destination` is outside the agent's baseline, or `None` when it is inside.
    pub(super) fn destination_is_new(
        &self,
        agent: &str,
        observation: &Observation,
        destination: &str,
        first_contact_ns: u64,
        first_read_ns: u64,
    ) -> Option<String> {
        let items = crate::baseline::items::items_of(observation);
        let egress_items: Vec<_> = items
            .iter()
            .filter(|item| {
                matches!(
                    item,
                    crate::baseline::Item::Endpoint(_)
                        | crate::baseline::Item::EgressName(_)
                        | crate::baseline::Item::EgressAddress(_)
                )
            })
            .collect();
        if let Some(approved) = self.judge.approved(agent) {
            return egress_items
                .iter()
                .any(|item| item.novelty(&approved.spec).is_some())
                .then(|| format!("{destination} is not in the approved baseline"));
        }
        let learned_complete = matches!(
            self.judge.learner().status_at(agent, observation.ts_ns),
            Some(
                crate::baseline::BaselineStatus::Complete
                    | crate::baseline::BaselineStatus::Partial
            )
        );
        if let (true, Some(spec)) = (learned_complete, self.judge.learner().spec(agent)) {
            if egress_items.iter().all(|item| item.novelty(spec).is_none()) {
                return None;
            }
            return Some(format!("{destination} is not in the learned baseline"));
        }
        // Still learning: a destination first contacted only after the data was read is new
        // for this data.
        (first_contact_ns >= first_read_ns)
            .then(|| format!("{destination} was first contacted after the data was read"))
    }
}
