//! An HTTP request's body as JSON, parsed at most once per exchange and shared by the
//! interpreters that read it.
//!
//! The interpreters are tried in order ([`super::http_interpreters`]): MCP looks for
//! JSON-RPC first, then the LLM APIs read the same body, then the vector databases. Each used
//! to parse the body into its own `serde_json::Value`, so a chat request (the whole
//! conversation history) was parsed twice before it became an LLM call; parsing is most of
//! what recognising a call costs. Here the first reader parses it and the others borrow that.
//!
//! The body is parsed once, in place ([`RequestJson::borrowed`]: strings borrowed from the
//! body, objects as vectors; see [`crate::json_read`]). Readers that have moved to that tree
//! (MCP's test for JSON-RPC, the OpenAI chat, Responses and Anthropic dialects: most requests
//! on a node) build nothing more; the others get a `serde_json::Value` converted from it once
//! ([`RequestJson::get`]), equal to what parsing the body into one gives. For those both
//! trees are held while the exchange is interpreted: the working room the reconstructor
//! checks a body against (`memory_budget::json_text_tree_fits`, 80 bytes a structural byte)
//! was sized for one `serde_json` tree, so for them it is a looser bound until they move.

use std::cell::OnceCell;

use serde_json::Value;

use crate::http::HttpRequest;
use crate::json_read::BorrowedJson;

/// The request body of one exchange, parsed on first use.
pub struct RequestJson<'a> {
    body: &'a [u8],
    borrowed: OnceCell<Option<BorrowedJson<'a>>>,
    owned: OnceCell<Option<Value>>,
}

impl<'a> RequestJson<'a> {
    /// Nothing is parsed until [`RequestJson::get`] is called.
    pub fn new(request: &'a HttpRequest) -> Self {
        RequestJson {
            body: &request.body,
            borrowed: OnceCell::new(),
            owned: OnceCell::new(),
        }
    }

    /// The body read in place, `None` when it is not JSON.
    pub(crate) fn borrowed(&self) -> Option<&BorrowedJson<'a>> {
        self.borrowed
            .get_or_init(|| crate::json_read::parse(self.body))
            .as_ref()
    }

    /// The body as a `serde_json::Value`, `None` when it is not JSON (as
    /// [`HttpRequest::json`]).
    pub fn get(&self) -> Option<&Value> {
        self.owned
            .get_or_init(|| self.borrowed().map(Value::from))
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &[u8]) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            target: "/".into(),
            headers: Vec::new(),
            body: body.to_vec(),
            body_len: body.len(),
            completeness: crate::http::Completeness::Complete,
            over_budget: false,
            ts_ns: 0,
        }
    }

    /// The tree converted from the in-place parse is the one parsing the body gives: numbers
    /// of each kind, escapes, duplicate keys (the last counts), nesting, non-ASCII text.
    #[test]
    fn the_converted_tree_is_the_parsed_one() {
        let body = r#"{"b":[1,-2,3.5,1e3,18446744073709551615,true,null],"a":"x\ny \u00e9 é",
            "a":{"k":"last"},"z":{"nested":[{"q":""}]}}"#;
        let json = request(body.as_bytes());
        let shared = RequestJson::new(&json);
        assert_eq!(shared.get(), json.json().as_ref());
        assert!(shared.get().is_some());
        assert_eq!(
            shared.get().and_then(|v| v.get("a")),
            Some(&serde_json::json!({"k": "last"}))
        );
    }

    #[test]
    fn reads_what_the_request_parses_to_and_keeps_it() {
        let json = request(br#"{"jsonrpc":"2.0","method":"tools/list"}"#);
        let shared = RequestJson::new(&json);
        assert_eq!(shared.get(), json.json().as_ref());
        // The second reader gets the same parse, not a new one.
        assert!(std::ptr::eq(shared.get().unwrap(), shared.get().unwrap()));
        for not_json in [&b""[..], b"name=value", b"{\"cut\": [1, 2"] {
            let other = request(not_json);
            assert_eq!(RequestJson::new(&other).get(), None);
            assert_eq!(RequestJson::new(&other).borrowed(), None);
        }
    }
}
