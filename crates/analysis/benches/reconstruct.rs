//! Throughput of reconstruction and the model on payloads captured by the real collector
//! (tests/fixtures/capture): events/s and payload MB/s through
//! events → connections → HTTP → LLM/MCP/SQL interpreters → model and graph.
//!
//! The fixtures are replayed many times with distinct pids, so every round opens new
//! connections and agents instead of hitting one warm connection.

use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_event::event::{Event, EventBody};
use agentscope_reconstruct::ReconstructOptions;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use agentscope_event::synthetic as fixture_rounds;

#[path = "../../../tests/fixtures/recorded_mix.rs"]
mod recorded_mix;
const ROUNDS: u32 = 50;

fn workload() -> Vec<Event> {
    let parsed = recorded_mix::recorded_sets(recorded_mix::LLM_CHATS);
    fixture_rounds::repeat_as_new_processes(&parsed, ROUNDS)
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
