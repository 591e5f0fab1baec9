//! Throughput of reconstruction and the model on payloads captured by the real collector
//! (collector/tests/fixtures/capture): events/s and payload MB/s through
//! events → connections → HTTP → LLM/MCP/SQL interpreters → model and graph.
//!
//! The fixtures are replayed many times with distinct pids, so every round opens new
//! connections and agents instead of hitting one warm connection.

use agentscope_collector::event::{Event, EventBody};
use agentscope_collector::event_json::events_from_json_lines;
use agentscope_collector::model::{HostOnlyIdentity, ModelOptions};
use agentscope_collector::pipeline::Pipeline;
use agentscope_collector::reconstruct::ReconstructOptions;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const FIXTURES: &[&str] = &[
    include_str!("../tests/fixtures/capture/python_chat.jsonl"),
    include_str!("../tests/fixtures/capture/python_chat_stream.jsonl"),
    include_str!("../tests/fixtures/capture/node_chat_stream.jsonl"),
];
const ROUNDS: u32 = 50;

fn workload() -> Vec<Event> {
    let mut events = Vec::new();
    for round in 0..ROUNDS {
        for fixture in FIXTURES {
            for mut event in events_from_json_lines(fixture).expect("fixture parses") {
                // Shift pids so each round is a new set of processes and connections, and time
                // so rounds follow each other as a long capture would (tool-call windows close).
                let shift = round * 100_000;
                let later = u64::from(round) * 600 * 1_000_000_000;
                event.header.ts_ns += later;
                event.header.time_unix_ns += later;
                event.header.pid += shift;
                event.header.tid += shift;
                if event.header.ppid != 0 {
                    event.header.ppid += shift;
                }
                if let EventBody::Fork { child_pid, .. } = &mut event.body {
                    *child_pid += shift;
                }
                events.push(event);
            }
        }
    }
    events
}

fn payload_bytes(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| match &e.body {
            EventBody::Data { data, .. } => data.len() as u64,
            _ => 0,
        })
        .sum()
}

fn run(events: &[Event]) -> usize {
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let mut observations = 0;
    for event in events {
        observations += pipeline.push(event).len();
    }
    observations + pipeline.finish().len()
}

fn bench(c: &mut Criterion) {
    let events = workload();
    let bytes = payload_bytes(&events);
    let mut group = c.benchmark_group("reconstruct");
    group.sample_size(20);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("events", |b| {
        b.iter_batched(|| (), |_| run(&events), BatchSize::PerIteration)
    });
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("payload_bytes", |b| {
        b.iter_batched(|| (), |_| run(&events), BatchSize::PerIteration)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
