//! Redaction of secrets before any byte leaves the collector: one policy, described in
//! docs/redaction.md, decided here and nowhere else.
//!
//! - [`EventRedactor`] is applied by the collector to every event as it is decoded, before
//!   anything else sees it: `data` payloads per reassembled stream ([`StreamRedactor`], so a
//!   secret split across writes or 16 KiB chunks is masked in every chunk, and the PostgreSQL
//!   password message is found by its framing, and HTTP/2 header values inside HPACK blocks
//!   by the frames and representations around them), `exec` argv ([`redact_argv`]). JSON lines, the
//!   `.cap` recording, served streams, the console and the graph all start from these events.
//! - Reconstruction masks again what only it can see: bodies after de-chunking and
//!   decompression, parsed headers and request targets, and tool-call arguments assembled from
//!   streamed fragments ([`redact_in_place`], [`redact_header_value`], [`redact_json`]).
//!
//! Names are judged by one classifier ([`secret_names::is_secret_name`]) wherever a name stands
//! next to a value. Every masked byte becomes `*`, so lengths, offsets, `Content-Length` and
//! chunk sizes still line up.

mod argv;
mod http2_headers;
mod postgres_password;
mod scanner;
pub mod secret_names;
mod stream;

#[cfg(test)]
mod property_tests;

pub use argv::redact_argv;
pub use http2_headers::MAX_TABLE_BYTES as MAX_HPACK_TABLE_BYTES;
pub use stream::{ChunkPlace, StreamKey, StreamRedactor, CARRY_BYTES, MAX_STREAMS};

// The layer below, under the name this crate's modules use for it.
pub(crate) use agentscope_event::event;

use std::borrow::Cow;

use crate::event::{Event, EventBody, PayloadSource};
use secret_names::{is_secret_name, NameContext};

/// Overwrites secret values in `buf` (a whole payload, seen at once); returns how many were
/// redacted.
pub fn redact_in_place(buf: &mut [u8]) -> usize {
    scanner::scan(buf).count
}

/// The value of one parsed header with any credential masked (same rules as for raw bytes):
/// borrowed when nothing was masked, as for most headers (reconstruction asks for every header
/// of every exchange).
pub fn redact_header_value<'v>(name: &str, value: &'v str) -> Cow<'v, str> {
    let mut line = Vec::with_capacity(name.len() + 2 + value.len());
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b": ");
    line.extend_from_slice(value.as_bytes());
    if redact_in_place(&mut line) == 0 {
        return Cow::Borrowed(value);
    }
    Cow::Owned(String::from_utf8_lossy(&line[name.len() + 2..]).into_owned())
}

/// Masks secrets inside a parsed JSON value (a tool call's arguments assembled from streamed
/// fragments): string values of secret-named keys entirely, other strings by the payload rules.
pub fn redact_json(value: &mut serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            let mut bytes = text.clone().into_bytes();
            let count = redact_in_place(&mut bytes);
            if count > 0 {
                *text = String::from_utf8_lossy(&bytes).into_owned();
            }
            count
        }
        Value::Array(items) => items.iter_mut().map(redact_json).sum(),
        Value::Object(fields) => fields
            .iter_mut()
            .map(|(key, field)| match field {
                Value::String(text)
                    if is_secret_name(key.as_bytes(), NameContext::Field)
                        && !text.chars().all(|c| c == '*') =>
                {
                    *text = "*".repeat(text.len());
                    1
                }
                other => redact_json(other),
            })
            .sum(),
        _ => 0,
    }
}

/// Redacts events as the collector decodes them: the single place where captured bytes are
/// masked before they go anywhere.
#[derive(Debug, Default)]
pub struct EventRedactor {
    streams: StreamRedactor,
}

impl EventRedactor {
    /// Masks the secrets `event` carries; returns how many values were masked.
    pub fn redact(&mut self, event: &mut Event) -> usize {
        let pid = event.header.pid;
        match &mut event.body {
            EventBody::Data {
                source,
                direction,
                fd,
                conn_id,
                data,
                call_id,
                seq,
                lost_bytes,
                last,
                offset,
                total_len,
                ..
            } => {
                let connection = if *source == PayloadSource::Tls {
                    *conn_id
                } else {
                    *fd as u64
                };
                let key = StreamKey {
                    pid,
                    source: *source,
                    direction: *direction,
                    connection,
                };
                let place = ChunkPlace {
                    call_id: *call_id,
                    seq: *seq,
                    lost_bytes: *lost_bytes,
                    last: *last,
                    offset: *offset,
                    total_len: *total_len,
                };
                self.streams.redact_chunk_at(key, *fd, Some(place), data)
            }
            EventBody::Exec { argv, .. } => redact_argv(argv),
            EventBody::Close { fd } => {
                self.streams.forget_fd(pid, *fd);
                0
            }
            _ => 0,
        }
    }

    /// Streams whose state is kept now (at most [`MAX_STREAMS`]).
    pub fn tracked_streams(&self) -> usize {
        self.streams.tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_inside_json_strings_are_masked() {
        let body = br#"{"tool_calls":[{"function":{"arguments":"{\"url\": \"http://x\", \"headers\": {\"Authorization\": \"Bearer abc.def\"}, \"api_key\": \"sk-1\\\\2\"}"}}]}"#;
        let mut buf = body.to_vec();
        redact_in_place(&mut buf);
        let out = String::from_utf8(buf).unwrap();
        assert!(
            !out.contains("Bearer abc.def") && !out.contains("sk-1"),
            "{out}"
        );
        assert!(out.contains(r#"\"url\": \"http://x\""#), "{out}");
        // Still JSON, of the same length.
        assert_eq!(out.len(), body.len());
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        let arguments = value["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let arguments: serde_json::Value = serde_json::from_str(arguments).unwrap();
        assert!(arguments["headers"]["Authorization"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c == '*'));
    }

    #[test]
    fn private_keys_are_masked_also_inside_json() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACB\n-----END OPENSSH PRIVATE KEY-----\n";
        let mut buf = key.as_bytes().to_vec();
        assert_eq!(redact_in_place(&mut buf), 1);
        let out = String::from_utf8(buf).unwrap();
        assert!(
            !out.contains("b3BlbnNzaC1r") && !out.contains("QyNTUxOQ"),
            "{out}"
        );
        assert!(out.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(out.contains("-----END OPENSSH PRIVATE KEY-----"));
        let json = serde_json::json!({ "notes": key }).to_string();
        let mut buf = json.clone().into_bytes();
        redact_in_place(&mut buf);
        let out = String::from_utf8(buf).unwrap();
        assert!(!out.contains("b3BlbnNzaC1r"), "{out}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{out}"
        );
        // Certificates and public keys are not secrets.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----";
        let mut buf = cert.as_bytes().to_vec();
        assert_eq!(redact_in_place(&mut buf), 0);
    }

    #[test]
    fn tokens_in_bodies_are_masked() {
        let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLWJ5dGVz";
        let text = format!(
            "token file: {jwt}\nrun: curl -H 'Authorization: Bearer sk-live-0123456789abcdef' x\n{{\"headers\": {{\"Authorization\": \"Bearer abc\"}}, \"password\": \"hunter2\"}}\nthe bearer of good news"
        );
        let mut buf = text.clone().into_bytes();
        assert!(redact_in_place(&mut buf) >= 4);
        let out = String::from_utf8(buf).unwrap();
        assert_eq!(out.len(), text.len(), "lengths are kept");
        for secret in [jwt, "sk-live-0123456789abcdef", "hunter2", "Bearer abc"] {
            assert!(!out.contains(secret), "{secret} survived in {out}");
        }
        assert!(out.contains("the bearer of good news"), "{out}");
        assert!(out.contains("Bearer ****"), "the scheme stays: {out}");
    }

    #[test]
    fn parsed_header_values_are_masked_like_raw_ones() {
        assert_eq!(
            redact_header_value("Authorization", "Bearer sk-1234"),
            "Bearer *******"
        );
        assert_eq!(redact_header_value("x-api-key", "abc"), "***");
        assert_eq!(
            redact_header_value("Content-Type", "application/json"),
            "application/json"
        );
    }

    #[test]
    fn redacts_authorization_keeping_scheme_and_length() {
        let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer sk-proj-abc123\r\nX-Api-Key: k-999\r\n\r\n{}".to_vec();
        let len = req.len();
        assert_eq!(redact_in_place(&mut req), 2);
        let text = String::from_utf8(req).unwrap();
        assert!(
            text.contains(&format!(
                "Authorization: Bearer {}\r\n",
                "*".repeat("sk-proj-abc123".len())
            )),
            "{text}"
        );
        assert!(text.contains("X-Api-Key: *****\r\n"));
        assert!(text.contains("Host: api.openai.com"));
        assert_eq!(text.len(), len);
    }

    #[test]
    fn redacts_json_api_key_fields() {
        let mut body =
            br#"{"model":"x","api_key": "sk-live-1", "nested":{"API_KEY":"q\"w"}}"#.to_vec();
        assert_eq!(redact_in_place(&mut body), 2);
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("sk-live-1") && !text.contains("q\\\"w"),
            "{text}"
        );
        assert!(text.contains(r#""model":"x""#));
    }

    #[test]
    fn leaves_ordinary_payloads_alone() {
        let mut body = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"answer\":\"authorization is needed\"}".to_vec();
        let before = body.clone();
        assert_eq!(redact_in_place(&mut body), 0);
        assert_eq!(body, before);
    }

    #[test]
    fn never_panics_on_cut_input() {
        let full = b"Authorization: Bearer abc\r\n{\"api_key\":\"zz".to_vec();
        for cut in 0..=full.len() {
            let mut part = full[..cut].to_vec();
            redact_in_place(&mut part);
        }
    }
}
