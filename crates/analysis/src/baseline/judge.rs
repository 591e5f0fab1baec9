//! Judging observations against baselines: once an agent's baseline is complete (learned) or
//! approved (loaded from a baseline directory), every tool, executable, endpoint, egress
//! destination, data object or identity it never had is reported, once per new item.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::model::ActorIdentity;
use crate::reconstruct::{EventRange, Observation};

use super::format::{AgentBaseline, BaselineStatus, Category, Item, LossCounts};
use super::items;
use super::learner::BaselineLearner;

use crate::detect::labels::{
    Label, ASI02_TOOL_MISUSE, ASI03_IDENTITY_AND_PRIVILEGE_ABUSE, ASI04_AGENTIC_SUPPLY_CHAIN,
    ASI05_UNEXPECTED_CODE_EXECUTION, LLM02_SENSITIVE_INFORMATION_DISCLOSURE, LLM03_SUPPLY_CHAIN,
    LLM06_EXCESSIVE_AGENCY,
};

/// The labels a deviation of `category` carries.
pub fn labels_for(category: Category) -> &'static [Label] {
    match category {
        // A model or tool set the agent was not built with: its supply chain changed.
        Category::Model | Category::ToolOffered | Category::McpServer => {
            &[LLM03_SUPPLY_CHAIN, ASI04_AGENTIC_SUPPLY_CHAIN]
        }
        // Doing something new with its tools and APIs: agency beyond its normal use.
        Category::Tool | Category::ToolArguments | Category::Endpoint => {
            &[LLM06_EXCESSIVE_AGENCY, ASI02_TOOL_MISUSE]
        }
        Category::Data => &[LLM02_SENSITIVE_INFORMATION_DISCLOSURE, ASI02_TOOL_MISUSE],
        Category::Executable => &[ASI05_UNEXPECTED_CODE_EXECUTION, LLM06_EXCESSIVE_AGENCY],
        Category::Egress => &[LLM02_SENSITIVE_INFORMATION_DISCLOSURE, ASI02_TOOL_MISUSE],
        Category::Identity => &[ASI03_IDENTITY_AND_PRIVILEGE_ABUSE],
    }
}

/// The Kubescape runtime rule that reports the same thing for containers, for naming parity.
fn kubescape_rule(item: &Item) -> Option<&'static str> {
    match item {
        Item::Executable { .. } => Some("R0001"),
        Item::File { class, .. } if class == "secret/service_account_token" => Some("R0006"),
        Item::File { class, .. } if class.starts_with("secret") => Some("R0010"),
        Item::File { .. } => Some("R0002"),
        Item::EgressName(_) => Some("R0005"),
        Item::EgressAddress(_) => Some("R0011"),
        _ => None,
    }
}

/// Which baseline a deviation was judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// Loaded from a baseline directory: a profile someone approved.
    Approved,
    /// Learned from this run's traffic, learning period over.
    Learned,
}

/// Something an agent did that its baseline never had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deviation {
    pub agent: String,
    pub category: Category,
    /// The new thing, for people (`table crm.customers`, `egress address 203.0.113.9:443`).
    pub item: String,
    /// The baseline section it is missing from (`data.tables`).
    pub section: &'static str,
    /// When the observation happened (monotonic event time) and its wall-clock time.
    pub ts_ns: u64,
    pub time_unix_ns: u64,
    pub pid: u32,
    /// The raw events of the observation: the evidence.
    pub events: Vec<EventRange>,
    /// OWASP LLM Top 10 2025 / Agentic Top 10 2026 ids.
    pub labels: Vec<Label>,
    /// The Kubescape rule id for the same anomaly, where one exists.
    pub kubescape_rule: Option<&'static str>,
    pub baseline: BaselineSource,
    /// Status of the learned baseline judged against (`partial` deviations may be normal
    /// behaviour that was lost while learning).
    pub baseline_status: BaselineStatus,
}

/// New items reported per agent before further ones are only counted.
const REPORTED_PER_AGENT: usize = 4096;

/// Learns baselines and judges observations against them: against the approved baseline of
/// an agent when one was loaded, else against the learned one once its learning period is
/// over. Each new item is reported once per agent.
#[derive(Debug, Clone)]
pub struct BaselineJudge {
    learner: BaselineLearner,
    approved: HashMap<String, AgentBaseline>,
    reported: HashMap<String, HashSet<(&'static str, String)>>,
    suppressed: u64,
}

impl BaselineJudge {
    pub fn new(learner: BaselineLearner) -> Self {
        Self {
            learner,
            approved: HashMap::new(),
            reported: HashMap::new(),
            suppressed: 0,
        }
    }

    /// Judges the agents of `baselines` against them instead of what is being learned.
    pub fn with_approved(mut self, baselines: impl IntoIterator<Item = AgentBaseline>) -> Self {
        for baseline in baselines {
            self.approved
                .insert(baseline.metadata.agent.clone(), baseline);
        }
        self
    }

    /// Judges `baseline`'s agent against it from now on (an approval arrived while running);
    /// what was reported against the baseline it replaces may be reported again.
    pub fn set_approved(&mut self, baseline: AgentBaseline) {
        let agent = baseline.metadata.agent.clone();
        self.reported.remove(&agent);
        self.approved.insert(agent, baseline);
    }

    /// Stops judging `agent` against an approved baseline (it was deleted or set to learn).
    pub fn remove_approved(&mut self, agent: &str) {
        if self.approved.remove(agent).is_some() {
            self.reported.remove(agent);
        }
    }

    pub fn learner(&self) -> &BaselineLearner {
        &self.learner
    }

    /// The model evicted `agent` to stay within the memory budget: its baseline being learned
    /// and what was reported against it go (an approved baseline stays: the user gave it). If
    /// it acts again it learns anew.
    pub fn forget(&mut self, agent: &str) {
        self.learner.forget(agent);
        self.reported.remove(agent);
    }

    pub fn approved(&self, agent: &str) -> Option<&AgentBaseline> {
        self.approved.get(agent)
    }

    pub fn advance_to(&mut self, ts_ns: u64) {
        self.learner.advance_to(ts_ns);
    }

    /// See [`BaselineLearner::note_incident`].
    pub fn note_incident(&mut self, agent: &str, id: &str, story: &str, opened_ns: u64) {
        self.learner.note_incident(agent, id, story, opened_ns);
    }

    pub fn note_loss(&mut self, ts_ns: Option<u64>, loss: LossCounts) {
        self.learner.note_loss(ts_ns, loss);
    }

    /// New items beyond the per-agent report limit (not reported).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Learns `observation` of `agent` (while its baseline learns) and returns what it did
    /// that the baseline judged against does not hold.
    pub fn observe(
        &mut self,
        agent: &str,
        identity: Option<&ActorIdentity>,
        observation: &Observation,
    ) -> Vec<Deviation> {
        let mut items = items::items_of(observation);
        if let Some(identity) = identity {
            if !items.is_empty() {
                items.extend(items::identity_items(identity));
            }
        }
        if items.is_empty() {
            self.learner.advance_to(observation.ts_ns);
            return Vec::new();
        }
        let deviations = self.judge(agent, observation, &items);
        self.learner.learn(agent, identity, observation, &items);
        deviations
    }

    fn judge(&mut self, agent: &str, observation: &Observation, items: &[Item]) -> Vec<Deviation> {
        let (source, baseline_status, found) = {
            let (spec, source, status) = match self.approved.get(agent) {
                Some(approved) => (
                    &approved.spec,
                    BaselineSource::Approved,
                    approved.metadata.status,
                ),
                // A learned baseline judges what happened after its learning period, in event
                // time.
                None => match (
                    self.learner.status_at(agent, observation.ts_ns),
                    self.learner.spec(agent),
                ) {
                    (
                        Some(status @ (BaselineStatus::Complete | BaselineStatus::Partial)),
                        Some(spec),
                    ) => (spec, BaselineSource::Learned, status),
                    _ => return Vec::new(),
                },
            };
            let found: Vec<_> = items
                .iter()
                .filter_map(|item| item.novelty(spec).map(|novelty| (item, novelty)))
                .collect();
            (source, status, found)
        };
        let mut out = Vec::new();
        for (item, novelty) in found {
            let reported = self.reported.entry(agent.to_string()).or_default();
            let key = (item.section(), novelty.description.clone());
            if reported.contains(&key) {
                continue;
            }
            if reported.len() >= REPORTED_PER_AGENT {
                self.suppressed += 1;
                continue;
            }
            reported.insert(key);
            out.push(Deviation {
                agent: agent.to_string(),
                category: novelty.category,
                item: novelty.description,
                section: item.section(),
                ts_ns: observation.ts_ns,
                time_unix_ns: observation.time_unix_ns,
                pid: observation.actor.pid,
                events: observation.events.clone(),
                labels: labels_for(novelty.category).to_vec(),
                kubescape_rule: kubescape_rule(item),
                baseline: source,
                baseline_status,
            });
        }
        out
    }
}
