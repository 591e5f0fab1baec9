//! Kubernetes NetworkPolicy egress as the network plugin enforces it, for one pod: which
//! policies select it (same namespace, `podSelector`), whether its egress is isolated at all
//! (a selecting policy whose `policyTypes` include `Egress`, or, without `policyTypes`, that
//! has `egress` rules; no such policy means unrestricted egress), whether a destination is
//! allowed (any rule of any selecting policy: `to` peers by `ipBlock` with `except`, by
//! `podSelector`/`namespaceSelector` through the pods and namespaces known, `ports` with
//! protocol, `endPort` and named ports), and a generated policy allowing exactly the
//! destinations used.
//!
//! Written here because no Rust crate evaluates NetworkPolicies; the semantics are those of
//! the `networking.k8s.io/v1` API reference. Traffic to the pod's own loopback is never
//! subject to a policy and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::selector::selector_matches;
use crate::baseline::enforcement::{NetAllow, NetProtocol};

/// The pod whose egress is evaluated.
#[derive(Debug, Clone, Default)]
pub struct PodPlacement {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A pod another pod's policy may name, by its address.
#[derive(Debug, Clone, Default)]
pub struct PeerPod {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Named container ports (`http` → 8080).
    pub ports: BTreeMap<String, u16>,
}

/// What a policy evaluation needs besides the policies: namespaces' labels and pods by IP.
#[derive(Debug, Clone, Default)]
pub struct NetworkView {
    pub policies: Vec<NetworkPolicy>,
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    pub pods_by_ip: BTreeMap<IpAddr, PeerPod>,
}

/// A destination the agent connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Destination {
    pub address: IpAddr,
    pub port: u16,
    /// `TCP` unless the observation said otherwise (a connect on a stream socket).
    pub protocol: &'static str,
}

/// The egress verdict for a pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EgressPosture {
    /// `namespace/name` of the policies selecting the pod.
    pub selecting: Vec<String>,
    /// Of those, the ones that isolate its egress.
    pub isolating: Vec<String>,
    /// No policy isolates the pod's egress: it may reach anything.
    pub unrestricted: bool,
    /// Allowed by a rule that admits every destination (`to` empty or `0.0.0.0/0`) on some
    /// port: isolated in name only.
    pub allows_any_destination: bool,
}

fn policy_name(policy: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        policy.metadata.namespace.as_deref().unwrap_or_default(),
        policy.metadata.name.as_deref().unwrap_or_default()
    )
}

fn selects(policy: &NetworkPolicy, pod: &PodPlacement) -> bool {
    policy.metadata.namespace.as_deref() == Some(pod.namespace.as_str())
        && policy.spec.as_ref().is_some_and(|spec| {
            // An absent podSelector is the empty one: every pod of the namespace.
            let selector = spec.pod_selector.clone().unwrap_or_default();
            selector_matches(&selector, &pod.labels)
        })
}

fn isolates_egress(policy: &NetworkPolicy) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == "Egress"),
        None => spec.egress.is_some(),
    }
}

fn egress_rules(view: &NetworkView, pod: &PodPlacement) -> Vec<NetworkPolicyEgressRule> {
    view.policies
        .iter()
        .filter(|p| selects(p, pod) && isolates_egress(p))
        .flat_map(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.egress.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Which policies select the pod and whether its egress is restricted.
pub fn egress_posture(view: &NetworkView, pod: &PodPlacement) -> EgressPosture {
    let selecting: Vec<&NetworkPolicy> = view.policies.iter().filter(|p| selects(p, pod)).collect();
    let isolating: Vec<String> = selecting
        .iter()
        .filter(|p| isolates_egress(p))
        .map(|p| policy_name(p))
        .collect();
    let allows_any_destination = egress_rules(view, pod).iter().any(|rule| {
        let peers = rule.to.as_deref().unwrap_or_default();
        peers.is_empty()
            || peers.iter().any(|peer| {
                peer.ip_block.as_ref().is_some_and(|block| {
                    (block.cidr == "0.0.0.0/0" || block.cidr == "::/0")
                        && block.except.as_deref().unwrap_or_default().is_empty()
                })
            })
    });
    EgressPosture {
        selecting: selecting.iter().map(|p| policy_name(p)).collect(),
        unrestricted: isolating.is_empty(),
        isolating,
        allows_any_destination,
    }
}

/// Whether `address` is inside `cidr` (an unparsable CIDR contains nothing).
fn cidr_contains(cidr: &str, address: IpAddr) -> bool {
    let allow = NetAllow {
        protocol: NetProtocol::Any,
        address: cidr.to_string(),
        port: 0,
    };
    let Ok((network, bits)) = allow.prefix() else {
        return false;
    };
    match (network, address) {
        (IpAddr::V4(net), IpAddr::V4(addr)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(net) & mask == u32::from(addr) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(addr)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(net) & mask == u128::from(addr) & mask
        }
        _ => false,
    }
}

fn peer_allows(
    view: &NetworkView,
    pod: &PodPlacement,
    peer: &NetworkPolicyPeer,
    to: IpAddr,
) -> bool {
    if let Some(block) = &peer.ip_block {
        return cidr_contains(&block.cidr, to)
            && !block
                .except
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|except| cidr_contains(except, to));
    }
    // Pod and namespace selectors name pods: the destination must be a known pod.
    let Some(target) = view.pods_by_ip.get(&to) else {
        return false;
    };
    let namespace_ok = match &peer.namespace_selector {
        Some(selector) => {
            let labels = view
                .namespace_labels
                .get(&target.namespace)
                .cloned()
                .unwrap_or_else(|| {
                    // Every namespace carries this label (since Kubernetes 1.22).
                    BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_string(),
                        target.namespace.clone(),
                    )])
                });
            selector_matches(selector, &labels)
        }
        None => target.namespace == pod.namespace,
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|selector| selector_matches(selector, &target.labels));
    namespace_ok && pod_ok
}

fn port_allows(view: &NetworkView, port: &NetworkPolicyPort, to: &Destination) -> bool {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    if protocol != to.protocol {
        return false;
    }
    match &port.port {
        None => true,
        Some(IntOrString::Int(first)) => {
            let last = port.end_port.unwrap_or(*first);
            (i64::from(*first)..=i64::from(last)).contains(&i64::from(to.port))
        }
        Some(IntOrString::String(name)) => view
            .pods_by_ip
            .get(&to.address)
            .and_then(|target| target.ports.get(name))
            .is_some_and(|&p| p == to.port),
    }
}

/// Whether the pod may reach the destination.
pub fn egress_allowed(view: &NetworkView, pod: &PodPlacement, to: &Destination) -> bool {
    if to.address.is_loopback() {
        return true;
    }
    if egress_posture(view, pod).unrestricted {
        return true;
    }
    egress_rules(view, pod).iter().any(|rule| {
        let peers = rule.to.as_deref().unwrap_or_default();
        let ports = rule.ports.as_deref().unwrap_or_default();
        (peers.is_empty()
            || peers
                .iter()
                .any(|peer| peer_allows(view, pod, peer, to.address)))
            && (ports.is_empty() || ports.iter().any(|port| port_allows(view, port, to)))
    })
}

/// A NetworkPolicy selecting the pod by its labels (less `pod-template-hash`, which changes
/// with every rollout) and allowing egress to exactly `destinations` (each its own address,
/// `/32` or `/128`, and port), and to the cluster DNS when `dns` (the agent resolved names).
pub fn generated_policy(
    pod: &PodPlacement,
    name: &str,
    destinations: &BTreeSet<Destination>,
    dns: bool,
) -> serde_json::Value {
    let mut labels = pod.labels.clone();
    labels.remove("pod-template-hash");
    labels.remove("controller-revision-hash");
    let mut by_address: BTreeMap<IpAddr, BTreeSet<(&'static str, u16)>> = BTreeMap::new();
    for destination in destinations.iter().filter(|d| !d.address.is_loopback()) {
        by_address
            .entry(destination.address)
            .or_default()
            .insert((destination.protocol, destination.port));
    }
    let mut egress: Vec<serde_json::Value> = by_address
        .iter()
        .map(|(address, ports)| {
            let bits = if address.is_ipv4() { 32 } else { 128 };
            serde_json::json!({
                "to": [{"ipBlock": {"cidr": format!("{address}/{bits}")}}],
                "ports": ports.iter().map(|(protocol, port)| serde_json::json!({"protocol": protocol, "port": port})).collect::<Vec<_>>(),
            })
        })
        .collect();
    if dns {
        egress.push(serde_json::json!({
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }));
    }
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": pod.namespace,
            "labels": {"app.kubernetes.io/managed-by": "agentscope-posture"},
        },
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Egress"],
            "egress": egress,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(value: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(value).unwrap()
    }

    fn agent_pod() -> PodPlacement {
        PodPlacement {
            namespace: "support".into(),
            name: "support-agent-0".into(),
            labels: BTreeMap::from([
                ("app".to_string(), "support-agent".to_string()),
                ("pod-template-hash".to_string(), "6c9d7f5b8d".to_string()),
            ]),
        }
    }

    fn tcp(address: &str, port: u16) -> Destination {
        Destination {
            address: address.parse().unwrap(),
            port,
            protocol: "TCP",
        }
    }

    #[test]
    fn no_policy_is_unrestricted() {
        let view = NetworkView::default();
        let posture = egress_posture(&view, &agent_pod());
        assert!(posture.unrestricted);
        assert!(egress_allowed(
            &view,
            &agent_pod(),
            &tcp("203.0.113.9", 443)
        ));
    }

    #[test]
    fn ingress_only_policy_leaves_egress_open() {
        let view = NetworkView {
            policies: vec![policy(serde_json::json!({
                "metadata": {"name": "ingress", "namespace": "support"},
                "spec": {"podSelector": {}, "ingress": [{}]}
            }))],
            ..Default::default()
        };
        let posture = egress_posture(&view, &agent_pod());
        assert_eq!(posture.selecting, vec!["support/ingress"]);
        assert!(posture.unrestricted);
    }

    #[test]
    fn policies_in_other_namespaces_or_for_other_pods_do_not_apply() {
        let view = NetworkView {
            policies: vec![
                policy(serde_json::json!({
                    "metadata": {"name": "deny", "namespace": "shop"},
                    "spec": {"podSelector": {}, "policyTypes": ["Egress"]}
                })),
                policy(serde_json::json!({
                    "metadata": {"name": "web", "namespace": "support"},
                    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}
                })),
            ],
            ..Default::default()
        };
        assert!(egress_posture(&view, &agent_pod()).unrestricted);
    }

    #[test]
    fn default_deny_and_rules() {
        let view = NetworkView {
            policies: vec![
                policy(serde_json::json!({
                    "metadata": {"name": "default-deny", "namespace": "support"},
                    "spec": {"podSelector": {}, "policyTypes": ["Egress"]}
                })),
                policy(serde_json::json!({
                    "metadata": {"name": "llm", "namespace": "support"},
                    "spec": {
                        "podSelector": {"matchLabels": {"app": "support-agent"}},
                        "egress": [
                            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}}],
                             "ports": [{"port": 443}, {"port": 8000, "endPort": 8010}]},
                            {"to": [{"namespaceSelector": {"matchLabels": {"team": "data"}},
                                     "podSelector": {"matchLabels": {"app": "postgres"}}}],
                             "ports": [{"port": "pg"}]}
                        ]
                    }
                })),
            ],
            namespace_labels: BTreeMap::from([(
                "data".to_string(),
                BTreeMap::from([("team".to_string(), "data".to_string())]),
            )]),
            pods_by_ip: BTreeMap::from([(
                "10.1.2.3".parse().unwrap(),
                PeerPod {
                    namespace: "data".into(),
                    labels: BTreeMap::from([("app".to_string(), "postgres".to_string())]),
                    ports: BTreeMap::from([("pg".to_string(), 5432)]),
                },
            )]),
        };
        let pod = agent_pod();
        let posture = egress_posture(&view, &pod);
        assert!(!posture.unrestricted);
        assert!(!posture.allows_any_destination);
        assert_eq!(
            posture.isolating,
            vec!["support/default-deny", "support/llm"]
        );
        assert!(egress_allowed(&view, &pod, &tcp("10.2.3.4", 443)));
        assert!(egress_allowed(&view, &pod, &tcp("10.2.3.4", 8005)));
        assert!(!egress_allowed(&view, &pod, &tcp("10.2.3.4", 8011)));
        assert!(
            !egress_allowed(&view, &pod, &tcp("10.9.3.4", 443)),
            "except"
        );
        assert!(!egress_allowed(&view, &pod, &tcp("203.0.113.9", 443)));
        assert!(
            egress_allowed(&view, &pod, &tcp("10.1.2.3", 5432)),
            "named port"
        );
        assert!(!egress_allowed(&view, &pod, &tcp("10.1.2.3", 5433)));
        let udp = Destination {
            protocol: "UDP",
            ..tcp("10.2.3.4", 443)
        };
        assert!(!egress_allowed(&view, &pod, &udp));
        assert!(egress_allowed(&view, &pod, &tcp("127.0.0.1", 9)));
    }

    #[test]
    fn an_empty_to_allows_every_destination() {
        let view = NetworkView {
            policies: vec![policy(serde_json::json!({
                "metadata": {"name": "all", "namespace": "support"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 443}]}]}
            }))],
            ..Default::default()
        };
        let posture = egress_posture(&view, &agent_pod());
        assert!(!posture.unrestricted && posture.allows_any_destination);
    }

    #[test]
    fn the_generated_policy_allows_exactly_what_was_used() {
        let pod = agent_pod();
        let used = BTreeSet::from([tcp("203.0.113.9", 443), tcp("10.1.2.3", 5432)]);
        let generated = generated_policy(&pod, "support-agent-egress", &used, true);
        assert_eq!(
            generated["spec"]["podSelector"]["matchLabels"],
            serde_json::json!({"app": "support-agent"})
        );
        let view = NetworkView {
            policies: vec![policy(generated)],
            ..Default::default()
        };
        assert!(!egress_posture(&view, &pod).unrestricted);
        for destination in &used {
            assert!(egress_allowed(&view, &pod, destination), "{destination:?}");
        }
        assert!(!egress_allowed(&view, &pod, &tcp("203.0.113.9", 80)));
        assert!(!egress_allowed(&view, &pod, &tcp("203.0.113.10", 443)));
        assert!(!egress_allowed(&view, &pod, &tcp("10.1.2.3", 443)));
    }
}
