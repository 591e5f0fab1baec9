//! What HTTP reassembly costs per payload byte, now that every body and buffer is charged to
//! the memory budget: 16 connections upload 2 MiB bodies each, interleaved in 16 KiB feeds as
//! the kernel delivers them, and each exchange completes. The default budget has room for all
//! of it, so this measures the accounting on the hot path (a charge per body growth, a settle
//! per feed), not cutting. `HttpConnection::new` is used so the same file runs on older code
//! for comparison.
//! Run: `cargo bench -p agentscope-reconstruct --bench http_reassembly` (or `make bench`).

use agentscope_reconstruct::http::{HttpConnection, Side};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const CONNECTIONS: usize = 16;
const BODY: usize = 2 << 20;
const FEED: usize = 16 << 10;

fn run() -> usize {
    let head = format!("POST /v1/upload HTTP/1.1\r\nHost: api\r\nContent-Length: {BODY}\r\n\r\n");
    let piece = vec![b'x'; FEED];
    let mut connections: Vec<HttpConnection> =
        (0..CONNECTIONS).map(|_| HttpConnection::new()).collect();
    for conn in &mut connections {
        conn.feed(Side::Request, head.as_bytes(), 1);
    }
    for _ in 0..BODY / FEED {
        for conn in &mut connections {
            conn.feed(Side::Request, &piece, 2);
        }
    }
    let mut bodies = 0;
    for conn in &mut connections {
        let done = conn.feed(Side::Response, b"HTTP/1.1 204 No Content\r\n\r\n", 3);
        bodies += done.iter().map(|e| e.request.body.len()).sum::<usize>();
    }
    assert_eq!(bodies, CONNECTIONS * BODY);
    bodies
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_reassembly");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((CONNECTIONS * BODY) as u64));
    group.bench_function("interleaved_uploads", |b| {
        b.iter_batched(|| (), |_| run(), BatchSize::PerIteration)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
