//! An HTTP request's body as JSON, parsed at most once per exchange and shared by the
//! interpreters that read it.
//!
//! The interpreters are tried in order ([`super::http_interpreters`]): MCP looks for
//! JSON-RPC first, then the LLM APIs read the same body, then the vector databases. Each used
//! to parse the body into its own `serde_json::Value`, so a chat request (the whole
//! conversation history) was parsed twice before it became an LLM call; parsing is most of
//! what recognising a call costs. Here the first reader parses it and the others borrow that.

use std::cell::OnceCell;

use serde_json::Value;

use crate::http::HttpRequest;

/// The request body of one exchange, parsed on first use.
pub struct RequestJson<'a> {
    body: &'a [u8],
    parsed: OnceCell<Option<Value>>,
}

impl<'a> RequestJson<'a> {
    /// Nothing is parsed until [`RequestJson::get`] is called.
    pub fn new(request: &'a HttpRequest) -> Self {
        RequestJson {
            body: &request.body,
            parsed: OnceCell::new(),
        }
    }

    /// The body parsed as JSON, `None` when it is not JSON (as [`HttpRequest::json`]).
    pub fn get(&self) -> Option<&Value> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(self.body).ok())
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
        }
    }
}
