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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::baseline::{
    AgentBaseline, BaselineJudge, BaselineLearner, Category, Deviation, LearnerOptions,
};
use crate::model::{ActorIdentity, Model, NewLink};
use crate::pipeline::AttributedObservation;
use crate::reconstruct::mcp::McpDetail;
use crate::reconstruct::{EventRange, Observation, ObservationKind, Role};

use super::exfiltration::{sent_fields, Egress, ReadData};
use super::finding::{
    ChainToolCall, DetectionUpdate, Finding, FindingDetail, FindingKind, Incident, IncidentChain,
    IncidentIdentity, SensitiveKind, Severity,
};
use super::injection::{scan, IngestSource, InjectionVerdict, Verdict};
use super::labels;
use super::sensitive;

/// A chain stays open this long after the last tool call a tainted turn requested.
const CHAIN_WINDOW_NS: u64 = 120 * 1_000_000_000;
/// A token read and a Kubernetes API call this far apart are not one story.
const TOKEN_USE_WINDOW_NS: u64 = 600 * 1_000_000_000;
/// Sensitive reads this long before the first read of exfiltrated data join its incident.
const SENSITIVE_LOOKBACK_NS: u64 = 60 * 1_000_000_000;
/// Findings kept; later ones are counted, not kept.
const MAX_FINDINGS: usize = 100_000;
/// Injected contents remembered per agent (to recognise the same content seen again).
const MAX_INJECTIONS_PER_AGENT: usize = 256;
/// Tainted tool calls remembered per agent.
const MAX_TAINTED_CALLS: usize = 4096;
/// Read data smaller than this in a request is coincidence, not exfiltration.
const MIN_EXFIL_BYTES: usize = 24;
const EXCERPT_BYTES: usize = 240;
/// Injected text kept for matching the arguments it asked for.
const MAX_INJECTED_TEXT: usize = 64 << 10;
/// Argument values shorter than this are too common to show they came from injected text.
const MIN_ARGUMENT_MATCH: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct DetectorOptions {
    pub learner: LearnerOptions,
    /// Approved baselines (`--baseline DIR`): their agents are judged against them.
    pub approved: Vec<AgentBaseline>,
}

/// Detection state of one agent.
#[derive(Default)]
struct AgentWatch {
    /// Injected contents seen: (content hash, rule signature, finding index).
    injections: VecDeque<(u64, String, usize)>,
    /// Tool descriptions that carry instructions: description hash → finding index.
    poisoned_descriptions: BTreeMap<u64, usize>,
    /// Tool calls requested by tainted turns, by call key.
    tainted_calls: BTreeMap<String, TaintedCall>,
    tainted_order: VecDeque<String>,
    /// What tainted calls did before they were found to be misuse (graph node ids).
    touched: BTreeMap<String, Vec<String>>,
    /// The text of each injection finding (for matching the arguments it asked for).
    injected_texts: VecDeque<(usize, String)>,
    chain: Option<Chain>,
    tools_called: BTreeSet<String>,
    read: ReadData,
    egress: Egress,
    /// Destinations with the event time they were first contacted.
    first_contact: BTreeMap<String, u64>,
    /// One finding per (kind, target).
    reported: BTreeMap<(FindingKind, String), usize>,
    token_read: Option<(usize, u64)>,
    kubernetes_api: Option<(usize, u64)>,
}

#[derive(Debug, Clone)]
struct TaintedCall {
    /// The prompt-injection finding whose content the requesting turn read.
    cause: usize,
    name: String,
    id: Option<String>,
    arguments: serde_json::Value,
    first_use: bool,
    /// Its tool-misuse finding, once raised.
    misuse: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Chain {
    incident: usize,
    until_ns: u64,
}

pub struct Detector {
    judge: BaselineJudge,
    agents: BTreeMap<String, AgentWatch>,
    findings: Vec<Finding>,
    incidents: Vec<Incident>,
    changed_findings: BTreeSet<usize>,
    changed_incidents: BTreeSet<usize>,
    findings_dropped: u64,
    /// Findings are charged here (an upper bound: twice their JSON size); they are never
    /// evicted (incidents point at them), so at the budget new ones are dropped and counted.
    budget: Option<crate::memory_budget::Charge>,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new(DetectorOptions::default())
    }
}

/// When and where a finding happened, and the raw events that show it: an observation's, or
/// a linked action's (an MCP server's SQL found through the tool call it served).
struct Occurrence {
    ts_ns: u64,
    time_unix_ns: u64,
    pid: u32,
    events: Vec<EventRange>,
}

impl From<&Observation> for Occurrence {
    fn from(observation: &Observation) -> Self {
        Self {
            ts_ns: observation.ts_ns,
            time_unix_ns: observation.time_unix_ns,
            pid: observation.actor.pid,
            events: observation.events.clone(),
        }
    }
}

impl Occurrence {
    /// A linked action's time is monotonic only: it carries no wall-clock time.
    fn of_action(action: &crate::model::Action) -> Self {
        Self {
            ts_ns: action.ts_ns,
            time_unix_ns: 0,
            pid: action.pid,
            events: action.events.clone(),
        }
    }

    /// A finding (numbered later by `push_finding`) of what happened here.
    fn finding(
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
            labels,
            incident: None,
            detail,
        }
    }
}

/// One observation as detection sees it: with the agent it acted for.
struct Context<'a> {
    agent: String,
    observation: &'a Observation,
}

impl Detector {
    pub fn new(options: DetectorOptions) -> Self {
        Self {
            judge: BaselineJudge::new(BaselineLearner::new(options.learner))
                .with_approved(options.approved),
            agents: BTreeMap::new(),
            findings: Vec::new(),
            incidents: Vec::new(),
            changed_findings: BTreeSet::new(),
            changed_incidents: BTreeSet::new(),
            findings_dropped: 0,
            budget: None,
        }
    }

    /// Findings are charged to `budget` from now on.
    pub fn set_budget(&mut self, budget: &crate::memory_budget::MemoryBudget) {
        self.budget = Some(crate::memory_budget::Charge::new(budget));
    }

    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Findings not kept because [`MAX_FINDINGS`] were.
    pub fn findings_dropped(&self) -> u64 {
        self.findings_dropped
    }

    /// The baselines being learned and the approved ones.
    pub fn judge(&self) -> &BaselineJudge {
        &self.judge
    }

    pub fn learner(&self) -> &BaselineLearner {
        self.judge.learner()
    }

    /// Events or bytes were lost at `ts_ns`: baselines learning then are partial.
    pub fn note_loss(&mut self, ts_ns: u64, loss: crate::baseline::LossCounts) {
        self.judge.note_loss(Some(ts_ns), loss);
    }

    /// Findings and incidents raised or changed since the last call.
    pub fn take_update(&mut self) -> DetectionUpdate {
        let findings = std::mem::take(&mut self.changed_findings)
            .into_iter()
            .filter_map(|i| self.findings.get(i).cloned())
            .collect();
        let incidents = std::mem::take(&mut self.changed_incidents)
            .into_iter()
            .filter_map(|i| self.incidents.get(i).cloned())
            .collect();
        DetectionUpdate {
            findings,
            incidents,
        }
    }

    /// Judges one observation (already applied to `model`), attributed by the pipeline, and
    /// the links applying it made. An earlier observation handed out again once its process
    /// became an agent's only teaches the agent's baseline.
    pub fn observe(&mut self, attributed: &AttributedObservation, model: &Model) {
        let observation = &attributed.observation;
        if let Some(agent) = &attributed.agent {
            let identity = model.agent(agent).map(|a| a.identity.clone());
            let deviations = self.judge.observe(agent, identity.as_ref(), observation);
            for deviation in deviations {
                self.deviation(deviation, model);
            }
        }
        if attributed.earlier {
            return;
        }
        self.judge.advance_to(observation.ts_ns);
        if let Some(agent) = attributed.agent.clone() {
            let context = Context { agent, observation };
            self.detect(&context, model);
        }
        for link in attributed.links.iter().cloned() {
            self.follow_link(link, model);
        }
    }

    fn watch(&mut self, agent: &str) -> &mut AgentWatch {
        self.agents.entry(agent.to_string()).or_default()
    }

    fn detect(&mut self, context: &Context<'_>, model: &Model) {
        let observation = context.observation;
        let agent = context.agent.as_str();
        match &observation.kind {
            ObservationKind::Llm {
                call, end_ts_ns, ..
            } => {
                let mut cause: Option<usize> = None;
                for result in &call.tool_results {
                    let key = call_key(result.call_id.as_deref(), result.name.as_deref());
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
            ObservationKind::Connect { peer } => {
                let destination = format!("{}:{}", peer.addr, peer.port);
                self.watch(agent)
                    .first_contact
                    .entry(destination)
                    .or_insert(observation.ts_ns);
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
                watch
                    .first_contact
                    .entry(destination.clone())
                    .or_insert(observation.ts_ns);
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

    /// Scans ingested content; returns the injection finding (new or already raised for the
    /// same content) when the verdict is injection.
    #[allow(clippy::too_many_arguments)]
    fn ingest(
        &mut self,
        context: &Context<'_>,
        text: &str,
        source: IngestSource,
        channel: String,
        tool: Option<String>,
        call_id: Option<String>,
        model: &Model,
    ) -> Option<usize> {
        let agent = context.agent.as_str();
        let hash = content_hash(text);
        if let Some(index) = self
            .watch(agent)
            .injections
            .iter()
            .find(|(h, _, _)| *h == hash)
            .map(|(_, _, i)| *i)
        {
            self.seen_again(index, context.observation);
            return Some(index);
        }
        let verdict = scan(text, source);
        // Suspicious content taints the turns that read it, but only becomes an incident
        // once the model acts on it (see `raise_misuse`).
        let severity = match verdict.verdict {
            Verdict::Injection => Severity::High,
            Verdict::Suspicious => Severity::Medium,
            Verdict::Benign => return None,
        };
        let signature = signature(&verdict);
        // The same instructions reach the agent twice: as a tool's result, then inside the
        // model request that reports it (maybe re-wrapped). One finding, two sightings.
        if let Some(index) = self
            .watch(agent)
            .injections
            .iter()
            .find(|(_, s, _)| *s == signature)
            .map(|(_, _, i)| *i)
        {
            self.remember_injection(agent, hash, signature, index);
            self.seen_again(index, context.observation);
            return Some(index);
        }
        let quote = verdict
            .hits
            .iter()
            .max_by(|a, b| a.weight.total_cmp(&b.weight))
            .map(|h| h.matched.clone())
            .unwrap_or_default();
        let summary = format!(
            "{} in the {channel}: \"{quote}\"",
            if severity == Severity::High {
                "prompt injection"
            } else {
                "possible prompt injection"
            }
        );
        let labels = verdict.labels();
        let observation = context.observation;
        let index = self.push_finding(Occurrence::from(observation).finding(
            FindingKind::PromptInjection,
            agent,
            severity,
            summary,
            labels,
            FindingDetail::PromptInjection {
                source,
                channel,
                tool,
                call_id,
                score: verdict.score,
                verdict: verdict.verdict,
                hits: verdict.hits,
                excerpt: excerpt(text),
                sightings: 1,
            },
        ))?;
        self.remember_injection(agent, hash, signature, index);
        let watch = self.watch(agent);
        if watch.injected_texts.len() >= MAX_INJECTIONS_PER_AGENT {
            watch.injected_texts.pop_front();
        }
        watch
            .injected_texts
            .push_back((index, cut(text, MAX_INJECTED_TEXT).to_string()));
        if severity == Severity::High {
            self.open_or_join(agent, index, observation.ts_ns, true, model);
        }
        Some(index)
    }

    /// A tool description the model will read: scanned once, and remembered when poisoned so
    /// every turn that offers the tool is tainted.
    fn ingest_description(
        &mut self,
        context: &Context<'_>,
        description: &str,
        channel: String,
        tool: &str,
        model: &Model,
    ) -> Option<usize> {
        let finding = self.ingest(
            context,
            description,
            IngestSource::ToolDescription,
            channel,
            Some(tool.to_string()),
            None,
            model,
        )?;
        self.watch(&context.agent)
            .poisoned_descriptions
            .insert(content_hash(description), finding);
        Some(finding)
    }

    /// The injection finding (of retrieved content) whose matched phrases a prompt repeats.
    fn injection_quoted_in(&self, agent: &str, prompt: &str) -> Option<usize> {
        let watch = self.agents.get(agent)?;
        if watch.injected_texts.is_empty() {
            return None;
        }
        let prompt = prompt.to_lowercase();
        watch.injected_texts.iter().find_map(|(index, _)| {
            let finding = self.findings.get(*index)?;
            let FindingDetail::PromptInjection { source, hits, .. } = &finding.detail else {
                return None;
            };
            (*source == IngestSource::RetrievedDocument
                && hits
                    .iter()
                    .any(|h| h.matched.len() >= 12 && prompt.contains(&h.matched)))
            .then_some(*index)
        })
    }

    fn remember_injection(&mut self, agent: &str, hash: u64, signature: String, index: usize) {
        let watch = self.watch(agent);
        if watch.injections.len() >= MAX_INJECTIONS_PER_AGENT {
            watch.injections.pop_front();
        }
        watch.injections.push_back((hash, signature, index));
    }

    fn seen_again(&mut self, index: usize, observation: &Observation) {
        if let Some(finding) = self.findings.get_mut(index) {
            if let FindingDetail::PromptInjection { sightings, .. } = &mut finding.detail {
                *sightings += 1;
            }
            merge_events(&mut finding.events, &observation.events);
            self.changed_findings.insert(index);
        }
    }

    /// A tool call requested by a turn that read `cause`'s content. It is misuse when the
    /// evidence says the content steered it: its arguments come from the injected text (the
    /// query, the URL, the command the text asked for), or carry data the agent read; or,
    /// later, when what it did is sensitive ([`Self::follow_link`]). Other calls of the turn
    /// stay tainted, so the taint follows their results, without a finding.
    #[allow(clippy::too_many_arguments)]
    fn tainted_call(
        &mut self,
        context: &Context<'_>,
        cause: usize,
        requested: &crate::reconstruct::llm::ToolCall,
        first_use: bool,
        end_ts_ns: u64,
        model: &Model,
    ) {
        let agent = context.agent.as_str();
        let key = call_key(requested.id.as_deref(), Some(&requested.name));
        let mut values = Vec::new();
        string_values(&requested.arguments, &mut values);
        let watch = self.watch(agent);
        let injected = watch
            .injected_texts
            .iter()
            .find(|(finding, _)| *finding == cause)
            .map(|(_, text)| text.as_str())
            .unwrap_or_default();
        let from_injection = values
            .iter()
            .find(|value| argument_in_text(value, injected))
            .cloned();
        let carried = values
            .iter()
            .map(|value| watch.read.contained_bytes(value))
            .sum::<usize>();
        if watch.tainted_order.len() >= MAX_TAINTED_CALLS {
            if let Some(old) = watch.tainted_order.pop_front() {
                watch.tainted_calls.remove(&old);
            }
        }
        watch.tainted_order.push_back(key.clone());
        watch.tainted_calls.insert(
            key.clone(),
            TaintedCall {
                cause,
                name: requested.name.clone(),
                id: requested.id.clone(),
                arguments: requested.arguments.clone(),
                first_use,
                misuse: None,
            },
        );
        if let Some(chain) = &mut watch.chain {
            chain.until_ns = chain
                .until_ns
                .max(end_ts_ns.saturating_add(CHAIN_WINDOW_NS));
        }
        let reason = match (from_injection, carried >= MIN_EXFIL_BYTES) {
            (Some(value), _) => format!(
                "its argument \"{}\" comes from the injected content",
                cut(&one_line(&value), 80)
            ),
            (None, true) => format!("its arguments carry {carried} bytes of data the agent read"),
            (None, false) => return,
        };
        self.raise_misuse(
            agent,
            &key,
            reason,
            &Occurrence::from(context.observation),
            model,
        );
    }

    /// Raises the tool-misuse finding of a tainted call (once) and puts it in the incident of
    /// its cause, opening that incident if the cause was only suspicious.
    fn raise_misuse(
        &mut self,
        agent: &str,
        key: &str,
        reason: String,
        at: &Occurrence,
        model: &Model,
    ) -> Option<usize> {
        let call = self.agents.get(agent)?.tainted_calls.get(key)?.clone();
        if let Some(index) = call.misuse {
            return Some(index);
        }
        let arguments = describe_arguments(Some(&call.arguments));
        let summary = format!(
            "{}tool call {}{arguments} after the model read injected content: {reason}",
            if call.first_use { "first-ever " } else { "" },
            call.name
        );
        let mut labels = vec![
            labels::LLM06_EXCESSIVE_AGENCY,
            labels::ASI02_TOOL_MISUSE,
            labels::ASI01_AGENT_GOAL_HIJACK,
        ];
        labels.sort();
        let index = self.push_finding(
            at.finding(
                FindingKind::ToolMisuse,
                agent,
                Severity::High,
                summary,
                labels,
                FindingDetail::ToolMisuse {
                    tool: call.name.clone(),
                    call_id: call.id.clone(),
                    arguments: call.arguments.clone(),
                    caused_by: self
                        .findings
                        .get(call.cause)
                        .map(|f| f.id.clone())
                        .unwrap_or_default(),
                    first_use: call.first_use,
                    reason,
                    actions: Vec::new(),
                },
            ),
        )?;
        if let Some(tainted) = self
            .agents
            .get_mut(agent)
            .and_then(|w| w.tainted_calls.get_mut(key))
        {
            tainted.misuse = Some(index);
        }
        // A suspicious cause becomes an incident once the model acted on it.
        let incident = match self.findings[call.cause]
            .incident
            .clone()
            .and_then(|id| self.incident_index(&id))
        {
            Some(incident) => incident,
            None => {
                self.open_or_join(agent, call.cause, at.ts_ns, true, model);
                self.findings[call.cause]
                    .incident
                    .clone()
                    .and_then(|id| self.incident_index(&id))?
            }
        };
        self.join(incident, index);
        let touched = self.watch(agent).touched.remove(key).unwrap_or_default();
        self.incidents[incident]
            .chain
            .tool_calls
            .push(ChainToolCall {
                name: call.name.clone(),
                call_id: call.id.clone(),
                arguments: arguments_line(&call.arguments),
                touched,
                first_use: call.first_use,
            });
        self.retell(incident, model);
        Some(index)
    }

    /// An action linked to a tool call: if the call was tainted, what it did joins the story,
    /// and a sensitive action makes the call misuse.
    fn follow_link(&mut self, link: NewLink, model: &Model) {
        let key = call_key(link.call_id.as_deref(), Some(&link.call_name));
        let mut sensitive_action: Option<String> = None;
        if link.action.kind == "sql" {
            // What an MCP server did for the agent is the agent's data access.
            let tables: Vec<String> = std::iter::once(link.action.target.clone())
                .chain(
                    link.action
                        .detail
                        .more_nodes
                        .iter()
                        .map(|(id, _)| id.clone()),
                )
                .filter_map(|id| id.strip_prefix("data:table:").map(str::to_string))
                .collect();
            let text = link.action.detail.descriptors.join(" ");
            let (tables, columns) = sensitive::personal_data(&tables, &text);
            if !tables.is_empty() || !columns.is_empty() {
                sensitive_action = Some(format!("it read personal data ({})", tables.join(", ")));
            }
            let at = Occurrence::of_action(&link.action);
            self.personal_data(&link.agent, &at, tables, columns, model);
        } else if let Some(path) = link.action.target.strip_prefix("data:file:") {
            let class = crate::reconstruct::file_access::classify(path);
            if sensitive::secret_file(&class).is_some() {
                sensitive_action = Some(format!("it opened {path} ({})", class.label));
            }
        }
        let Some(watch) = self.agents.get_mut(&link.agent) else {
            return;
        };
        let Some(tainted) = watch.tainted_calls.get(&key) else {
            return;
        };
        let target = link.action.target.clone();
        let touched = match link.action.kind {
            "exec" => format!("{target} ({})", cut(&link.action.summary, 80)),
            _ => target.clone(),
        };
        let misuse = match (tainted.misuse, sensitive_action) {
            (Some(index), _) => index,
            (None, Some(reason)) => {
                let pending = watch.touched.entry(key.clone()).or_default();
                if !pending.contains(&touched) {
                    pending.push(touched.clone());
                }
                let at = Occurrence::of_action(&link.action);
                let _ = self.raise_misuse(&link.agent, &key, reason, &at, model);
                return;
            }
            (None, None) => {
                // Not misuse (yet): remember what it did in case it becomes so.
                let pending = watch.touched.entry(key).or_default();
                if pending.len() < 64 && !pending.contains(&touched) {
                    pending.push(touched);
                }
                return;
            }
        };
        if let Some(finding) = self.findings.get_mut(misuse) {
            if let FindingDetail::ToolMisuse { actions, .. } = &mut finding.detail {
                if !actions.contains(&target) {
                    actions.push(target.clone());
                }
            }
            merge_events(&mut finding.events, &link.action.events);
            self.changed_findings.insert(misuse);
        }
        let Some(incident) = self.findings[misuse]
            .incident
            .clone()
            .and_then(|id| self.incident_index(&id))
        else {
            return;
        };
        let chain = &mut self.incidents[incident].chain;
        if let Some(call) = chain
            .tool_calls
            .iter_mut()
            .rev()
            .find(|c| call_key(c.call_id.as_deref(), Some(&c.name)) == key)
        {
            if !call.touched.contains(&touched) {
                call.touched.push(touched);
            }
        }
        merge_events(&mut self.incidents[incident].events, &link.action.events);
        self.retell(incident, model);
    }

    fn personal_data(
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

    /// Raises a sensitive-access finding once per agent and target; returns it.
    #[allow(clippy::too_many_arguments)]
    fn sensitive(
        &mut self,
        agent: &str,
        at: &Occurrence,
        what: SensitiveKind,
        target: String,
        severity: Severity,
        summary: String,
        model: &Model,
    ) -> Option<usize> {
        let key = (FindingKind::SensitiveAccess, target.clone());
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
        let index = self.push_finding(at.finding(
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
        if let Some(incident) = self.findings[index]
            .incident
            .clone()
            .and_then(|id| self.incident_index(&id))
        {
            let data = &mut self.incidents[incident].chain.data;
            if !data.contains(&target) {
                data.push(target);
            }
            self.retell(incident, model);
        }
        Some(index)
    }

    /// A service-account token read and a Kubernetes API call by the same agent, close in
    /// time: the agent is using the pod's identity directly.
    fn token_and_api(&mut self, agent: &str, model: &Model) {
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
        if self.findings[first].incident.is_some() && self.findings[second].incident.is_some() {
            return;
        }
        self.findings[api].severity = Severity::High;
        self.changed_findings.insert(api);
        let ts = token_ns.max(api_ns);
        let incident = match self.findings[first]
            .incident
            .clone()
            .and_then(|id| self.incident_index(&id))
        {
            Some(incident) => incident,
            None => {
                let trigger = format!(
                    "service-account token read ({})",
                    target_of(&self.findings[token])
                );
                let opened = self.open_incident(agent, first, ts, trigger, model);
                self.incidents[opened]
                    .chain
                    .data
                    .push(target_of(&self.findings[token]));
                opened
            }
        };
        self.join(incident, second);
        let api_target = format!("Kubernetes API {}", target_of(&self.findings[api]));
        let data = &mut self.incidents[incident].chain.data;
        if !data.contains(&api_target) {
            data.push(api_target);
        }
        self.retell(incident, model);
    }

    fn exfiltration(
        &mut self,
        context: &Context<'_>,
        exchange: &crate::reconstruct::http::HttpExchange,
        destination: &str,
        model: &Model,
    ) {
        let agent = context.agent.as_str();
        let observation = context.observation;
        let fields = sent_fields(exchange);
        let watch = self.watch(agent);
        let AgentWatch { read, egress, .. } = watch;
        let Some(totals) = egress.send(destination, &fields, read) else {
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
            let finding = &mut self.findings[index];
            finding.summary = summary;
            finding.detail = detail;
            merge_events(&mut finding.events, &observation.events);
            self.changed_findings.insert(index);
            if let Some(incident) = finding
                .incident
                .clone()
                .and_then(|id| self.incident_index(&id))
            {
                self.set_egress(incident, index);
                merge_events(&mut self.incidents[incident].events, &observation.events);
                self.retell(incident, model);
            }
            return;
        }
        let mut labels = vec![
            labels::LLM02_SENSITIVE_INFORMATION_DISCLOSURE,
            labels::ASI02_TOOL_MISUSE,
        ];
        labels.sort();
        let Some(index) = self.push_finding(Occurrence::from(observation).finding(
            FindingKind::Exfiltration,
            agent,
            Severity::High,
            summary,
            labels,
            detail,
        )) else {
            return;
        };
        self.watch(agent).reported.insert(key, index);
        let incident = match self.open_chain(agent, observation.ts_ns) {
            Some(incident) => {
                self.join(incident, index);
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
                        let f = &self.findings[i];
                        f.agent == agent
                            && f.kind == FindingKind::SensitiveAccess
                            && f.incident.is_none()
                            && f.ts_ns >= since
                    })
                    .collect();
                for finding in earlier {
                    self.join(incident, finding);
                    let target = target_of(&self.findings[finding]);
                    let data = &mut self.incidents[incident].chain.data;
                    if !data.contains(&target) {
                        data.push(target);
                    }
                }
                incident
            }
        };
        self.set_egress(incident, index);
        self.retell(incident, model);
    }

    fn set_egress(&mut self, incident: usize, finding: usize) {
        let FindingDetail::Exfiltration {
            destination,
            requests,
            matched_bytes,
            ..
        } = &self.findings[finding].detail
        else {
            return;
        };
        let line = format!(
            "exfiltration of {matched_bytes} bytes of read data to {destination} ({requests} request{})",
            if *requests == 1 { "" } else { "s" }
        );
        let egress = &mut self.incidents[incident].chain.egress;
        match egress
            .iter_mut()
            .find(|e| e.contains(&format!(" to {destination} (")))
        {
            Some(existing) => *existing = line,
            None => egress.push(line),
        }
    }

    /// Why `destination` is outside the agent's baseline, or `None` when it is inside.
    fn destination_is_new(
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

    fn deviation(&mut self, deviation: Deviation, model: &Model) {
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
        let Some(index) = self.push_finding(Finding {
            id: String::new(),
            kind: FindingKind::BaselineDeviation,
            agent: deviation.agent.clone(),
            severity,
            summary,
            ts_ns: deviation.ts_ns,
            time_unix_ns: deviation.time_unix_ns,
            pid: deviation.pid,
            events: deviation.events.clone(),
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

    fn push_finding(&mut self, mut finding: Finding) -> Option<usize> {
        if self.findings.len() >= MAX_FINDINGS {
            self.findings_dropped += 1;
            return None;
        }
        if let Some(charge) = self.budget.as_mut() {
            let bytes = 1024 + 2 * serde_json::to_vec(&finding).map_or(0, |json| json.len());
            if !charge.try_grow(bytes) {
                self.findings_dropped += 1;
                charge
                    .budget()
                    .note(crate::memory_budget::Pressure::FindingDropped);
                return None;
            }
        }
        finding.id = format!("f-{}", self.findings.len() + 1);
        self.findings.push(finding);
        let index = self.findings.len() - 1;
        self.changed_findings.insert(index);
        Some(index)
    }

    fn incident_index(&self, id: &str) -> Option<usize> {
        id.strip_prefix("inc-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .filter(|&i| i < self.incidents.len())
    }

    /// The incident of the agent's open chain at `ts_ns`, if any.
    fn open_chain(&mut self, agent: &str, ts_ns: u64) -> Option<usize> {
        let chain = self.agents.get(agent)?.chain?;
        (ts_ns <= chain.until_ns).then_some(chain.incident)
    }

    fn join_open_chain(&mut self, agent: &str, finding: usize, ts_ns: u64, model: &Model) {
        if let Some(incident) = self.open_chain(agent, ts_ns) {
            self.join(incident, finding);
            self.retell(incident, model);
        }
    }

    /// Joins the agent's open chain, or opens an incident with `finding` as its trigger.
    fn open_or_join(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        starts_chain: bool,
        model: &Model,
    ) {
        let incident = match self.open_chain(agent, ts_ns) {
            Some(incident) => {
                self.join(incident, finding);
                incident
            }
            None => {
                let trigger = self.findings[finding].summary.clone();
                let incident = self.open_incident_raw(agent, finding, ts_ns, trigger);
                if starts_chain {
                    self.watch(agent).chain = Some(Chain {
                        incident,
                        until_ns: ts_ns.saturating_add(CHAIN_WINDOW_NS),
                    });
                }
                incident
            }
        };
        self.retell(incident, model);
    }

    fn open_incident(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        trigger: String,
        model: &Model,
    ) -> usize {
        let incident = self.open_incident_raw(agent, finding, ts_ns, trigger);
        self.incidents[incident].identity = identity_of(model, agent).unwrap_or_default();
        self.incidents[incident].agent_name = agent_name(model, agent);
        incident
    }

    fn open_incident_raw(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        trigger: String,
    ) -> usize {
        let id = format!("inc-{}", self.incidents.len() + 1);
        let time_unix_ns = self.findings[finding].time_unix_ns;
        self.incidents.push(Incident {
            id,
            agent: agent.to_string(),
            agent_name: String::new(),
            severity: Severity::Low,
            story: String::new(),
            opened_ns: ts_ns,
            time_unix_ns,
            updated_ns: ts_ns,
            identity: IncidentIdentity::default(),
            findings: Vec::new(),
            events: Vec::new(),
            labels: Vec::new(),
            chain: IncidentChain {
                trigger,
                ..Default::default()
            },
        });
        let incident = self.incidents.len() - 1;
        self.join(incident, finding);
        incident
    }

    fn join(&mut self, incident: usize, finding: usize) {
        let Some(f) = self.findings.get_mut(finding) else {
            return;
        };
        if f.incident.is_some() {
            return;
        }
        let i = &mut self.incidents[incident];
        f.incident = Some(i.id.clone());
        i.findings.push(f.id.clone());
        merge_events(&mut i.events, &f.events);
        for label in &f.labels {
            if !i.labels.contains(label) {
                i.labels.push(*label);
            }
        }
        i.labels.sort();
        i.severity = i.severity.max(f.severity);
        i.updated_ns = i.updated_ns.max(f.ts_ns);
        self.changed_findings.insert(finding);
        self.changed_incidents.insert(incident);
    }

    /// Recomputes an incident's severity and story from its findings and chain.
    fn retell(&mut self, incident: usize, model: &Model) {
        let Some(i) = self.incidents.get_mut(incident) else {
            return;
        };
        if let Some(identity) = identity_of(model, &i.agent) {
            i.identity = identity;
            i.agent_name = agent_name(model, &i.agent);
        }
        let kinds: BTreeSet<FindingKind> = i
            .findings
            .iter()
            .filter_map(|id| id.strip_prefix("f-")?.parse::<usize>().ok()?.checked_sub(1))
            .filter_map(|n| self.findings.get(n))
            .map(|f| f.kind)
            .collect();
        let mut severity = i
            .findings
            .iter()
            .filter_map(|id| id.strip_prefix("f-")?.parse::<usize>().ok()?.checked_sub(1))
            .filter_map(|n| self.findings.get(n))
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Low);
        // Injected instructions that the agent acted on against data, or data that left:
        // the worst case this product exists for.
        let acted = kinds.contains(&FindingKind::ToolMisuse)
            && (kinds.contains(&FindingKind::SensitiveAccess)
                || kinds.contains(&FindingKind::Exfiltration));
        if (kinds.contains(&FindingKind::PromptInjection) && acted)
            || (kinds.contains(&FindingKind::Exfiltration) && kinds.len() >= 3)
        {
            severity = Severity::Critical;
        }
        i.severity = severity;
        i.story = story(i);
        self.changed_incidents.insert(incident);
    }
}

/// The one-line story: trigger → tool calls and what they touched → data → egress → identity.
fn story(incident: &Incident) -> String {
    let chain = &incident.chain;
    let name = if incident.agent_name.is_empty() {
        incident.agent.as_str()
    } else {
        incident.agent_name.as_str()
    };
    let mut parts = vec![format!("{} on agent {name}", chain.trigger)];
    let mut mentioned: Vec<&str> = Vec::new();
    for call in &chain.tool_calls {
        let tables: Vec<&str> = call
            .touched
            .iter()
            .filter_map(|t| t.strip_prefix("data:table:"))
            .collect();
        let commands: Vec<&str> = call
            .touched
            .iter()
            .filter(|t| t.starts_with("command:"))
            .map(String::as_str)
            .collect();
        let what = if !tables.is_empty() {
            mentioned.extend(tables.iter().copied());
            format!(" reading table {}", tables.join(", "))
        } else if !commands.is_empty() {
            // The command the model asked for says more than the binaries it started.
            call.arguments.clone()
        } else if let Some(api) = call.touched.iter().find_map(|t| t.strip_prefix("api:")) {
            format!(" calling {api}")
        } else if let Some(file) = call
            .touched
            .iter()
            .find_map(|t| t.strip_prefix("data:file:"))
        {
            format!(" opening {file}")
        } else {
            // Nothing it did is known (yet): what the model asked for says it.
            call.arguments.clone()
        };
        let kind = if !tables.is_empty() {
            "database tool call"
        } else if !commands.is_empty() {
            "command tool call"
        } else {
            "tool call"
        };
        parts.push(format!(
            "{}{kind} {}{what}",
            if call.first_use { "unexpected " } else { "" },
            call.name
        ));
    }
    let data: Vec<&str> = chain
        .data
        .iter()
        .map(String::as_str)
        .filter(|d| !mentioned.iter().any(|m| d.contains(m)))
        .collect();
    if !data.is_empty() {
        parts.push(format!("sensitive access: {}", data.join(", ")));
    }
    parts.extend(chain.egress.iter().cloned());
    let identity = &incident.identity;
    let mut who = match (&identity.service_account, &identity.pod) {
        (Some(sa), _) => format!("as service account {sa}"),
        (None, Some(pod)) => format!("as pod {pod}"),
        (None, None) => format!(
            "as {} on {}",
            identity
                .user
                .clone()
                .unwrap_or_else(|| format!("uid {}", identity.uid)),
            if identity.workload.is_empty() {
                "the host"
            } else {
                identity.workload.as_str()
            }
        ),
    };
    if !identity.cloud_roles.is_empty() {
        who.push_str(&format!(
            " (cloud role {})",
            identity.cloud_roles.join(", ")
        ));
    }
    parts.push(who);
    parts.join(" → ")
}

fn identity_of(model: &Model, agent: &str) -> Option<IncidentIdentity> {
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

fn agent_name(model: &Model, agent: &str) -> String {
    model
        .agent(agent)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| agent.to_string())
}

fn target_of(finding: &Finding) -> String {
    match &finding.detail {
        FindingDetail::SensitiveAccess { target, .. } => target.clone(),
        _ => finding.summary.clone(),
    }
}

/// Calls are known by id; dialects without ids (Gemini) by name.
fn call_key(id: Option<&str>, name: Option<&str>) -> String {
    match id {
        Some(id) => format!("id:{id}"),
        None => format!("name:{}", name.unwrap_or_default()),
    }
}

fn tool_name_of(model: &Model, agent: &str, call_id: Option<&str>) -> Option<String> {
    let call_id = call_id?;
    model
        .tool_calls()
        .filter(|c| c.agent == agent && c.id.as_deref() == Some(call_id))
        .last()
        .map(|c| c.name.clone())
}

/// `result of tool read_file(path=/srv/tickets/SUP-4711.txt)`: the arguments say which
/// document carried the content.
fn channel_of_result(
    model: &Model,
    agent: &str,
    call_id: Option<&str>,
    tool: &Option<String>,
) -> String {
    let arguments = call_id.and_then(|id| {
        model
            .tool_calls()
            .filter(|c| c.agent == agent && c.id.as_deref() == Some(id))
            .last()
            .map(|c| c.arguments.clone())
    });
    format!(
        "result of tool {}{}",
        tool.as_deref().unwrap_or("?"),
        describe_arguments(arguments.as_ref())
    )
}

/// A serde enum's name as written in JSON (`chroma`).
fn enum_label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// Every string value in a JSON document.
fn string_values(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => {
            items.iter().take(64).for_each(|v| string_values(v, out))
        }
        serde_json::Value::Object(map) => map.values().take(64).for_each(|v| string_values(v, out)),
        _ => {}
    }
}

/// Whether an argument value was taken from `text`: the whole value appears in it (a query,
/// a URL, a command), or, for a path, its last two components do (`~/.ssh/id_rsa` asked
/// for, `/home/app/.ssh/id_rsa` opened).
fn argument_in_text(value: &str, text: &str) -> bool {
    let value = value.trim();
    if value.len() >= MIN_ARGUMENT_MATCH && text.contains(value) {
        return true;
    }
    if value.starts_with('/') || value.starts_with('~') {
        let parts: Vec<&str> = value.rsplit('/').take(2).collect();
        if parts.len() == 2 {
            let tail = format!("{}/{}", parts[1], parts[0]);
            return tail.len() >= MIN_ARGUMENT_MATCH && text.contains(&tail);
        }
    }
    false
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The arguments of a call in one line, for stories (`command=curl … | sh`).
fn arguments_line(arguments: &serde_json::Value) -> String {
    describe_arguments(Some(arguments))
}

/// `(path=/srv/x, limit=10)`, cut short.
fn describe_arguments(arguments: Option<&serde_json::Value>) -> String {
    let Some(serde_json::Value::Object(map)) = arguments else {
        return String::new();
    };
    let parts: Vec<String> = map
        .iter()
        .take(3)
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // One line: payloads with newlines (rows) would break summaries and stories.
            let value: String = cut(&value, 80)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("{k}={value}")
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(", "))
    }
}

fn destination_of(host: Option<&str>, port: Option<u16>) -> String {
    let host = host.unwrap_or("unknown");
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    match port {
        Some(port) if !has_port => format!("{host}:{port}"),
        _ => host.to_string(),
    }
}

/// Rules and phrases that fired, to recognise the same instructions re-wrapped.
fn signature(verdict: &InjectionVerdict) -> String {
    let mut parts: Vec<String> = verdict
        .hits
        .iter()
        .map(|h| format!("{}={}", h.rule, h.matched))
        .collect();
    parts.sort();
    parts.dedup();
    parts.join("\u{1f}")
}

fn content_hash(text: &str) -> u64 {
    // FNV-1a: stable across processes and runs (a replay must recognise what live did).
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in text.trim().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

fn excerpt(text: &str) -> String {
    cut(text.trim(), EXCERPT_BYTES).to_string()
}

/// The first `max` bytes of `text`, or fewer to end on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

fn merge_events(into: &mut Vec<EventRange>, more: &[EventRange]) {
    for range in more {
        if !into.contains(range) {
            into.push(*range);
        }
    }
    into.sort_by_key(|r| (r.first, r.last));
}
