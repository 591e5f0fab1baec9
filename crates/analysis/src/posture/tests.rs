//! Posture scenarios over the support-agent pod's objects (tests/agents/kubernetes: the pod,
//! its ServiceAccount, and posture.json with its Role, RoleBindings, Namespace and an
//! ingress-only NetworkPolicy), with usage built from the observations reconstruction makes.

use std::collections::BTreeMap;
use std::path::Path;

use super::cluster::ClusterState;
use super::rbac::{self, effective_grants, objects_from_documents, ServiceAccountRef};
use super::report::{agent_posture, GapCategory};
use super::usage::Usage;
use crate::detect::kubernetes_request::KubernetesRequest;
use crate::model::agents::McpServerEntry;
use crate::model::{ActorIdentity, Agent};
use crate::reconstruct::http::{HttpExchange, HttpRequest, HttpResponse, WireProtocol};
use crate::reconstruct::{ObservationKind, Peer, Role};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/agents/kubernetes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn cluster() -> ClusterState {
    let mut state = ClusterState::parse(&fixture("posture.json")).unwrap();
    for name in ["pod.json", "serviceaccount.json"] {
        state
            .add(serde_json::from_str(&fixture(name)).unwrap())
            .unwrap();
    }
    state
}

fn support_agent() -> Agent {
    Agent {
        key: "k8s:support/Deployment/support-agent/agent:python3 incident_agent.py".into(),
        name: "incident_agent.py".into(),
        program: "python3".into(),
        pids: Default::default(),
        identity: ActorIdentity {
            workload: "k8s:support/Deployment/support-agent/agent".into(),
            pod: Some("support/support-agent-6c9d7f5b8d-q7k2m".into()),
            service_account: Some("support/support-agent".into()),
            ..Default::default()
        },
        first_seen_ns: 0,
        last_seen_ns: 0,
        llm_calls: 1,
        tool_calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        aibom: Default::default(),
        plaintext_not_visible: None,
        enforcement: Default::default(),
    }
}

fn api_call(method: &str, target: &str, status: u16) -> ObservationKind {
    ObservationKind::Http {
        exchange: Box::new(HttpExchange {
            request: HttpRequest {
                method: method.into(),
                target: target.into(),
                headers: Vec::new(),
                body: Vec::new(),
                body_len: 0,
                completeness: Default::default(),
                over_budget: false,
                ts_ns: 1,
            },
            response: Some(HttpResponse {
                status,
                reason: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
                body_len: 0,
                stream: None,
                completeness: Default::default(),
                over_budget: false,
                ts_ns: 2,
                end_ts_ns: 2,
            }),
            host: Some("kubernetes.default.svc".into()),
            port: Some(443),
            tls: true,
            protocol: WireProtocol::Http1,
        }),
        role: Role::Client,
    }
}

fn connect(addr: &str, port: u16) -> ObservationKind {
    ObservationKind::Connect {
        peer: Peer {
            addr: addr.into(),
            port,
        },
        payloads_sampled_out: false,
    }
}

fn gap_titles(posture: &super::AgentPosture, category: GapCategory) -> Vec<String> {
    posture
        .gaps
        .iter()
        .filter(|g| g.category == category)
        .map(|g| g.title.clone())
        .collect()
}

#[test]
fn an_agent_that_only_reads_one_config_map_holds_unused_pod_and_secret_permissions() {
    let cluster = cluster();
    let mut usage = Usage::default();
    usage.observe(&api_call(
        "GET",
        "/api/v1/namespaces/support/configmaps/agent-settings",
        200,
    ));
    usage.observe(&api_call(
        "GET",
        "/api/v1/namespaces/support/configmaps/agent-settings",
        200,
    ));
    let posture = agent_posture(&support_agent(), &usage, Some(&cluster));
    let mut titles = gap_titles(&posture, GapCategory::Rbac);
    titles.sort();
    assert_eq!(
        titles,
        vec![
            "unused permission: create, get, list pods in support",
            "unused permission: create, get, list secrets in support",
        ],
        "{posture:#?}"
    );
    let secrets_gap = posture
        .gaps
        .iter()
        .find(|g| g.title.contains("secrets"))
        .unwrap();
    assert_eq!(secrets_gap.risk, 9, "create secrets: 6 + 3");
    assert!(
        secrets_gap.evidence[0].contains("RoleBinding support/support-agent → Role support-agent")
    );
    let rbac = posture.rbac.as_ref().unwrap();
    assert_eq!(rbac.requests.len(), 1);
    assert_eq!(rbac.requests[0].count, 2);
    assert!(rbac.requests[0].allowed);

    // The generated Role allows exactly what was used, by the same evaluation as the
    // cluster's (kubectl auth can-i) ...
    let documents = &posture.artifacts.rbac;
    assert_eq!(documents.len(), 2, "{documents:#?}");
    assert_eq!(
        documents[0]["rules"],
        serde_json::json!([{
            "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
            "resourceNames": ["agent-settings"]
        }])
    );
    let generated = objects_from_documents(documents).unwrap();
    let account = ServiceAccountRef::parse("support/support-agent").unwrap();
    let grants = effective_grants(&generated, &account);
    let can = |method: &str, target: &str| {
        rbac::can(&grants, &KubernetesRequest::classify(method, target))
    };
    assert!(can(
        "GET",
        "/api/v1/namespaces/support/configmaps/agent-settings"
    ));
    for (method, target) in [
        ("GET", "/api/v1/namespaces/support/configmaps/other"),
        ("GET", "/api/v1/namespaces/support/configmaps"),
        (
            "PUT",
            "/api/v1/namespaces/support/configmaps/agent-settings",
        ),
        ("GET", "/api/v1/namespaces/shop/configmaps/agent-settings"),
        ("GET", "/api/v1/namespaces/support/pods"),
        ("POST", "/api/v1/namespaces/support/pods"),
        ("GET", "/api/v1/namespaces/support/secrets/db"),
        ("GET", "/api/v1/namespaces/support/pods/web/log"),
    ] {
        assert!(!can(method, target), "{method} {target}");
    }
    // ... and nobody else: the binding names the one account.
    let other = ServiceAccountRef::parse("support/billing-agent").unwrap();
    assert!(effective_grants(&generated, &other).is_empty());
    // Nothing the agent used is left unused under the generated Role.
    let used = vec![KubernetesRequest::classify(
        "GET",
        "/api/v1/namespaces/support/configmaps/agent-settings",
    )];
    assert!(rbac::unused_permissions(&grants, &used).is_empty());
}

#[test]
fn refused_requests_are_a_gap_and_not_part_of_the_least_privilege_role() {
    let cluster = cluster();
    let mut usage = Usage::default();
    usage.observe(&api_call("GET", "/api/v1/namespaces/support/pods", 200));
    usage.observe(&api_call(
        "DELETE",
        "/api/v1/namespaces/support/pods/web-0",
        403,
    ));
    let posture = agent_posture(&support_agent(), &usage, Some(&cluster));
    let refused = posture
        .gaps
        .iter()
        .find(|g| g.title == "1 Kubernetes API requests refused")
        .expect("a refused gap");
    assert_eq!(refused.evidence, vec!["delete pods web-0 in support → 403"]);
    assert_eq!(
        posture.artifacts.rbac[0]["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    );
    assert!(gap_titles(&posture, GapCategory::Rbac)
        .contains(&"unused permission: create, get pods in support".to_string()));
}

#[test]
fn dangerous_tools_offered_and_never_called_are_excess_agency() {
    let mut agent = support_agent();
    agent.aibom.tools_offered = BTreeMap::from([
        ("lookup_customer".into(), Some("Look up a customer".into())),
        (
            "run_shell".into(),
            Some("Runs a shell command on the host".into()),
        ),
    ]);
    agent.aibom.mcp_servers.insert(
        "files".into(),
        McpServerEntry {
            name: "files".into(),
            transport: "stdio".into(),
            tools: BTreeMap::from([
                ("read_file".into(), Some("Read a file".into())),
                ("write_file".into(), Some("Write a file".into())),
                ("list_directory".into(), None),
            ]),
            ..Default::default()
        },
    );
    let mut usage = Usage::default();
    usage.tool_calls.insert("lookup_customer".into(), 3);
    usage.mcp_calls.insert("read_file".into(), 1);
    let posture = agent_posture(&agent, &usage, None);
    let tools: Vec<(String, u8)> = posture
        .gaps
        .iter()
        .filter(|g| g.category == GapCategory::Tools)
        .map(|g| (g.title.clone(), g.risk))
        .collect();
    assert_eq!(
        tools,
        vec![
            (
                "excess agency: tool run_shell (shell) offered, never called".to_string(),
                8
            ),
            (
                "excess agency: tool write_file (file write) offered, never called".to_string(),
                6
            ),
            ("1 tools offered, never called".to_string(), 1),
        ]
    );
    assert!(posture.gaps.iter().all(|g| g.labels == vec!["LLM06"]));
    assert_eq!(posture.score, 15);
}

#[test]
fn unrestricted_egress_gets_a_policy_for_the_destinations_used() {
    let cluster = cluster();
    let mut usage = Usage::default();
    usage.observe(&connect("203.0.113.9", 443));
    usage.observe(&connect("203.0.113.9", 443));
    usage.observe(&connect("10.0.7.12", 5432));
    usage.observe(&connect("127.0.0.1", 8080));
    usage.observe(&ObservationKind::Dns {
        queries: vec!["api.example.com".into()],
    });
    let posture = agent_posture(&support_agent(), &usage, Some(&cluster));
    let network = posture.network.as_ref().unwrap();
    assert_eq!(network.egress.selecting, vec!["support/support-ingress"]);
    assert!(network.egress.unrestricted);
    assert_eq!(network.destinations.len(), 2, "loopback is not egress");
    let gap = posture
        .gaps
        .iter()
        .find(|g| g.category == GapCategory::Network)
        .unwrap();
    assert_eq!(gap.title, "unrestricted egress");
    assert_eq!(gap.risk, 7);
    assert!(gap.evidence[0]
        .contains("support/support-ingress select the pod but none restricts egress"));
    assert_eq!(
        gap.evidence[1],
        "connections seen to 10.0.7.12:5432, 203.0.113.9:443"
    );
    // With the generated policy added, what was used is allowed and nothing else.
    let mut with_policy = cluster.clone();
    with_policy
        .add(posture.artifacts.network_policy.clone().unwrap())
        .unwrap();
    let after = agent_posture(&support_agent(), &usage, Some(&with_policy));
    let network = after.network.as_ref().unwrap();
    assert!(!network.egress.unrestricted);
    assert!(network.destinations.iter().all(|d| d.allowed));
    assert!(gap_titles(&after, GapCategory::Network).is_empty());
    let mut elsewhere = usage.clone();
    elsewhere.observe(&connect("198.51.100.7", 443));
    let after = agent_posture(&support_agent(), &elsewhere, Some(&with_policy));
    assert_eq!(
        gap_titles(&after, GapCategory::Network),
        vec!["1 destinations the NetworkPolicies do not allow were connected to"]
    );
    // The baseline's enforcement section allows the same destinations, in audit mode.
    let enforcement = posture.artifacts.enforcement.as_ref().unwrap();
    let allowed: Vec<String> = enforcement
        .allow
        .network
        .iter()
        .map(|a| format!("{}:{}", a.address, a.port))
        .collect();
    assert_eq!(allowed, vec!["10.0.7.12:5432", "203.0.113.9:443"]);
    assert_eq!(enforcement.network.name(), "audit");
    // A database connected to and never queried.
    assert_eq!(
        gap_titles(&posture, GapCategory::Data),
        vec!["database reachable, no table queried: postgresql 10.0.7.12:5432"]
    );
}

#[test]
fn tokens_and_secrets_mounted_but_not_read() {
    let mut cluster = cluster();
    // The pod as before, with a Secret volume mounted into the agent's container.
    let mut pod: serde_json::Value = serde_json::from_str(&fixture("pod.json")).unwrap();
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "crm-credentials", "secret": {"secretName": "crm-credentials", "defaultMode": 420}}));
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "crm-credentials", "mountPath": "/etc/crm", "readOnly": true}));
    cluster.pods.clear();
    cluster.add(pod).unwrap();
    let mut usage = Usage::default();
    usage.observe(&ObservationKind::FileOpen {
        path: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
        class: crate::reconstruct::file_access::classify(
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        ),
        write: false,
    });
    let posture = agent_posture(&support_agent(), &usage, Some(&cluster));
    let mut titles = gap_titles(&posture, GapCategory::Secrets);
    titles.sort();
    assert_eq!(
        titles,
        vec![
            "secret mounted, never read: Secret crm-credentials at /etc/crm",
            "service-account token mounted, never read (service-account token at /var/run/secrets/kubernetes.io/serviceaccount)",
        ]
    );
    let token_gap = posture
        .gaps
        .iter()
        .find(|g| g.title.starts_with("service-account token"))
        .unwrap();
    assert_eq!(token_gap.risk, 6, "the account holds RBAC grants");
    assert_eq!(posture.secrets.len(), 3);
}

#[test]
fn aggregated_cluster_roles_and_group_subjects_reach_the_account() {
    let objects = objects_from_documents(&[
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "agents-monitoring"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agents/aggregate": "true"}}]}
        }),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "read-deployments", "labels": {"agents/aggregate": "true"}},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get", "list", "watch"]}]
        }),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "discovery"},
            "rules": [{"nonResourceURLs": ["/api", "/api/*", "/version"], "verbs": ["get"]}]
        }),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "all-service-accounts-discover"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "discovery"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts", "apiGroup": "rbac.authorization.k8s.io"}]
        }),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "monitoring", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agents-monitoring"},
            "subjects": [{"kind": "ServiceAccount", "name": "support-agent"}]
        }),
    ])
    .unwrap();
    let account = ServiceAccountRef::parse("shop/support-agent").unwrap();
    let grants = effective_grants(&objects, &account);
    let can = |method: &str, target: &str| {
        rbac::can(&grants, &KubernetesRequest::classify(method, target))
    };
    // The RoleBinding's ServiceAccount subject has no namespace: it takes the binding's.
    assert!(can("GET", "/apis/apps/v1/namespaces/shop/deployments"));
    assert!(can(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    ));
    assert!(!can(
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    ));
    assert!(!can("GET", "/apis/apps/v1/namespaces/support/deployments"));
    assert!(
        !can("GET", "/apis/apps/v1/deployments"),
        "all namespaces needs a cluster grant"
    );
    assert!(can("GET", "/version"));
    assert!(can("GET", "/api/v1"));
    assert!(!can("GET", "/apis"));
    let elsewhere = ServiceAccountRef::parse("support/support-agent").unwrap();
    let grants = effective_grants(&objects, &elsewhere);
    assert_eq!(grants.len(), 1, "only the group binding: {grants:#?}");
    let unused =
        rbac::unused_permissions(&grants, &[KubernetesRequest::classify("GET", "/version")]);
    let described: Vec<String> = unused.iter().map(|u| u.describe()).collect();
    assert_eq!(
        described,
        vec!["get /api cluster-wide", "get /api/* cluster-wide"]
    );
}

#[test]
fn wildcards_subresources_and_resource_names() {
    let objects = objects_from_documents(&[
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "shop"},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods/*"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["settings"]}
            ]
        }),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "r", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "system:serviceaccount:shop:agent"}]
        }),
    ])
    .unwrap();
    let grants = effective_grants(&objects, &ServiceAccountRef::parse("shop/agent").unwrap());
    let can = |method: &str, target: &str| {
        rbac::can(&grants, &KubernetesRequest::classify(method, target))
    };
    assert!(can(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/web/status"
    ));
    assert!(!can("GET", "/apis/apps/v1/namespaces/shop/deployments/web"));
    assert!(can("POST", "/api/v1/namespaces/shop/pods/web-0/exec"));
    assert!(!can("POST", "/api/v1/namespaces/shop/pods"));
    assert!(can("DELETE", "/api/v1/namespaces/shop/configmaps/settings"));
    assert!(!can("DELETE", "/api/v1/namespaces/shop/configmaps/other"));
    assert!(
        !can("GET", "/api/v1/namespaces/shop/configmaps"),
        "list has no name"
    );
    let unused = rbac::unused_permissions(
        &grants,
        &[KubernetesRequest::classify(
            "POST",
            "/api/v1/namespaces/shop/pods/web-0/exec",
        )],
    );
    let described: Vec<String> = unused.iter().map(|u| u.describe()).collect();
    assert_eq!(
        described,
        vec!["* configmaps [settings] in shop", "get */*/status in shop"]
    );
    let exec = super::report::permission_risk(&rbac::UnusedPermission {
        namespace: Some("shop".into()),
        verb: "create".into(),
        api_group: String::new(),
        resource: "pods/exec".into(),
        resource_names: Vec::new(),
        via: String::new(),
    });
    assert_eq!(exec, 10);
}
