//! The sensitive-access rules: secret files, personal data (read directly or by an MCP
//! server for the agent), the Kubernetes API, and a service-account token used on that API,
//! which opens an incident of its own. What counts as sensitive is in [`super::sensitive`].

use crate::model::Model;

use super::engine::{agent_name, target_of, Detector, Occurrence, TOKEN_USE_WINDOW_NS};
use super::finding::{FindingDetail, FindingKind, SensitiveKind, Severity};
use super::labels;

impl Detector {
    pub(super) fn personal_data(
        &mut self,
        agent: &str,
        at: &Occurrence,
        tables: Vec<String>,
        columns: Vec<String>,
        model: &Model,
    ) {
        if tables.is_empty() && columns.is_empty() {
            return;
        }
        let target = if tables.is_empty() {
            format!("columns {}", columns.join(", "))
        } else {
            tables.join(", ")
        };
        let columns_text = if columns.is_empty() {
            String::new()
        } else {
            format!(" (columns {})", columns.join(", "))
        };
        let summary = format!(
            "{} read personal data: {}{columns_text}",
            agent_name(model, agent),
            if tables.is_empty() {
                "a query".to_string()
            } else {
                format!("table {}", tables.join(", "))
            }
        );
        self.sensitive(
            agent,
            at,
            SensitiveKind::PersonalData,
            target,
            Severity::Medium,
            summary,
            model,
        );
    }

    /// Raises a sensitive-access finding once per agent, target and session (a concurrent
    /// session's access is its own, and joins only its own chain); returns it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sensitive(
        &mut self,
        agent: &str,
        at: &Occurrence,
        what: SensitiveKind,
        target: String,
        severity: Severity,
        summary: String,
        model: &Model,
    ) -> Option<usize> {
        let key = (
            FindingKind::SensitiveAccess,
            match self.session {
                // Apart from the target by a character no target holds.
                Some(session) => format!("{target}\u{0}session {session}"),
                None => target.clone(),
            },
        );
        if let Some(&index) = self.watch(agent).reported.get(&key) {
            return Some(index);
        }
        let mut labels = match what {
            SensitiveKind::ServiceAccountToken | SensitiveKind::KubernetesApi => {
                vec![
                    labels::ASI03_IDENTITY_AND_PRIVILEGE_ABUSE,
                    labels::LLM06_EXCESSIVE_AGENCY,
                ]
            }
            SensitiveKind::SecretFile | SensitiveKind::PersonalData => vec![
                labels::LLM02_SENSITIVE_INFORMATION_DISCLOSURE,
                labels::ASI02_TOOL_MISUSE,
            ],
        };
        labels.sort();
        let index = self.book.push_finding(at.finding(
            FindingKind::SensitiveAccess,
            agent,
            severity,
            summary,
            labels,
            FindingDetail::SensitiveAccess {
                what,
                target: target.clone(),
            },
        ))?;
        self.watch(agent).reported.insert(key, index);
        self.join_open_chain(agent, index, at.ts_ns, model);
        if let Some(incident) = self.book.findings[index]
            .incident
            .clone()
            .and_then(|id| self.book.incident_index(&id))
        {
            self.book.add_data(incident, target);
            self.retell(incident, model);
        }
        Some(index)
    }

    /// A service-account token read and a Kubernetes API call by the same agent, close in
    /// time: the agent is using the pod's identity directly.
    pub(super) fn token_and_api(&mut self, agent: &str, model: &Model) {
        let watch = self.watch(agent);
        let (Some((token, token_ns)), Some((api, api_ns))) =
            (watch.token_read, watch.kubernetes_api)
        else {
            return;
        };
        if token_ns.abs_diff(api_ns) > TOKEN_USE_WINDOW_NS {
            return;
        }
        let (first, second) = if token_ns <= api_ns {
            (token, api)
        } else {
            (api, token)
        };
        if self.book.findings[first].incident.is_some()
            && self.book.findings[second].incident.is_some()
        {
            return;
        }
        self.book.findings[api].severity = Severity::High;
        self.book.changes.finding(api);
        let ts = token_ns.max(api_ns);
        let incident = match self.book.findings[first]
            .incident
            .clone()
            .and_then(|id| self.book.incident_index(&id))
        {
            Some(incident) => incident,
            None => {
                let trigger = format!(
                    "service-account token read ({})",
                    target_of(&self.book.findings[token])
                );
                let opened = self.open_incident(agent, first, ts, trigger, model);
                self.book.incidents[opened]
                    .chain
                    .data
                    .push(target_of(&self.book.findings[token]));
                opened
            }
        };
        self.book.join(incident, second);
        let api_target = format!("Kubernetes API {}", target_of(&self.book.findings[api]));
        self.book.add_data(incident, api_target);
        self.retell(incident, model);
    }
}
