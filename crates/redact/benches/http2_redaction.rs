//! What HPACK-aware masking costs the collector: the per-event redaction of a real HTTP/2
//! capture (the Go agent's three conversations on one connection, tests/fixtures/http2,
//! 74 `data` events, 12,017 bytes) against the same chunks taken for a stream that is not
//! HTTP/2 (its first byte changed, so only the byte-level rules read it).
//! Run: `cargo bench -p agentscope-redact --bench http2_redaction` (or with `--workspace
//! --exclude agentscope-collector-ebpf`).

use agentscope_event::event::{Event, EventBody};
use agentscope_event::event_json::events_from_json_lines;
use agentscope_redact::EventRedactor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn fixture() -> Vec<Event> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/http2/go_streaming_tool_calls.jsonl",
        env!("AGENTSCOPE_REPO")
    ))
    .unwrap();
    events_from_json_lines(&text).unwrap()
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

fn redact_all(events: &[Event]) -> usize {
    let mut redactor = EventRedactor::default();
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            redactor.redact(&mut e)
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let http2 = fixture();
    let mut not_http2 = http2.clone();
    for event in &mut not_http2 {
        if let EventBody::Data { data, .. } = &mut event.body {
            // `PRI * HTTP/2.0` → `XRI …` and the server's SETTINGS header's first byte: no
            // longer recognised, read by the byte-level rules only.
            data[0] ^= 0x08;
        }
    }
    assert!(redact_all(&http2) > 0, "the fixture's key is masked");
    let mut group = c.benchmark_group("http2_redaction");
    group.throughput(Throughput::Bytes(payload_bytes(&http2)));
    group.bench_function("go_fixture_as_http2", |b| b.iter(|| redact_all(&http2)));
    group.bench_function("go_fixture_bytes_only", |b| {
        b.iter(|| redact_all(&not_http2))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
