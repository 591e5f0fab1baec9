//! `--otlp-*`: OTLP export options shared by `collect` and `replay` (a recording is one more
//! source, and exports what its live run exported).

use agentscope_otlp::{Endpoint, OtlpOptions, OtlpSink, Protocol};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct OtlpArgs {
    /// Export LLM calls, tool calls, MCP requests and agent runs as OpenTelemetry GenAI spans,
    /// and findings and incidents as log records, to the OpenTelemetry Collector at URL
    /// (`http://HOST:4317` for gRPC, `http://HOST:4318` for HTTP/protobuf; docs/otlp.md).
    /// Capture never waits on it: what cannot be sent is dropped and counted in the summary.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub otlp_endpoint: Option<Endpoint>,
    /// OTLP transport: grpc or http/protobuf (default: grpc on port 4317, else
    /// http/protobuf).
    #[arg(long, value_name = "PROTOCOL", requires = "otlp_endpoint")]
    pub otlp_protocol: Option<Protocol>,
    /// Also export content: prompts, model output, tool arguments and results (off by
    /// default, as the GenAI conventions make content opt-in). Secrets in it are redacted
    /// unless the capture keeps them (--keep-secrets).
    #[arg(long, requires = "otlp_endpoint")]
    pub otlp_content: bool,
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text)
}

impl OtlpArgs {
    /// The sink, when export was asked for; `node` names the node in every resource and
    /// `keep_secrets` says whether content keeps its secrets.
    pub fn sink(
        &self,
        node: Option<String>,
        keep_secrets: bool,
    ) -> anyhow::Result<Option<OtlpSink>> {
        let Some(endpoint) = &self.otlp_endpoint else {
            return Ok(None);
        };
        let mut options = OtlpOptions::new(endpoint.clone(), self.otlp_protocol);
        options.content = self.otlp_content;
        options.keep_secrets = keep_secrets;
        options.node_name = node;
        let sink = OtlpSink::start(&options)
            .map_err(|err| anyhow::anyhow!("--otlp-endpoint {}: {err}", endpoint.base))?;
        Ok(Some(sink))
    }

    /// Where export goes, for the user (after the collector says it is collecting: scripts
    /// wait for that line first).
    pub fn describe(&self) -> Option<String> {
        let endpoint = self.otlp_endpoint.as_ref()?;
        let protocol = self
            .otlp_protocol
            .unwrap_or_else(|| Protocol::for_endpoint(endpoint));
        Some(format!(
            "agentscope: exporting to {} over OTLP {protocol}",
            endpoint.base
        ))
    }
}
