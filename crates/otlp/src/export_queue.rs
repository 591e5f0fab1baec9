//! The exporter thread and the bounded queue in front of it.
//!
//! The pipeline hands spans and records to [`ExportQueue::push`], which never waits: when the
//! queue is full (the collector is slow, unreachable, or black-holed and every export waits
//! for its timeout) the item is dropped and counted. A thread of its own, with its own tokio
//! runtime, takes batches off the queue and sends them with the OTLP exporters of
//! `opentelemetry-otlp`, which retry with exponential backoff; a batch that still fails is
//! counted as dropped. At a stop the queue gets a bounded time to empty
//! ([`ExportQueue::finish`]); what is left is counted, and the thread is left to the process's
//! exit rather than waited for.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_otlp::{
    LogExporter, SpanExporter, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::logs::LogBatch;
use opentelemetry_sdk::Resource;

use crate::genai_spans::{Signal, Telemetry};
use crate::http_failure_reason::{FailureReason, ReasonKeepingClient};
use crate::options::{OtlpOptions, Protocol};

/// Items sent in one export request at most.
const BATCH_ITEMS: usize = 512;
/// How long a partly filled batch waits for more before it goes.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// One export attempt's deadline (the exporter's own timeout).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of a failed export, with backoff from [`RETRY_FIRST_DELAY`] doubling to
/// [`RETRY_MAX_DELAY`]: a collector restarting loses nothing, a dead one costs the queue.
const RETRIES: usize = 3;
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// What happened to the items handed to the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportCounts {
    pub spans_exported: u64,
    pub logs_exported: u64,
    /// Dropped because the queue was full, an export failed after its retries, or the stop's
    /// time ran out.
    pub spans_dropped: u64,
    pub logs_dropped: u64,
    /// Export requests that failed after their retries.
    pub failed_exports: u64,
}

impl ExportCounts {
    fn drop_items(&mut self, items: &[Telemetry]) {
        for item in items {
            match item.signal {
                Signal::Span(_) => self.spans_dropped += 1,
                Signal::Log(_) => self.logs_dropped += 1,
            }
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Telemetry>,
    counts: ExportCounts,
    /// The spans and records of the batch the thread is exporting.
    exporting: Option<(u64, u64)>,
    ending: bool,
    /// The last export error, for the user (once per kind of failure is enough).
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    progress: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic elsewhere cannot leave the counts inconsistent in a way that matters here.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct ExportQueue {
    shared: Arc<Shared>,
    limit: usize,
}

impl ExportQueue {
    /// Builds the exporters (in the thread's runtime: tonic's channel needs one) and starts
    /// the thread. Fails when the endpoint cannot be used at all.
    pub fn start(options: &OtlpOptions) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        // Everything runs on the thread: the caller may be inside a runtime of its own
        // (`collect`'s), where another cannot be entered.
        let thread_shared = shared.clone();
        let thread_options = options.clone();
        let (built, ready) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = built.send(Err(err.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Exporters::build(&thread_options) {
                        Ok(exporters) => {
                            let _ = built.send(Ok(()));
                            export_loop(exporters, thread_shared).await;
                        }
                        Err(err) => {
                            let _ = built.send(Err(err));
                        }
                    }
                });
            })?;
        ready
            .recv()
            .map_err(|_| std::io::Error::other("the OTLP export thread ended at its start"))?
            .map_err(std::io::Error::other)?;
        Ok(Self {
            shared,
            limit: options.queue_items.max(1),
        })
    }

    /// Queues `items`, dropping (and counting) what does not fit.
    pub fn push(&self, items: Vec<Telemetry>) {
        if items.is_empty() {
            return;
        }
        let mut state = lock(&self.shared);
        let room = self.limit.saturating_sub(state.queue.len());
        let mut items = items;
        if items.len() > room {
            let rest = items.split_off(room);
            state.counts.drop_items(&rest);
        }
        state.queue.extend(items);
        drop(state);
        self.shared.work.notify_one();
    }

    pub fn counts(&self) -> ExportCounts {
        lock(&self.shared).counts
    }

    /// The last export error since the last call, if any.
    pub fn take_error(&self) -> Option<String> {
        lock(&self.shared).last_error.take()
    }

    /// Tells the thread to send what is queued now, without waiting for a full batch; the
    /// caller goes on with its own stop and calls [`ExportQueue::finish`] later.
    pub fn begin_finish(&self) {
        lock(&self.shared).ending = true;
        self.shared.work.notify_one();
    }

    /// Lets the thread send what is queued until `deadline`; what is still queued or being
    /// sent then is counted as dropped. Returns the final counts.
    pub fn finish(&self, deadline: Instant) -> ExportCounts {
        let mut state = lock(&self.shared);
        state.ending = true;
        self.shared.work.notify_one();
        while !state.queue.is_empty() || state.exporting.is_some() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .shared
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let left: Vec<Telemetry> = state.queue.drain(..).collect();
        state.counts.drop_items(&left);
        // A batch still in flight is lost to this run whether or not it arrives late.
        if let Some((spans, logs)) = state.exporting.take() {
            state.counts.spans_dropped += spans;
            state.counts.logs_dropped += logs;
        }
        state.counts
    }
}

struct Exporters {
    spans: SpanExporter,
    logs: LogExporter,
    /// Why the last OTLP/HTTP request failed (the exporter's own error does not say).
    http_failure: FailureReason,
}

impl Exporters {
    fn build(options: &OtlpOptions) -> Result<Self, String> {
        let retry = opentelemetry_otlp::RetryPolicy::recommended()
            .with_max_retries(RETRIES)
            .with_initial_delay(RETRY_FIRST_DELAY)
            .with_max_delay(RETRY_MAX_DELAY);
        let endpoint = &options.endpoint;
        if !endpoint.tls && !options.tls.is_empty() {
            return Err(format!(
                "{}: certificates are for https:// endpoints only",
                endpoint.base
            ));
        }
        let http_failure = FailureReason::default();
        let built = match options.protocol {
            Protocol::Grpc => {
                let channel = if endpoint.tls {
                    Some(grpc_tls_channel(options)?)
                } else {
                    None
                };
                let spans = SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.base.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_retry_policy(retry.clone());
                let logs = LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.base.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_retry_policy(retry);
                match channel {
                    Some(channel) => {
                        spans
                            .with_channel(channel.clone())
                            .build()
                            .and_then(|spans| {
                                logs.with_channel(channel).build().map(|logs| (spans, logs))
                            })
                    }
                    None => spans
                        .build()
                        .and_then(|spans| logs.build().map(|logs| (spans, logs))),
                }
            }
            Protocol::HttpProtobuf => {
                let mut spans = SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(endpoint.signal_url("/v1/traces"))
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_retry_policy(retry.clone());
                let mut logs = LogExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(endpoint.signal_url("/v1/logs"))
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_retry_policy(retry);
                let client: Arc<dyn opentelemetry_http::HttpClient> = if endpoint.tls {
                    Arc::new(ReasonKeepingClient::new(
                        http_tls_client(options)?,
                        http_failure.clone(),
                    ))
                } else {
                    Arc::new(ReasonKeepingClient::new(
                        opentelemetry_http::hyper::HyperClient::with_default_connector(
                            EXPORT_TIMEOUT,
                            None,
                        ),
                        http_failure.clone(),
                    ))
                };
                spans = spans.with_shared_http_client(client.clone());
                logs = logs.with_shared_http_client(client);
                spans
                    .build()
                    .and_then(|spans| logs.build().map(|logs| (spans, logs)))
            }
        };
        built
            .map(|(spans, logs)| Self {
                spans,
                logs,
                http_failure,
            })
            .map_err(|err| format!("cannot export to {}: {err}", endpoint.base))
    }

    /// Why the last request failed, when the transport said more than the exporter does.
    fn failure_reason(&self) -> String {
        self.http_failure
            .take()
            .map(|reason| format!(" ({reason})"))
            .unwrap_or_default()
    }

    /// Sends `batch` (items of one resource after another), returning the items that failed
    /// and the error.
    async fn export(&mut self, batch: &[Telemetry]) -> (u64, u64, Option<String>) {
        use opentelemetry_sdk::logs::LogExporter as _;
        use opentelemetry_sdk::trace::SpanExporter as _;
        let mut failed_spans = 0;
        let mut failed_logs = 0;
        let mut error = None;
        let mut start = 0;
        while start < batch.len() {
            let resource = &batch[start].resource;
            let end = batch[start..]
                .iter()
                .position(|item| {
                    !Arc::ptr_eq(&item.resource, resource) && item.resource != *resource
                })
                .map_or(batch.len(), |n| start + n);
            let group = &batch[start..end];
            start = end;
            let spans: Vec<_> = group
                .iter()
                .filter_map(|item| match &item.signal {
                    Signal::Span(span) => Some((**span).clone()),
                    Signal::Log(_) => None,
                })
                .collect();
            let logs: Vec<_> = group
                .iter()
                .filter_map(|item| match &item.signal {
                    Signal::Log(record) => Some(&**record),
                    Signal::Span(_) => None,
                })
                .collect();
            set_resource(self, resource);
            if !spans.is_empty() {
                let count = spans.len() as u64;
                if let Err(err) = self.spans.export(spans).await {
                    failed_spans += count;
                    error = Some(format!("spans: {err}{}", self.failure_reason()));
                }
            }
            if !logs.is_empty() {
                let scope = opentelemetry::InstrumentationScope::builder("agentscope")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build();
                let pairs: Vec<_> = logs.iter().map(|record| (*record, &scope)).collect();
                if let Err(err) = self.logs.export(LogBatch::new(&pairs)).await {
                    failed_logs += logs.len() as u64;
                    error = Some(format!("logs: {err}{}", self.failure_reason()));
                }
            }
        }
        (failed_spans, failed_logs, error)
    }
}

/// The OTLP/HTTP client for an `https://` endpoint: hyper over rustls (HTTP/1.1, as the
/// exporter's own hyper client speaks), verifying as [`crate::tls::TlsFiles`] says.
fn http_tls_client(
    options: &OtlpOptions,
) -> Result<opentelemetry_http::hyper::HyperClient<HttpsConnector<HttpConnector>>, String> {
    Ok(opentelemetry_http::hyper::HyperClient::new(
        tls_connector(options, b"http/1.1")?,
        EXPORT_TIMEOUT,
        None,
    ))
}

/// The gRPC channel to an `https://` endpoint: tonic over a rustls connector offering `h2`,
/// connected on first use (as the exporter's own channel is), each request bounded by the
/// export timeout.
fn grpc_tls_channel(options: &OtlpOptions) -> Result<tonic::transport::Channel, String> {
    let base = &options.endpoint.base;
    let connector = tls_connector(options, b"h2")?;
    let endpoint = tonic::transport::Endpoint::from_shared(base.clone())
        .map_err(|err| format!("{base}: {err}"))?
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(EXPORT_TIMEOUT);
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// A TCP connector that speaks TLS only, offering `alpn`. Built from its parts rather than with
/// hyper-rustls's builder, whose HTTP/2 support is a crate feature that would rebuild the
/// Kubernetes client (see crates/otlp/Cargo.toml); the ALPN is all gRPC needs of it.
fn tls_connector(
    options: &OtlpOptions,
    alpn: &[u8],
) -> Result<HttpsConnector<HttpConnector>, String> {
    let mut config = options
        .tls
        .client_config()
        .map_err(|err| format!("{}: {err}", options.endpoint.base))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    let mut tcp = HttpConnector::new();
    // The URL says https, which the plain connector would refuse.
    tcp.enforce_http(false);
    let mut connector = HttpsConnector::from((tcp, config));
    connector.enforce_https();
    Ok(connector)
}

fn set_resource(exporters: &mut Exporters, resource: &Resource) {
    use opentelemetry_sdk::logs::LogExporter as _;
    use opentelemetry_sdk::trace::SpanExporter as _;
    exporters.spans.set_resource(resource);
    exporters.logs.set_resource(resource);
}

async fn export_loop(mut exporters: Exporters, shared: Arc<Shared>) {
    loop {
        // Wait (off the runtime: this thread has nothing else to do) for a full batch, the
        // batch delay, or the end.
        let batch = {
            let mut state = lock(&shared);
            let waited_from = Instant::now();
            loop {
                let full = state.queue.len() >= BATCH_ITEMS;
                let waited = waited_from.elapsed() >= BATCH_DELAY;
                if full || state.ending || (waited && !state.queue.is_empty()) {
                    break;
                }
                state = shared
                    .work
                    .wait_timeout(state, BATCH_DELAY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if state.ending && state.queue.is_empty() {
                return;
            }
            let take = state.queue.len().min(BATCH_ITEMS);
            let batch: Vec<Telemetry> = state.queue.drain(..take).collect();
            let spans = batch
                .iter()
                .filter(|i| matches!(i.signal, Signal::Span(_)))
                .count() as u64;
            state.exporting = Some((spans, batch.len() as u64 - spans));
            batch
        };
        let (failed_spans, failed_logs, error) = exporters.export(&batch).await;
        let mut state = lock(&shared);
        let Some((spans, logs)) = state.exporting.take() else {
            // The stop already counted this batch as dropped.
            continue;
        };
        state.counts.spans_exported += spans - failed_spans;
        state.counts.logs_exported += logs - failed_logs;
        state.counts.spans_dropped += failed_spans;
        state.counts.logs_dropped += failed_logs;
        if let Some(error) = error {
            state.counts.failed_exports += 1;
            state.last_error = Some(error);
        }
        drop(state);
        shared.progress.notify_all();
    }
}
