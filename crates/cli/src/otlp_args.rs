//! `--otlp-*`: OTLP export options shared by `collect` and `replay` (a recording is one more
//! source, and exports what its live run exported). Without `--otlp-endpoint`, the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (and `OTEL_EXPORTER_OTLP_PROTOCOL`) say where to export, as
//! for any OpenTelemetry SDK: what a DaemonSet sets in its environment (deploy/daemonset.yaml).

use agentscope_otlp::{Endpoint, OtlpOptions, OtlpSink, Protocol};
use clap::Args;

/// The OpenTelemetry SDKs' variables, read when the options do not say.
const ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const PROTOCOL_VARIABLE: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

#[derive(Args, Debug, Clone)]
pub struct OtlpArgs {
    /// Export LLM calls, tool calls, MCP requests and agent runs as OpenTelemetry GenAI spans,
    /// and findings and incidents as log records, to the OpenTelemetry Collector at URL
    /// (`http://HOST:4317` for gRPC, `http://HOST:4318` for HTTP/protobuf; default:
    /// $OTEL_EXPORTER_OTLP_ENDPOINT; docs/otlp.md). Capture never waits on it: what cannot be
    /// sent is dropped and counted in the summary.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub otlp_endpoint: Option<Endpoint>,
    /// OTLP transport: grpc or http/protobuf (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc
    /// on port 4317 and http/protobuf on any other).
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<Protocol>,
    /// Also export content: prompts, model output, tool arguments and results (off by
    /// default, as the GenAI conventions make content opt-in). Secrets in it are redacted
    /// unless the capture keeps them (--keep-secrets).
    #[arg(long)]
    pub otlp_content: bool,
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text)
}

/// A variable's value, when set and not empty.
fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl OtlpArgs {
    /// Where to export and how, from the options or else the environment; `None` when
    /// neither asks for export.
    fn target(&self) -> anyhow::Result<Option<(Endpoint, Protocol)>> {
        let endpoint = match &self.otlp_endpoint {
            Some(endpoint) => endpoint.clone(),
            None => match variable(ENDPOINT_VARIABLE) {
                Some(text) => Endpoint::parse(text.trim())
                    .map_err(|err| anyhow::anyhow!("{ENDPOINT_VARIABLE}: {err}"))?,
                None if self.otlp_protocol.is_some() || self.otlp_content => {
                    anyhow::bail!(
                        "--otlp-protocol and --otlp-content need --otlp-endpoint (or \
                         {ENDPOINT_VARIABLE})"
                    )
                }
                None => return Ok(None),
            },
        };
        let protocol = match self.otlp_protocol {
            Some(protocol) => protocol,
            None => match variable(PROTOCOL_VARIABLE) {
                Some(text) => text
                    .trim()
                    .parse()
                    .map_err(|err| anyhow::anyhow!("{PROTOCOL_VARIABLE}: {err}"))?,
                None => Protocol::for_endpoint(&endpoint),
            },
        };
        Ok(Some((endpoint, protocol)))
    }

    /// The sink, when export was asked for; `node` names the node in every resource and
    /// `keep_secrets` says whether content keeps its secrets. Also returns the line that says
    /// where export goes, for the caller to print when it suits (`collect` prints it after
    /// the line scripts wait for).
    pub fn sink(
        &self,
        node: Option<String>,
        keep_secrets: bool,
    ) -> anyhow::Result<Option<(OtlpSink, String)>> {
        let Some((endpoint, protocol)) = self.target()? else {
            return Ok(None);
        };
        let mut options = OtlpOptions::new(endpoint.clone(), Some(protocol));
        options.content = self.otlp_content;
        options.keep_secrets = keep_secrets;
        options.node_name = node;
        let sink = OtlpSink::start(&options)
            .map_err(|err| anyhow::anyhow!("OTLP export to {}: {err}", endpoint.base))?;
        let message = format!(
            "agentscope: exporting to {} over OTLP {protocol}{}",
            endpoint.base,
            if self.otlp_content {
                ", content included (redacted)"
            } else {
                ""
            }
        );
        Ok(Some((sink, message)))
    }
}
