//! The taint rules: content an agent ingests that the injection scorer calls an injection
//! raises a prompt-injection finding and taints the model turns that read it; tool calls those
//! turns request are tainted, and become tool-misuse findings when the evidence says the
//! content steered them (their arguments come from it, carry data the agent read, or what
//! they did is sensitive). The chain they form is kept open by [`super::engine`].

use crate::model::{Model, NewLink};
use crate::reconstruct::Observation;

use super::engine::{call_key, Context, Detector, Occurrence, CHAIN_WINDOW_NS};
use super::finding::{ChainToolCall, FindingDetail, FindingKind, Severity};
use super::incident_book::merge_events;
use super::injection::{scan_with, IngestSource, InjectionVerdict, Verdict};
use super::labels;
use super::sensitive;
use super::watch::{TaintedCall, MAX_INJECTED_TEXT, MAX_INJECTIONS_PER_AGENT};
use super::wording::{arguments_line, cut, describe_arguments, one_line};

/// Excerpts of injected content are cut to this.
const EXCERPT_BYTES: usize = 240;
/// Argument values shorter than this are too common to show they came from injected text.
const MIN_ARGUMENT_MATCH: usize = 8;
/// Read data smaller than this in a request is coincidence, not exfiltration.
pub(super) const MIN_EXFIL_BYTES: usize = 24;

impl Detector {
    /// Scans ingested content; returns the injection finding (new or already raised for the
    /// same content) when the verdict is injection.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ingest(
        &mut self,
        context: &Context<'_>,
        text: &str,
        source: IngestSource,
        channel: String,
        tool: Option<String>,
        call_id: Option<String>,
        model: &Model,
    ) -> Option<usize> {
        let agent = context.agent;
        let hash = content_hash(text);
        if let Some(index) = self
            .watch(agent)
            .injections
            .iter()
            .find(|(h, _, _)| *h == hash)
            .map(|(_, _, i)| *i)
        {
            self.seen_again(agent, index, context.observation, model);
            return Some(index);
        }
        let description = source == IngestSource::ToolDescription;
        if description && self.benign_descriptions.contains(text) {
            return None;
        }
        let verdict = scan_with(text, source, self.injection_thresholds);
        // Suspicious content taints the turns that read it, but only becomes an incident
        // once the model acts on it (see `raise_misuse`).
        let severity = match verdict.verdict {
            Verdict::Injection => Severity::High,
            Verdict::Suspicious => Severity::Medium,
            Verdict::Benign => {
                if description {
                    self.benign_descriptions.remember(text);
                }
                return None;
            }
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
            self.seen_again(agent, index, context.observation, model);
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
        let index = self
            .book
            .push_finding(Occurrence::from(observation).finding(
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
                    thresholds: verdict.thresholds,
                    hits: verdict.hits,
                    excerpt: excerpt(text),
                    sightings: 1,
                },
            ))?;
        self.remember_injection(agent, hash, signature, index);
        self.watch(agent)
            .push_injected_text(index, cut(text, MAX_INJECTED_TEXT).to_string());
        if severity == Severity::High {
            self.open_or_join(agent, index, observation.ts_ns, true, model);
        }
        Some(index)
    }

    /// A tool description the model will read: scanned once, and remembered when poisoned so
    /// every turn that offers the tool is tainted.
    pub(super) fn ingest_description(
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
        self.watch(context.agent)
            .poisoned_descriptions
            .insert(content_hash(description), finding);
        Some(finding)
    }

    /// The injection finding (of retrieved content) whose matched phrases a prompt repeats.
    pub(super) fn injection_quoted_in(&self, agent: &str, prompt: &str) -> Option<usize> {
        let watch = self.agents.get(agent)?;
        if watch.injected_texts.is_empty() {
            return None;
        }
        let prompt = prompt.to_lowercase();
        watch.injected_texts.iter().find_map(|(index, _)| {
            let finding = self.book.findings.get(*index)?;
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

    pub(super) fn remember_injection(
        &mut self,
        agent: &str,
        hash: u64,
        signature: String,
        index: usize,
    ) {
        let watch = self.watch(agent);
        if watch.injections.len() >= MAX_INJECTIONS_PER_AGENT {
            watch.injections.pop_front();
        }
        watch.injections.push_back((hash, signature, index));
    }

    /// The content of injection finding `index` reached the agent again. Within its chain
    /// that is one more sighting; after the chain closed it is a repeat of the chain (a later
    /// conversation reading the same content), counted on the incident, whose chain reopens.
    pub(super) fn seen_again(
        &mut self,
        agent: &str,
        index: usize,
        observation: &Observation,
        model: &Model,
    ) {
        if let Some(finding) = self.book.findings.get_mut(index) {
            if let FindingDetail::PromptInjection { sightings, .. } = &mut finding.detail {
                *sightings += 1;
            }
            merge_events(&mut finding.events, &observation.events);
            self.book.finding_changed(index);
        }
        let Some(incident) = self.book.incident_of(index) else {
            return;
        };
        let ts_ns = observation.ts_ns;
        let session = self.session;
        let watch = self.watch(agent);
        if watch.chain.is_some_and(|c| ts_ns <= c.until_ns) {
            return;
        }
        watch.chain = Some(super::watch::Chain {
            incident,
            until_ns: ts_ns.saturating_add(CHAIN_WINDOW_NS),
            session,
        });
        self.book.repeat(incident, ts_ns);
        merge_events(
            &mut self.book.incidents[incident].events,
            &observation.events,
        );
        self.retell(incident, model);
    }

    /// A tool call requested by a turn that read `cause`'s content. It is misuse when the
    /// evidence says the content steered it: its arguments come from the injected text (the
    /// query, the URL, the command the text asked for), or carry data the agent read; or,
    /// later, when what it did is sensitive ([`Self::follow_link`]). Other calls of the turn
    /// stay tainted, so the taint follows their results, without a finding.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tainted_call(
        &mut self,
        context: &Context<'_>,
        cause: usize,
        requested: &crate::reconstruct::llm::ToolCall,
        first_use: bool,
        end_ts_ns: u64,
        model: &Model,
    ) {
        let agent = context.agent;
        let key = call_key(
            context.observation.actor.pid,
            requested.id.as_deref(),
            Some(&requested.name),
        );
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
        watch.insert_tainted(
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
        // The model turn is the call's cause: the finding is about what the call does, once a
        // linked action shows it.
        let at = Occurrence {
            subject: Vec::new(),
            ..Occurrence::from(context.observation)
        };
        self.raise_misuse(agent, &key, reason, &at, model);
    }

    /// Raises the tool-misuse finding of a tainted call (once) and puts it in the incident of
    /// its cause, opening that incident if the cause was only suspicious.
    pub(super) fn raise_misuse(
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
        // The same call caused by the same content (a repeat of the chain): counted on the
        // finding and the chain's call, not raised again.
        let same_call = (call.cause, call.name.clone(), arguments.clone());
        if let Some(&index) = self.agents.get(agent)?.misuse_by_call.get(&same_call) {
            if let Some(watch) = self.agents.get_mut(agent) {
                if let Some(tainted) = watch.tainted_calls.get_mut(key) {
                    tainted.misuse = Some(index);
                }
                watch.touched.remove(key);
            }
            self.book.add_evidence(index, &at.events);
            if let Some(incident) = self.book.incident_of(index) {
                self.book.add_tool_call(
                    incident,
                    ChainToolCall {
                        name: call.name.clone(),
                        call_id: call.id.clone(),
                        arguments: arguments_line(&call.arguments),
                        touched: Vec::new(),
                        first_use: call.first_use,
                        calls: 1,
                    },
                );
                self.retell(incident, model);
            }
            return Some(index);
        }
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
        let index = self.book.push_finding(
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
                        .book
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
        self.watch(agent).misuse_by_call.insert(same_call, index);
        // A suspicious cause becomes an incident once the model acted on it.
        let incident = match self.book.findings[call.cause]
            .incident
            .clone()
            .and_then(|id| self.book.incident_index(&id))
        {
            Some(incident) => incident,
            None => {
                self.open_or_join(agent, call.cause, at.ts_ns, true, model);
                self.book.findings[call.cause]
                    .incident
                    .clone()
                    .and_then(|id| self.book.incident_index(&id))?
            }
        };
        self.book.join(incident, index);
        let touched = self.watch(agent).touched.remove(key).unwrap_or_default();
        self.book.add_tool_call(
            incident,
            ChainToolCall {
                name: call.name.clone(),
                call_id: call.id.clone(),
                arguments: arguments_line(&call.arguments),
                touched,
                first_use: call.first_use,
                calls: 1,
            },
        );
        self.retell(incident, model);
        Some(index)
    }

    /// An action linked to a tool call: if the call was tainted, what it did joins the story,
    /// and a sensitive action makes the call misuse.
    pub(super) fn follow_link(&mut self, link: NewLink, model: &Model) {
        let key = call_key(
            link.call_pid,
            link.call_id.as_deref(),
            Some(&link.call_name),
        );
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
        if let Some(finding) = self.book.findings.get_mut(misuse) {
            if let FindingDetail::ToolMisuse { actions, .. } = &mut finding.detail {
                if !actions.contains(&target) {
                    actions.push(target.clone());
                }
            }
            merge_events(&mut finding.events, &link.action.events);
            merge_events(&mut finding.subject_events, &link.action.events);
            self.book.changes.finding(misuse);
        }
        let Some(incident) = self.book.findings[misuse]
            .incident
            .clone()
            .and_then(|id| self.book.incident_index(&id))
        else {
            return;
        };
        let chain = &mut self.book.incidents[incident].chain;
        if let Some(call) = chain
            .tool_calls
            .iter_mut()
            .rev()
            .find(|c| call_key(link.call_pid, c.call_id.as_deref(), Some(&c.name)) == key)
        {
            if !call.touched.contains(&touched) {
                call.touched.push(touched);
            }
        }
        merge_events(
            &mut self.book.incidents[incident].events,
            &link.action.events,
        );
        self.retell(incident, model);
    }
}

/// Every string value in a JSON document.
pub(super) fn string_values(value: &serde_json::Value, out: &mut Vec<String>) {
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
pub(super) fn argument_in_text(value: &str, text: &str) -> bool {
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

/// Rules and phrases that fired, to recognise the same instructions re-wrapped.
pub(super) fn signature(verdict: &InjectionVerdict) -> String {
    let mut parts: Vec<String> = verdict
        .hits
        .iter()
        .map(|h| format!("{}={}", h.rule, h.matched))
        .collect();
    parts.sort();
    parts.dedup();
    parts.join("\u{1f}")
}

pub(super) fn content_hash(text: &str) -> u64 {
    // FNV-1a: stable across processes and runs (a replay must recognise what live did).
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in text.trim().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

pub(super) fn excerpt(text: &str) -> String {
    cut(text.trim(), EXCERPT_BYTES).to_string()
}
