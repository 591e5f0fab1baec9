//! Userspace decoding throughput: how many ring-buffer records per second the collector can
//! turn into events (open records, ClientHello records with their server name parsed, and
//! 16 KiB TLS payload chunks with redaction).
//! Run: `cargo bench -p agentscope-kernel --bench decode`.

use agentscope_common as raw;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raw::zerocopy::{FromZeros as _, IntoBytes as _};

fn open_record() -> Vec<u8> {
    let mut e = raw::OpenEvent::new_zeroed();
    e.header.kind = raw::kind::OPEN;
    e.header.size = std::mem::size_of::<raw::OpenEvent>() as u32;
    let path = b"/var/run/secrets/kubernetes.io/serviceaccount/token";
    e.path[..path.len()].copy_from_slice(path);
    e.path_len = path.len() as u32;
    e.as_bytes().to_vec()
}

fn data_record() -> Vec<u8> {
    let mut e = Box::new(raw::DataEvent::new_zeroed());
    e.prefix.header.kind = raw::kind::DATA;
    e.prefix.header.size = std::mem::size_of::<raw::DataEvent>() as u32;
    e.prefix.data_len = raw::CHUNK_LEN as u32;
    let req = b"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer sk-123\r\n\r\n";
    e.data[..req.len()].copy_from_slice(req);
    for (i, b) in e.data[req.len()..].iter_mut().enumerate() {
        *b = b"0123456789abcdef"[i % 16];
    }
    e.as_bytes().to_vec()
}

/// A real ClientHello (Python, system libssl), as the kernel emits it once per connection.
fn tls_hello_record() -> Vec<u8> {
    let hello = std::fs::read(format!(
        "{}/tests/fixtures/client_hello/python.bin",
        env!("AGENTSCOPE_REPO")
    ))
    .unwrap();
    let mut e = Box::new(raw::TlsHelloEvent::new_zeroed());
    e.header.kind = raw::kind::TLS_HELLO;
    e.header.size = std::mem::size_of::<raw::TlsHelloEvent>() as u32;
    e.len = hello.len() as u32;
    e.data[..hello.len()].copy_from_slice(&hello);
    e.as_bytes().to_vec()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let open = open_record();
    group.throughput(Throughput::Elements(1));
    group.bench_function("open_record", |b| {
        b.iter(|| agentscope_event::event::decode(&open, 0).unwrap())
    });
    let hello = tls_hello_record();
    group.bench_function("tls_hello_record", |b| {
        b.iter(|| agentscope_event::event::decode(&hello, 0).unwrap())
    });
    let data = data_record();
    group.throughput(Throughput::Bytes(data.len() as u64));
    // As the collector does it: per stream, each chunk scanned with the stream's carried bytes.
    let mut redactor = agentscope_redact::EventRedactor::default();
    group.bench_function("tls_chunk_16k_with_redaction", |b| {
        b.iter(|| {
            let mut event = agentscope_event::event::decode(&data, 0).unwrap();
            redactor.redact(&mut event);
            event
        })
    });
    // A writer sending one byte per write: the worst case for the carried window.
    let mut one_byte = agentscope_event::event::decode(&data, 0).unwrap();
    if let agentscope_event::EventBody::Data { data, .. } = &mut one_byte.body {
        data.truncate(1);
    }
    group.throughput(Throughput::Bytes(1));
    group.bench_function("one_byte_write_with_redaction", |b| {
        b.iter(|| {
            let mut event = one_byte.clone();
            redactor.redact(&mut event);
            event
        })
    });
    // Hostile payloads: every pattern opens a value that never ends, over and over; the scan
    // stays linear in the chunk.
    for (name, unit) in [
        ("hostile_sql_passwords", &b"password '"[..]),
        (
            "hostile_json_keys",
            &b"\\\\\\\"password\\\\\\\": \\\\\\\""[..],
        ),
        (
            "hostile_pem_headers",
            &b"-----BEGIN RSA PRIVATE KEY-----\n"[..],
        ),
        ("hostile_urls", &b"x://u:"[..]),
    ] {
        let chunk: Vec<u8> = unit.iter().copied().cycle().take(16384).collect();
        group.throughput(Throughput::Bytes(chunk.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut buf = chunk.clone();
                agentscope_redact::redact_in_place(&mut buf)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
