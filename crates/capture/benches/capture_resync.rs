//! Resynchronising on damaged captures: how fast the reader finds the intact blocks again,
//! in MB of file per second, on files crafted to make a naive search quadratic.
//!
//! - `fake_headers`: 16 MiB of fake events-block headers every 8 bytes, each claiming 8 MiB
//!   with its trailing length agreeing (a CRC per candidate: 2 Mi candidates);
//! - `repeated_0x01`: 17 MiB of 0x01, where every offset claims a 16 MiB block whose lengths
//!   agree wherever it fits (1 Mi candidates);
//! - `zeros`: 16 MiB of zeros (no candidate at all: the floor);
//! - `damaged_capture`: a real capture (the committed recording, repeated to 16 MiB) with a
//!   bit flipped in every fourth block and no trailer, so every flip is a resync.
//!
//! Opening a capture with `CaptureReader::from_bytes` includes the scan; the copy of the input
//! is made outside the timing.

use agentscope_capture::capture::block::{self, block_type, CaptureMetadata, FileHeader};
use agentscope_capture::capture::CaptureReader;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const SIZE: usize = 16 << 20;

fn with_header(body: &[u8]) -> Vec<u8> {
    let mut bytes = block::MAGIC.to_vec();
    bytes.extend_from_slice(&block::frame(
        block_type::HEADER,
        &FileHeader::new(CaptureMetadata::default()).encode(),
    ));
    bytes.extend_from_slice(body);
    bytes
}

fn fake_headers() -> Vec<u8> {
    let mut body = Vec::with_capacity(SIZE);
    while body.len() < SIZE {
        body.extend_from_slice(&block_type::EVENTS.to_le_bytes());
        body.extend_from_slice(&(8u32 << 20).to_le_bytes());
    }
    with_header(&body)
}

fn damaged_capture() -> Vec<u8> {
    let recording = std::fs::read(concat!(env!("AGENTSCOPE_REPO"), "/recordings/ordinary.cap"))
        .expect("the committed recording");
    let reader = CaptureReader::from_bytes("r.cap", recording.clone()).expect("a capture");
    let blocks = reader.blocks().to_vec();
    let body_start = blocks[0].offset as usize;
    let body_end = blocks
        .last()
        .map(|b| (b.offset + b.len as u64) as usize)
        .unwrap();
    let mut body = Vec::new();
    while body.len() < SIZE {
        let at = body.len();
        body.extend_from_slice(&recording[body_start..body_end]);
        for (i, b) in blocks.iter().enumerate().filter(|(i, _)| i % 4 == 0) {
            let flip = at + (b.offset as usize - body_start) + b.len as usize / 2 + i % 7;
            body[flip] ^= 0x10;
        }
    }
    let mut bytes = recording[..body_start].to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

fn bench(c: &mut Criterion) {
    let files = [
        ("fake_headers", fake_headers()),
        ("repeated_0x01", with_header(&vec![1u8; SIZE + (1 << 20)])),
        ("zeros", with_header(&vec![0u8; SIZE])),
        ("damaged_capture", damaged_capture()),
    ];
    let mut group = c.benchmark_group("capture_resync");
    group.sample_size(10);
    for (name, bytes) in &files {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(*name, |b| {
            b.iter_batched(
                || bytes.clone(),
                |bytes| {
                    let reader = CaptureReader::from_bytes("bench.cap", bytes).expect("opens");
                    std::hint::black_box(reader.blocks().len())
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
