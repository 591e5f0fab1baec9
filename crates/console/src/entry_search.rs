//! What the timeline's search reads of an entry: its tag and summary, and the text of what the
//! observation carried (prompts, tool arguments and results, HTTP bodies, SQL, command lines,
//! paths), so `/Ada Lovelace` finds the exfiltrated rows inside a POST body. Fields (`kind:`,
//! `tool:`, `pid:`, `host:`, `comm:`) come from the observation itself, `session:` from the
//! session the log numbered it in.

use agentscope_reconstruct::mcp::McpDetail;
use agentscope_reconstruct::ObservationKind;

use super::log::LoggedObservation;
use super::search_query::{contains_ignore_case, Field, Searchable};

/// Most bytes of an observation's payload text searched: bodies beyond this are in Detail, not
/// in search (a 512 KiB body tested on every keystroke would stall the console).
const PAYLOAD_SEARCH_BYTES: usize = 64 * 1024;

/// An entry with its payload text, made for one test against a query.
pub struct SearchableEntry<'a> {
    entry: &'a LoggedObservation,
    payload: String,
}

impl<'a> SearchableEntry<'a> {
    pub fn new(entry: &'a LoggedObservation) -> Self {
        let mut payload = payload_text(&entry.observation.kind);
        if payload.len() > PAYLOAD_SEARCH_BYTES {
            let mut end = PAYLOAD_SEARCH_BYTES;
            while !payload.is_char_boundary(end) {
                end -= 1;
            }
            payload.truncate(end);
        }
        Self { entry, payload }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(PAYLOAD_SEARCH_BYTES)]).into_owned()
}

/// The text an observation carried, beyond its summary.
fn payload_text(kind: &ObservationKind) -> String {
    match kind {
        ObservationKind::Llm { call, .. } => serde_json::to_string(call).unwrap_or_default(),
        ObservationKind::Http { exchange, .. } => {
            let mut text = format!(
                "{} {}\n{}",
                exchange.request.method,
                exchange.request.target,
                lossy(&exchange.request.body)
            );
            if let Some(response) = &exchange.response {
                text.push('\n');
                text.push_str(&lossy(&response.body));
            }
            text
        }
        ObservationKind::Exec { argv, .. } => argv.join(" "),
        ObservationKind::FileOpen { path, .. } => path.clone(),
        // MCP exchanges, SQL, Redis, object-store and retrieval calls: their recorded form
        // holds their arguments and results.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

impl Searchable for SearchableEntry<'_> {
    fn texts(&self) -> Vec<&str> {
        vec![self.entry.kind.tag(), &self.entry.summary, &self.payload]
    }

    fn field_matches(&self, field: Field, value: &str) -> Option<bool> {
        let observation = &self.entry.observation;
        Some(match field {
            Field::Kind => self.entry.kind.tag().eq_ignore_ascii_case(value),
            Field::Pid => {
                let actor = &observation.actor;
                [actor.pid, actor.ppid]
                    .iter()
                    .any(|p| p.to_string() == value)
            }
            Field::Comm => contains_ignore_case(&observation.actor.comm, value),
            // `session:1` (every conversation of session 1), `session:s1.2` (its second),
            // or the session's pid.
            Field::Session => self.entry.session.is_some_and(|session| {
                let number = value.strip_prefix('s').unwrap_or(value);
                number == session.number.to_string()
                    || number == format!("{}.{}", session.number, session.conversation)
                    || value == session.pid.to_string()
            }),
            Field::Tool => match &observation.kind {
                ObservationKind::Llm { call, .. } => call
                    .tool_calls
                    .iter()
                    .map(|c| c.name.as_str())
                    .chain(call.tool_results.iter().filter_map(|r| r.name.as_deref()))
                    .any(|name| name.eq_ignore_ascii_case(value)),
                ObservationKind::Mcp { exchange, .. } => match &exchange.detail {
                    McpDetail::ToolsCall(call) => call
                        .name
                        .as_deref()
                        .is_some_and(|name| name.eq_ignore_ascii_case(value)),
                    _ => false,
                },
                _ => false,
            },
            Field::Host => {
                let host = match &observation.kind {
                    ObservationKind::Llm { host, .. } => host.clone(),
                    ObservationKind::Http { exchange, .. } => exchange.host.clone(),
                    ObservationKind::Connect { peer, .. } => Some(peer.addr.clone()),
                    ObservationKind::TlsHello { server_name, .. } => server_name.clone(),
                    ObservationKind::Mcp { endpoint, .. } => endpoint.clone(),
                    ObservationKind::Sql { peer, .. } | ObservationKind::Redis { peer, .. } => {
                        peer.as_ref().map(|p| p.addr.clone())
                    }
                    _ => None,
                };
                host.is_some_and(|host| contains_ignore_case(&host, value))
            }
        })
    }
}
