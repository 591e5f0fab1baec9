//! Where and how to export: the endpoint, the OTLP protocol (chosen from the port when not
//! given), the TLS files of an `https://` endpoint, whether payload content goes too, and the
//! node's name for the resource.

use std::fmt;

use crate::tls::TlsFiles;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies, to `/v1/traces` and `/v1/logs` (port 4318).
    HttpProtobuf,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// The protocol an endpoint's port implies: gRPC on 4317, else HTTP/protobuf (the
    /// OpenTelemetry default, whose port is 4318).
    pub fn for_endpoint(endpoint: &Endpoint) -> Self {
        if endpoint.port == 4317 {
            Protocol::Grpc
        } else {
            Protocol::HttpProtobuf
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            other => Err(format!(
                "unknown OTLP protocol {other:?}: grpc or http/protobuf"
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it: `http://HOST:PORT` or
/// `https://HOST:PORT`, optionally with a path prefix that `/v1/traces` and `/v1/logs` are
/// appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Without a trailing `/`.
    pub base: String,
    pub port: u16,
    /// `https://`: the exporter speaks TLS and verifies the server.
    pub tls: bool,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (tls, rest) = match text.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "{text}: expected http://HOST:PORT or https://HOST:PORT"
                ))
            }
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("{text}: no host"));
        }
        let port = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.contains(']') => port
                .parse::<u16>()
                .map_err(|_| format!("{text}: bad port {port:?}"))?,
            _ if tls => 443,
            _ => 80,
        };
        Ok(Self {
            base: text.trim_end_matches('/').to_string(),
            port,
            tls,
        })
    }

    /// The URL of one signal for OTLP/HTTP (`/v1/traces`, `/v1/logs`).
    pub fn signal_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Everything the OTLP sink needs to know.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    pub endpoint: Endpoint,
    pub protocol: Protocol,
    /// Export prompts, model output and tool arguments and results (redacted unless
    /// `keep_secrets`). Off by default, as the GenAI conventions make content opt-in.
    pub content: bool,
    /// With `content`: leave secrets in (the capture was asked to keep them).
    pub keep_secrets: bool,
    /// What to trust and present over TLS (`https://` endpoints only).
    pub tls: TlsFiles,
    /// `k8s.node.name` on every resource.
    pub node_name: Option<String>,
    /// Items (spans and log records) waiting for the exporter; more are dropped and counted.
    pub queue_items: usize,
}

impl OtlpOptions {
    pub fn new(endpoint: Endpoint, protocol: Option<Protocol>) -> Self {
        let protocol = protocol.unwrap_or_else(|| Protocol::for_endpoint(&endpoint));
        Self {
            endpoint,
            protocol,
            content: false,
            keep_secrets: false,
            tls: TlsFiles::default(),
            node_name: None,
            queue_items: DEFAULT_QUEUE_ITEMS,
        }
    }
}

/// About a minute of a busy agent's spans; each holds a few hundred bytes of attributes (more
/// with content), so the queue stays within a few MiB.
pub const DEFAULT_QUEUE_ITEMS: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_protocols() {
        let grpc = Endpoint::parse("http://otel-collector.observability:4317").unwrap();
        assert_eq!(grpc.port, 4317);
        assert_eq!(Protocol::for_endpoint(&grpc), Protocol::Grpc);
        let http = Endpoint::parse("http://127.0.0.1:4318/").unwrap();
        assert_eq!(Protocol::for_endpoint(&http), Protocol::HttpProtobuf);
        assert_eq!(
            http.signal_url("/v1/traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
        let prefixed = Endpoint::parse("http://gw:8080/otlp").unwrap();
        assert_eq!(
            prefixed.signal_url("/v1/logs"),
            "http://gw:8080/otlp/v1/logs"
        );
        assert_eq!(Endpoint::parse("http://collector").unwrap().port, 80);
        let tls = Endpoint::parse("https://collector:4317").unwrap();
        assert!(tls.tls && !grpc.tls);
        assert_eq!(Protocol::for_endpoint(&tls), Protocol::Grpc);
        assert_eq!(Endpoint::parse("https://collector/otlp").unwrap().port, 443);
        assert!(Endpoint::parse("ftp://collector:4318").is_err());
        assert!(Endpoint::parse("collector:4318").is_err());
        assert!(Endpoint::parse("http://c:99999").is_err());
        assert_eq!("grpc".parse::<Protocol>(), Ok(Protocol::Grpc));
        assert!("thrift".parse::<Protocol>().is_err());
    }
}
