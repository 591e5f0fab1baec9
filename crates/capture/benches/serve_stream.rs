//! Live streams to consoles (`agentscope collect --serve`): how fast events go from the
//! collector's loop, through the socket, to a console that decodes them.
//!
//! The workload is events the real collector captured (tests/fixtures) repeated with
//! fresh pids and later times. One console is attached through a real Unix socket, reading
//! and decoding every block (zstd, entries) on its own thread, as `agentscope tui --connect`
//! does before feeding its pipeline.
//! - `collector_side`: what `publish` and the flush cost the collector's loop (encoding,
//!   compression, queueing); the console drains afterwards, untimed;
//! - `end_to_end`: from the first event published to the console having decoded the last.
//!
//! Run: `cargo bench -p agentscope-capture --bench serve_stream` (or `make bench`).

use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::codec::Entry;
use agentscope_capture::capture::{CaptureMetadata, CollectorCounters, StreamItem};
use agentscope_capture::serve::{attach, ServeOptions, StreamServer};
use agentscope_event::event::Event;
use agentscope_reconstruct::ReconstructOptions;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use agentscope_event::synthetic as fixture_rounds;

#[path = "../../../tests/fixtures/recorded_mix.rs"]
mod recorded_mix;
const ROUNDS: u32 = 50;

fn workload() -> Vec<Event> {
    let parsed = recorded_mix::recorded_sets(recorded_mix::RECORDED_MIX.len());
    fixture_rounds::repeat_as_new_processes(&parsed, ROUNDS)
}

fn bench(c: &mut Criterion) {
    let events = workload();
    let count = events.len() as u64;
    let payload: usize = events
        .iter()
        .map(|e| match &e.body {
            agentscope_event::event::EventBody::Data { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    eprintln!(
        "stream: {count} events per iteration, {:.1} payload bytes/event",
        payload as f64 / count as f64
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sock");
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let mut options = ServeOptions::new(path.clone(), CaptureMetadata::default());
    // Nothing may be dropped: the bench measures delivery.
    options.queue_bytes = 1 << 30;
    let mut server = StreamServer::bind(options, &mut pipeline).unwrap();
    let received = Arc::new(AtomicU64::new(0));
    {
        let path = path.clone();
        let received = received.clone();
        std::thread::spawn(move || {
            let mut attached = attach(&path, Duration::from_secs(30)).unwrap();
            let mut buf = vec![0u8; 256 << 10];
            loop {
                while let Some(item) = attached.decoder.next_item().unwrap() {
                    if let StreamItem::Events { entries, .. } = item {
                        let n = entries
                            .iter()
                            .filter(|e| matches!(e, Entry::Event(_)))
                            .count();
                        received.fetch_add(n as u64, Ordering::Release);
                    }
                }
                match attached.stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => attached.decoder.push(&buf[..n]),
                }
            }
        });
    }
    while server.clients().is_empty() {
        server.tick(Instant::now(), &pipeline, CollectorCounters::default());
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut sent = 0u64;
    let mut publish_all = |server: &mut StreamServer| {
        for event in &events {
            server.publish(event, &[]);
        }
        server.tick(Instant::now(), &pipeline, CollectorCounters::default());
        sent += count;
        sent
    };
    let wait_for = |total: u64| {
        while received.load(Ordering::Acquire) < total {
            std::hint::spin_loop();
        }
    };

    let mut group = c.benchmark_group("serve");
    group.sample_size(10);
    group.throughput(Throughput::Elements(count));
    group.bench_function("collector_side", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let total = publish_all(&mut server);
                spent += start.elapsed();
                wait_for(total);
            }
            spent
        })
    });
    group.bench_function("end_to_end", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let total = publish_all(&mut server);
                wait_for(total);
            }
            start.elapsed()
        })
    });
    group.finish();
    assert!(server.clients().iter().all(|c| c.dropped_events == 0));
}

criterion_group!(benches, bench);
criterion_main!(benches);
