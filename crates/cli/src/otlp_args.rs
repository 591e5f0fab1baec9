//! `--otlp-*`: OTLP export options shared by `collect` and `replay` (a recording is one more
//! source, and exports what its live run exported). Without `--otlp-endpoint`, the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (and `OTEL_EXPORTER_OTLP_PROTOCOL`) say where to export, as
//! for any OpenTelemetry SDK: what a DaemonSet sets in its environment (deploy/daemonset.yaml).
//! So do `OTEL_EXPORTER_OTLP_CERTIFICATE`, `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY` for an
//! `https://` endpoint.

use std::path::PathBuf;

use agentscope_otlp::{Endpoint, OtlpOptions, OtlpSink, Protocol, TlsFiles};
use clap::Args;

/// The OpenTelemetry SDKs' variables, read when the options do not say.
const ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const PROTOCOL_VARIABLE: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const CA_VARIABLE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
const CLIENT_CERT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
const CLIENT_KEY_VARIABLE: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";

#[derive(Args, Debug, Clone)]
pub struct OtlpArgs {
    /// Export LLM calls, tool calls, MCP requests and agent runs as OpenTelemetry GenAI spans,
    /// and findings and incidents as log records, to the OpenTelemetry Collector at URL
    /// (`http://HOST:4317` for gRPC, `http://HOST:4318` for HTTP/protobuf, `https://` for TLS;
    /// default: $OTEL_EXPORTER_OTLP_ENDPOINT; docs/otlp.md). Capture never waits on it: what cannot be
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
    /// For an https:// endpoint: trust the CA certificates in this PEM file instead of the
    /// system's roots (default: $OTEL_EXPORTER_OTLP_CERTIFICATE).
    #[arg(long, value_name = "FILE")]
    pub otlp_ca: Option<PathBuf>,
    /// For an https:// endpoint that asks for mutual TLS: the client certificate chain (PEM;
    /// default: $OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE), with --otlp-client-key.
    #[arg(long, value_name = "FILE", requires = "otlp_client_key")]
    pub otlp_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM; default: $OTEL_EXPORTER_OTLP_CLIENT_KEY).
    #[arg(long, value_name = "FILE", requires = "otlp_client_cert")]
    pub otlp_client_key: Option<PathBuf>,
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
                None if self.otlp_protocol.is_some()
                    || self.otlp_content
                    || !self.tls_options().is_empty() =>
                {
                    anyhow::bail!(
                        "--otlp-protocol, --otlp-content and the TLS options need \
                         --otlp-endpoint (or {ENDPOINT_VARIABLE})"
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

    /// The TLS files the options name.
    fn tls_options(&self) -> TlsFiles {
        TlsFiles {
            ca: self.otlp_ca.clone(),
            client_cert: self.otlp_client_cert.clone(),
            client_key: self.otlp_client_key.clone(),
        }
    }

    /// The TLS files for `endpoint`: the options', else the SDKs' variables. The options on a
    /// plaintext endpoint are a mistake worth saying; the variables are not (a cluster may
    /// set them for every exporter), so they only apply to an `https://` endpoint.
    fn tls_files(&self, endpoint: &Endpoint) -> anyhow::Result<TlsFiles> {
        let given = self.tls_options();
        if !endpoint.tls {
            if !given.is_empty() {
                anyhow::bail!(
                    "--otlp-ca, --otlp-client-cert and --otlp-client-key are for an https:// \
                     endpoint, not {}",
                    endpoint.base
                );
            }
            return Ok(TlsFiles::default());
        }
        let from = |option: Option<PathBuf>, name: &str| {
            option.or_else(|| variable(name).map(PathBuf::from))
        };
        let (client_cert, client_key) = match (given.client_cert, given.client_key) {
            (Some(cert), Some(key)) => (Some(cert), Some(key)),
            _ => (
                variable(CLIENT_CERT_VARIABLE).map(PathBuf::from),
                variable(CLIENT_KEY_VARIABLE).map(PathBuf::from),
            ),
        };
        Ok(TlsFiles {
            ca: from(given.ca, CA_VARIABLE),
            client_cert,
            client_key,
        })
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
        options.tls = self.tls_files(&endpoint)?;
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
