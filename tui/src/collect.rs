//! `agentscope collect`: the live collector, headless. Prints events (one JSON object per line
//! with `--json`, a short text line otherwise) and a final summary with counts and drops.
//! Every event also goes through reconstruction and the model; `--graph-json` writes the
//! resulting agents, tool calls and graph when the collector stops.

use std::io::Write as _;
use std::time::Duration;

use std::path::PathBuf;

use agentscope_collector::identity::{IdentityOptions, IdentityResolver, KubernetesSource};
use agentscope_collector::model::ModelOptions;
use agentscope_collector::pipeline::Pipeline;
use agentscope_collector::reconstruct::ReconstructOptions;
use agentscope_collector::{Collector, CollectorOptions, Event, EventBody, Summary};
use clap::Args;

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Trace only this process and its descendants; repeat for several.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// One JSON object per event on stdout, then a summary object (see docs/events.md).
    #[arg(long)]
    json: bool,
    /// Keep credentials (Authorization headers, API keys) in captured payloads.
    #[arg(long)]
    keep_secrets: bool,
    /// Do not capture plain (non-TLS) socket payloads.
    #[arg(long)]
    no_socket_data: bool,
    /// Do not capture JSON over pipes and socketpairs (MCP servers on stdio).
    #[arg(long)]
    no_pipe_data: bool,
    /// Kernel ring buffer size in KiB (rounded up to a power of two).
    #[arg(long, value_name = "KIB", default_value_t = 65536)]
    ring_buffer_kib: u32,
    /// Write a line to stderr once the probes are attached (tests and scripts wait for it).
    #[arg(long)]
    ready_message: bool,
    /// When the collector stops, write the agents, their AI-BOMs, tool calls and the execution
    /// graph to FILE as JSON (schema: docs/graph.md).
    #[arg(long, value_name = "FILE")]
    graph_json: Option<PathBuf>,
    /// Do not print events (useful with --graph-json).
    #[arg(long)]
    quiet: bool,
    /// Do not use the Kubernetes API for pod identity (service-account tokens and process
    /// environments still identify pods).
    #[arg(long, conflicts_with = "kubeconfig")]
    no_kubernetes: bool,
    /// Kubeconfig for the pod watcher (default: in-cluster configuration, else $KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// This node's name, to watch only its pods (default: $NODE_NAME, else the hostname).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
}

pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(collect(args))
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let options = CollectorOptions {
        pids: args.pids.clone(),
        ring_buffer_bytes: args.ring_buffer_kib.saturating_mul(1024),
        capture_socket_data: !args.no_socket_data,
        capture_pipe_data: !args.no_pipe_data,
        redact_secrets: !args.keep_secrets,
        ..CollectorOptions::default()
    };
    let mut collector = Collector::start(options)?;
    let mut identity = IdentityResolver::new(IdentityOptions {
        kubernetes: match (&args.kubeconfig, args.no_kubernetes) {
            (Some(path), _) => KubernetesSource::Kubeconfig(path.clone()),
            (None, true) => KubernetesSource::Off,
            (None, false) => KubernetesSource::Infer,
        },
        node_name: args.node_name.clone(),
        ..IdentityOptions::default()
    });
    identity.start().await?;
    let mut pipeline = Pipeline::new(
        ReconstructOptions {
            redact_secrets: !args.keep_secrets,
        },
        ModelOptions::default(),
        Box::new(identity),
    )
    .with_processes(collector.processes().clone());
    if args.ready_message {
        eprintln!("agentscope: collecting");
    }
    let deadline = args
        .duration
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = collector.next_batch(4096) => {
                for event in batch? {
                    pipeline.push(&event);
                    if !args.quiet {
                        print_event(&mut out, &event, args.json)?;
                    }
                }
                out.flush()?;
            }
            _ = sleep => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    for event in collector.drain() {
        pipeline.push(&event);
        if !args.quiet {
            print_event(&mut out, &event, args.json)?;
        }
    }
    pipeline.finish();
    if let Some(path) = &args.graph_json {
        write_graph(path, &pipeline)?;
    }
    let mut summary = collector.summary();
    summary.warnings.extend(pipeline.identity_warnings());
    print_summary(&mut out, &summary, args.json)?;
    out.flush()?;
    if let Some(err) = collector.last_decode_error() {
        eprintln!(
            "agentscope: {} records did not decode; last: {err}",
            summary.decode_errors
        );
    }
    Ok(())
}

fn write_graph(path: &std::path::Path, pipeline: &Pipeline) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // Write beside the target and rename, so a reader never sees half a file.
    let tmp = path.with_extension("json.partial");
    let file = std::fs::File::create(&tmp)
        .with_context(|| format!("cannot write the graph to {}", tmp.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, &pipeline.snapshot())?;
    writer.flush()?;
    drop(writer);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move the graph into place at {}", path.display()))?;
    Ok(())
}

fn print_event(out: &mut impl std::io::Write, event: &Event, json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, event)?;
        return writeln!(out);
    }
    let h = &event.header;
    let what = match &event.body {
        EventBody::Exec { filename, argv, .. } => format!("exec {filename} {argv:?}"),
        EventBody::Fork { child_pid, .. } => format!("fork child={child_pid}"),
        EventBody::Exit { exit_code } => format!("exit code={exit_code:?}"),
        EventBody::Open { path, ret, .. } => format!("open {path} -> {ret}"),
        EventBody::Connect {
            addr, port, ret, ..
        } => format!("connect {addr}:{port} -> {ret}"),
        EventBody::Accept {
            addr, port, ret, ..
        } => format!("accept {addr}:{port} -> {ret}"),
        EventBody::TcpState {
            saddr,
            sport,
            daddr,
            dport,
            old_state,
            new_state,
            ..
        } => {
            format!("tcp {saddr}:{sport} -> {daddr}:{dport} {old_state} -> {new_state}")
        }
        EventBody::Dns { queries, .. } => format!("dns {queries:?}"),
        EventBody::Data {
            source,
            direction,
            fd,
            seq,
            total_len,
            data,
            ..
        } => {
            let preview: String = String::from_utf8_lossy(&data[..data.len().min(60)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            format!(
                "{source:?} {direction:?} fd={fd} seq={seq} {}/{total_len} bytes {preview}",
                data.len()
            )
        }
        EventBody::Close { fd } => format!("close fd={fd}"),
    };
    writeln!(out, "{:>7} {:>7} {:<15} {what}", h.pid, h.ppid, h.comm)
}

fn print_summary(
    out: &mut impl std::io::Write,
    summary: &Summary,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let value = serde_json::json!({ "kind": "summary", "summary": summary });
        serde_json::to_writer(&mut *out, &value)?;
        return writeln!(out);
    }
    writeln!(
        out,
        "summary: {} events received, {} dropped by the kernel ({} payload bytes lost), {} undecodable, {} TLS targets probed",
        summary.received, summary.kernel.dropped, summary.kernel.lost_bytes, summary.decode_errors, summary.tls_targets
    )
}
