//! What the live console sustains on its own thread: events taken from the collector thread's
//! channel and fed through the pipeline by `LiveSource::poll`, without and with a recording
//! running (whose writer thread compresses, writes and syncs alongside).
//!
//! The workload is the real capture `tests/fixtures/capture/python_chat.jsonl` (an
//! agent calling a model that asks for tools) followed by 20,000 file opens of the agent
//! process over 1,000 files, as many events as one frame may take by default. Criterion
//! reports the time to drain them and events per second; `pipeline_push_only` pushes the same
//! events straight into a pipeline, so the difference is what the live source adds.
//! Run: `cargo bench -p agentscope-console --bench console_live` (or `make bench`).

use agentscope_console as console;

use std::path::Path;
use std::sync::Arc;

use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::CaptureMetadata;
use agentscope_event::event::{Event, EventBody};
use agentscope_event::event_json::events_from_json_lines;
use agentscope_reconstruct::ReconstructOptions;
use console::live_collector::{EventSender, LiveCounters};
use console::live_recording::RecordingOptions;
use console::{LiveSource, Source};
use criterion::{BatchSize, Criterion, Throughput};

const OPENS: usize = 20_000;
const FILES: usize = 1_000;

fn events() -> Vec<Event> {
    let path = Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
    let mut events = events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap();
    let agent = events
        .iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .map(|e| e.header.clone())
        .expect("the capture has the agent's payloads");
    // The agent's exit goes last, after its file opens.
    let exits: Vec<Event> = events
        .iter()
        .filter(|e| e.header.pid == agent.pid && matches!(e.body, EventBody::Exit { .. }))
        .cloned()
        .collect();
    events.retain(|e| !(e.header.pid == agent.pid && matches!(e.body, EventBody::Exit { .. })));
    let mut ts = events.last().unwrap().header.ts_ns;
    for i in 0..OPENS {
        ts += 10_000;
        let mut header = agent.clone();
        header.ts_ns = ts;
        header.time_unix_ns = agent.time_unix_ns + (ts - agent.ts_ns);
        events.push(Event {
            header,
            body: EventBody::Open {
                syscall: "openat",
                path: format!("/srv/warehouse/part-{:05}.parquet", i % FILES),
                path_truncated: false,
                dfd: -100,
                flags: 0,
                mode: 0,
                ret: 3,
            },
        });
    }
    for mut exit in exits {
        exit.header.ts_ns = ts + 1;
        events.push(exit);
    }
    events
}

/// A live source whose channel already holds `events`.
fn filled_source(events: &[Event], record_dir: &Path, recording: bool) -> LiveSource {
    let counters = Arc::new(LiveCounters::default());
    let (sender, receiver) = EventSender::channel(events.len(), counters.clone());
    let pipeline = Pipeline::new(
        ReconstructOptions {
            redact_secrets: true,
            ..ReconstructOptions::default()
        },
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let metadata = CaptureMetadata {
        model_max_nodes: ModelOptions::default().max_nodes,
        model_max_edges: ModelOptions::default().max_edges,
        ..CaptureMetadata::default()
    };
    let mut source = LiveSource::from_channel(
        "live",
        pipeline,
        receiver,
        counters,
        RecordingOptions::new(record_dir.to_path_buf(), metadata),
    );
    if recording {
        source.toggle_recording().unwrap();
    }
    for event in events.iter().cloned() {
        assert!(sender.send(event));
    }
    source
}

fn main() {
    let events = events();
    let dir = tempfile::tempdir().unwrap();
    let mut criterion = Criterion::default().configure_from_args().sample_size(20);
    let mut group = criterion.benchmark_group("console_live");
    group.throughput(Throughput::Elements(events.len() as u64));
    // The same events pushed straight into a pipeline: what the console adds is the difference.
    group.bench_function("pipeline_push_only", |b| {
        b.iter_batched(
            || {
                Pipeline::new(
                    ReconstructOptions {
                        redact_secrets: true,
                        ..ReconstructOptions::default()
                    },
                    ModelOptions::default(),
                    Box::new(HostOnlyIdentity),
                )
            },
            |mut pipeline| {
                for event in &events {
                    criterion::black_box(pipeline.push(event));
                }
                pipeline
            },
            BatchSize::PerIteration,
        )
    });
    for (name, recording) in [("poll", false), ("poll_recording", true)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || filled_source(&events, dir.path(), recording),
                |mut source| {
                    // Each poll stops after its time budget; drain like successive frames.
                    let mut fed = 0;
                    while fed < events.len() as u64 {
                        fed = source.poll(usize::MAX).status.events;
                    }
                    // Dropped outside the measurement (it waits for the recording's file).
                    source
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    criterion.final_summary();
}
