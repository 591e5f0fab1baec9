//! End-to-end tests of the identity resolver: real cgroups shaped like the kubelet's, real
//! processes moved into them, a Kubernetes API-server double that speaks the API's JSON (list
//! and watch of pods with resourceVersions, GET of ReplicaSets and ServiceAccounts), a pod's
//! service-account token bind-mounted in a private mount namespace, the kernel programs'
//! own cgroup ids, and a real podman container resolved through its cgroup v1 lines.
//!
//! They need root (cgroup creation, mounts, eBPF): without it they fail, never skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentscope_identity::{
    process_root, CloudRoleKind, ContainerRuntime, Identity, IdentityOptions, IdentityResolver,
    IdentitySource, KubernetesSource, SERVICE_ACCOUNT_TOKEN_PATH,
};
use base64::Engine as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use serde_json::{json, Value};

// The cgroup and API-server doubles, shared with the agentscope end-to-end tests.
use crate::support;
use kubernetes::{random_hex, write_kubeconfig, ApiServer, PodCgroup};
use support::kubernetes;

const NODE: &str = "agentscope-test-node";
/// How long to wait for the watcher to deliver a change (a deadline, not a speed claim).
const DEADLINE: Duration = Duration::from_secs(20);

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the identity end-to-end tests create cgroups, mount in private namespaces and load eBPF \
         programs: run them as root (sudo make test-e2e)"
    );
}

fn random_pod_uid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not a {name}: {e}"))
}

/// The fixture pod, moved onto `node` with this UID and container id.
fn fixture_pod(uid: &str, node: &str, container_id: &str) -> Pod {
    let mut pod: Pod = fixture("pod.json");
    pod.metadata.uid = Some(uid.to_string());
    pod.spec.as_mut().unwrap().node_name = Some(node.to_string());
    for status in pod
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()
    {
        status.container_id = Some(format!("containerd://{container_id}"));
    }
    pod
}

fn spawn_sleep() -> Child {
    Command::new("sleep")
        .arg("1000")
        .env_clear()
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep")
}

/// An unsigned JWT carrying `claims` (the resolver never verifies signatures, by design).
fn token_with_claims(claims: &Value) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        engine.encode(br#"{"alg":"RS256","kid":"agentscope-test"}"#),
        engine.encode(claims.to_string()),
        engine.encode(random_hex(64))
    )
}

/// A process like a pod's container: in the pod's cgroup, in its own mount namespace where the
/// service-account token directory holds `token`, with the environment the kubelet and the
/// IRSA webhook give. Returns its pid once it runs `sleep` with the token in place.
fn spawn_pod_process(
    cgroup: &mut PodCgroup,
    secrets: &Path,
    token: &str,
    env: &[(&str, &str)],
) -> u32 {
    std::fs::write(secrets.join("token"), token).unwrap();
    std::fs::write(secrets.join("namespace"), "agents").unwrap();
    // /var/run is /run here; a tmpfs over /run, private to the namespace, holds the mount point
    // without touching the host.
    let script = r#"set -e
mount -t tmpfs agentscope-test /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
mount --bind "$SECRETS" /run/secrets/kubernetes.io/serviceaccount
exec sleep 1000"#;
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SECRETS", secrets)
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let pid = cgroup.adopt(command.spawn().expect("unshare"));
    // Not `/proc/PID/root/var/run/...`: /var/run links to the absolute /run, which a plain path
    // walk resolves in the reader's namespace, not the process's (the resolver avoids that too).
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let started = Instant::now();
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let mounted = process_root::read_in_root(&root, SERVICE_ACCOUNT_TOKEN_PATH, 1 << 16)
            .is_ok_and(|content| content == token.as_bytes());
        if comm.trim() == "sleep" && mounted {
            return pid;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the pod-like process did not start (comm {comm:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `resolve` until `done` holds for the identity of `pid`, or fails after DEADLINE.
async fn resolve_until(
    resolver: &mut IdentityResolver,
    pid: u32,
    cgroup_id: u64,
    what: &str,
    done: impl Fn(&Identity) -> bool,
) -> Arc<Identity> {
    let started = Instant::now();
    loop {
        let identity = resolver.resolve(pid, cgroup_id);
        if done(&identity) {
            return identity;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: still {identity:#?}; warnings {:?}",
            resolver.warnings()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn options(kubernetes: KubernetesSource) -> IdentityOptions {
    IdentityOptions {
        proc_root: PathBuf::from("/proc"),
        // Found from /proc/self/mountinfo, as in production.
        cgroup_root: None,
        kubernetes,
        node_name: Some(NODE.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_identity_follows_the_pod_watch() {
    require_root();
    let pod_uid = random_pod_uid();
    let container_id = random_hex(64);
    let mut cgroup = PodCgroup::create(&pod_uid, &container_id);
    let pid = cgroup.adopt(spawn_sleep());

    let replica_set: ReplicaSet = fixture("replicaset.json");
    let account: ServiceAccount = fixture("serviceaccount.json");
    let mut pod = fixture_pod(&pod_uid, NODE, &container_id);
    let namespace = pod.metadata.namespace.clone().unwrap();
    let deployment = replica_set.metadata.owner_references.as_ref().unwrap()[0]
        .name
        .clone();
    let role_arn =
        account.metadata.annotations.as_ref().unwrap()["eks.amazonaws.com/role-arn"].clone();

    // HTTPS with a CA-signed leaf, as a real API server: the resolver trusts the CA named in
    // its kubeconfig.
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start_tls(false, &dir.path().join("api-cert")).await;
    server.add_pod(&pod);
    // Another node's pod, with the same container id: the field selector must keep it out.
    server.add_pod(fixture_pod(&random_pod_uid(), "other-node", &container_id));
    server.add_object(
        &format!(
            "/apis/apps/v1/namespaces/{namespace}/replicasets/{}",
            replica_set.metadata.name.as_deref().unwrap()
        ),
        serde_json::to_value(&replica_set).unwrap(),
    );
    server.add_object(
        &format!(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{}",
            account.metadata.name.as_deref().unwrap()
        ),
        serde_json::to_value(&account).unwrap(),
    );
    let kubeconfig = server.write_kubeconfig(dir.path());
    assert!(std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .contains("server: https://"));

    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(kubeconfig)));
    resolver.start().await.expect("start");
    let identity = resolve_until(&mut resolver, pid, cgroup.id, "pod from the API", |i| {
        i.pod
            .as_ref()
            .is_some_and(|p| p.source == IdentitySource::Api)
    })
    .await;
    assert!(resolver.kubernetes_synced());
    assert_eq!(resolver.watched_pods(), 1, "only this node's pods");
    assert!(
        resolver.warnings().is_empty(),
        "warnings: {:?}",
        resolver.warnings()
    );
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("/api/v1/pods?")
            && r.contains("watch=true")
            && r.contains(&format!("fieldSelector=spec.nodeName%3D{NODE}"))),
        "no watch of this node's pods among {requests:#?}"
    );
    // What the collector asked for is what deploy/'s ClusterRole grants.
    assert_eq!(
        server.requests_the_deployed_role_forbids(),
        Vec::<String>::new(),
        "deploy/clusterrole.yaml does not grant what the collector uses"
    );

    assert_eq!(
        identity.cgroup_path.as_deref(),
        Some(cgroup.relative.as_str())
    );
    let container = identity.container.as_ref().unwrap();
    assert_eq!(container.id, container_id);
    assert_eq!(container.runtime, ContainerRuntime::Containerd);
    let found = identity.pod.as_ref().unwrap();
    assert_eq!(found.namespace.as_deref(), Some(namespace.as_str()));
    assert_eq!(found.name, pod.metadata.name);
    assert_eq!(found.uid.as_deref(), Some(pod_uid.as_str()));
    assert_eq!(found.node.as_deref(), Some(NODE));
    assert_eq!(found.container_name.as_deref(), Some("agent"));
    assert_eq!(
        found.image,
        pod.spec.as_ref().unwrap().containers[0].image.clone()
    );
    let workload = found.workload.as_ref().unwrap();
    assert_eq!(
        (
            workload.kind.as_str(),
            workload.name.as_str(),
            workload.inferred
        ),
        ("Deployment", deployment.as_str(), false),
        "the Deployment comes from the ReplicaSet's owner, not a guess"
    );
    assert_eq!(found.service_account, account.metadata.name);
    let irsa = found
        .cloud_roles
        .iter()
        .find(|r| r.kind == CloudRoleKind::AwsIrsa)
        .expect("IRSA role");
    assert_eq!(irsa.principal, role_arn);
    assert_eq!(irsa.source, IdentitySource::Api);
    assert_eq!(
        irsa.origin,
        "serviceaccount annotation eks.amazonaws.com/role-arn"
    );
    assert_eq!(
        identity.workload_key("/usr/bin/python3"),
        format!("k8s:{namespace}/Deployment/{deployment}/agent:/usr/bin/python3")
    );
    assert_eq!(resolver.user_name(pid, 0).as_deref(), Some("root"));

    // A MODIFIED event (the image of the pod's container changed) reaches resolution.
    let new_image = "ghcr.io/example/research-agent:1.5.0".to_string();
    pod.spec.as_mut().unwrap().containers[0].image = Some(new_image.clone());
    server.send("MODIFIED", &pod);
    resolve_until(&mut resolver, pid, cgroup.id, "modified image", |i| {
        i.pod.as_ref().and_then(|p| p.image.as_deref()) == Some(new_image.as_str())
    })
    .await;

    // After DELETED the API no longer vouches for it: the cgroup's pod UID is all that is left
    // (this process has no token and no Kubernetes environment).
    server.send("DELETED", &pod);
    let after = resolve_until(&mut resolver, pid, cgroup.id, "deleted pod", |i| {
        i.pod
            .as_ref()
            .is_some_and(|p| p.source != IdentitySource::Api)
    })
    .await;
    let left = after.pod.as_ref().unwrap();
    assert_eq!(left.source, IdentitySource::Environment);
    assert_eq!(left.uid.as_deref(), Some(pod_uid.as_str()));
    assert_eq!(left.name, None);
    assert_eq!(resolver.watched_pods(), 0);
}

fn pod_token_claims(pod_uid: &str) -> (Pod, Value) {
    let pod: Pod = fixture("pod.json");
    let spec = pod.spec.as_ref().unwrap();
    let claims = json!({
        "aud": ["https://kubernetes.default.svc"],
        "exp": 1893456000,
        "iat": 1735689600,
        "iss": "https://kubernetes.default.svc",
        "kubernetes.io": {
            "namespace": pod.metadata.namespace,
            "node": {"name": NODE, "uid": random_pod_uid()},
            "pod": {"name": pod.metadata.name, "uid": pod_uid},
            "serviceaccount": {"name": spec.service_account_name, "uid": random_pod_uid()},
            "warnafter": 1735693207
        },
        "nbf": 1735689600,
        "sub": format!(
            "system:serviceaccount:{}:{}",
            pod.metadata.namespace.as_deref().unwrap(),
            spec.service_account_name.as_deref().unwrap()
        )
    });
    (pod, claims)
}

fn assert_token_identity(identity: &Identity, pod: &Pod, pod_uid: &str, role_arn: &str) {
    let found = identity.pod.as_ref().expect("a pod identity");
    assert_eq!(found.source, IdentitySource::ServiceAccountToken);
    assert_eq!(found.namespace, pod.metadata.namespace);
    assert_eq!(found.name, pod.metadata.name);
    assert_eq!(found.uid.as_deref(), Some(pod_uid));
    assert_eq!(found.node.as_deref(), Some(NODE));
    assert_eq!(
        found.service_account,
        pod.spec.as_ref().unwrap().service_account_name
    );
    assert_eq!(
        found.container_name, None,
        "only the API knows container names"
    );
    let workload = found.workload.as_ref().unwrap();
    assert_eq!(
        (
            workload.kind.as_str(),
            workload.name.as_str(),
            workload.inferred
        ),
        ("Deployment", "research-agent", true),
        "inferred from the pod name"
    );
    let role = &found.cloud_roles[0];
    assert_eq!(
        (role.kind, role.principal.as_str(), role.source),
        (
            CloudRoleKind::AwsIrsa,
            role_arn,
            IdentitySource::Environment
        )
    );
}

#[test]
fn token_and_environment_identify_a_pod_without_the_api() {
    require_root();
    let pod_uid = random_pod_uid();
    let container_id = random_hex(64);
    let mut cgroup = PodCgroup::create(&pod_uid, &container_id);
    let (pod, claims) = pod_token_claims(&pod_uid);
    let secrets = tempfile::tempdir().unwrap();
    let role_arn = "arn:aws:iam::111122223333:role/research-agent";
    let pod_name = pod.metadata.name.clone().unwrap();
    let token = token_with_claims(&claims);
    let pid = spawn_pod_process(
        &mut cgroup,
        secrets.path(),
        &token,
        &[
            ("HOSTNAME", pod_name.as_str()),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("AWS_ROLE_ARN", role_arn),
        ],
    );
    assert_ne!(
        std::fs::read_to_string(SERVICE_ACCOUNT_TOKEN_PATH).ok(),
        Some(token),
        "the token must be visible in the process's mount namespace only"
    );

    let mut resolver = IdentityResolver::new(options(KubernetesSource::Off));
    let identity = resolver.resolve(pid, cgroup.id);
    assert!(resolver.warnings().is_empty(), "{:?}", resolver.warnings());
    assert_eq!(
        identity.cgroup_path.as_deref(),
        Some(cgroup.relative.as_str())
    );
    assert_eq!(identity.container.as_ref().unwrap().id, container_id);
    assert_token_identity(&identity, &pod, &pod_uid, role_arn);
    assert_eq!(
        identity.workload_key("/usr/bin/sleep"),
        "k8s:agents/Deployment/research-agent/?:/usr/bin/sleep"
    );

    // A malformed token is ignored, not fatal: the environment still names the pod.
    let other_uid = random_pod_uid();
    let mut other = PodCgroup::create(&other_uid, &random_hex(64));
    let secrets = tempfile::tempdir().unwrap();
    let pid = spawn_pod_process(
        &mut other,
        secrets.path(),
        "not.a-valid.jwt!!",
        &[
            ("HOSTNAME", "postgres-0"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ],
    );
    let identity = resolver.resolve(pid, other.id);
    let found = identity.pod.as_ref().unwrap();
    assert_eq!(found.source, IdentitySource::Environment);
    assert_eq!(found.name.as_deref(), Some("postgres-0"));
    assert_eq!(found.uid.as_deref(), Some(other_uid.as_str()));
    assert_eq!(found.workload.as_ref().unwrap().kind, "StatefulSet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_server_is_a_warning_and_the_fallback_works() {
    require_root();
    // A port that was just free and is closed: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(kubeconfig)));
    resolver
        .start()
        .await
        .expect("an unreachable API server is not an error");
    let warnings = resolver.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("cannot reach the Kubernetes API server")
                && w.contains(&format!("listing pods on node {NODE}"))
                && w.contains("--no-kubernetes")),
        "{warnings:#?}"
    );
    assert!(!resolver.kubernetes_synced());

    let pod_uid = random_pod_uid();
    let mut cgroup = PodCgroup::create(&pod_uid, &random_hex(64));
    let (pod, claims) = pod_token_claims(&pod_uid);
    let secrets = tempfile::tempdir().unwrap();
    let role_arn = "arn:aws:iam::111122223333:role/research-agent";
    let pid = spawn_pod_process(
        &mut cgroup,
        secrets.path(),
        &token_with_claims(&claims),
        &[
            ("HOSTNAME", pod.metadata.name.as_deref().unwrap()),
            ("AWS_ROLE_ARN", role_arn),
        ],
    );
    let identity = resolver.resolve(pid, cgroup.id);
    assert_token_identity(&identity, &pod, &pod_uid, role_arn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_pod_list_says_which_permissions_to_grant() {
    require_root();
    let server = ApiServer::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(
        server.write_kubeconfig(dir.path()),
    )));
    resolver.start().await.expect("403 is a warning");
    let warnings = resolver.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("403 listing pods on node {NODE}"))
                && w.contains("grant list/watch on pods and get on serviceaccounts")),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn an_unusable_kubeconfig_is_an_error_that_says_what_to_do() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-kubeconfig");
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(path.clone())));
    let error = resolver
        .start()
        .await
        .expect_err("missing file")
        .to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("--no-kubernetes"), "{error}");
}

/// The cgroup id the kernel programs record (bpf_get_current_cgroup_id) is the inode of the
/// cgroup's directory, which is what the resolver looks up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_cgroup_id_is_the_cgroup_directory_inode() {
    require_root();
    let pod_uid = random_pod_uid();
    let container_id = random_hex(64);
    let mut cgroup = PodCgroup::create(&pod_uid, &container_id);
    let mut shell = Command::new("sh")
        .args(["-c", "read line; /bin/true; read line"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut stdin = shell.stdin.take().unwrap();
    let shell_pid = cgroup.adopt(shell);

    let mut collector = agentscope_kernel::Collector::start(agentscope_kernel::CollectorOptions {
        pids: vec![shell_pid],
        ..Default::default()
    })
    .expect("collector (built with its kernel programs, run as root)");
    stdin.write_all(b"go\n").unwrap();

    let started = Instant::now();
    let exec = loop {
        let batch = tokio::time::timeout(Duration::from_millis(500), collector.next_batch(256))
            .await
            .unwrap_or(Ok(Vec::new()))
            .expect("read events");
        let found = batch.into_iter().find(|e| {
            matches!(&e.body, agentscope_event::EventBody::Exec { filename, .. } if filename.ends_with("/true"))
        });
        if let Some(event) = found {
            break event;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no exec event of /bin/true from the test cgroup"
        );
    };
    assert_eq!(
        exec.header.cgroup_id, cgroup.id,
        "bpf_get_current_cgroup_id differs from the inode of {:?}",
        cgroup.leaf
    );
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Off));
    let identity = resolver.resolve(exec.header.pid, exec.header.cgroup_id);
    assert_eq!(
        identity.cgroup_path.as_deref(),
        Some(cgroup.relative.as_str())
    );
    assert_eq!(identity.container.as_ref().unwrap().id, container_id);
    assert_eq!(
        identity.pod.as_ref().unwrap().uid.as_deref(),
        Some(pod_uid.as_str())
    );
    drop(stdin);
}

/// A podman container (rootful, runc: crun refuses this machine's hybrid cgroups) running
/// `sleep` from the host's /usr in an otherwise empty root directory; removed however the test
/// ends.
struct PodmanSleep {
    id: String,
    pid: u32,
    _rootfs: tempfile::TempDir,
}

impl PodmanSleep {
    fn start() -> PodmanSleep {
        let rootfs = tempfile::tempdir().unwrap();
        for sub in ["usr", "tmp", "etc"] {
            std::fs::create_dir(rootfs.path().join(sub)).unwrap();
        }
        std::fs::write(
            rootfs.path().join("etc/passwd"),
            "sandbox:x:0:0::/:/bin/sh\n",
        )
        .unwrap();
        for (link, target) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            std::os::unix::fs::symlink(target, rootfs.path().join(link)).unwrap();
        }
        let rootfs_arg = rootfs.path().to_str().unwrap().to_string();
        let id = Self::podman(&[
            "run",
            "--detach",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
            "-v",
            "/usr:/usr:ro",
            "--rootfs",
            &rootfs_arg,
            "/usr/bin/sleep",
            "1000",
        ]);
        let mut container = PodmanSleep {
            id,
            pid: 0,
            _rootfs: rootfs,
        };
        container.pid = Self::podman(&["inspect", "--format", "{{.State.Pid}}", &container.id])
            .parse()
            .expect("podman inspect gives the container's pid");
        container
    }

    fn podman(args: &[&str]) -> String {
        let output = Command::new("podman")
            .args(["--runtime", "runc"])
            .args(args)
            .output()
            .expect("podman (make setup)");
        assert!(
            output.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

impl Drop for PodmanSleep {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args([
                "--runtime",
                "runc",
                "rm",
                "--force",
                "--time",
                "0",
                &self.id,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A podman container, a resolver without the API, and the unified hierarchy's mount point.
fn podman_sleep_and_resolver() -> (PodmanSleep, IdentityResolver, PathBuf) {
    let container = PodmanSleep::start();
    let resolver = IdentityResolver::new(options(KubernetesSource::Off));
    let unified = resolver
        .cgroup_mount()
        .expect("this hybrid host has a cgroup2 mount")
        .to_path_buf();
    (container, resolver, unified)
}

/// On this hybrid host podman (runc) places a container in the v1 hierarchies and the unified
/// one alike. Moved to the unified root (`0::/`, what a runtime that uses only the v1
/// controllers leaves, and what a v1-only host's kernel reports: the root's id for everyone),
/// the same process resolves to the same container through its v1 lines, with a note saying
/// so.
#[test]
fn a_podman_container_resolves_the_same_through_cgroup_v1_as_through_v2() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let (container, mut resolver, unified) = podman_sleep_and_resolver();
    let pid = container.pid;
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2_path = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a unified line")
        .to_string();
    assert_eq!(
        v2_path,
        format!("/libpod_parent/libpod-{}", container.id),
        "{proc_cgroup}"
    );
    let v2_id = std::fs::metadata(unified.join(v2_path.trim_start_matches('/')))
        .unwrap()
        .ino();
    let through_v2 = resolver.resolve(pid, v2_id);
    let expected = Some(agentscope_identity::ContainerIdentity {
        id: container.id.clone(),
        runtime: ContainerRuntime::Podman,
    });
    assert_eq!(through_v2.container, expected, "{through_v2:#?}");
    assert_eq!(through_v2.cgroup_v1, None);

    std::fs::write(unified.join("cgroup.procs"), pid.to_string())
        .expect("move the container's process to the unified root");
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(proc_cgroup.lines().any(|l| l == "0::/"), "{proc_cgroup}");
    let root_id = std::fs::metadata(&unified).unwrap().ino();
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Off));
    let through_v1 = resolver.resolve(pid, root_id);
    assert_eq!(
        through_v1.container, through_v2.container,
        "{through_v1:#?}"
    );
    assert_eq!(through_v1.pod, through_v2.pod);
    assert_eq!(through_v1.cgroup_path.as_deref(), Some("/"));
    let placement = through_v1
        .cgroup_v1
        .as_ref()
        .expect("noted as read from v1");
    assert_eq!(placement.hierarchy, "name=systemd");
    assert_eq!(placement.path, v2_path);
}

/// The collector looks a process up when its events make it an agent, which on a loaded node
/// is well behind the kernel: a short-lived agent may be gone by then, its container removed,
/// cgroup and all. What was read at its exec (`note_running`, which the collector calls for
/// every exec) still answers: the container and the user its own /etc/passwd names.
#[test]
fn a_container_removed_before_its_lookup_is_answered_as_it_ran() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let (container, mut resolver, unified) = podman_sleep_and_resolver();
    let pid = container.pid;
    let cgroup_dir = unified.join(format!("libpod_parent/libpod-{}", container.id));
    let cgroup_id = std::fs::metadata(&cgroup_dir).unwrap().ino();
    resolver.note_running(pid, cgroup_id, 0);

    let id = container.id.clone();
    drop(container);
    assert!(
        !cgroup_dir.exists(),
        "podman rm removes the container's cgroup"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    let expected = Some(agentscope_identity::ContainerIdentity {
        id,
        runtime: ContainerRuntime::Podman,
    });
    let identity = resolver.resolve(pid, cgroup_id);
    assert_eq!(identity.container, expected, "{identity:#?}");
    assert_eq!(resolver.user_name(pid, 0).as_deref(), Some("sandbox"));
    // What a resolver that never saw it running can say now: nothing.
    let mut late = IdentityResolver::new(options(KubernetesSource::Off));
    assert_eq!(late.resolve(pid, cgroup_id).container, None);
    assert_eq!(late.user_name(pid, 0), None);
}
