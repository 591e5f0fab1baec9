//! Wire-protocol reconstruction throughput: bytes per second through the PostgreSQL and Redis
//! connection parsers, on the captured fixtures (psql simple queries, pgbench prepared
//! statements, a redis-cli session whose 150 KB `COMMAND DOCS` reply dominates), and the cost
//! of classifying one opened path.
//! Run: `cargo bench -p agentscope-reconstruct --bench wire_protocols`.

use agentscope_event::event::Direction;
use agentscope_reconstruct::file_access::classify;
use agentscope_reconstruct::postgres::PostgresConnection;
use agentscope_reconstruct::redis::RedisConnection;
use base64::Engine;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn chunks(jsonl: &str) -> Vec<(Direction, Vec<u8>, u64)> {
    jsonl
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let direction = if event["direction"] == "egress" {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(event["data_b64"].as_str().unwrap())
                .unwrap();
            (direction, bytes, event["ts_ns"].as_u64().unwrap())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire_protocols");
    let postgres = [
        (
            "postgres_simple_query",
            include_str!(concat!(
                env!("AGENTSCOPE_REPO"),
                "/tests/fixtures/postgres/simple_query.jsonl"
            )),
        ),
        (
            "postgres_prepared_statements",
            include_str!(concat!(
                env!("AGENTSCOPE_REPO"),
                "/tests/fixtures/postgres/prepared_statements.jsonl"
            )),
        ),
    ];
    for (name, fixture) in postgres {
        let chunks = chunks(fixture);
        let total: usize = chunks.iter().map(|(_, b, _)| b.len()).sum();
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut connection = PostgresConnection::new();
                let mut statements = 0;
                for (direction, bytes, ts) in &chunks {
                    statements += connection.feed(*direction, bytes, *ts).len();
                }
                black_box(statements + connection.finish().len())
            })
        });
    }
    let redis = chunks(include_str!(concat!(
        env!("AGENTSCOPE_REPO"),
        "/tests/fixtures/redis/resp2_session.jsonl"
    )));
    let total: usize = redis.iter().map(|(_, b, _)| b.len()).sum();
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("redis_resp2_session", |b| {
        b.iter(|| {
            let mut connection = RedisConnection::new();
            let mut commands = 0;
            for (direction, bytes, ts) in &redis {
                commands += connection.feed(*direction, bytes, *ts).len();
            }
            black_box(commands + connection.finish().len())
        })
    });
    let paths = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/root/.pyenv/versions/3.11.7/lib/python3.11/json/__init__.py",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "/srv/app/data/customers.csv",
    ];
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.bench_function("classify_path", |b| {
        b.iter(|| {
            for path in paths {
                black_box(classify(black_box(path)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
