//! Capture files: how fast they read and replay, and how big they are.
//!
//! The workload is events the real collector captured (tests/fixtures: LLM chats,
//! MCP over HTTP, PostgreSQL sessions) repeated with fresh pids and later times, so every
//! round is new processes and connections. It is recorded once through the real recorder;
//! then:
//! - `read_events`: the reader alone (CRC check, zstd, decoding every entry into events);
//! - `zstd_only`: plain zstd decompression of the same chunks, the floor for the reader;
//! - `replay_pipeline`: replay through reconstruction and the model, as `agentscope replay`.
//!
//! File size per event is printed once (it is a property of the file, not a timing).

use std::path::Path;

use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{
    CaptureMetadata, CaptureReader, Recorder, RecorderOptions, Replay,
};
use agentscope_event::event::Event;
use agentscope_reconstruct::ReconstructOptions;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use agentscope_event::synthetic as fixture_rounds;

#[path = "../../../tests/fixtures/recorded_mix.rs"]
mod recorded_mix;
const ROUNDS: u32 = 200;

fn workload() -> Vec<Event> {
    let parsed = recorded_mix::recorded_sets(recorded_mix::RECORDED_MIX.len());
    fixture_rounds::repeat_as_new_processes(&parsed, ROUNDS)
}

fn record(events: &[Event], path: &Path) {
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let metadata = CaptureMetadata {
        created_by: "agentscope bench".into(),
        ..Default::default()
    };
    let mut recorder = Recorder::start(
        RecorderOptions::new(path.to_path_buf(), metadata),
        &mut pipeline,
    )
    .unwrap();
    for event in events {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    recorder.finish(&mut pipeline).unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.cap");
    let events = workload();
    record(&events, &path);
    let count = events.len() as u64;
    let file_len = std::fs::metadata(&path).unwrap().len();
    let json_len: usize = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len() + 1)
        .sum();
    eprintln!(
        "capture: {count} events, {file_len} bytes, {:.1} bytes/event (JSON lines: {:.1} bytes/event)",
        file_len as f64 / count as f64,
        json_len as f64 / count as f64
    );
    drop(events);
    let reader = CaptureReader::open(&path).unwrap();
    let blocks: Vec<_> = reader.event_blocks().copied().collect();

    let mut group = c.benchmark_group("capture");
    group.sample_size(10);
    group.throughput(Throughput::Elements(count));
    group.bench_function("read_events", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for block in &blocks {
                n += reader.read_events(block).1.len();
            }
            n
        })
    });
    group.bench_function("zstd_only", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for block in &blocks {
                let (header, payload) = reader.chunk_payload(block).unwrap();
                n += zstd::bulk::decompress(payload, header.uncompressed_len as usize)
                    .unwrap()
                    .len();
            }
            n
        })
    });
    group.bench_function("replay_pipeline", |b| {
        b.iter(|| {
            let mut replay = Replay::open(&path).unwrap();
            replay.run_to_end()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
