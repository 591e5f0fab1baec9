//! The detail pane's content: the selected agent, observation, graph edge or finding in full
//! (prompts and messages, tool arguments and results, HTTP requests and responses as pretty
//! JSON, SQL text, process lineage, identity chain).
//!
//! Content is built once when the selection changes, never per frame. Payloads are already
//! redacted by reconstruction; what is built here is bounded: JSON is pretty-printed only up
//! to [`PRETTY_LIMIT`] bytes and any payload shows at most [`SHOW_LIMIT`] bytes.

use agentscope_analysis::model::{Agent, Evidence};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_reconstruct::http::{Header, HttpRequest, HttpResponse, StreamedBody};
use agentscope_reconstruct::mcp::McpDetail;
use agentscope_reconstruct::{Observation, ObservationKind};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::findings::FindingView;
use super::format::{format_bytes, format_duration, format_time};
use super::graph_pane::{edge_verb, RowContent};
use super::log::{with_port, LoggedObservation};
use super::text::text_lines;
use super::theme::Styles;

/// Bodies up to this size are parsed and pretty-printed as JSON.
pub const PRETTY_LIMIT: usize = 256 << 10;
/// At most this much of any one payload is shown.
pub const SHOW_LIMIT: usize = 1 << 20;
/// Tool calls listed under a tool.
const TOOL_CALLS_SHOWN: usize = 20;
/// Streamed response events listed.
const STREAM_EVENTS_SHOWN: usize = 200;

struct Doc<'s> {
    lines: Vec<Line<'static>>,
    styles: &'s Styles,
    boot_offset: Option<i128>,
}

impl<'s> Doc<'s> {
    fn new(styles: &'s Styles, boot_offset: Option<i128>) -> Self {
        Self {
            lines: Vec::new(),
            styles,
            boot_offset,
        }
    }

    fn title(&mut self, tag: &str, text: &str, tag_style: Style) {
        self.lines.push(Line::from(vec![
            Span::styled(format!("{tag} "), tag_style),
            Span::styled(text.to_string(), self.styles.title),
        ]));
    }

    fn heading(&mut self, text: &str) {
        self.lines.push(Line::raw(""));
        self.lines
            .push(Line::styled(text.to_string(), self.styles.accent));
    }

    fn field(&mut self, key: &str, value: impl Into<String>) {
        let value: String = value.into();
        let mut parts = text_lines(&value, self.styles.text).into_iter();
        let first = parts.next().unwrap_or_default();
        let mut spans = vec![Span::styled(format!("{key:<14} "), self.styles.muted)];
        spans.extend(first.spans);
        self.lines.push(Line::from(spans));
        for rest in parts {
            let mut spans = vec![Span::raw(" ".repeat(15))];
            spans.extend(rest.spans);
            self.lines.push(Line::from(spans));
        }
    }

    fn opt(&mut self, key: &str, value: Option<impl Into<String>>) {
        if let Some(value) = value {
            self.field(key, value);
        }
    }

    fn time(&mut self, key: &str, ts_ns: u64) {
        let text = format_time(ts_ns, self.boot_offset);
        self.field(key, text);
    }

    /// A block of text, indented.
    fn text(&mut self, text: &str) {
        self.text_styled(text, self.styles.text);
    }

    fn text_styled(&mut self, text: &str, style: Style) {
        let (shown, cut) = cut_text(text);
        for line in text_lines(shown, style) {
            let mut spans = vec![Span::raw("  ")];
            spans.extend(line.spans);
            self.lines.push(Line::from(spans));
        }
        if cut > 0 {
            self.note(&format!("… {} more not shown", format_bytes(cut as u64)));
        }
    }

    fn note(&mut self, text: &str) {
        self.lines
            .push(Line::styled(format!("  {text}"), self.styles.muted));
    }

    fn json(&mut self, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(s) => self.text(s),
            _ => {
                let text = serde_json::to_string_pretty(value).unwrap_or_default();
                self.text(&text);
            }
        }
    }

    /// A payload: pretty JSON when it is JSON and small enough, else text, else a size.
    fn body(&mut self, body: &[u8], declared_len: usize) {
        if body.is_empty() {
            if declared_len > 0 {
                self.note(&format!(
                    "({} body not captured)",
                    format_bytes(declared_len as u64)
                ));
            }
            return;
        }
        if body.len() <= PRETTY_LIMIT {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
                self.json(&value);
                return;
            }
        }
        match std::str::from_utf8(&body[..body.len().min(SHOW_LIMIT)]) {
            Ok(text) => {
                if body.len() > PRETTY_LIMIT {
                    self.note("(large body: shown as sent, not pretty-printed)");
                }
                self.text(text);
                if body.len() > SHOW_LIMIT {
                    self.note(&format!(
                        "… {} more not shown",
                        format_bytes((body.len() - SHOW_LIMIT) as u64)
                    ));
                }
            }
            Err(_) => self.note(&format!(
                "({} of binary data)",
                format_bytes(body.len() as u64)
            )),
        }
    }

    fn headers(&mut self, headers: &[Header]) {
        for header in headers {
            self.lines.push(Line::from(vec![
                Span::styled(format!("  {}: ", header.name), self.styles.muted),
                Span::styled(header.value.clone(), self.styles.text),
            ]));
        }
    }
}

/// At most [`SHOW_LIMIT`] bytes of `text` (on a character boundary) and how much was cut.
fn cut_text(text: &str) -> (&str, usize) {
    if text.len() <= SHOW_LIMIT {
        return (text, 0);
    }
    let mut end = SHOW_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], text.len() - end)
}

fn identity_section(doc: &mut Doc, agent: &Agent) {
    let who = &agent.identity;
    doc.heading("Identity chain");
    let user = match &who.user {
        Some(name) => format!("{name} (uid {})", who.uid),
        None => format!("uid {}", who.uid),
    };
    let mut chain = vec![format!("process runs as {user}")];
    if let Some(sa) = &who.service_account {
        chain.push(format!("serviceaccount {sa}"));
    }
    for role in &who.cloud_roles {
        chain.push(format!("cloud role {role}"));
    }
    doc.text(&chain.join("\n→ "));
    doc.field("workload", who.workload.clone());
    doc.opt("pod", who.pod.clone());
    doc.opt("container", who.container_id.clone());
}

fn lineage_section(doc: &mut Doc, pipeline: &Pipeline, pid: u32, expand_environment: bool) {
    doc.heading("Process lineage");
    let lines = crate::lineage::lineage(pipeline.processes(), pid, expand_environment);
    let mut collapsed = false;
    for (depth, line) in lines.iter().enumerate() {
        let prefix = if depth == 0 { "" } else { "↑ " };
        let exited = if line.exited { " (exited)" } else { "" };
        let text = if line.unknown {
            format!("{prefix}{} (not in the process table)", line.pid)
        } else if line.boundary {
            format!(
                "{prefix}{} {}{exited} (infrastructure: lineage ends)",
                line.pid, line.comm
            )
        } else {
            collapsed |= line.command.contains("[environment: ") && !expand_environment;
            format!(
                "{prefix}{} {}{exited}: {}",
                line.pid, line.comm, line.command
            )
        };
        if line.boundary {
            doc.note(&text);
        } else {
            doc.text(&text);
        }
    }
    if collapsed {
        doc.note("v shows the environment (secrets masked)");
    }
}

/// Whether process `pid`, which the model says acts for `acts_for_key`, is `agent`'s: it
/// acts for it, or it is one of its processes.
fn acts_for(agent: &Agent, pid: u32, acts_for_key: Option<&str>) -> bool {
    acts_for_key == Some(agent.key.as_str()) || agent.pids.contains(&pid)
}

/// The agent's processes that talked TLS: to whom, and whether their plaintext is seen.
fn tls_section(doc: &mut Doc, agent: &Agent, pipeline: &Pipeline) {
    if let Some(why) = &agent.plaintext_not_visible {
        doc.field("plaintext", why.clone());
    }
    let processes: Vec<_> = pipeline
        .model()
        .tls_coverage()
        .processes()
        .into_iter()
        .filter(|p| acts_for(agent, p.pid, p.agent.as_deref()))
        .collect();
    if processes.is_empty() {
        return;
    }
    doc.heading("TLS coverage");
    for process in processes {
        let peers: Vec<&str> = process.peers.iter().map(String::as_str).collect();
        doc.text(&format!(
            "{} → {}: {}",
            process.pid,
            peers.join(", "),
            process.describe()
        ));
    }
}

/// The agent's processes whose payloads the kernel counted instead of copying (opaque
/// sockets, `--no-payloads-of`, `--sample-connections`): what of the agent the capture does not
/// hold.
fn left_out_section(doc: &mut Doc, agent: &Agent, pipeline: &Pipeline) {
    let processes: Vec<_> = pipeline
        .model()
        .payloads_left_out()
        .processes()
        .into_iter()
        .filter(|p| acts_for(agent, p.pid, p.agent.as_deref()))
        .collect();
    if processes.is_empty() {
        return;
    }
    doc.heading("Payloads left out");
    for process in processes {
        let until = if process.running {
            "until capture stopped"
        } else {
            "until it exited"
        };
        doc.text(&format!(
            "{}: {} ({until})",
            process.pid,
            process.describe()
        ));
    }
}

/// Kernel enforcement of the agent (issue 17): per category its mode, counts and last
/// decisions, as the pipeline's model tallied them.
fn enforcement_section(doc: &mut Doc, agent: &Agent) {
    let enforcement = &agent.enforcement;
    if enforcement.is_empty() {
        return;
    }
    doc.heading("Enforcement");
    let by = match &enforcement.baseline {
        Some(key) => format!("baseline {key} rev {}", enforcement.revision),
        None => format!("policy rev {}", enforcement.revision),
    };
    // Where the modes come from: the collector's report of the policy, or only decisions.
    let from = match &enforcement.policy {
        Some(policy) => format!(" on {} (reported by the collector)", policy.scope),
        None => " (modes from its decisions)".to_string(),
    };
    doc.field("policy", format!("{by}{from}"));
    for (name, category) in enforcement.categories() {
        let mode = category.mode.map_or("mode unknown", |m| m.name());
        doc.field(
            name,
            format!(
                "{mode} · {} would block · {} blocked · {} disarmed",
                category.would_block, category.blocked, category.disarmed
            ),
        );
        for decision in &category.recent {
            let time = format_time(decision.ts_ns, doc.boot_offset);
            doc.text(&format!("{time} pid {} {}", decision.pid, decision.summary));
        }
    }
    if !enforcement.audited().is_empty() {
        doc.note("P promotes the audited categories to enforce (asks first)");
    }
}

pub fn agent_detail(
    agent: &Agent,
    activity: Option<(u64, usize)>,
    pipeline: &Pipeline,
    styles: &Styles,
    boot_offset: Option<i128>,
    expand_environment: bool,
) -> Vec<Line<'static>> {
    let mut doc = Doc::new(styles, boot_offset);
    doc.title(
        "AGENT",
        &agent.name,
        styles.node(agentscope_analysis::model::NodeKind::Agent),
    );
    doc.field("key", agent.key.clone());
    doc.field("program", agent.program.clone());
    let pids: Vec<String> = agent.pids.iter().map(u32::to_string).collect();
    doc.field("pids", pids.join(", "));
    doc.time("first seen", agent.first_seen_ns);
    doc.time("last seen", agent.last_seen_ns);
    doc.field(
        "activity",
        format!(
            "{} LLM calls · {} tool calls · {} input / {} output tokens",
            agent.llm_calls, agent.tool_calls, agent.input_tokens, agent.output_tokens
        ),
    );
    if let Some((total, kept)) = activity {
        doc.field(
            "observations",
            format!("{total} ({kept} kept for the timeline)"),
        );
    }
    enforcement_section(&mut doc, agent);
    tls_section(&mut doc, agent, pipeline);
    left_out_section(&mut doc, agent, pipeline);
    identity_section(&mut doc, agent);
    if let Some(pid) = agent.pids.iter().next_back() {
        lineage_section(&mut doc, pipeline, *pid, expand_environment);
    }
    doc.lines
}

pub fn observation_detail(
    entry: &LoggedObservation,
    agent: Option<&Agent>,
    pipeline: &Pipeline,
    styles: &Styles,
    boot_offset: Option<i128>,
    expand_environment: bool,
) -> Vec<Line<'static>> {
    let mut doc = Doc::new(styles, boot_offset);
    let observation: &Observation = &entry.observation;
    let tag_style = entry
        .kind
        .colour_of()
        .map_or(styles.muted, |k| styles.node(k));
    doc.title(entry.kind.tag(), &entry.summary, tag_style);
    doc.time("time", observation.ts_ns);
    doc.field(
        "process",
        format!(
            "{} {} (uid {}, parent {})",
            observation.actor.pid,
            observation.actor.comm,
            observation.actor.uid,
            observation.actor.ppid
        ),
    );
    if let Some(agent) = agent {
        doc.field("agent", agent.key.clone());
    }
    if let Some(session) = entry.session {
        doc.field(
            "session",
            format!("{} (agent process {})", session.label(), session.pid),
        );
    }
    let events: Vec<String> = observation.events.iter().map(ToString::to_string).collect();
    doc.field("events", events.join(", "));
    doc.opt(
        "protocol",
        observation.protocol.map(|p| p.as_str().to_string()),
    );
    match &observation.kind {
        ObservationKind::Llm {
            call,
            host,
            port,
            user_agent,
            end_ts_ns,
        } => {
            doc.heading("LLM call");
            doc.field("provider", call.provider.clone());
            doc.field("api", enum_name(&call.api));
            doc.opt("request model", call.request_model.clone());
            doc.opt("response model", call.response_model.clone());
            doc.opt("response id", call.response_id.clone());
            if let Some(host) = host {
                doc.field("endpoint", with_port(host, *port));
            }
            doc.opt("user agent", user_agent.clone());
            doc.field(
                "duration",
                format_duration(end_ts_ns.saturating_sub(observation.ts_ns)),
            );
            let usage = &call.usage;
            doc.field(
                "tokens",
                format!(
                    "{} in · {} out{}",
                    usage.input_tokens.map_or("?".into(), |t| t.to_string()),
                    usage.output_tokens.map_or("?".into(), |t| t.to_string()),
                    usage
                        .cache_read_input_tokens
                        .map_or(String::new(), |t| format!(" · {t} from cache")),
                ),
            );
            if !call.finish_reasons.is_empty() {
                doc.field("finish", call.finish_reasons.join(", "));
            }
            doc.opt("error", call.error_type.clone());
            let mut flags = Vec::new();
            if call.streamed {
                flags.push("streamed");
            }
            if call.partial {
                flags.push("partial: truncated or no response");
            }
            if !flags.is_empty() {
                doc.field("flags", flags.join(", "));
            }
            if let Some(system) = &call.system_prompt {
                doc.heading("System prompt");
                doc.text(system);
            }
            if let Some(user) = &call.last_user_message {
                doc.heading("Last user message");
                doc.text(user);
            }
            if !call.tool_results.is_empty() {
                doc.heading(&format!(
                    "Tool results sent back ({})",
                    call.tool_results.len()
                ));
                for result in &call.tool_results {
                    let name = result.name.as_deref().unwrap_or("?");
                    let id = result.call_id.as_deref().unwrap_or("no id");
                    let error = if result.is_error { " · error" } else { "" };
                    doc.field("result", format!("{name} ({id}){error}"));
                    match serde_json::from_str::<serde_json::Value>(&result.content) {
                        Ok(value) if result.content.len() <= PRETTY_LIMIT => doc.json(&value),
                        _ => doc.text(&result.content),
                    }
                }
            }
            if !call.tool_calls.is_empty() {
                doc.heading(&format!("Tool calls requested ({})", call.tool_calls.len()));
                for tool_call in &call.tool_calls {
                    let id = tool_call.id.as_deref().unwrap_or("no id");
                    doc.field("call", format!("{} ({id})", tool_call.name));
                    doc.json(&tool_call.arguments);
                }
            }
            if let Some(output) = &call.output_text {
                doc.heading("Model output");
                doc.text(output);
            }
            if !call.tools_offered.is_empty() {
                doc.heading(&format!("Tools offered ({})", call.tools_offered.len()));
                for tool in &call.tools_offered {
                    doc.field("tool", tool.name.clone());
                    if let Some(description) = &tool.description {
                        doc.text_styled(description, styles.muted);
                    }
                }
            }
        }
        ObservationKind::Http { exchange, role } => {
            doc.heading(match role {
                agentscope_reconstruct::Role::Client => "HTTP request",
                agentscope_reconstruct::Role::Server => "HTTP request (served)",
            });
            doc.opt("host", exchange.host.clone());
            doc.opt("port", exchange.port.map(|p| p.to_string()));
            doc.field("tls", if exchange.tls { "yes" } else { "no" });
            request_section(&mut doc, &exchange.request);
            match &exchange.response {
                Some(response) => response_section(&mut doc, response),
                None => {
                    doc.heading("HTTP response");
                    doc.note("(no response seen)");
                }
            }
        }
        ObservationKind::Mcp {
            exchange,
            transport,
            role,
            endpoint,
            peer_pid,
        } => {
            doc.heading("MCP exchange");
            doc.opt("method", exchange.method.clone());
            doc.field("kind", enum_name(&exchange.kind));
            doc.field("transport", enum_name(transport));
            doc.field("role", enum_name(role));
            doc.opt("endpoint", endpoint.clone());
            doc.opt("server pid", peer_pid.map(|p| p.to_string()));
            doc.opt("request id", exchange.request_id.clone());
            doc.opt("session", exchange.session_id.clone());
            if let (Some(start), Some(end)) = (exchange.request_ts_ns, exchange.response_ts_ns) {
                doc.field("duration", format_duration(end.saturating_sub(start)));
            }
            if let Some(error) = &exchange.error {
                doc.field("error", format!("{} {}", error.code, error.message));
            }
            if exchange.partial {
                doc.field("flags", "partial");
            }
            mcp_detail(&mut doc, &exchange.detail);
        }
        ObservationKind::Sql { statement, peer } => {
            doc.heading("SQL statement");
            doc.text(&statement.text);
            if statement.text_truncated {
                doc.note("(the query was longer; only its start was captured)");
            }
            doc.lines.push(Line::raw(""));
            doc.field("operation", statement.operation.clone());
            if !statement.tables.is_empty() {
                doc.field("tables", statement.tables.join(", "));
            }
            doc.opt("database", statement.database.clone());
            doc.opt("user", statement.user.clone());
            doc.opt("application", statement.application_name.clone());
            if let Some(peer) = peer {
                doc.field("server", format!("{}:{}", peer.addr, peer.port));
            }
            doc.field("protocol", enum_name(&statement.protocol));
            doc.opt("rows", statement.rows.map(|r| r.to_string()));
            doc.opt("error", statement.error.clone());
            doc.field(
                "duration",
                format_duration(statement.end_ts_ns.saturating_sub(statement.ts_ns)),
            );
            if statement.vector_search {
                doc.field("retrieval", "vector similarity search");
            }
        }
        ObservationKind::FileOpen { path, class, write } => {
            doc.heading("File access");
            doc.field("path", path.clone());
            doc.field("access", if *write { "write" } else { "read" });
            let category = serde_json::to_value(class)
                .ok()
                .and_then(|v| v["category"].as_str().map(str::to_string))
                .unwrap_or_default();
            doc.field(
                "class",
                format!(
                    "{} ({category}, sensitivity {})",
                    class.label,
                    enum_name(&class.sensitivity)
                ),
            );
        }
        ObservationKind::Connect {
            peer,
            payloads_sampled_out,
        } => {
            doc.heading("Connection");
            doc.field("peer", format!("{}:{}", peer.addr, peer.port));
            if *payloads_sampled_out {
                doc.field(
                    "payloads",
                    "sampled out (--sample-connections): what it carried is not in the capture",
                );
            }
        }
        ObservationKind::Exec { filename, argv } => {
            doc.heading("Exec");
            doc.field("file", filename.clone());
            doc.field("argv", "");
            for (i, arg) in argv.iter().enumerate() {
                doc.text(&format!("[{i}] {arg}"));
            }
        }
        other => {
            doc.heading("Observation");
            let value = serde_json::to_value(other).unwrap_or_default();
            if let serde_json::Value::Object(map) = value {
                for (key, value) in map {
                    if key == "kind" {
                        continue;
                    }
                    match value {
                        serde_json::Value::String(s) => doc.field(&key, s),
                        serde_json::Value::Array(ref items)
                            if items.iter().all(serde_json::Value::is_string) =>
                        {
                            let items: Vec<&str> =
                                items.iter().filter_map(serde_json::Value::as_str).collect();
                            doc.field(&key, items.join(" "));
                        }
                        value if value.is_object() || value.is_array() => {
                            doc.field(&key, "");
                            doc.json(&value);
                        }
                        value => doc.field(&key, value.to_string()),
                    }
                }
            }
        }
    }
    lineage_section(
        &mut doc,
        pipeline,
        observation.actor.pid,
        expand_environment,
    );
    if let Some(agent) = agent {
        identity_section(&mut doc, agent);
    }
    doc.lines
}

fn request_section(doc: &mut Doc, request: &HttpRequest) {
    doc.field("request", format!("{} {}", request.method, request.target));
    doc.field(
        "body",
        format!(
            "{}{}",
            format_bytes(request.body_len as u64),
            completeness(&request.completeness)
        ),
    );
    doc.headers(&request.headers);
    doc.body(&request.body, request.body_len);
}

fn response_section(doc: &mut Doc, response: &HttpResponse) {
    doc.heading("HTTP response");
    doc.field("status", format!("{} {}", response.status, response.reason));
    doc.field(
        "body",
        format!(
            "{}{}",
            format_bytes(response.body_len as u64),
            completeness(&response.completeness)
        ),
    );
    doc.field(
        "duration",
        format_duration(response.end_ts_ns.saturating_sub(response.ts_ns)),
    );
    doc.headers(&response.headers);
    match &response.stream {
        Some(StreamedBody::Sse(events)) => {
            doc.note(&format!("({} server-sent events)", events.len()));
            for event in events.iter().take(STREAM_EVENTS_SHOWN) {
                let name = event.event.as_deref().unwrap_or("message");
                doc.text_styled(&format!("event: {name}"), doc.styles.muted);
                doc.text(&event.data);
            }
            if events.len() > STREAM_EVENTS_SHOWN {
                doc.note(&format!(
                    "… {} more events",
                    events.len() - STREAM_EVENTS_SHOWN
                ));
            }
        }
        Some(StreamedBody::Ndjson(lines)) => {
            doc.note(&format!("({} JSON lines)", lines.len()));
            for line in lines.iter().take(STREAM_EVENTS_SHOWN) {
                doc.text(line);
            }
            if lines.len() > STREAM_EVENTS_SHOWN {
                doc.note(&format!(
                    "… {} more lines",
                    lines.len() - STREAM_EVENTS_SHOWN
                ));
            }
        }
        None => doc.body(&response.body, response.body_len),
    }
}

fn completeness(value: &agentscope_reconstruct::http::Completeness) -> String {
    use agentscope_reconstruct::http::Completeness;
    match value {
        Completeness::Complete => String::new(),
        Completeness::Truncated => " · truncated".into(),
        Completeness::Corrupt => " · corrupt".into(),
    }
}

fn mcp_detail(doc: &mut Doc, detail: &McpDetail) {
    match detail {
        McpDetail::ToolsCall(call) => {
            doc.heading("Tool call");
            doc.opt("tool", call.name.clone());
            if call.is_error == Some(true) {
                doc.field("result", "the tool reported an error");
            }
            if let Some(arguments) = &call.arguments {
                doc.heading("Arguments");
                doc.json(arguments);
            }
            if let Some(result) = &call.result_text {
                doc.heading("Result");
                match serde_json::from_str::<serde_json::Value>(result) {
                    Ok(value) if result.len() <= PRETTY_LIMIT && !value.is_string() => {
                        doc.json(&value)
                    }
                    _ => doc.text(result),
                }
            }
            if let Some(structured) = &call.structured_content {
                doc.heading("Structured result");
                doc.json(structured);
            }
        }
        McpDetail::ToolsList(list) => {
            doc.heading(&format!("Tools listed ({})", list.tools.len()));
            for tool in &list.tools {
                let props = tool.input_schema.properties.join(", ");
                doc.field("tool", format!("{}({props})", tool.name));
                if let Some(description) = &tool.description {
                    doc.text_styled(description, doc.styles.muted);
                }
            }
        }
        McpDetail::Initialize(init) => {
            doc.heading("Initialize");
            let name = |i: &Option<agentscope_reconstruct::mcp::Implementation>| {
                i.as_ref().map(|i| {
                    format!(
                        "{} {}",
                        i.name.as_deref().unwrap_or("?"),
                        i.version.as_deref().unwrap_or("")
                    )
                })
            };
            doc.opt("client", name(&init.client));
            doc.opt("server", name(&init.server));
            doc.opt("protocol", init.protocol_version.clone());
            if let Some(instructions) = &init.instructions {
                doc.heading("Server instructions (read by the model)");
                doc.text(instructions);
            }
        }
        McpDetail::ResourcesRead(read) => {
            doc.heading("Resource read");
            doc.opt("uri", read.uri.clone());
            for content in &read.contents {
                doc.field(
                    "content",
                    format!(
                        "{} {}",
                        content.uri.as_deref().unwrap_or("?"),
                        content.mime_type.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        McpDetail::PromptsGet(prompt) => {
            doc.heading("Prompt");
            doc.opt("name", prompt.name.clone());
            doc.opt("description", prompt.description.clone());
            if let Some(arguments) = &prompt.arguments {
                doc.json(arguments);
            }
        }
        McpDetail::Other { params, result } => {
            if let Some(params) = params {
                doc.heading("Params");
                doc.json(params);
            }
            if let Some(result) = result {
                doc.heading("Result");
                doc.json(result);
            }
        }
        McpDetail::Invalid { reason } => {
            doc.heading("Not JSON-RPC");
            doc.text(reason);
        }
    }
}

/// A graph row: the node reached, the edge that reaches it, and for tools the calls made.
pub fn graph_detail(
    row: &RowContent,
    pipeline: &Pipeline,
    styles: &Styles,
    boot_offset: Option<i128>,
) -> Vec<Line<'static>> {
    let mut doc = Doc::new(styles, boot_offset);
    let graph = pipeline.model().graph();
    let edge = match row {
        RowContent::Group { kind, name, count } => {
            doc.title("GROUP", &format!("{name} ({count})"), styles.node(*kind));
            doc.note("Enter or → opens the group; each row is an edge from the agent.");
            return doc.lines;
        }
        RowContent::Edge(edge) => edge,
    };
    let Some(node) = graph.get_node(&edge.to) else {
        doc.note("(this node was evicted from the graph)");
        return doc.lines;
    };
    doc.title(
        &enum_name(&node.kind).to_uppercase(),
        &node.label,
        styles.node(node.kind),
    );
    doc.field("id", node.id.clone());
    doc.time("first seen", node.first_seen_ns);
    doc.time("last seen", node.last_seen_ns);
    for (key, value) in &node.attributes {
        match value {
            serde_json::Value::String(s) => doc.field(key, s.clone()),
            other => doc.field(key, other.to_string()),
        }
    }
    doc.heading(&format!("Edge: {}", edge_verb(edge.kind)));
    doc.field("from", edge.from.clone());
    doc.field("kind", enum_name(&edge.kind));
    if let Some(edge) = graph.get_edge(&edge.from, &edge.to, edge.kind) {
        doc.field("count", edge.count.to_string());
        doc.time("first seen", edge.first_seen_ns);
        doc.time("last seen", edge.last_seen_ns);
        let events: Vec<String> = edge
            .events
            .iter()
            .map(|r| format!("{}-{}", r.first, r.last))
            .collect();
        doc.field("events", events.join(", "));
        for (key, value) in &edge.attributes {
            doc.field(key, value.to_string());
        }
    }
    if node.kind == agentscope_analysis::model::NodeKind::Tool {
        let calls: Vec<_> = pipeline
            .model()
            .tool_calls()
            .filter(|c| c.tool_node == node.id)
            .collect();
        doc.heading(&format!("Calls ({})", calls.len()));
        for call in calls.iter().rev().take(TOOL_CALLS_SHOWN) {
            doc.lines.push(Line::raw(""));
            doc.time("requested", call.requested_ns);
            doc.opt("call id", call.id.clone());
            doc.field(
                "model",
                format!(
                    "{} {}",
                    call.provider,
                    call.model.as_deref().unwrap_or_default()
                ),
            );
            doc.field("arguments", "");
            doc.json(&call.arguments);
            if let Some(result) = &call.result {
                let error = if result.is_error { " (error)" } else { "" };
                doc.field("result", error);
                doc.text(&result.content);
            }
            for link in &call.links {
                let evidence: Vec<String> = link.evidence.iter().map(evidence_text).collect();
                doc.field("carried out", link.action.summary.clone());
                doc.text_styled(&format!("evidence: {}", evidence.join("; ")), styles.muted);
            }
        }
        if calls.len() > TOOL_CALLS_SHOWN {
            doc.note(&format!("… {} older calls", calls.len() - TOOL_CALLS_SHOWN));
        }
    }
    doc.lines
}

fn evidence_text(evidence: &Evidence) -> String {
    match evidence {
        Evidence::ToolCallId { id } => format!("tool call id {id}"),
        Evidence::AgentCallId { id } => format!("agent's call id {id} (by tool name)"),
        Evidence::ArgumentMatch { argument, value } => format!("argument {argument} = {value}"),
        Evidence::McpToolsCall { name } => format!("MCP tools/call {name}"),
        Evidence::McpServerProcess { pid } => format!("MCP server process {pid}"),
        Evidence::CallProcess { pid } => format!("process {pid} started for the call"),
        Evidence::ProcessLineage { agent_pid } => format!("child of agent pid {agent_pid}"),
        Evidence::TimeWindow => "while the call was open".into(),
    }
}

pub fn finding_detail(
    finding: &FindingView,
    styles: &Styles,
    boot_offset: Option<i128>,
) -> Vec<Line<'static>> {
    let mut doc = Doc::new(styles, boot_offset);
    doc.title(
        &finding.severity.name().to_uppercase(),
        &finding.title,
        styles.severity(finding.severity),
    );
    doc.field("agent", finding.agent_key.clone());
    doc.time("raised", finding.ts_ns);
    doc.heading("What happened");
    doc.text(&finding.story);
    doc.lines
}

/// A serde enum's name as written in JSON (`open_ai_chat_completions`).
fn enum_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{ColorMode, Theme};

    fn styles() -> Styles {
        Styles::new(&Theme::preset("dark").unwrap(), ColorMode::None)
    }

    fn plain(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn small_json_bodies_are_pretty_printed() {
        let styles = styles();
        let mut doc = Doc::new(&styles, None);
        doc.body(br#"{"rows":[{"name":"Globex","balance":120}]}"#, 44);
        let text = plain(&doc.lines);
        assert_eq!(text[0], "  {");
        assert!(
            text.iter().any(|l| l == r#"        "name": "Globex""#),
            "{text:#?}"
        );
    }

    #[test]
    fn large_payloads_are_bounded() {
        let styles = styles();
        // 5 MiB of minified JSON: not parsed, shown as sent up to the display limit.
        let item = r#"{"id":123456,"name":"customer","note":"x"},"#;
        let mut body = b"[".to_vec();
        while body.len() < 5 << 20 {
            body.extend_from_slice(item.as_bytes());
        }
        body.extend_from_slice(b"{}]");
        let mut doc = Doc::new(&styles, None);
        doc.body(&body, body.len());
        let text = plain(&doc.lines);
        assert!(text[0].contains("not pretty-printed"));
        assert!(text.last().unwrap().contains("more not shown"));
        let shown: usize = text.iter().map(|l| l.len()).sum();
        assert!(shown <= SHOW_LIMIT + 4096, "{shown}");
        assert!(doc.lines.len() <= SHOW_LIMIT / crate::text::MAX_LINE_CHARS + 8);
        // Binary data is described, not dumped.
        let mut doc = Doc::new(&styles, None);
        doc.body(&[0xff, 0xfe, 0x00, 0x81], 4);
        assert_eq!(plain(&doc.lines), ["  (4 B of binary data)"]);
        // A body the capture did not keep.
        let mut doc = Doc::new(&styles, None);
        doc.body(&[], 2048);
        assert_eq!(plain(&doc.lines), ["  (2.0 KiB body not captured)"]);
    }
}
