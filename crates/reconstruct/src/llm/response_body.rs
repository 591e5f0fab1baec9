//! A response body in the form the dialects read it: missing, one JSON document, or a stream
//! of messages (SSE events or NDJSON lines, already split by the HTTP layer).

use serde_json::Value;

use crate::http::{HttpResponse, StreamedBody};
use crate::json_read::BorrowedJson;

/// One message of a streamed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamMessage<'a> {
    /// The SSE `event:` name; `None` for the default type and for NDJSON lines.
    pub event: Option<&'a str>,
    /// The SSE `data:` payload or the NDJSON line.
    pub data: &'a str,
}

impl<'a> StreamMessage<'a> {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(self.data).ok()
    }

    /// The message read in place ([`crate::json_read`]), `None` when it is not JSON.
    pub fn borrowed_json(&self) -> Option<BorrowedJson<'a>> {
        serde_json::from_str(self.data).ok()
    }
}

#[derive(Debug)]
pub(super) enum ResponseBody<'a> {
    /// No response was captured.
    Missing,
    /// A streamed body, message by message.
    Stream(Vec<StreamMessage<'a>>),
    /// One JSON document.
    Document(Value),
    /// A body that is neither: cut, corrupt, empty, or not JSON.
    Unreadable,
}

/// Reads `response` as the dialects need it. A JSON-lines body that the HTTP layer did not
/// split (no `application/x-ndjson` content type) is split here, line by line, when its first
/// line is a JSON document of its own.
pub(super) fn read(response: Option<&HttpResponse>) -> ResponseBody<'_> {
    let Some(response) = response else {
        return ResponseBody::Missing;
    };
    match &response.stream {
        Some(StreamedBody::Sse(events)) => ResponseBody::Stream(
            events
                .iter()
                .filter(|e| !e.data.is_empty())
                .map(|e| StreamMessage {
                    event: e.event.as_deref(),
                    data: e.data.as_str(),
                })
                .collect(),
        ),
        Some(StreamedBody::Ndjson(lines)) => {
            ResponseBody::Stream(ndjson(lines.iter().map(String::as_str)))
        }
        None => {
            if let Some(document) = crate::json_read::parse(&response.body) {
                return ResponseBody::Document(document);
            }
            let Ok(text) = std::str::from_utf8(&response.body) else {
                return ResponseBody::Unreadable;
            };
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let first_is_json = lines
                .next()
                .is_some_and(|l| serde_json::from_str::<Value>(l).is_ok());
            if first_is_json && lines.next().is_some() {
                ResponseBody::Stream(ndjson(text.lines()))
            } else {
                ResponseBody::Unreadable
            }
        }
    }
}

fn ndjson<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<StreamMessage<'a>> {
    lines
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|data| StreamMessage { event: None, data })
        .collect()
}

/// The elements of a JSON array that may be cut short: Gemini's `streamGenerateContent`
/// without `alt=sse` streams one array, so a truncated capture still holds its first
/// elements. Returns the elements that parsed and whether the array was closed.
pub(super) fn json_array_prefix(body: &[u8]) -> (Vec<Value>, bool) {
    let mut elements = Vec::new();
    let Some(open) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return (elements, false);
    };
    if body.get(open) != Some(&b'[') {
        return (elements, false);
    }
    let mut rest = body.get(open + 1..).unwrap_or_default();
    loop {
        let skip = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace() && *b != b',')
            .unwrap_or(rest.len());
        rest = rest.get(skip..).unwrap_or_default();
        match rest.first() {
            None => return (elements, false),
            Some(b']') => return (elements, true),
            Some(_) => {}
        }
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => {
                let used = values.byte_offset();
                elements.push(value);
                rest = rest.get(used..).unwrap_or_default();
            }
            _ => return (elements, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_prefix_recovers_whole_elements_of_a_cut_array() {
        let (all, closed) = json_array_prefix(b" [{\"a\":1},\r\n{\"b\":2}]");
        assert_eq!(all.len(), 2);
        assert!(closed);
        let (some, closed) = json_array_prefix(b"[{\"a\":1},\r\n{\"b\":");
        assert_eq!(some, vec![serde_json::json!({"a": 1})]);
        assert!(!closed);
        assert_eq!(json_array_prefix(b""), (vec![], false));
        assert_eq!(json_array_prefix(b"{}"), (vec![], false));
        assert_eq!(json_array_prefix(b"[]"), (vec![], true));
        assert_eq!(
            json_array_prefix(b"[1 2]").0,
            vec![serde_json::json!(1), serde_json::json!(2)]
        );
    }
}
