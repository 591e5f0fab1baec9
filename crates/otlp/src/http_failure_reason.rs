//! The reason an OTLP/HTTP request failed, kept for the user. The exporter of
//! `opentelemetry-otlp` turns every failure of its HTTP client into "network error", which does
//! not tell a refused connection from an untrusted certificate; this client wraps the real one
//! and keeps the last failure's whole chain of causes (for example hyper's "client error
//! (Connect)" and under it rustls's "invalid peer certificate: UnknownIssuer"), which the
//! export thread adds to the error it reports.

use std::fmt;
use std::sync::{Arc, Mutex};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// The last failure's reason, shared between the client and the export thread.
#[derive(Debug, Clone, Default)]
pub struct FailureReason(Arc<Mutex<Option<String>>>);

impl FailureReason {
    /// The reason of the last failure since the last call.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set(&self, reason: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }
}

/// An HTTP client that records why its requests fail.
pub struct ReasonKeepingClient<C> {
    inner: C,
    reason: FailureReason,
}

impl<C> ReasonKeepingClient<C> {
    pub fn new(inner: C, reason: FailureReason) -> Self {
        Self { inner, reason }
    }
}

impl<C> fmt::Debug for ReasonKeepingClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReasonKeepingClient")
    }
}

#[async_trait::async_trait]
impl<C: HttpClient> HttpClient for ReasonKeepingClient<C> {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        self.inner.send_bytes(request).await.inspect_err(|err| {
            self.reason.set(causes(err.as_ref()));
        })
    }
}

/// An error and its sources, `: `-separated, each said once (wrappers often repeat their
/// source's message).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = vec![err.to_string()];
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        next = cause.source();
    }
    said.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source, as hyper's and rustls's nest.
    #[derive(Debug)]
    struct Nested(&'static str, Option<Box<Nested>>);

    impl fmt::Display for Nested {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Nested {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn every_cause_is_said_once() {
        let rustls = Nested("invalid peer certificate: UnknownIssuer", None);
        // An io::Error in between that repeats its source's message.
        let io = Nested(
            "invalid peer certificate: UnknownIssuer",
            Some(Box::new(rustls)),
        );
        let hyper = Nested("client error (Connect)", Some(Box::new(io)));
        assert_eq!(
            causes(&hyper),
            "client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(causes(&Nested("refused", None)), "refused");
    }
}
