//! The detector the pipeline runs after the model: it sees every observation in order with the
//! tool-call links the model just made, raises [`Finding`]s and correlates them into
//! [`Incident`]s.
//!
//! Correlation follows the model turn. Content the agent ingests (a tool or MCP result, a tool
//! description) that the injection scorer calls an injection taints it; a model request that
//! carries tainted content (a tool result answering a tainted call, a poisoned tool
//! description) is a tainted turn; the tool calls that turn requests are tainted, and so are
//! their results when they come back, so the taint follows the conversation for as long as
//! the model keeps calling tools. Everything those calls do (the model's attribution links
//! actions to calls) and every finding of the agent while the chain is open joins the
//! incident the injection opened. Exfiltration and a service-account token used against the
//! Kubernetes API open an incident on their own; other findings stand alone.
//!
//! Everything is driven by event time and observation order, never the wall clock or hash
//! order, so a replay raises exactly the findings and incidents the live run raised.
//!
//! This module dispatches each observation to the rules and keeps the chains open; the rules
//! live in [`super::taint`] (prompt injection, tool misuse), [`super::sensitive_access`] and
//! [`super::exfiltration_rule`]; what they raise is kept and correlated by the
//! [`super::incident_book`], and told by [`super::story`]. Per-agent state is in
//! [`super::watch`].

use agentscope_event::enforcement::EnforceAction;
use std::collections::BTreeMap;

use crate::baseline::{
    AgentBaseline, BaselineJudge, BaselineLearner, Category, Deviation, LearnerOptions,
};
use crate::model::{ActorIdentity, Model};
use crate::pipeline::AttributedObservation;
use crate::reconstruct::mcp::McpDetail;
use crate::reconstruct::{EventRange, Observation, ObservationKind, Role};

use super::benign_descriptions::BenignDescriptions;
use super::changes::{DetectionChanges, DetectionCursor};
use super::finding::{
    Finding, FindingDetail, FindingKind, Incident, IncidentIdentity, SensitiveKind, Severity,
};
use super::incident_book::IncidentBook;
use super::injection::{IngestSource, Thresholds};
use super::labels;
use super::sensitive;
use super::taint::content_hash;
use super::watch::{AgentWatch, Chain};
use super::wording::{channel_of_result, describe_arguments, destination_of, enum_label};

/// A chain stays open this long after the last tool call a tainted turn requested.
pub(super) const CHAIN_WINDOW_NS: u64 = 120 * 1_000_000_000;
/// A token read and a Kubernetes API call this far apart are not one story.
pub(super) const TOKEN_USE_WINDOW_NS: u64 = 600 * 1_000_000_000;
/// Sensitive reads this long before the first read of exfiltrated data join its incident.
pub(super) const SENSITIVE_LOOKBACK_NS: u64 = 60 * 1_000_000_000;

#[derive(Debug, Clone, Default)]
pub struct DetectorOptions {
    pub learner: LearnerOptions,
    /// Approved baselines (`--baseline DIR`): their agents are judged against them.
    pub approved: Vec<AgentBaseline>,
    /// Calibrated scores from which ingested content is `suspicious` and an `injection`
    /// (`--suspicious-threshold`, `--injection-threshold`; default: the shipped ones).
    pub injection_thresholds: Thresholds,
}

pub struct Detector {
    pub(super) judge: BaselineJudge,
    pub(super) agents: BTreeMap<String, AgentWatch>,
    pub(super) book: IncidentBook,
    /// Per-agent state is charged here (see [`super::watch`]).
    budget: Option<crate::memory_budget::MemoryBudget>,
    /// The session (see [`AttributedObservation::session`]) of what is being judged: an
    /// observation's, or the session of the call a followed link belongs to. Concurrent
    /// sessions of one agent share its watch, but an incident's chain is one session's: what
    /// another session does never joins it, and its sensitive accesses are its own findings.
    pub(super) session: Option<u32>,
    /// What ingested content is judged against ([`DetectorOptions::injection_thresholds`]).
    pub(super) injection_thresholds: Thresholds,
    /// Tool descriptions scanned before and found benign (not scanned again).
    pub(super) benign_descriptions: BenignDescriptions,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new(DetectorOptions::default())
    }
}

/// When and where a finding happened, and the raw events that show it: an observation's, or
/// a linked action's (an MCP server's SQL found through the tool call it served).
pub(super) struct Occurrence {
    pub(super) ts_ns: u64,
    pub(super) time_unix_ns: u64,
    pub(super) pid: u32,
    pub(super) events: Vec<EventRange>,
    /// What the finding is about ([`Finding::subject_events`]): `events`, unless the
    /// occurrence is only the cause (the model turn that requested a misused call).
    pub(super) subject: Vec<EventRange>,
}

impl From<&Observation> for Occurrence {
    fn from(observation: &Observation) -> Self {
        Self {
            ts_ns: observation.ts_ns,
            time_unix_ns: observation.time_unix_ns,
            pid: observation.actor.pid,
            events: observation.events.clone(),
            subject: observation.events.clone(),
        }
    }
}

impl Occurrence {
    /// A linked action's time is monotonic only: it carries no wall-clock time.
    pub(super) fn of_action(action: &crate::model::Action) -> Self {
        Self {
            ts_ns: action.ts_ns,
            time_unix_ns: 0,
            pid: action.pid,
            events: action.events.clone(),
            subject: action.events.clone(),
        }
    }

    /// A finding (numbered later by `push_finding`) of what happened here.
    pub(super) fn finding(
        &self,
        kind: FindingKind,
        agent: &str,
        severity: Severity,
        summary: String,
        labels: Vec<labels::Label>,
        detail: FindingDetail,
    ) -> Finding {
        Finding {
            id: String::new(),
            kind,
            agent: agent.to_string(),
            severity,
            summary,
            ts_ns: self.ts_ns,
            time_unix_ns: self.time_unix_ns,
            pid: self.pid,
            events: self.events.clone(),
            subject_events: self.subject.clone(),
            labels,
            incident: None,
            detail,
        }
    }
}

/// Whether a chain of session `chain` may take what session `now` did: an unknown session on
/// either side (a capture without sessions) does not keep them apart.
pub(super) fn same_session(chain: Option<u32>, now: Option<u32>) -> bool {
    chain.is_none() || now.is_none() || chain == now
}

/// One observation as detection sees it: with the agent it acted for.
pub(super) struct Context<'a> {
    pub(super) agent: &'a str,
    /// The agent's outermost process in the observation's lineage (its run).
    pub(super) session: Option<u32>,
    pub(super) observation: &'a Observation,
}

impl Detector {
    pub fn new(options: DetectorOptions) -> Self {
        Self {
            judge: BaselineJudge::new(BaselineLearner::new(options.learner))
                .with_approved(options.approved),
            agents: BTreeMap::new(),
            book: IncidentBook::default(),
            budget: None,
            session: None,
            injection_thresholds: options.injection_thresholds,
            benign_descriptions: BenignDescriptions::default(),
        }
    }

    /// Findings and per-agent state are charged to `budget` from now on.
    pub fn set_budget(&mut self, budget: &crate::memory_budget::MemoryBudget) {
        self.book.set_budget(budget);
        self.budget = Some(budget.clone());
    }

    /// What was raised or changed after `cursor` (the change feed; see [`super::changes`]).
    pub fn changes_since(&self, cursor: DetectionCursor) -> DetectionChanges<'_> {
        self.book.changes_since(cursor)
    }

    pub fn findings(&self) -> &[Finding] {
        &self.book.findings
    }

    pub fn incidents(&self) -> &[Incident] {
        &self.book.incidents
    }

    /// Findings not kept because [`MAX_FINDINGS`] were.
    /// Estimated heap of every agent's detection state (what is charged to the budget).
    pub fn held_by_agents(&self) -> usize {
        self.agents.values().map(AgentWatch::held_bytes).sum()
    }

    pub fn findings_dropped(&self) -> u64 {
        self.book.findings_dropped()
    }

    /// Agents a finding was raised for (kept, or dropped at a bound) since the last call, each
    /// once: the pipeline tells the model ([`Model::note_detection`]).
    pub fn take_flagged_agents(&mut self) -> Vec<String> {
        self.book.take_flagged_agents()
    }

    /// The baselines being learned and the approved ones.
    pub fn judge(&self) -> &BaselineJudge {
        &self.judge
    }

    pub fn learner(&self) -> &BaselineLearner {
        self.judge.learner()
    }

    /// See [`BaselineJudge::set_approved`].
    pub fn set_approved(&mut self, baseline: AgentBaseline) {
        self.judge.set_approved(baseline);
    }

    /// See [`BaselineJudge::remove_approved`].
    pub fn remove_approved(&mut self, agent: &str) {
        self.judge.remove_approved(agent);
    }

    /// Events or bytes were lost at `ts_ns`: baselines learning then are partial.
    pub fn note_loss(&mut self, ts_ns: u64, loss: crate::baseline::LossCounts) {
        self.judge.note_loss(Some(ts_ns), loss);
    }

    /// Judges one observation (already applied to `model`), attributed by the pipeline, and
    /// the links applying it made. An earlier observation handed out again once its process
    /// became an agent's only teaches the agent's baseline.
    pub fn observe(&mut self, attributed: &AttributedObservation, model: &Model) {
        let observation = &attributed.observation;
        if let Some(agent) = &attributed.agent {
            let identity = model.agent(agent).map(|a| &a.identity);
            let deviations = self.judge.observe(agent, identity, observation);
            for deviation in deviations {
                self.deviation(deviation, model);
            }
        }
        if attributed.earlier {
            return;
        }
        self.judge.advance_to(observation.ts_ns);
        self.session = attributed.session;
        // A disarm is raised even for a governed process the pipeline does not take for an
        // agent (under its baseline's key): enforcement was switched off, someone must know.
        if let (None, ObservationKind::Enforce { decision }) =
            (&attributed.agent, &observation.kind)
        {
            if let (EnforceAction::Disarmed, Some(baseline)) = (decision.action, &decision.baseline)
            {
                self.enforcement(baseline, attributed, decision, model);
            }
        }
        if let Some(agent) = attributed.agent.as_deref() {
            if let ObservationKind::Enforce { decision } = &observation.kind {
                self.enforcement(agent, attributed, decision, model);
            }
            let context = Context {
                agent,
                session: attributed.session,
                observation,
            };
            self.agent_escape(&context, model);
            self.detect(&context, model);
            self.charge_watch(context.agent);
        }
        for link in attributed.links.iter().cloned() {
            self.session = link.session;
            self.follow_link(link, model);
        }
    }

    /// The model evicted `agent` to stay within the budget: its detection state and the
    /// baseline it was learning go too (releasing their charge). Findings and incidents
    /// already raised stay.
    pub fn forget_agent(&mut self, agent: &str) {
        self.agents.remove(agent);
        self.judge.forget(agent);
    }

    /// Charges what the agent's state holds now, shedding its oldest state at the budget.
    fn charge_watch(&mut self, agent: &str) {
        if let Some(watch) = self.agents.get_mut(agent) {
            watch.charge_held();
        }
    }

    pub(super) fn watch(&mut self, agent: &str) -> &mut AgentWatch {
        let budget = self.budget.as_ref();
        self.agents
            .entry(agent.to_string())
            .or_insert_with(|| AgentWatch::new(budget))
    }

    fn detect(&mut self, context: &Context<'_>, model: &Model) {
        let observation = context.observation;
        let agent = context.agent;
        match &observation.kind {
            ObservationKind::Llm {
                call, end_ts_ns, ..
            } => {
                let mut cause: Option<usize> = None;
                for result in &call.tool_results {
                    let key = call_key(
                        observation.actor.pid,
                        result.call_id.as_deref(),
                        result.name.as_deref(),
                    );
                    let tool = result
                        .name
                        .clone()
                        .or_else(|| tool_name_of(model, agent, result.call_id.as_deref()));
                    let origin = format!("result of tool {}", tool.as_deref().unwrap_or("?"));
                    self.watch(agent)
                        .read
                        .remember(&result.content, &origin, observation.ts_ns);
                    let channel = channel_of_result(model, agent, result.call_id.as_deref(), &tool);
                    if let Some(finding) = self.ingest(
                        context,
                        &result.content,
                        IngestSource::ToolResult,
                        channel,
                        tool,
                        result.call_id.clone(),
                        model,
                    ) {
                        cause.get_or_insert(finding);
                    }
                    if let Some(tainted) = self.watch(agent).tainted_calls.get(&key) {
                        cause.get_or_insert(tainted.cause);
                    }
                }
                for tool in &call.tools_offered {
                    let Some(description) = &tool.description else {
                        continue;
                    };
                    let hash = content_hash(description);
                    if let Some(&finding) = self.watch(agent).poisoned_descriptions.get(&hash) {
                        cause.get_or_insert(finding);
                        continue;
                    }
                    let channel = format!("description of tool {} offered to the model", tool.name);
                    if let Some(finding) =
                        self.ingest_description(context, description, channel, &tool.name, model)
                    {
                        cause.get_or_insert(finding);
                    }
                }
                // Retrieved documents reach the model inside the prompt, not as tool results.
                if cause.is_none() {
                    if let Some(message) = &call.last_user_message {
                        cause = self.injection_quoted_in(agent, message);
                    }
                }
                for requested in &call.tool_calls {
                    let first_use = self
                        .watch(agent)
                        .tools_called
                        .insert(requested.name.clone());
                    if let Some(cause) = cause {
                        self.tainted_call(context, cause, requested, first_use, *end_ts_ns, model);
                    }
                }
            }
            ObservationKind::Mcp {
                exchange,
                role: Role::Client,
                endpoint,
                ..
            } => match &exchange.detail {
                McpDetail::ToolsCall(detail) => {
                    let tool = detail.name.clone();
                    if let Some(text) = &detail.result_text {
                        let origin =
                            format!("result of MCP tool {}", tool.as_deref().unwrap_or("?"));
                        self.watch(agent)
                            .read
                            .remember(text, &origin, observation.ts_ns);
                        let channel = format!(
                            "result of MCP tool {}{}",
                            tool.as_deref().unwrap_or("?"),
                            describe_arguments(detail.arguments.as_ref())
                        );
                        self.ingest(
                            context,
                            text,
                            IngestSource::McpToolResult,
                            channel,
                            tool,
                            None,
                            model,
                        );
                    }
                }
                McpDetail::ToolsList(list) => {
                    for tool in &list.tools {
                        let Some(description) = &tool.description else {
                            continue;
                        };
                        let channel = format!(
                            "description of MCP tool {} from {}",
                            tool.name,
                            endpoint.as_deref().unwrap_or("an MCP server")
                        );
                        self.ingest_description(context, description, channel, &tool.name, model);
                    }
                }
                _ => {}
            },
            ObservationKind::FileOpen { path, class, .. } => {
                if let Some((what, severity)) = sensitive::secret_file(class) {
                    let summary = format!(
                        "{} opened {path} ({})",
                        agent_name(model, agent),
                        class.label
                    );
                    let index = self.sensitive(
                        agent,
                        &Occurrence::from(observation),
                        what,
                        path.clone(),
                        severity,
                        summary,
                        model,
                    );
                    if what == SensitiveKind::ServiceAccountToken {
                        if let Some(index) = index {
                            self.watch(agent).token_read = Some((index, observation.ts_ns));
                        }
                        self.token_and_api(agent, model);
                    }
                }
            }
            ObservationKind::Retrieval { call } if !call.retrieved_text.is_empty() => {
                let text = call.retrieved_text.join("\n");
                let origin = format!(
                    "documents retrieved from {} collection {}",
                    enum_label(&call.system),
                    call.collection.as_deref().unwrap_or("?")
                );
                self.watch(agent)
                    .read
                    .remember(&text, &origin, observation.ts_ns);
                self.ingest(
                    context,
                    &text,
                    IngestSource::RetrievedDocument,
                    origin,
                    None,
                    None,
                    model,
                );
            }
            ObservationKind::Sql { statement, .. } => {
                let (tables, columns) =
                    sensitive::personal_data(&statement.tables, &statement.text);
                self.personal_data(
                    agent,
                    &Occurrence::from(observation),
                    tables,
                    columns,
                    model,
                );
            }
            ObservationKind::Connect { peer, .. } => {
                let destination = format!("{}:{}", peer.addr, peer.port);
                self.watch(agent).contacted(destination, observation.ts_ns);
            }
            ObservationKind::Http {
                exchange,
                role: Role::Client,
            } => {
                let destination = destination_of(exchange.host.as_deref(), exchange.port);
                if sensitive::is_kubernetes_api(exchange) {
                    let target = format!("{} {}", exchange.request.method, exchange.request.path());
                    let summary = format!(
                        "{} called the Kubernetes API: {target} on {destination}",
                        agent_name(model, agent)
                    );
                    if let Some(index) = self.sensitive(
                        agent,
                        &Occurrence::from(observation),
                        SensitiveKind::KubernetesApi,
                        target,
                        Severity::Medium,
                        summary,
                        model,
                    ) {
                        self.watch(agent).kubernetes_api = Some((index, observation.ts_ns));
                    }
                    self.token_and_api(agent, model);
                }
                self.exfiltration(context, exchange, &destination, model);
                let watch = self.watch(agent);
                watch.contacted(destination.clone(), observation.ts_ns);
                if let Some(response) = &exchange.response {
                    let text = String::from_utf8_lossy(&response.body);
                    let origin = format!(
                        "response of {} {destination}{}",
                        exchange.request.method,
                        exchange.request.path()
                    );
                    watch.read.remember(&text, &origin, observation.ts_ns);
                }
            }
            _ => {}
        }
    }

    pub(super) fn deviation(&mut self, deviation: Deviation, model: &Model) {
        let severity = match deviation.category {
            Category::Executable | Category::Egress | Category::Data | Category::Identity => {
                Severity::Medium
            }
            _ => Severity::Low,
        };
        let summary = format!(
            "{}: {} never seen in its {} baseline ({})",
            agent_name(model, &deviation.agent),
            deviation.item,
            match deviation.baseline {
                crate::baseline::BaselineSource::Approved => "approved",
                crate::baseline::BaselineSource::Learned => "learned",
            },
            deviation.section
        );
        let agent = deviation.agent.clone();
        let ts = deviation.ts_ns;
        let Some(index) = self.book.push_finding(Finding {
            id: String::new(),
            kind: FindingKind::BaselineDeviation,
            agent: deviation.agent.clone(),
            severity,
            summary,
            ts_ns: deviation.ts_ns,
            time_unix_ns: deviation.time_unix_ns,
            pid: deviation.pid,
            events: deviation.events.clone(),
            subject_events: deviation.events.clone(),
            labels: deviation.labels.clone(),
            incident: None,
            detail: FindingDetail::BaselineDeviation {
                category: deviation.category,
                item: deviation.item,
                section: deviation.section,
                baseline: deviation.baseline,
                baseline_status: deviation.baseline_status,
                kubescape_rule: deviation.kubescape_rule,
            },
        }) else {
            return;
        };
        self.join_open_chain(&agent, index, ts, model);
    }

    /// The incident of the agent's open chain at `ts_ns`, if any.
    pub(super) fn open_chain(&mut self, agent: &str, ts_ns: u64) -> Option<usize> {
        let chain = self.agents.get(agent)?.chain?;
        (ts_ns <= chain.until_ns && same_session(chain.session, self.session))
            .then_some(chain.incident)
    }

    pub(super) fn join_open_chain(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        model: &Model,
    ) {
        if let Some(incident) = self.open_chain(agent, ts_ns) {
            self.book.join(incident, finding);
            self.retell(incident, model);
        }
    }

    /// Joins the agent's open chain, or opens an incident with `finding` as its trigger.
    pub(super) fn open_or_join(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        starts_chain: bool,
        model: &Model,
    ) {
        let incident = match self.open_chain(agent, ts_ns) {
            Some(incident) => {
                self.book.join(incident, finding);
                incident
            }
            None => {
                let trigger = self.book.findings[finding].summary.clone();
                let incident = self.book.open_incident(agent, finding, ts_ns, trigger);
                if starts_chain {
                    let session = self.session;
                    self.watch(agent).chain = Some(Chain {
                        incident,
                        session,
                        until_ns: ts_ns.saturating_add(CHAIN_WINDOW_NS),
                    });
                }
                incident
            }
        };
        self.retell(incident, model);
    }

    pub(super) fn open_incident(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        trigger: String,
        model: &Model,
    ) -> usize {
        let incident = self.book.open_incident(agent, finding, ts_ns, trigger);
        self.book.incidents[incident].identity = identity_of(model, agent).unwrap_or_default();
        self.book.incidents[incident].agent_name = agent_name(model, agent);
        incident
    }

    /// Recomputes an incident's severity and story, with who its agent is now.
    pub(super) fn retell(&mut self, incident: usize, model: &Model) {
        let Some(agent) = self.book.incidents.get(incident).map(|i| i.agent.clone()) else {
            return;
        };
        let identity = identity_of(model, &agent).map(|id| (id, agent_name(model, &agent)));
        self.book.retell(incident, identity);
    }
}

pub(super) fn identity_of(model: &Model, agent: &str) -> Option<IncidentIdentity> {
    let identity: &ActorIdentity = &model.agent(agent)?.identity;
    Some(IncidentIdentity {
        workload: identity.workload.clone(),
        pod: identity.pod.clone(),
        service_account: identity.service_account.clone(),
        cloud_roles: identity.cloud_roles.clone(),
        uid: identity.uid,
        user: identity.user.clone(),
    })
}

pub(super) fn agent_name(model: &Model, agent: &str) -> String {
    model
        .agent(agent)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| agent.to_string())
}

pub(super) fn target_of(finding: &Finding) -> String {
    match &finding.detail {
        FindingDetail::SensitiveAccess { target, .. } => target.clone(),
        _ => finding.summary.clone(),
    }
}

/// Calls are known by id; dialects without ids (Gemini) by name.
/// Which tool call of an agent this is: its id, or its name where the dialect gives no ids,
/// within the session of `pid` (the agent process that received it from the model): two
/// sessions of one agent side by side may be given the same ids by their models.
pub(super) fn call_key(pid: u32, id: Option<&str>, name: Option<&str>) -> String {
    match id {
        Some(id) => format!("{pid}/id:{id}"),
        None => format!("{pid}/name:{}", name.unwrap_or_default()),
    }
}

pub(super) fn tool_name_of(model: &Model, agent: &str, call_id: Option<&str>) -> Option<String> {
    let call_id = call_id?;
    model
        .tool_calls()
        .rev()
        .find(|c| c.agent == agent && c.id.as_deref() == Some(call_id))
        .map(|c| c.name.clone())
}
