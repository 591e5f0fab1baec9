//! Masking credentials in what reconstruction assembled: headers, targets and bodies of HTTP
//! exchanges, and text an LLM call streamed in fragments. Chunk-level redaction in the
//! collector cannot see secrets split across chunks or inside compressed bodies; this pass can.

use std::borrow::Cow;

use crate::redact;

use super::http::{HttpExchange, StreamedBody};
use super::llm::LlmCall;

/// Masks credentials in an exchange's headers, target and bodies.
pub fn redact_exchange(exchange: &mut HttpExchange) {
    let headers = exchange.request.headers.iter_mut().chain(
        exchange
            .response
            .iter_mut()
            .flat_map(|r| r.headers.iter_mut()),
    );
    for header in headers {
        let masked = match redact::redact_header_value(&header.name, &header.value) {
            Cow::Owned(masked) => Some(masked),
            Cow::Borrowed(_) => None,
        };
        if let Some(masked) = masked {
            header.value = masked;
        }
    }
    redact_string(&mut exchange.request.target);
    redact::redact_in_place(&mut exchange.request.body);
    if let Some(response) = exchange.response.as_mut() {
        redact::redact_in_place(&mut response.body);
        match response.stream.as_mut() {
            Some(StreamedBody::Sse(events)) => {
                events.iter_mut().for_each(|e| redact_string(&mut e.data))
            }
            Some(StreamedBody::Ndjson(lines)) => lines.iter_mut().for_each(redact_string),
            None => {}
        }
    }
}

pub fn redact_string(text: &mut String) {
    let mut bytes = std::mem::take(text).into_bytes();
    redact::redact_in_place(&mut bytes);
    *text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// Text a model streamed in fragments (tool-call arguments, output) is whole only once the
/// call is assembled: a secret split across events is masked here.
pub fn redact_llm_call(call: &mut LlmCall) {
    for tool_call in &mut call.tool_calls {
        redact::redact_json(&mut tool_call.arguments);
    }
    for result in &mut call.tool_results {
        redact_string(&mut result.content);
        if let Some(arguments) = &mut result.arguments {
            redact::redact_json(arguments);
        }
    }
    for text in [
        &mut call.output_text,
        &mut call.last_user_message,
        &mut call.system_prompt,
    ]
    .into_iter()
    .flatten()
    {
        redact_string(text);
    }
}
