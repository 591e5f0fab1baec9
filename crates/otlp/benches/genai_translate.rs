//! What OTLP export costs the pipeline's thread: the session's step with and without the
//! GenAI translation (spans, records, resources) that `OtlpSink` does for every step before
//! handing the result to its queue. The network is on the exporter's own thread and is not
//! measured here.
//!
//! The workload is events the real collector captured (tests/fixtures: LLM chats with tool
//! calls, streamed and not, MCP over HTTP and stdio) repeated with fresh pids and later times,
//! so every round is new agent runs:
//! - `session_only`: the session step with no sink (the floor);
//! - `session_and_translation`: the same, translating every step; the spans and records made
//!   are counted once and printed.

use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_analysis::session::{Session, Sink, Step};
use agentscope_event::event::Event;
use agentscope_event::synthetic::repeat_as_new_processes;
use agentscope_otlp::genai_spans::{ContentPolicy, GenAiTranslator, Telemetry};
use agentscope_reconstruct::ReconstructOptions;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../../../tests/fixtures/recorded_mix.rs"]
mod recorded_mix;
const ROUNDS: u32 = 50;

fn workload() -> Vec<Event> {
    let parsed = recorded_mix::recorded_sets(recorded_mix::LLM_AND_MCP);
    repeat_as_new_processes(&parsed, ROUNDS)
}

fn session() -> Session {
    Session::new(Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    ))
}

/// The translation `OtlpSink` does, with what it made counted instead of queued.
struct Translating {
    translator: GenAiTranslator,
    made: usize,
    out: Vec<Telemetry>,
}

impl Sink for Translating {
    fn step(&mut self, _: Option<&Event>, step: &Step, session: &Session) -> std::io::Result<()> {
        let pipeline = session.pipeline();
        self.translator.step(
            &step.observations,
            &step.findings,
            &step.incidents,
            pipeline.model(),
            pipeline.processes(),
            &mut self.out,
        );
        self.made += self.out.len();
        self.out.clear();
        Ok(())
    }

    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        self.step(None, step, session)?;
        self.translator.finish(&mut self.out);
        self.made += self.out.len();
        self.out.clear();
        Ok(())
    }
}

fn translating() -> Translating {
    Translating {
        translator: GenAiTranslator::new(Some("node".into()), ContentPolicy::default()),
        made: 0,
        out: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let events = workload();
    let mut once = translating();
    let mut s = session();
    for event in &events {
        s.feed_into(event, &mut once).unwrap();
    }
    s.finish_into(&mut once).unwrap();
    println!(
        "{} events made {} spans and records ({} runs)",
        events.len(),
        once.made,
        ROUNDS as usize * recorded_mix::LLM_AND_MCP
    );
    assert!(once.made > 0, "the workload exports something");

    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("session_only", |b| {
        b.iter(|| {
            let mut s = session();
            for event in &events {
                s.feed_into(event, &mut ()).unwrap();
            }
            s.finish_into(&mut ()).unwrap();
        })
    });
    group.bench_function("session_and_translation", |b| {
        b.iter(|| {
            let mut s = session();
            let mut sink = translating();
            for event in &events {
                s.feed_into(event, &mut sink).unwrap();
            }
            s.finish_into(&mut sink).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
