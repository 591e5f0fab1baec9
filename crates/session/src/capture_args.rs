//! How live capture runs: which processes, which payloads, how large a ring buffer, whether
//! secrets are kept, and where pod identity comes from. `agentscope collect` and the live
//! console (`agentscope tui`) flatten the same struct, so each flag is defined, documented and
//! turned into collector and identity options once.

use std::path::PathBuf;

use agentscope_analysis::model::ModelOptions;
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::CaptureMetadata;
use agentscope_event::process_table::ProcessTable;
use agentscope_identity::{IdentityOptions, IdentityResolver, KubernetesSource};
use agentscope_kernel::CollectorOptions;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct CaptureArgs {
    /// Trace only this process and its descendants; repeat for several.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Copy no payload (TLS plaintext, socket and pipe bytes) of this process and of the
    /// children it starts; repeat for several. Its other events (exec, connect, opens, DNS)
    /// are still captured and its payload bytes counted (the summary's
    /// `kernel.payloads_off_bytes`). For a trusted process that moves much data: what it
    /// says and receives is then not seen, analysed nor recorded.
    #[arg(long = "no-payloads-of", value_name = "PID")]
    pub payloads_off: Vec<u32>,
    /// Keep credentials (Authorization headers, API keys) in captured payloads.
    #[arg(long)]
    pub keep_secrets: bool,
    /// Do not capture plain (non-TLS) socket payloads.
    #[arg(long)]
    pub no_socket_data: bool,
    /// Do not capture JSON over pipes and socketpairs (MCP servers on stdio).
    #[arg(long)]
    pub no_pipe_data: bool,
    /// Send every file open from the kernel, runtime noise too: read-only opens of interpreter
    /// modules, shared libraries, locale and time-zone data are otherwise left out in the
    /// kernel and only counted (the summary's `kernel.noise_opens_filtered`). For investigating
    /// what an interpreter loads; costs a record per open.
    #[arg(long)]
    pub keep_runtime_noise: bool,
    /// Keep copying the payloads of plain sockets whose first bytes are no protocol agentscope
    /// reads (HTTP/1 and 2, PostgreSQL, Redis): otherwise, once reconstruction has seen such a
    /// socket's start, the kernel stops copying it and only counts its bytes (the summary's
    /// `kernel.opaque_socket_bytes`). For recording raw traffic a later version may read.
    #[arg(long)]
    pub copy_opaque_payloads: bool,
    /// Keep the payloads (plain and TLS) of one inet connection in N, chosen at random when
    /// it connects or is accepted; count the others' bytes instead of copying them (the
    /// summary's `kernel.sampled_out_bytes`, by process in `agentscope coverage`). Their
    /// connects, DNS, TLS ClientHellos and closes are still captured, and their connect or
    /// accept event says `payloads_sampled_out`. For nodes whose traffic costs too much to copy
    /// whole: what a sampled-out connection carries (an injection, an exfiltration) is not
    /// seen. TLS connections whose socket the probes cannot name (Node) are always kept.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub sample_connections: u32,
    /// Kernel ring buffer size in KiB, rounded up to a power of two (default: 4 MiB per online
    /// CPU, at least 8 MiB and at most 64 MiB). Records it cannot take are counted in the
    /// summary (`dropped by the kernel`).
    #[arg(long, value_name = "KIB")]
    pub ring_buffer_kib: Option<u32>,
    /// Do not use the Kubernetes API for pod identity (service-account tokens and process
    /// environments still identify pods).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub no_kubernetes: bool,
    /// Kubeconfig for the pod watcher (default: in-cluster configuration, else $KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// This node's name, to watch only its pods (default: $NODE_NAME, else the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
}

impl Default for CaptureArgs {
    /// What the command line gives when no capture flag is passed.
    fn default() -> Self {
        Self {
            pids: Vec::new(),
            payloads_off: Vec::new(),
            keep_secrets: false,
            no_socket_data: false,
            no_pipe_data: false,
            keep_runtime_noise: false,
            copy_opaque_payloads: false,
            sample_connections: 1,
            ring_buffer_kib: None,
            no_kubernetes: false,
            kubeconfig: None,
            node_name: None,
        }
    }
}

impl CaptureArgs {
    /// Whether any capture flag differs from its default.
    pub fn any_given(&self) -> bool {
        !self.pids.is_empty()
            || !self.payloads_off.is_empty()
            || self.keep_secrets
            || self.no_socket_data
            || self.no_pipe_data
            || self.keep_runtime_noise
            || self.copy_opaque_payloads
            || self.sample_connections != 1
            || self.ring_buffer_kib.is_some()
            || self.no_kubernetes
            || self.kubeconfig.is_some()
            || self.node_name.is_some()
    }

    /// Payload credentials are masked everywhere (capture, reconstruction, recordings) unless
    /// `--keep-secrets`: one choice.
    pub fn redact_secrets(&self) -> bool {
        !self.keep_secrets
    }

    /// The pipeline a live capture feeds: these flags' redaction, `memory_budget` bytes,
    /// identities from `identity` (started), starting from the collector's process table
    /// (seeded from /proc); reporting the opaque sockets the kernel is to stop copying unless
    /// `--copy-opaque-payloads` ([`CaptureArgs::mutes_opaque_sockets`]).
    pub fn live_pipeline(
        &self,
        memory_budget: usize,
        identity: IdentityResolver,
        processes: ProcessTable,
    ) -> Pipeline {
        let mut pipeline = Pipeline::new(
            agentscope_reconstruct::ReconstructOptions {
                redact_secrets: self.redact_secrets(),
                memory_budget,
            },
            ModelOptions::default(),
            Box::new(identity),
        )
        .with_processes(processes);
        if self.mutes_opaque_sockets() {
            pipeline.report_opaque_sockets();
        }
        pipeline
    }

    pub fn collector_options(&self) -> CollectorOptions {
        CollectorOptions {
            pids: self.pids.clone(),
            payloads_off: self.payloads_off.clone(),
            ring_buffer_bytes: self
                .ring_buffer_kib
                .map_or_else(agentscope_kernel::ring_sizing::default_ring_bytes, |kib| {
                    kib.saturating_mul(1024)
                }),
            capture_socket_data: !self.no_socket_data,
            capture_pipe_data: !self.no_pipe_data,
            keep_runtime_noise: self.keep_runtime_noise,
            sample_connections: self.sample_connections,
            redact_secrets: self.redact_secrets(),
            ..CollectorOptions::default()
        }
    }

    pub fn identity_options(&self) -> IdentityOptions {
        IdentityOptions {
            kubernetes: match (&self.kubeconfig, self.no_kubernetes) {
                (Some(path), _) => KubernetesSource::Kubeconfig(path.clone()),
                (None, true) => KubernetesSource::Off,
                (None, false) => KubernetesSource::Infer,
            },
            node_name: self.node_name.clone(),
            ..IdentityOptions::default()
        }
    }

    /// What a recording's header says about how events were captured.
    pub fn capture_filter(&self) -> serde_json::Value {
        serde_json::json!({
            "pids": self.pids,
            "socket_data": !self.no_socket_data,
            "pipe_data": !self.no_pipe_data,
            "runtime_noise": self.keep_runtime_noise,
            "opaque_socket_payloads": self.copy_opaque_payloads,
            "payloads_off": self.payloads_off,
            "sample_connections": self.sample_connections,
        })
    }

    /// Whether a live session tells the kernel to stop copying plain sockets reconstruction
    /// found opaque (`Session::take_opaque_sockets`, `Collector::mute_sockets`): unless
    /// `--copy-opaque-payloads`.
    pub fn mutes_opaque_sockets(&self) -> bool {
        !self.copy_opaque_payloads && !self.no_socket_data
    }

    /// The header of a recording of this capture: who wrote it, on which node, with which
    /// options (a replay runs the pipeline with the same), started now.
    pub fn recording_metadata(
        &self,
        created_by: String,
        memory_budget_bytes: usize,
    ) -> CaptureMetadata {
        CaptureMetadata {
            created_by,
            hostname: hostname(),
            started_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            secrets_redacted: self.redact_secrets(),
            model_max_nodes: ModelOptions::default().max_nodes,
            model_max_edges: ModelOptions::default().max_edges,
            sequence: 0,
            capture_filter: self.capture_filter(),
            memory_budget_bytes,
        }
    }
}

/// The node name recorded in a capture's metadata.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        capture: CaptureArgs,
    }

    #[test]
    fn the_default_is_what_no_flag_gives() {
        let parsed = Command::parse_from(["agentscope"]).capture;
        assert!(!parsed.any_given());
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", CaptureArgs::default())
        );
    }

    #[test]
    fn each_flag_counts_as_given_and_reaches_the_options() {
        let parsed = Command::parse_from([
            "agentscope",
            "--pid",
            "7",
            "--pid",
            "9",
            "--no-payloads-of",
            "9",
            "--keep-secrets",
            "--no-pipe-data",
            "--keep-runtime-noise",
            "--copy-opaque-payloads",
            "--sample-connections",
            "10",
            "--ring-buffer-kib",
            "1024",
            "--node-name",
            "n1",
        ])
        .capture;
        assert!(parsed.any_given());
        let collector = parsed.collector_options();
        assert_eq!(collector.pids, vec![7, 9]);
        assert_eq!(collector.payloads_off, vec![9]);
        assert_eq!(collector.ring_buffer_bytes, 1024 * 1024);
        assert!(!collector.redact_secrets && !collector.capture_pipe_data);
        assert!(collector.capture_socket_data);
        assert!(collector.keep_runtime_noise);
        assert_eq!(collector.sample_connections, 10);
        assert_eq!(parsed.identity_options().node_name.as_deref(), Some("n1"));
        assert_eq!(
            parsed.capture_filter(),
            serde_json::json!({
                "pids": [7, 9],
                "socket_data": true,
                "pipe_data": false,
                "runtime_noise": true,
                "opaque_socket_payloads": true,
                "payloads_off": [9],
                "sample_connections": 10,
            })
        );
        assert!(!parsed.mutes_opaque_sockets());
        assert!(Command::parse_from(["agentscope"])
            .capture
            .mutes_opaque_sockets());
        assert!(Command::parse_from(["agentscope", "--no-payloads-of", "3"])
            .capture
            .any_given());
        assert!(
            Command::parse_from(["agentscope", "--sample-connections", "2"])
                .capture
                .any_given()
        );
        // One in zero is no sampling rate.
        assert!(Command::try_parse_from(["agentscope", "--sample-connections", "0"]).is_err());
        // Without socket payloads there is nothing to stop copying.
        assert!(!Command::parse_from(["agentscope", "--no-socket-data"])
            .capture
            .mutes_opaque_sockets());
    }
}
