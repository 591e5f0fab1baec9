//! gRPC calls read from HTTP/2 exchanges: the service and method from `:path`, the
//! length-prefixed messages of each body, the `grpc-status` trailer, and, without the
//! service's schema, the few protobuf fields callers need (a collection name is field 1 or 3
//! of a vector database's request).
//!
//! The message framing (a compression flag and a 4-byte length) and the protobuf wire format
//! needed here (varints and length-delimited fields of one message, no nesting) are a few
//! lines each, so they are read here rather than through `prost`, which needs the schema's
//! types compiled in.
//!
//! Tested on frames built in the tests, and end to end with a real grpcio client and server
//! over h2c (tests/http2_capture.rs; grpcio writes with `sendmsg` and reads with `recvmsg`).
//! grpcio over TLS is not seen: it links its own BoringSSL, which the collector does not probe.

use crate::http::HttpExchange;

/// Messages read from one body at most: a stream of tiny messages stays bounded.
const MAX_MESSAGES: usize = 1024;

/// One gRPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall<'a> {
    /// Fully qualified service (`qdrant.Points`).
    pub service: &'a str,
    /// Method (`Search`).
    pub method: &'a str,
    /// The request's messages (payloads as sent; `compressed` when the flag says so).
    pub requests: Vec<Message<'a>>,
    /// The response's messages.
    pub responses: Vec<Message<'a>>,
    /// `grpc-status` from the trailers (or a trailers-only response); `None` if not seen.
    pub status: Option<u32>,
}

/// One length-prefixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub compressed: bool,
    pub payload: &'a [u8],
}

/// The gRPC call `exchange` is, if it is one (`content-type: application/grpc…` and a
/// `/service/method` path).
pub fn recognise(exchange: &HttpExchange) -> Option<GrpcCall<'_>> {
    let request = &exchange.request;
    let content_type = request.header("content-type")?;
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/grpc")
    {
        return None;
    }
    let (service, method) = request.path().strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    let response = exchange.response.as_ref();
    Some(GrpcCall {
        service,
        method,
        requests: messages(&request.body),
        responses: response.map_or_else(Vec::new, |r| messages(&r.body)),
        status: response
            .and_then(|r| r.header("grpc-status"))
            .and_then(|s| s.trim().parse().ok()),
    })
}

/// The length-prefixed messages of a body; a message cut short ends the list.
pub fn messages(body: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 5 && out.len() < MAX_MESSAGES {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(payload) = rest.get(5..5 + len) else {
            break;
        };
        out.push(Message {
            compressed: rest[0] & 1 != 0,
            payload,
        });
        rest = &rest[5 + len..];
    }
    out
}

/// A protobuf field's value, schema-less.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed64(u64),
    Fixed32(u32),
}

/// The top-level fields of a protobuf message, in order; reading stops at the first byte
/// that is not valid wire format (what came before is kept).
pub fn fields(message: &[u8]) -> Vec<(u32, FieldValue<'_>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let Some((key, used)) = varint(&message[at..]) else {
            break;
        };
        at += used;
        let Ok(number) = u32::try_from(key >> 3) else {
            break;
        };
        let value = match key & 7 {
            0 => match varint(&message[at..]) {
                Some((v, used)) => {
                    at += used;
                    FieldValue::Varint(v)
                }
                None => break,
            },
            1 => match message.get(at..at + 8) {
                Some(b) => {
                    at += 8;
                    FieldValue::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or_default()))
                }
                None => break,
            },
            2 => {
                let Some((len, used)) = varint(&message[at..]) else {
                    break;
                };
                at += used;
                let Some(bytes) = usize::try_from(len)
                    .ok()
                    .and_then(|len| message.get(at..at.checked_add(len)?))
                else {
                    break;
                };
                at += bytes.len();
                FieldValue::Bytes(bytes)
            }
            5 => match message.get(at..at + 4) {
                Some(b) => {
                    at += 4;
                    FieldValue::Fixed32(u32::from_le_bytes(b.try_into().unwrap_or_default()))
                }
                None => break,
            },
            _ => break,
        };
        out.push((number, value));
    }
    out
}

/// Field `number` of `message` as UTF-8 text, if it is one.
pub fn string_field(message: &[u8], number: u32) -> Option<String> {
    fields(message)
        .into_iter()
        .find_map(|(n, value)| match value {
            FieldValue::Bytes(bytes) if n == number => {
                std::str::from_utf8(bytes).ok().map(str::to_string)
            }
            _ => None,
        })
}

/// Field `number` of `message` as an unsigned integer, if it is a varint.
pub fn varint_field(message: &[u8], number: u32) -> Option<u64> {
    fields(message)
        .into_iter()
        .find_map(|(n, value)| match value {
            FieldValue::Varint(v) if n == number => Some(v),
            _ => None,
        })
}

fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fields_are_read_and_bad_bytes_stop_reading() {
        // SearchPoints { collection_name: "docs" (1), vector: [..] (2, packed), limit: 3 (4) }
        let mut search = vec![0x0a, 4];
        search.extend(b"docs");
        search.extend([0x12, 8]);
        search.extend(1.0f32.to_le_bytes());
        search.extend(0.5f32.to_le_bytes());
        search.extend([0x20, 3]);
        let mut body = vec![0, 0, 0, 0, search.len() as u8];
        body.extend(&search);
        body.extend([1, 0, 0, 0, 2, 0x08, 0x01]);
        body.extend([0, 0, 0, 9, 9]); // cut short
        let read = messages(&body);
        assert_eq!(read.len(), 2);
        assert!(!read[0].compressed && read[1].compressed);
        assert_eq!(string_field(read[0].payload, 1).as_deref(), Some("docs"));
        assert_eq!(varint_field(read[0].payload, 4), Some(3));
        assert_eq!(
            fields(&[0x0a, 200, 1, b'x']).len(),
            0,
            "length beyond the message"
        );
        assert_eq!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).len(),
            0
        );
    }
}
