//! The Kubernetes objects that declare what workloads may do (pods, namespaces,
//! ServiceAccounts, Roles, ClusterRoles, their bindings, NetworkPolicies), as the collector
//! read them from the API: the body of a `cluster_objects` event. The collector makes these
//! (they are not kernel records) at start and whenever the objects changed, so a recording
//! carries the declared side of posture (docs/posture.md) as it was while the agents ran.
//! The objects are already redacted and cut to their posture-relevant fields by the reader
//! (the identity crate's `declared_objects`): no env value, annotation or command line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One snapshot of the declared objects (the body of a `cluster_objects` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterObjects {
    /// The objects, each with `kind` and `apiVersion`, as the API's JSON (redacted).
    pub objects: Vec<serde_json::Value>,
    /// Objects carried, by kind.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Objects left out by the snapshot's size cap, by kind, and past the reader's object cap
    /// (there, the rest of the page that crossed it: a lower bound).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub omitted: BTreeMap<String, u64>,
    /// Some objects were left out: a posture over this snapshot may miss grants or policies.
    #[serde(default)]
    pub truncated: bool,
    /// Bytes of `objects` as JSON.
    #[serde(default)]
    pub bytes: u64,
    /// The node the collector ran on (its pods are kept first when the snapshot is cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

impl ClusterObjects {
    /// One line for people: "cluster objects: 12 (Pod 3, Role 2, ...), 8 KiB".
    pub fn describe(&self) -> String {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let mut text = format!(
            "cluster objects: {} ({}), {} bytes",
            self.objects.len(),
            counts.join(", "),
            self.bytes
        );
        if self.truncated {
            let omitted: u64 = self.omitted.values().sum();
            text.push_str(&format!(", cut: {omitted} objects left out"));
        }
        text
    }
}
