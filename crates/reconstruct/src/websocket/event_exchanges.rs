//! JSON event conversations over WebSocket, turned into the request/response exchanges the
//! same API carries over HTTP, so the LLM dialects ([`crate::llm`]) read them unchanged.
//!
//! - The OpenAI Responses API over WebSocket: the client sends `{"type": "response.create",
//!   ...}` with the fields of a `POST /v1/responses` body (at the top level, or in a
//!   `response` object), follow-ups naming `previous_response_id`; the server answers with
//!   the events of the SSE stream (`response.created`, `response.output_item.added`,
//!   `response.function_call_arguments.delta`/`.done`, `response.output_item.done`, ending
//!   with `response.completed`, `response.incomplete` or `response.failed`).
//! - The OpenAI Realtime API (`/v1/realtime`): the conversation is server state, built by the
//!   client's `session.update` (model, instructions, tools) and `conversation.item.create`
//!   (messages, `function_call_output`), and by the model's own output items; a
//!   `response.create` asks for a response, whose events end with `response.done`.
//!
//! Responses answer `response.create` messages in order, paired by their order in each
//! direction, not by when they were read: a client that writes from one thread and reads on
//! another (the `websockets` sync client does) may have its first events captured before the
//! request that caused them. A request's body is built when it is read, so with that
//! reordering a follow-up may miss the output items it continues (a tool result then has no
//! tool name); what it says itself is kept.
//!
//! Each `response.create` becomes one exchange: its request is the body the call would have
//! had over HTTP (for Realtime, the session's model, instructions and tools with the
//! conversation so far as `input`; for a Responses follow-up, the output items of the response
//! it continues first, so a `function_call_output` finds the call it answers), its response
//! the server's events in order, as a stream. The request target is the handshake's, so the
//! host, provider and path read as they would over HTTP; the exchange's `protocol` says
//! WebSocket.
//!
//! Other messages (binary audio, other event types, JSON of other shapes) are not calls.
//! What is kept is bounded: the events of one response by the largest message, the
//! conversation and the remembered outputs by count.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use crate::event::Direction;
use crate::http::{
    header, Completeness, Header, HttpRequest, HttpResponse, PairedExchange, SseEvent,
    StreamedBody, WireProtocol,
};

use super::{Handshake, MessageKind, WebSocketMessage};

/// Conversation items a Realtime session keeps (the oldest go first).
const MAX_CONVERSATION_ITEMS: usize = 256;
/// Earlier responses whose output a follow-up may continue.
const MAX_REMEMBERED_RESPONSES: usize = 16;
/// `response.create` messages waiting for their response.
const MAX_PENDING: usize = 64;

/// A message's `type`, read without building the rest of its tree.
#[derive(serde::Deserialize)]
struct EventType<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// Which API the conversation speaks, from the handshake's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Responses,
    Realtime,
}

#[derive(Debug)]
struct PendingRequest {
    body: Vec<u8>,
    completeness: Completeness,
    ts_ns: u64,
}

#[derive(Debug)]
struct ResponseInProgress {
    events: Vec<SseEvent>,
    bytes: usize,
    completeness: Completeness,
    ts_ns: u64,
    end_ts_ns: u64,
}

/// One WebSocket connection's event conversation.
#[derive(Debug)]
pub struct EventConversation {
    handshake: Handshake,
    api: Api,
    /// Realtime: `session.update`'s session, merged.
    session: Map<String, Value>,
    /// Realtime: the conversation's items, in order.
    conversation: VecDeque<Value>,
    /// Output items of earlier responses, by response id (Responses follow-ups).
    outputs: VecDeque<(String, Vec<Value>)>,
    /// `response.create` messages not paired with a response yet.
    pending: VecDeque<PendingRequest>,
    current: Option<ResponseInProgress>,
    /// Responses that ended before their `response.create` was read (see the module doc).
    finished: VecDeque<ResponseInProgress>,
    limit: usize,
}

impl EventConversation {
    pub fn new(handshake: Handshake, limit: usize) -> Self {
        let path = handshake.target.split(['?', '#']).next().unwrap_or("");
        let api = if path.ends_with("/realtime") {
            Api::Realtime
        } else {
            Api::Responses
        };
        Self {
            handshake,
            api,
            session: Map::new(),
            conversation: VecDeque::new(),
            outputs: VecDeque::new(),
            pending: VecDeque::new(),
            current: None,
            finished: VecDeque::new(),
            limit,
        }
    }

    /// Heap held, roughly.
    pub fn held_bytes(&self) -> usize {
        self.pending
            .iter()
            .map(|p| 64 + p.body.capacity())
            .sum::<usize>()
            + self
                .current
                .iter()
                .chain(&self.finished)
                .map(|c| c.bytes + 64 * c.events.len())
                .sum::<usize>()
            + self
                .conversation
                .iter()
                .chain(self.outputs.iter().flat_map(|(_, items)| items))
                .map(crate::memory_budget::json_value_bytes)
                .sum::<usize>()
    }

    /// The budget is short: the response in flight gives up its events (flagged).
    pub fn shed(&mut self) {
        for response in self.current.iter_mut().chain(self.finished.iter_mut()) {
            response.events = Vec::new();
            response.bytes = 0;
            response.completeness = Completeness::Truncated;
        }
        self.outputs.clear();
    }

    pub fn on_message(&mut self, message: WebSocketMessage, out: &mut Vec<PairedExchange>) {
        if message.kind != MessageKind::Text {
            return;
        }
        if message.direction == Direction::Egress {
            // The client's events are few and each is read whole (a request body).
            if let Ok(event) = serde_json::from_slice::<Value>(&message.payload) {
                let kind = event
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.on_client_event(&kind, &event, &message, out);
            }
            return;
        }
        // The server's are many (a delta per token): only their type is read here, the
        // dialect reads the rest once the response is whole.
        match serde_json::from_slice::<EventType<'_>>(&message.payload) {
            Ok(event) => {
                let kind = event.kind.unwrap_or_default().into_owned();
                self.on_server_event(&kind, message, out);
            }
            Err(_) => {
                // A cut message of a response in flight still belongs to it.
                if let Some(current) = self.current.as_mut() {
                    current.completeness = Completeness::Truncated;
                }
            }
        }
    }

    fn on_client_event(
        &mut self,
        kind: &str,
        event: &Value,
        message: &WebSocketMessage,
        out: &mut Vec<PairedExchange>,
    ) {
        match kind {
            "session.update" => {
                if let Some(session) = event.get("session").and_then(Value::as_object) {
                    for (key, value) in session {
                        self.session.insert(key.clone(), value.clone());
                    }
                }
            }
            "conversation.item.create" => {
                if let Some(item) = event.get("item").filter(|i| i.is_object()) {
                    self.remember_item(item.clone());
                }
            }
            "response.create" => {
                let body = match self.api {
                    Api::Responses => self.responses_body(event),
                    Api::Realtime => self.realtime_body(event),
                };
                let request = PendingRequest {
                    body: serde_json::to_vec(&body).unwrap_or_default(),
                    completeness: message.completeness,
                    ts_ns: message.ts_ns,
                };
                match self.finished.pop_front() {
                    Some(response) => out.push(self.exchange(Some(request), Some(response))),
                    None => {
                        if self.pending.len() >= MAX_PENDING {
                            self.pending.pop_front();
                        }
                        self.pending.push_back(request);
                    }
                }
            }
            _ => {}
        }
    }

    fn remember_item(&mut self, item: Value) {
        if self.conversation.len() >= MAX_CONVERSATION_ITEMS {
            self.conversation.pop_front();
        }
        self.conversation.push_back(item);
    }

    /// A Responses request body: the event's fields (or its `response` object) without
    /// `type`, the continued response's output items before its own input.
    fn responses_body(&self, event: &Value) -> Value {
        let mut body = match event.get("response").and_then(Value::as_object) {
            Some(nested) => nested.clone(),
            None => event.as_object().cloned().unwrap_or_default(),
        };
        body.remove("type");
        let continued = body
            .get("previous_response_id")
            .and_then(Value::as_str)
            .and_then(|id| self.outputs.iter().find(|(known, _)| known == id))
            .map(|(_, items)| items.clone());
        if let Some(mut items) = continued {
            match body.remove("input") {
                Some(Value::Array(own)) => items.extend(own),
                Some(Value::String(text)) => {
                    items.push(serde_json::json!({"role": "user", "content": text}))
                }
                _ => {}
            }
            body.insert("input".into(), Value::Array(items));
        }
        Value::Object(body)
    }

    /// A Realtime request body, in the Responses shape: the session's model, instructions and
    /// tools (the response's own override them), the conversation as `input`.
    fn realtime_body(&self, event: &Value) -> Value {
        let response = event
            .get("response")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let field = |name: &str| {
            response
                .get(name)
                .or_else(|| self.session.get(name))
                .cloned()
        };
        let mut body = Map::new();
        let model = field("model")
            .or_else(|| query_value(&self.handshake.target, "model").map(Value::String));
        if let Some(model) = model {
            body.insert("model".into(), model);
        }
        for name in ["instructions", "tools"] {
            if let Some(value) = field(name) {
                body.insert(name.into(), value);
            }
        }
        let input = match response.get("input") {
            Some(Value::Array(items)) => Value::Array(items.clone()),
            _ => Value::Array(self.conversation.iter().cloned().collect()),
        };
        body.insert("input".into(), input);
        body.insert("stream".into(), Value::Bool(true));
        Value::Object(body)
    }

    fn on_server_event(
        &mut self,
        kind: &str,
        message: WebSocketMessage,
        out: &mut Vec<PairedExchange>,
    ) {
        let terminal = matches!(
            kind,
            "response.completed" | "response.incomplete" | "response.failed" | "response.done"
        );
        let error = kind == "error";
        if !kind.starts_with("response.") && !error {
            return;
        }
        if self.current.is_none() {
            // An error with no response asked for is about something else (a session update).
            if error && self.pending.is_empty() {
                return;
            }
            self.current = Some(ResponseInProgress {
                events: Vec::new(),
                bytes: 0,
                completeness: Completeness::Complete,
                ts_ns: message.ts_ns,
                end_ts_ns: message.ts_ns,
            });
        }
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if message.completeness != Completeness::Complete {
            current.completeness = Completeness::Truncated;
        }
        current.end_ts_ns = message.end_ts_ns;
        if terminal {
            if let Ok(event) = serde_json::from_slice::<Value>(&message.payload) {
                self.remember_output(&event);
            }
        }
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let text = String::from_utf8(message.payload)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if current.bytes + text.len() > self.limit {
            current.completeness = Completeness::Truncated;
        } else {
            current.bytes += text.len();
            current.events.push(SseEvent {
                event: None,
                data: text,
                id: None,
            });
        }
        if terminal || error {
            if let Some(done) = self.current.take() {
                self.response_ended(done, out);
            }
        }
    }

    /// The finished response's output items: a Realtime conversation grows by them, and a
    /// Responses follow-up may continue them.
    fn remember_output(&mut self, event: &Value) {
        let Some(response) = event.get("response") else {
            return;
        };
        let items: Vec<Value> = response
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match self.api {
            Api::Realtime => items.into_iter().for_each(|item| self.remember_item(item)),
            Api::Responses => {
                if let Some(id) = response.get("id").and_then(Value::as_str) {
                    if self.outputs.len() >= MAX_REMEMBERED_RESPONSES {
                        self.outputs.pop_front();
                    }
                    self.outputs.push_back((id.to_string(), items));
                }
            }
        }
    }

    /// A response is whole: it answers the oldest `response.create` not answered yet, or
    /// waits for it.
    fn response_ended(&mut self, response: ResponseInProgress, out: &mut Vec<PairedExchange>) {
        match self.pending.pop_front() {
            Some(request) => out.push(self.exchange(Some(request), Some(response))),
            None => {
                if self.finished.len() >= MAX_PENDING {
                    if let Some(oldest) = self.finished.pop_front() {
                        out.push(self.exchange(None, Some(oldest)));
                    }
                }
                self.finished.push_back(response);
            }
        }
    }

    fn exchange(
        &self,
        request: Option<PendingRequest>,
        response: Option<ResponseInProgress>,
    ) -> PairedExchange {
        let ts_ns = response.as_ref().map_or(0, |r| r.ts_ns);
        let (body, request_completeness, request_ts) = match request {
            Some(request) => (request.body, request.completeness, request.ts_ns),
            // The request was sent before capture began.
            None => (Vec::new(), Completeness::Truncated, ts_ns),
        };
        let request = HttpRequest {
            method: "POST".into(),
            target: self.handshake.target.clone(),
            headers: self.handshake.request_headers.clone(),
            body_len: body.len(),
            body,
            completeness: request_completeness,
            over_budget: false,
            ts_ns: request_ts,
        };
        let mut headers: Vec<Header> = self.handshake.response_headers.clone();
        if header(&headers, "content-type").is_none() {
            headers.push(Header {
                name: "content-type".into(),
                value: "application/json".into(),
            });
        }
        let response = response.map(|done| HttpResponse {
            status: 200,
            reason: String::new(),
            headers,
            body: Vec::new(),
            body_len: done.bytes,
            stream: Some(StreamedBody::Sse(done.events)),
            completeness: done.completeness,
            over_budget: false,
            ts_ns: done.ts_ns,
            end_ts_ns: done.end_ts_ns,
        });
        PairedExchange {
            request,
            response,
            protocol: WireProtocol::WebSocket,
        }
    }

    /// The connection ended: requests still waiting, and the response in flight, come out
    /// flagged (the dialect marks a stream without its terminal event partial).
    pub fn finish(&mut self, out: &mut Vec<PairedExchange>) {
        if let Some(mut current) = self.current.take() {
            current.completeness = Completeness::Truncated;
            self.response_ended(current, out);
        }
        for response in std::mem::take(&mut self.finished) {
            out.push(self.exchange(None, Some(response)));
        }
        while let Some(request) = self.pending.pop_front() {
            out.push(self.exchange(Some(request), None));
        }
    }
}

/// The value of `name` in a target's query string.
fn query_value(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
