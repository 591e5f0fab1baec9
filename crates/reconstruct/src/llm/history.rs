//! A request's conversation so far, as one fingerprint per message: what tells the calls of
//! one conversation from another's when one process holds several (an agent serving
//! requests, chained calls). Chat APIs are stateless: each request re-sends the whole history,
//! so a request that continues a conversation holds the earlier request's messages, in order,
//! then more. The analysis layer chains calls by that (`agentscope_analysis`'s conversations).
//!
//! A fingerprint is FNV-1a (64 bits) over the message's compact JSON: deterministic across
//! runs and builds (a live run and its replay chain the same calls), and kept instead of the
//! messages themselves, so a long history costs 8 bytes a message.

use serde_json::Value;

/// Messages fingerprinted per request, at most: the first ones are what tells conversations
/// apart, and a history longer than this continues whichever conversation its first
/// [`MAX_MESSAGES`] continue.
pub const MAX_MESSAGES: usize = 512;

/// The fingerprints of `body`'s messages: the fields named in `keys`, in order, each a
/// message (an object or string: a system prompt, an `input` string) or an array of them.
pub fn message_history(body: &Value, keys: &[&str]) -> Vec<u64> {
    let mut history = Vec::new();
    for key in keys {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(messages)) => history.extend(messages.iter().map(fingerprint)),
            Some(message) => history.push(fingerprint(message)),
        }
    }
    history.truncate(MAX_MESSAGES);
    history
}

/// FNV-1a over the message's compact JSON, written straight into the hash.
fn fingerprint(message: &Value) -> u64 {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            for &byte in bytes {
                self.0 ^= u64::from(byte);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    // Writing into memory cannot fail.
    let _ = serde_json::to_writer(&mut hash, message);
    hash.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn a_system_prompt_beside_the_messages_comes_first() {
        let body = json!({"system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]});
        let history = message_history(&body, &["system", "messages"]);
        assert_eq!(history.len(), 2);
        assert_eq!(history[0], fingerprint(&json!("Be brief.")));
        assert!(message_history(&json!({"messages": 3}), &["system"]).is_empty());
    }
}
