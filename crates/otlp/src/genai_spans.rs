//! What the pipeline observed, as OpenTelemetry GenAI spans and log records.
//!
//! One trace per agent run (an agent and the outermost process of the run, the session):
//! - `invoke_agent {agent}`: the run, from its first observation to the session process's
//!   exit (or the end of the capture); the root of the trace, exported when it ends.
//! - `chat {model}` (`{gen_ai.operation.name} {gen_ai.request.model}`): one LLM call, child of
//!   the run.
//! - `execute_tool {name}`: a tool call the model requested, child of the chat span whose
//!   response asked for it, from the end of that response to the model request that carries
//!   its result back (or the end of the run); what agentscope linked to the call (execs, file
//!   opens, connections, MCP calls) are its span events.
//! - `{mcp.method.name} {target}`: an MCP request the agent made, child of the tool call it
//!   carried out when linked to one, else of the run.
//! - Findings and incidents are log records (event names `agentscope.finding` and
//!   `agentscope.incident`) in the trace of the run they belong to.
//!
//! Spans are built from observation, after the fact: there is no trace context inside the
//! agent, so every span says `agentscope.observed = true`, and ids are derived from what was
//! observed ([`crate::trace_ids`]). Payload content (prompts, model output, tool arguments and
//! results) is left out unless asked for, and is redacted unless secrets are kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentscope_analysis::detect::{Finding, FindingDetail, Incident, Severity};
use agentscope_analysis::model::{Model, NewLink};
use agentscope_analysis::pipeline::AttributedObservation;
use agentscope_event::process_table::ProcessTable;
use agentscope_reconstruct::llm::LlmCall;
use agentscope_reconstruct::mcp::McpExchange;
use agentscope_reconstruct::{ObservationKind, Role};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_sdk::Resource;

use crate::resource::agent_resource;
use crate::trace_ids::{span_id, trace_id};

/// Runs followed at once; past this the oldest is ended early (its spans exported).
pub const MAX_RUNS: usize = 1024;
/// Tool calls waiting for their result, per run; past this the oldest is ended early.
pub const MAX_PENDING_CALLS: usize = 256;
/// Linked actions kept as span events per tool call (the rest are counted).
pub const MAX_CALL_EVENTS: usize = 32;
/// Content attributes are cut to this many bytes.
pub const MAX_CONTENT_BYTES: usize = 8192;

/// One thing to export, with the resource of the run it belongs to.
#[derive(Debug)]
pub struct Telemetry {
    pub resource: Arc<Resource>,
    pub signal: Signal,
}

#[derive(Debug)]
pub enum Signal {
    Span(Box<SpanData>),
    Log(Box<SdkLogRecord>),
}

/// How content is treated.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContentPolicy {
    /// Export prompts, output and tool arguments and results at all.
    pub export: bool,
    /// Leave secrets in them (only when the capture keeps secrets).
    pub keep_secrets: bool,
}

/// Translates steps into [`Telemetry`], keeping the runs and the tool calls still open.
pub struct GenAiTranslator {
    node: Option<String>,
    content: ContentPolicy,
    runs: HashMap<(String, u32), Run>,
    /// Order runs began, to end the oldest first when there are too many.
    run_order: std::collections::VecDeque<(String, u32)>,
    scope: InstrumentationScope,
    /// Makes log records (the SDK creates them only through a logger); it has no processor,
    /// nothing is emitted through it.
    logger: SdkLogger,
    /// Spans of runs ended early to make room, waiting to go out with the next step's.
    spill: Vec<Telemetry>,
}

struct Run {
    trace: TraceId,
    root: SpanId,
    agent_name: String,
    agent_key: String,
    session: u32,
    start_unix_ns: u64,
    last_unix_ns: u64,
    resource: Arc<Resource>,
    /// Tool calls requested and not yet answered, in the order they were requested.
    pending: Vec<PendingCall>,
}

struct PendingCall {
    span: SpanId,
    parent: SpanId,
    name: String,
    id: Option<String>,
    requested_unix_ns: u64,
    /// Monotonic time it was requested (links name calls by it).
    requested_ns: u64,
    arguments: Option<serde_json::Value>,
    events: Vec<opentelemetry::trace::Event>,
    events_dropped: u32,
}

fn system_time(unix_ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(unix_ns)
}

impl GenAiTranslator {
    pub fn new(node: Option<String>, content: ContentPolicy) -> Self {
        Self {
            node,
            content,
            runs: HashMap::new(),
            run_order: std::collections::VecDeque::new(),
            scope: InstrumentationScope::builder("agentscope")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            logger: SdkLoggerProvider::builder().build().logger("agentscope"),
            spill: Vec::new(),
        }
    }

    /// Spans and records for one step's observations, findings and incidents.
    pub fn step(
        &mut self,
        observations: &[AttributedObservation],
        findings: &[Finding],
        incidents: &[Incident],
        model: &Model,
        processes: &ProcessTable,
        out: &mut Vec<Telemetry>,
    ) {
        for observation in observations {
            self.observation(observation, model, out);
        }
        for finding in findings {
            self.finding(finding, model, processes, out);
        }
        for incident in incidents {
            self.incident(incident, model, out);
        }
    }

    /// The capture ended: every run still open ends now.
    pub fn finish(&mut self, out: &mut Vec<Telemetry>) {
        out.append(&mut self.spill);
        let keys: Vec<_> = self.run_order.drain(..).collect();
        for key in keys {
            if let Some(run) = self.runs.remove(&key) {
                self.end_run(run, None, out);
            }
        }
    }

    fn run_for(&mut self, agent: &str, session: u32, ts_ns: u64, model: &Model) -> &mut Run {
        let key = (agent.to_string(), session);
        if !self.runs.contains_key(&key) {
            if self.runs.len() >= MAX_RUNS {
                // Ended early rather than forgotten: its spans still go.
                if let Some(oldest) = self.run_order.pop_front() {
                    if let Some(run) = self.runs.remove(&oldest) {
                        let mut out = Vec::new();
                        self.end_run(run, None, &mut out);
                        self.spill.extend(out);
                    }
                }
            }
            let node = self.node.as_deref().unwrap_or("");
            let session_text = session.to_string();
            let ts_text = ts_ns.to_string();
            let trace = trace_id(&[
                node.as_bytes(),
                agent.as_bytes(),
                session_text.as_bytes(),
                ts_text.as_bytes(),
            ]);
            let root = span_id(&[&trace.to_bytes(), b"invoke_agent"]);
            let found = model.agent(agent);
            let run = Run {
                trace,
                root,
                agent_name: found.map_or_else(|| agent.to_string(), |a| a.name.clone()),
                agent_key: agent.to_string(),
                session,
                start_unix_ns: u64::MAX,
                last_unix_ns: 0,
                resource: Arc::new(agent_resource(found, session, self.node.as_deref())),
                pending: Vec::new(),
            };
            self.run_order.push_back(key.clone());
            self.runs.insert(key.clone(), run);
        }
        self.runs.get_mut(&key).expect("inserted above")
    }

    fn observation(
        &mut self,
        attributed: &AttributedObservation,
        model: &Model,
        out: &mut Vec<Telemetry>,
    ) {
        out.append(&mut self.spill);
        let (Some(agent), Some(session)) = (&attributed.agent, attributed.session) else {
            return;
        };
        let observation = &attributed.observation;
        let offset = observation.time_unix_ns as i128 - observation.ts_ns as i128;
        let unix = |ts_ns: u64| (ts_ns as i128 + offset).max(0) as u64;
        let content = self.content;
        let scope = self.scope.clone();
        let run = self.run_for(agent, session, observation.ts_ns, model);
        run.start_unix_ns = run.start_unix_ns.min(observation.time_unix_ns);
        run.last_unix_ns = run.last_unix_ns.max(observation.time_unix_ns);
        let mut spans = Vec::new();
        match &observation.kind {
            ObservationKind::Llm {
                call,
                host,
                port,
                end_ts_ns,
                ..
            } => {
                let start = observation.time_unix_ns;
                let end = unix(*end_ts_ns).max(start);
                run.last_unix_ns = run.last_unix_ns.max(end);
                // Results carried by this request end the calls they answer.
                for result in &call.tool_results {
                    let index = run.pending.iter().position(|p| match &result.call_id {
                        Some(id) => p.id.as_deref() == Some(id.as_str()),
                        None => result.name.as_deref() == Some(p.name.as_str()),
                    });
                    if let Some(index) = index {
                        let pending = run.pending.remove(index);
                        let result_text = content.export.then_some(result.content.as_str());
                        spans.push(tool_span(
                            run,
                            pending,
                            start,
                            result.is_error,
                            result_text,
                            content,
                            &scope,
                        ));
                    }
                }
                let chat = span_id(&[
                    &run.trace.to_bytes(),
                    b"chat",
                    &observation.actor.pid.to_be_bytes(),
                    &observation.ts_ns.to_be_bytes(),
                ]);
                spans.push(chat_span(
                    run,
                    chat,
                    call,
                    host.as_deref(),
                    *port,
                    (start, end),
                    content,
                    &scope,
                ));
                for (index, tool_call) in call.tool_calls.iter().enumerate() {
                    if run.pending.len() >= MAX_PENDING_CALLS {
                        let oldest = run.pending.remove(0);
                        let ended = oldest.requested_unix_ns;
                        spans.push(tool_span(run, oldest, ended, false, None, content, &scope));
                    }
                    let identity = tool_call
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("{}#{index}", tool_call.name));
                    run.pending.push(PendingCall {
                        span: span_id(&[&chat.to_bytes(), b"execute_tool", identity.as_bytes()]),
                        parent: chat,
                        name: tool_call.name.clone(),
                        id: tool_call.id.clone(),
                        requested_unix_ns: end,
                        requested_ns: *end_ts_ns,
                        arguments: content.export.then(|| tool_call.arguments.clone()),
                        events: Vec::new(),
                        events_dropped: 0,
                    });
                }
            }
            ObservationKind::Mcp {
                exchange,
                role: Role::Client,
                endpoint,
                ..
            } => {
                let parent = attributed
                    .links
                    .iter()
                    .find_map(|link| pending_for(run, link).map(|p| p.span))
                    .or_else(|| {
                        exchange.tool_name.as_deref().and_then(|tool| {
                            run.pending
                                .iter()
                                .rev()
                                .find(|p| p.name == tool)
                                .map(|p| p.span)
                        })
                    })
                    .unwrap_or(run.root);
                let start = exchange
                    .request_ts_ns
                    .map_or(observation.time_unix_ns, unix);
                let end = exchange.response_ts_ns.map_or(start, unix).max(start);
                spans.push(mcp_span(
                    run,
                    parent,
                    observation,
                    exchange,
                    endpoint.as_deref(),
                    (start, end),
                    &scope,
                ));
            }
            ObservationKind::Exit { .. } if observation.actor.pid == session => {
                let key = (agent.clone(), session);
                if let Some(run) = self.runs.remove(&key) {
                    self.run_order.retain(|k| *k != key);
                    self.end_run(run, Some(observation.time_unix_ns), out);
                }
                return;
            }
            _ => {}
        }
        // Whatever the observation did for a tool call becomes an event of that call's span.
        for link in attributed.links.iter().filter(|l| !l.update) {
            let time = unix(link.action.ts_ns);
            if let Some(pending) = pending_for_mut(run, link) {
                if pending.events.len() >= MAX_CALL_EVENTS {
                    pending.events_dropped += 1;
                    continue;
                }
                pending.events.push(opentelemetry::trace::Event::new(
                    format!("agentscope.action.{}", link.action.kind),
                    system_time(time),
                    vec![
                        KeyValue::new("agentscope.action.kind", link.action.kind),
                        KeyValue::new("agentscope.action.target", link.action.target.clone()),
                        KeyValue::new("process.pid", i64::from(link.action.pid)),
                    ],
                    0,
                ));
            }
        }
        let resource = run.resource.clone();
        out.extend(spans.into_iter().map(|span| Telemetry {
            resource: resource.clone(),
            signal: Signal::Span(Box::new(span)),
        }));
    }

    /// Ends `run` at `exit_unix_ns` (its process exited) or at its last observation: its open
    /// tool calls, then its root span.
    fn end_run(&mut self, mut run: Run, exit_unix_ns: Option<u64>, out: &mut Vec<Telemetry>) {
        let end = exit_unix_ns
            .unwrap_or(run.last_unix_ns)
            .max(run.last_unix_ns);
        let scope = self.scope.clone();
        let content = self.content;
        let resource = run.resource.clone();
        for pending in std::mem::take(&mut run.pending) {
            let span = tool_span(&run, pending, end, false, None, content, &scope);
            out.push(Telemetry {
                resource: resource.clone(),
                signal: Signal::Span(Box::new(span)),
            });
        }
        let start = run.start_unix_ns.min(end);
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", run.agent_name.clone()),
            KeyValue::new("gen_ai.agent.id", run.agent_key.clone()),
            KeyValue::new("process.pid", i64::from(run.session)),
            KeyValue::new("agentscope.observed", true),
        ];
        if exit_unix_ns.is_none() {
            // The capture ended (or too many runs were open) before the agent did.
            attributes.push(KeyValue::new("agentscope.run.ended_by_capture", true));
        }
        let span = SpanData {
            span_context: context(run.trace, run.root),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("invoke_agent {}", run.agent_name).into(),
            start_time: system_time(start),
            end_time: system_time(end),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope,
        };
        out.push(Telemetry {
            resource,
            signal: Signal::Span(Box::new(span)),
        });
    }

    /// The run `pid` (acting for `agent` at `ts_ns`) belongs to, if it is followed.
    fn run_of(
        &self,
        agent: &str,
        pid: u32,
        ts_ns: u64,
        model: &Model,
        processes: &ProcessTable,
    ) -> Option<&Run> {
        let session = model.session_of(&processes.lineage(pid), ts_ns);
        session
            .and_then(|session| self.runs.get(&(agent.to_string(), session)))
            .or_else(|| self.latest_run(agent))
    }

    /// The run of `agent` that began last (what a finding about a process outside the agent's
    /// tree, such as an MCP server, or an incident over several runs, belongs to).
    fn latest_run(&self, agent: &str) -> Option<&Run> {
        self.run_order
            .iter()
            .rev()
            .find(|(key, _)| key == agent)
            .and_then(|key| self.runs.get(key))
    }

    fn log_record(&self, event_name: &'static str, unix_ns: u64) -> SdkLogRecord {
        let mut record = self.logger.create_log_record();
        record.set_event_name(event_name);
        record.set_timestamp(system_time(unix_ns));
        record.set_observed_timestamp(system_time(unix_ns));
        record
    }

    /// The resource and trace of a record about `agent`: its run's, or the agent's alone.
    fn record_place(
        &self,
        run: Option<&Run>,
        agent: &str,
        pid: u32,
        model: &Model,
    ) -> (Arc<Resource>, Option<(TraceId, SpanId)>) {
        match run {
            Some(run) => (run.resource.clone(), Some((run.trace, run.root))),
            None => (
                Arc::new(agent_resource(
                    model.agent(agent),
                    pid,
                    self.node.as_deref(),
                )),
                None,
            ),
        }
    }

    fn finding(
        &mut self,
        finding: &Finding,
        model: &Model,
        processes: &ProcessTable,
        out: &mut Vec<Telemetry>,
    ) {
        let run = self.run_of(&finding.agent, finding.pid, finding.ts_ns, model, processes);
        let (resource, trace) = self.record_place(run, &finding.agent, finding.pid, model);
        let mut record = self.log_record("agentscope.finding", finding.time_unix_ns);
        let (number, text) = severity(finding.severity);
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_body(AnyValue::from(finding.summary.clone()));
        if let Some((trace, span)) = trace {
            record.set_trace_context(trace, span, Some(TraceFlags::SAMPLED));
        }
        record.add_attribute("agentscope.finding.id", finding.id.clone());
        record.add_attribute("agentscope.finding.kind", finding.kind.name());
        record.add_attribute("agentscope.finding.severity", finding.severity.name());
        record.add_attribute("gen_ai.agent.id", finding.agent.clone());
        record.add_attribute("process.pid", i64::from(finding.pid));
        record.add_attribute(
            "agentscope.finding.labels",
            AnyValue::ListAny(Box::new(
                finding
                    .labels
                    .iter()
                    .map(|label| AnyValue::from(label.id))
                    .collect(),
            )),
        );
        if let Some(incident) = &finding.incident {
            record.add_attribute("agentscope.incident.id", incident.clone());
        }
        let (category, tool, call_id) = match &finding.detail {
            FindingDetail::PromptInjection {
                tool,
                call_id,
                score,
                verdict,
                ..
            } => {
                record.add_attribute("gen_ai.guardrail.security.risk.score", f64::from(*score));
                record.add_attribute(
                    "agentscope.injection.verdict",
                    format!("{verdict:?}").to_lowercase(),
                );
                ("prompt_injection", tool.clone(), call_id.clone())
            }
            FindingDetail::ToolMisuse { tool, call_id, .. } => {
                ("tool_misuse", Some(tool.clone()), call_id.clone())
            }
            FindingDetail::Exfiltration { .. } => ("data_exfiltration", None, None),
            FindingDetail::SensitiveAccess { .. } => ("sensitive_data_access", None, None),
            FindingDetail::BaselineDeviation { .. } => ("baseline_deviation", None, None),
            FindingDetail::Enforcement { .. } => ("policy_violation", None, None),
            FindingDetail::AgentEscape { .. } => ("agent_escape", None, None),
        };
        record.add_attribute("gen_ai.guardrail.security.risk.category", category);
        // Observed, not stopped: agentscope reports (enforcement findings say blocked or not
        // in their summary).
        record.add_attribute("gen_ai.guardrail.verdict.type", "warn");
        if let Some(tool) = tool {
            record.add_attribute("gen_ai.tool.name", tool);
        }
        if let Some(call_id) = call_id {
            record.add_attribute("gen_ai.tool.call.id", call_id);
        }
        out.push(Telemetry {
            resource,
            signal: Signal::Log(Box::new(record)),
        });
    }

    fn incident(&mut self, incident: &Incident, model: &Model, out: &mut Vec<Telemetry>) {
        // An incident spans an agent's findings, possibly over several runs: the latest run of
        // the agent carries it.
        let run = self.latest_run(&incident.agent);
        let pid = run.map_or(0, |r| r.session);
        let (resource, trace) = self.record_place(run, &incident.agent, pid, model);
        let mut record = self.log_record("agentscope.incident", incident.time_unix_ns);
        let (number, text) = severity(incident.severity);
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_body(AnyValue::from(incident.story.clone()));
        if let Some((trace, span)) = trace {
            record.set_trace_context(trace, span, Some(TraceFlags::SAMPLED));
        }
        record.add_attribute("agentscope.incident.id", incident.id.clone());
        record.add_attribute("agentscope.incident.severity", incident.severity.name());
        record.add_attribute(
            "agentscope.incident.occurrences",
            i64::from(incident.occurrences),
        );
        record.add_attribute("gen_ai.agent.id", incident.agent.clone());
        record.add_attribute("gen_ai.agent.name", incident.agent_name.clone());
        record.add_attribute(
            "agentscope.incident.findings",
            AnyValue::ListAny(Box::new(
                incident
                    .findings
                    .iter()
                    .cloned()
                    .map(AnyValue::from)
                    .collect(),
            )),
        );
        record.add_attribute(
            "agentscope.incident.labels",
            AnyValue::ListAny(Box::new(
                incident
                    .labels
                    .iter()
                    .map(|l| AnyValue::from(l.id))
                    .collect(),
            )),
        );
        out.push(Telemetry {
            resource,
            signal: Signal::Log(Box::new(record)),
        });
    }
}

/// OpenTelemetry's severity for a finding's: low is informational, critical is fatal-level.
fn severity(severity: Severity) -> (opentelemetry::logs::Severity, &'static str) {
    use opentelemetry::logs::Severity as Otel;
    match severity {
        Severity::Low => (Otel::Info, "low"),
        Severity::Medium => (Otel::Warn, "medium"),
        Severity::High => (Otel::Error, "high"),
        Severity::Critical => (Otel::Fatal, "critical"),
    }
}

fn context(trace: TraceId, span: SpanId) -> SpanContext {
    SpanContext::new(trace, span, TraceFlags::SAMPLED, false, TraceState::NONE)
}

fn pending_for<'a>(run: &'a Run, link: &NewLink) -> Option<&'a PendingCall> {
    run.pending.iter().find(|p| matches_link(p, link))
}

fn pending_for_mut<'a>(run: &'a mut Run, link: &NewLink) -> Option<&'a mut PendingCall> {
    run.pending.iter_mut().find(|p| matches_link(p, link))
}

fn matches_link(pending: &PendingCall, link: &NewLink) -> bool {
    match (&link.call_id, &pending.id) {
        (Some(link_id), Some(id)) => link_id == id,
        _ => pending.name == link.call_name && pending.requested_ns == link.call_requested_ns,
    }
}

/// `text` redacted (unless secrets are kept) and cut to [`MAX_CONTENT_BYTES`].
fn content_text(text: &str, policy: ContentPolicy) -> String {
    let mut end = text.len().min(MAX_CONTENT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = text.as_bytes()[..end].to_vec();
    if !policy.keep_secrets {
        agentscope_redact::redact_in_place(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn content_json(value: &serde_json::Value, policy: ContentPolicy) -> String {
    let mut value = value.clone();
    if !policy.keep_secrets {
        agentscope_redact::redact_json(&mut value);
    }
    // Cut after redaction: a secret split by the cut would escape the rules.
    content_text(
        &value.to_string(),
        ContentPolicy {
            keep_secrets: true,
            ..policy
        },
    )
}

/// The GenAI conventions' message form for one text part.
fn messages(role: &str, text: &str) -> String {
    serde_json::json!([{ "role": role, "parts": [{ "type": "text", "content": text }] }])
        .to_string()
}

#[allow(clippy::too_many_arguments)]
fn chat_span(
    run: &Run,
    id: SpanId,
    call: &LlmCall,
    host: Option<&str>,
    port: Option<u16>,
    (start, end): (u64, u64),
    content: ContentPolicy,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", call.operation.clone()),
        KeyValue::new("gen_ai.provider.name", call.provider.clone()),
        // Deprecated by `gen_ai.provider.name`, still read by many backends.
        KeyValue::new("gen_ai.system", call.provider.clone()),
        KeyValue::new("agentscope.observed", true),
        KeyValue::new("agentscope.llm.api", format!("{:?}", call.api)),
    ];
    let optional = [
        ("gen_ai.request.model", call.request_model.clone()),
        ("gen_ai.response.model", call.response_model.clone()),
        ("gen_ai.response.id", call.response_id.clone()),
        ("error.type", call.error_type.clone()),
        ("server.address", host.map(str::to_string)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, value));
        }
    }
    if let Some(port) = port {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    let tokens = [
        ("gen_ai.usage.input_tokens", call.usage.input_tokens),
        ("gen_ai.usage.output_tokens", call.usage.output_tokens),
        (
            "gen_ai.usage.cache_read.input_tokens",
            call.usage.cache_read_input_tokens,
        ),
        (
            "gen_ai.usage.cache_creation.input_tokens",
            call.usage.cache_creation_input_tokens,
        ),
    ];
    for (key, value) in tokens {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, value.min(i64::MAX as u64) as i64));
        }
    }
    if !call.finish_reasons.is_empty() {
        attributes.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(
                call.finish_reasons
                    .iter()
                    .map(|r| opentelemetry::StringValue::from(r.clone()))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        ));
    }
    if call.streamed {
        attributes.push(KeyValue::new("gen_ai.request.stream", true));
    }
    if call.partial {
        attributes.push(KeyValue::new("agentscope.partial", true));
    }
    if content.export {
        if let Some(system) = &call.system_prompt {
            attributes.push(KeyValue::new(
                "gen_ai.system_instructions",
                serde_json::json!([{ "type": "text", "content": content_text(system, content) }])
                    .to_string(),
            ));
        }
        if let Some(user) = &call.last_user_message {
            attributes.push(KeyValue::new(
                "gen_ai.input.messages",
                messages("user", &content_text(user, content)),
            ));
        }
        if let Some(output) = &call.output_text {
            attributes.push(KeyValue::new(
                "gen_ai.output.messages",
                messages("assistant", &content_text(output, content)),
            ));
        }
    }
    let status = match &call.error_type {
        Some(error) => Status::error(error.clone()),
        None => Status::Unset,
    };
    let model = call
        .request_model
        .as_deref()
        .or(call.response_model.as_deref());
    let name = match model {
        Some(model) => format!("{} {model}", call.operation),
        None => call.operation.clone(),
    };
    SpanData {
        span_context: context(run.trace, id),
        parent_span_id: run.root,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: name.into(),
        start_time: system_time(start),
        end_time: system_time(end),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn tool_span(
    run: &Run,
    pending: PendingCall,
    end_unix_ns: u64,
    is_error: bool,
    result: Option<&str>,
    content: ContentPolicy,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", "execute_tool"),
        KeyValue::new("gen_ai.tool.name", pending.name.clone()),
        KeyValue::new("gen_ai.tool.type", "function"),
        KeyValue::new("agentscope.observed", true),
    ];
    if let Some(id) = &pending.id {
        attributes.push(KeyValue::new("gen_ai.tool.call.id", id.clone()));
    }
    if let Some(arguments) = &pending.arguments {
        attributes.push(KeyValue::new(
            "gen_ai.tool.call.arguments",
            content_json(arguments, content),
        ));
    }
    if let Some(result) = result {
        attributes.push(KeyValue::new(
            "gen_ai.tool.call.result",
            content_text(result, content),
        ));
    }
    let answered = result.is_some() || end_unix_ns > pending.requested_unix_ns;
    let status = if is_error {
        attributes.push(KeyValue::new("error.type", "tool_error"));
        Status::error("the tool reported an error")
    } else {
        Status::Unset
    };
    if !answered {
        attributes.push(KeyValue::new("agentscope.tool.result_seen", false));
    }
    let mut events = SpanEvents::default();
    events.events = pending.events;
    events.dropped_count = pending.events_dropped;
    SpanData {
        span_context: context(run.trace, pending.span),
        parent_span_id: pending.parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: format!("execute_tool {}", pending.name).into(),
        start_time: system_time(pending.requested_unix_ns),
        end_time: system_time(end_unix_ns.max(pending.requested_unix_ns)),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn mcp_span(
    run: &Run,
    parent: SpanId,
    observation: &agentscope_reconstruct::Observation,
    exchange: &McpExchange,
    endpoint: Option<&str>,
    (start, end): (u64, u64),
    scope: &InstrumentationScope,
) -> SpanData {
    let method = exchange.method.as_deref().unwrap_or("unknown");
    let target = exchange
        .tool_name
        .as_deref()
        .or(exchange.resource_uri.as_deref());
    let name = match target {
        Some(target) => format!("{method} {target}"),
        None => method.to_string(),
    };
    let transport = match exchange.transport {
        agentscope_reconstruct::McpTransport::Stdio => "pipe",
        agentscope_reconstruct::McpTransport::Http => "tcp",
    };
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", method.to_string()),
        KeyValue::new("network.transport", transport),
        KeyValue::new("agentscope.observed", true),
    ];
    let optional = [
        ("mcp.session.id", exchange.session_id.clone()),
        ("jsonrpc.request.id", exchange.request_id.clone()),
        ("gen_ai.tool.name", exchange.tool_name.clone()),
        ("mcp.resource.uri", exchange.resource_uri.clone()),
        ("agentscope.mcp.endpoint", endpoint.map(str::to_string)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, value));
        }
    }
    if exchange.tool_name.is_some() {
        attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
    }
    let status = match &exchange.error {
        Some(error) => {
            attributes.push(KeyValue::new("error.type", error.code.to_string()));
            attributes.push(KeyValue::new(
                "rpc.response.status_code",
                error.code.to_string(),
            ));
            Status::error(error.message.clone())
        }
        None => Status::Unset,
    };
    SpanData {
        span_context: context(
            run.trace,
            span_id(&[
                &run.trace.to_bytes(),
                b"mcp",
                &observation.actor.pid.to_be_bytes(),
                &observation.ts_ns.to_be_bytes(),
                exchange.request_id.as_deref().unwrap_or("").as_bytes(),
            ]),
        ),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: name.into(),
        start_time: system_time(start),
        end_time: system_time(end),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDACTED: ContentPolicy = ContentPolicy {
        export: true,
        keep_secrets: false,
    };

    #[test]
    fn exported_content_is_redacted_and_bounded() {
        let text = content_text(
            "use Authorization: Bearer sk-live-0123456789abcdef now",
            REDACTED,
        );
        assert!(text.starts_with("use Authorization: Bearer "), "{text}");
        assert!(!text.contains("sk-live-0123456789abcdef"), "{text}");
        let kept = content_text(
            "Authorization: Bearer sk-live-0123456789abcdef",
            ContentPolicy {
                keep_secrets: true,
                ..REDACTED
            },
        );
        assert!(kept.contains("sk-live-0123456789abcdef"));
        let arguments = serde_json::json!({"path": "/tmp/x", "api_key": "hunter2-secret-value"});
        let json = content_json(&arguments, REDACTED);
        assert!(
            json.contains("/tmp/x") && !json.contains("hunter2-secret-value"),
            "{json}"
        );
        // Cut at a character boundary, never inside one.
        let long = "é".repeat(MAX_CONTENT_BYTES);
        let cut = content_text(&long, REDACTED);
        assert!(cut.len() <= MAX_CONTENT_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
