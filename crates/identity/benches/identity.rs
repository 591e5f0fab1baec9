//! Identity resolution cost per event: a cached resolve (every event after a container's first),
//! a cold resolve of a pod process from its token and environment (a container's first event),
//! the same for a process whose container only its cgroup v1 lines name (v1-only and hybrid
//! hosts: every process's first event), what the collector does at every exec (`note_running`
//! of a process in a container already resolved: the cached resolve plus its /etc/passwd),
//! and the pure parsers behind them. Uses a fake /proc and cgroup tree in a temporary directory.
//! Run: `cargo bench -p agentscope-identity --bench identity`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use agentscope_identity::{
    cgroup_v1, container, service_account_token, IdentityOptions, IdentityResolver,
    KubernetesSource, SERVICE_ACCOUNT_TOKEN_PATH,
};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const POD_UID: &str = "1234abcd-5678-4ef0-9abc-def012345678";

fn token() -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = serde_json::json!({
        "iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:agents:research",
        "kubernetes.io": {"namespace": "agents", "node": {"name": "node-1", "uid": "n"},
            "pod": {"name": "research-7d9f8b6c5d-x2x4z", "uid": POD_UID},
            "serviceaccount": {"name": "research", "uid": "s"}}
    });
    format!(
        "{}.{}.{}",
        engine.encode(br#"{"alg":"RS256"}"#),
        engine.encode(claims.to_string()),
        engine.encode([7u8; 256])
    )
}

/// A container cgroup and a process (pid 77) in it with a token and a pod environment.
fn fake_node(root: &Path) -> (String, u64) {
    let relative = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
        POD_UID.replace('-', "_"),
        "ab".repeat(32)
    );
    let cgroups = root.join("cgroup");
    std::fs::create_dir_all(cgroups.join(&relative)).unwrap();
    let id = std::fs::metadata(cgroups.join(&relative)).unwrap().ino();
    let process = root.join("proc/77");
    let token_path = process
        .join("root")
        .join(SERVICE_ACCOUNT_TOKEN_PATH.trim_start_matches('/'));
    std::fs::create_dir_all(token_path.parent().unwrap()).unwrap();
    std::fs::write(&token_path, token()).unwrap();
    std::fs::write(process.join("cgroup"), format!("0::/{relative}\n")).unwrap();
    std::fs::create_dir_all(process.join("root/etc")).unwrap();
    std::fs::write(
        process.join("root/etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        process.join("environ"),
        "PATH=/usr/bin\0HOSTNAME=research-7d9f8b6c5d-x2x4z\0KUBERNETES_SERVICE_HOST=10.0.0.1\0AWS_ROLE_ARN=arn:aws:iam::1:role/r\0",
    )
    .unwrap();
    (format!("/{relative}"), id)
}

/// Pid 78: pid 77's pod and token, its container in the v1 hierarchies (kubelet's cgroupfs
/// driver) and the unified root, as on a hybrid host whose runtime uses v1. Returns its
/// `/proc/PID/cgroup` and the v2 root's id.
fn fake_v1_process(root: &Path) -> (String, u64) {
    let path = format!("/kubepods/burstable/pod{POD_UID}/{}", "cd".repeat(32));
    let proc_cgroup = format!(
        "12:pids:{path}\n11:cpu,cpuacct:{path}\n10:memory:{path}\n9:devices:{path}\n\
         8:freezer:{path}\n4:net_cls,net_prio:{path}\n1:name=systemd:{path}\n0::/\n"
    );
    let pod_process = root.join("proc/77");
    let process = root.join("proc/78");
    std::fs::create_dir_all(&process).unwrap();
    std::os::unix::fs::symlink(pod_process.join("root"), process.join("root")).unwrap();
    std::fs::copy(pod_process.join("environ"), process.join("environ")).unwrap();
    std::fs::write(process.join("cgroup"), &proc_cgroup).unwrap();
    let root_id = std::fs::metadata(root.join("cgroup")).unwrap().ino();
    (proc_cgroup, root_id)
}

fn resolver(root: &Path) -> IdentityResolver {
    IdentityResolver::new(IdentityOptions {
        proc_root: root.join("proc"),
        cgroup_root: Some(root.join("cgroup")),
        kubernetes: KubernetesSource::Off,
        node_name: Some("node-1".into()),
    })
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (path, cgroup_id) = fake_node(dir.path());
    let mut group = c.benchmark_group("identity");
    group.throughput(Throughput::Elements(1));

    let mut warm = resolver(dir.path());
    assert!(warm.resolve(77, cgroup_id).pod.is_some());
    group.bench_function("resolve_cached", |b| b.iter(|| warm.resolve(77, cgroup_id)));

    group.bench_function("note_running_in_a_resolved_container", |b| {
        b.iter(|| warm.note_running(77, cgroup_id, 1000))
    });

    group.bench_function("resolve_cold_token_and_environment", |b| {
        b.iter_batched(
            || resolver(dir.path()),
            |mut cold| cold.resolve(77, cgroup_id),
            BatchSize::SmallInput,
        )
    });

    let (proc_cgroup, root_id) = fake_v1_process(dir.path());
    assert!(resolver(dir.path())
        .resolve(78, root_id)
        .cgroup_v1
        .is_some());
    group.bench_function("resolve_cold_cgroup_v1_token_and_environment", |b| {
        b.iter_batched(
            || resolver(dir.path()),
            |mut cold| cold.resolve(78, root_id),
            BatchSize::SmallInput,
        )
    });

    group.bench_function("placement_from_proc_cgroup_v1", |b| {
        b.iter(|| cgroup_v1::placement_from_proc_cgroup(&proc_cgroup))
    });

    group.bench_function("parse_cgroup_path", |b| {
        b.iter(|| container::parse_cgroup_path(&path))
    });

    let token = token();
    group.bench_function("decode_token_claims", |b| {
        b.iter(|| service_account_token::decode_claims(token.as_bytes()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
