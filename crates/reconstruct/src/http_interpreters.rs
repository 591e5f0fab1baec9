//! What an HTTP exchange means: an ordered list of interpreters, each recognising one kind of
//! API call, tried in order; the first that claims an exchange decides what it becomes. An
//! exchange no interpreter claims stays a plain HTTP exchange.
//!
//! The order (see [`interpreters`]):
//! 1. MCP over Streamable HTTP ([`super::mcp::http_sessions::McpOverHttp`]), at both ends: a
//!    JSON-RPC body, or a request naming an `Mcp-Session-Id`. It goes first because a
//!    JSON-RPC call to a tool server could otherwise look like any JSON API.
//! 2. LLM APIs ([`LlmApis`], [`super::llm`]), client side only: the serving side of an LLM
//!    API (a model server on the node) is not an agent.
//! 3. Object stores ([`ObjectStores`], [`super::object_store`]), client side only.
//! 4. Vector databases ([`VectorDatabases`], [`super::vector_db`]), client side only.

use super::http::HttpExchange;
use super::llm;
use super::object_store;
use super::observation::{ObservationKind, Role};
use super::redaction;
use super::request_json::RequestJson;
use super::vector_db;

/// What an interpreter may know about the exchange beyond its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeContext {
    /// The captured process.
    pub pid: u32,
    /// Which end of the exchange the captured process is.
    pub role: Role,
    /// Mask credentials in what the interpreter extracts.
    pub redact_secrets: bool,
}

/// One kind of API carried over HTTP.
/// `Send`: a pipeline, and the interpreters it holds, may move to another thread (the console
/// builds its sources on one).
pub trait HttpInterpreter: Send {
    /// `None` when the exchange is not of this kind; otherwise the observations it becomes
    /// (possibly none: an MCP exchange may complete no record yet). `request_json` is the
    /// exchange's request body as JSON, parsed once for all the interpreters.
    fn interpret(
        &mut self,
        exchange: &HttpExchange,
        request_json: &RequestJson<'_>,
        context: &ExchangeContext,
    ) -> Option<Vec<ObservationKind>>;
}

/// The interpreters, in the order they are tried (see the module doc).
pub fn interpreters() -> Vec<Box<dyn HttpInterpreter>> {
    vec![
        Box::new(super::mcp::http_sessions::McpOverHttp::new()),
        Box::new(LlmApis),
        Box::new(ObjectStores),
        Box::new(VectorDatabases),
    ]
}

/// LLM API calls (OpenAI, Anthropic, Gemini, Ollama, ...), made by the captured process.
pub struct LlmApis;

impl HttpInterpreter for LlmApis {
    fn interpret(
        &mut self,
        exchange: &HttpExchange,
        request_json: &RequestJson<'_>,
        context: &ExchangeContext,
    ) -> Option<Vec<ObservationKind>> {
        if context.role != Role::Client {
            return None;
        }
        let mut call = llm::recognise_with_request(exchange, request_json)?;
        if context.redact_secrets {
            redaction::redact_llm_call(&mut call);
        }
        let ts_ns = exchange.request.ts_ns;
        Some(vec![ObservationKind::Llm {
            call: Box::new(call),
            host: exchange.host.clone(),
            port: exchange.port,
            user_agent: exchange.request.header("user-agent").map(str::to_string),
            end_ts_ns: exchange
                .response
                .as_ref()
                .map_or(ts_ns, |r| r.end_ts_ns.max(r.ts_ns)),
        }])
    }
}

/// Object-store requests (S3 and compatible), made by the captured process.
pub struct ObjectStores;

impl HttpInterpreter for ObjectStores {
    fn interpret(
        &mut self,
        exchange: &HttpExchange,
        _request_json: &RequestJson<'_>,
        context: &ExchangeContext,
    ) -> Option<Vec<ObservationKind>> {
        if context.role != Role::Client {
            return None;
        }
        let access = object_store::recognise(exchange)?;
        Some(vec![ObservationKind::ObjectStore {
            access: Box::new(access),
        }])
    }
}

/// Vector-database retrieval, made by the captured process.
pub struct VectorDatabases;

impl HttpInterpreter for VectorDatabases {
    fn interpret(
        &mut self,
        exchange: &HttpExchange,
        request_json: &RequestJson<'_>,
        context: &ExchangeContext,
    ) -> Option<Vec<ObservationKind>> {
        if context.role != Role::Client {
            return None;
        }
        let call = vector_db::recognise_with_request(exchange, request_json)?;
        Some(vec![ObservationKind::Retrieval {
            call: Box::new(call),
        }])
    }
}
