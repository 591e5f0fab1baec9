//! A request's conversation so far, as one fingerprint per message: what tells the calls of
//! one conversation from another's when one process holds several (an agent serving
//! requests, chained calls). Chat APIs are stateless: each request re-sends the whole history,
//! so a request that continues a conversation holds the earlier request's messages, in order,
//! then more. The analysis layer chains calls by that (`agentscope_analysis`'s conversations).
//!
//! A fingerprint is a 64-bit hash of the message's JSON value, walked in place: every
//! string, number and literal with a tag for its kind, arrays and objects with their lengths,
//! object keys sorted (one per key, as `serde_json` reads them), so two messages have the
//! same fingerprint when they are the same JSON value (however the client spaced or ordered
//! it) and, but for a 2^-64 chance, only then. Deterministic across runs and builds (a live
//! run and its replay chain the same calls), and kept instead of the messages themselves, so
//! a long history costs 8 bytes a message. It used to be FNV-1a over the message's compact
//! JSON, serialised for the purpose: a byte at a time, 5% of a replay of the recorded mix;
//! here whole words are mixed and nothing is serialised. Fingerprints live only in memory
//! (conversations are not saved in keyframes), so changing the function changes no output.
//! Either tree a dialect reads ([`crate::json_read`]) gives a message the same fingerprint.

use crate::json_read::{JsonRead, Shape};

/// Messages fingerprinted per request, at most: the first ones are what tells conversations
/// apart, and a history longer than this continues whichever conversation its first
/// [`MAX_MESSAGES`] continue.
pub const MAX_MESSAGES: usize = 512;

/// The fingerprints of `body`'s messages: the fields named in `keys`, in order, each a
/// message (an object or string: a system prompt, an `input` string) or an array of them.
pub(crate) fn message_history<J: JsonRead>(body: &J, keys: &[&str]) -> Vec<u64> {
    let mut history = Vec::new();
    for key in keys {
        let Some(value) = body.field(key) else {
            continue;
        };
        match value.shape() {
            Shape::Null => {}
            Shape::Array(messages) => history.extend(messages.iter().map(fingerprint)),
            _ => history.push(fingerprint(value)),
        }
    }
    history.truncate(MAX_MESSAGES);
    history
}

/// The message's fingerprint (see the module doc).
fn fingerprint<J: JsonRead>(message: &J) -> u64 {
    let mut hash = WordHash(0x243f_6a88_85a3_08d3);
    hash.value(message);
    hash.0
}

/// A hash fed whole 64-bit words, each folded in with a full 64x64->128-bit multiply (the
/// mixing step of wyhash and foldhash): every input bit reaches every output bit.
struct WordHash(u64);

impl WordHash {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn word(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(Self::MULTIPLIER);
        // The high and low halves folded together (truncations intended).
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    /// A byte string, its length first (so the end of one string is never the start of
    /// the next), then eight bytes at a time, the last word zero-padded.
    fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.word(u64::from_le_bytes(word));
        }
    }

    /// A JSON value: a tag for its kind, then its content.
    fn value<J: JsonRead>(&mut self, value: &J) {
        match value.shape() {
            Shape::Null => self.word(0),
            Shape::Bool(false) => self.word(1),
            Shape::Bool(true) => self.word(2),
            Shape::Unsigned(n) => {
                self.word(3);
                self.word(n);
            }
            Shape::Signed(n) => {
                self.word(4);
                self.word(n as u64);
            }
            Shape::Float(n) => {
                self.word(5);
                self.word(n.to_bits());
            }
            Shape::Text(text) => {
                self.word(6);
                self.bytes(text.as_bytes());
            }
            Shape::Array(items) => {
                self.word(7);
                self.word(items.len() as u64);
                for item in items {
                    self.value(item);
                }
            }
            Shape::Object => {
                let fields = value.fields_by_key();
                self.word(8);
                self.word(fields.len() as u64);
                for (key, field) in fields {
                    self.bytes(key.as_bytes());
                    self.value(field);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_continued_conversation_starts_with_the_earlier_requests_messages() {
        let first = json!({"messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "How healthy is account 42?"},
        ]});
        let second = json!({"messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "How healthy is account 42?"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ]});
        let other = json!({"messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Triage SUP-4711."},
        ]});
        let (first, second, other) = (
            message_history(&first, &["messages"]),
            message_history(&second, &["messages"]),
            message_history(&other, &["messages"]),
        );
        assert_eq!(first.len(), 2);
        assert!(second.starts_with(&first));
        assert_eq!(other[0], first[0], "the same system prompt");
        assert!(!other.starts_with(&first));
    }

    /// The fingerprint of a message is the same from either tree, however its keys are
    /// ordered, with duplicate keys read as serde_json reads them (the last counts).
    #[test]
    fn both_trees_give_a_message_the_same_fingerprint() {
        use crate::json_read::BorrowedJson;
        let text = r#"{"messages":[
            {"role":"user","content":[{"type":"text","text":"a\u00e9"}],"n":-1,"f":0.5,"b":true,"z":null,"u":7},
            {"content":"x","role":"assistant","role":"tool"}]}"#;
        let owned: Value = serde_json::from_str(text).unwrap();
        let borrowed: BorrowedJson = serde_json::from_str(text).unwrap();
        let history = message_history(&owned, &["messages"]);
        assert_eq!(history.len(), 2);
        assert_eq!(message_history(&borrowed, &["messages"]), history);
        let reordered = r#"{"messages":[
            {"u":7,"b":true,"z":null,"f":0.5,"n":-1,"content":[{"text":"a\u00e9","type":"text"}],"role":"user"},
            {"role":"tool","content":"x"}]}"#;
        let reordered: BorrowedJson = serde_json::from_str(reordered).unwrap();
        assert_eq!(message_history(&reordered, &["messages"]), history);
        let other: BorrowedJson =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"a"}]}"#).unwrap();
        assert_ne!(message_history(&other, &["messages"])[0], history[0]);
    }

    #[test]
    fn a_system_prompt_beside_the_messages_comes_first() {
        let body = json!({"system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]});
        let history = message_history(&body, &["system", "messages"]);
        assert_eq!(history.len(), 2);
        assert_eq!(history[0], fingerprint(&json!("Be brief.")));
        assert!(message_history(&json!({"messages": 3}), &["system"]).is_empty());
    }
}
