//! The declared side of posture: the Kubernetes objects that say what an agent may do (pods
//! with their specs, namespaces, ServiceAccounts, Roles, ClusterRoles, their bindings and
//! NetworkPolicies), read from `kubectl get -o json|yaml` output (a `List`, a JSON array or
//! YAML documents) or handed over by a reader of the API.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize as _;

use super::network_policy::{NetworkView, PeerPod};
use super::rbac::RbacObjects;

/// Objects read; at most this many (a hostile or mistaken input stays bounded).
pub const MAX_OBJECTS: usize = 100_000;

#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub pods: Vec<Pod>,
    pub namespaces: Vec<Namespace>,
    pub service_accounts: Vec<ServiceAccount>,
    pub rbac: RbacObjects,
    pub network_policies: Vec<NetworkPolicy>,
    /// Objects of other kinds, skipped.
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("not JSON or YAML Kubernetes objects: {0}")]
    Syntax(String),
    #[error("{kind} {name}: {error}")]
    Object {
        kind: String,
        name: String,
        error: String,
    },
    #[error("more than {MAX_OBJECTS} objects")]
    TooMany,
}

impl ClusterState {
    /// Reads `kubectl get -o json` or `-o yaml` output: a `List` (also nested), a JSON array,
    /// or YAML documents, each an object or a list.
    pub fn parse(text: &str) -> Result<ClusterState, ClusterError> {
        let mut values = Vec::new();
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => values.push(value),
            Err(_) => {
                for document in serde_norway::Deserializer::from_str(text) {
                    let value = serde_json::Value::deserialize(document)
                        .map_err(|e| ClusterError::Syntax(e.to_string()))?;
                    if !value.is_null() {
                        values.push(value);
                    }
                }
            }
        }
        let mut state = ClusterState::default();
        let mut count = 0;
        while let Some(value) = values.pop() {
            count += 1;
            if count > MAX_OBJECTS {
                return Err(ClusterError::TooMany);
            }
            match value {
                serde_json::Value::Array(items) => values.extend(items),
                serde_json::Value::Object(ref map)
                    if map.get("items").is_some_and(|i| i.is_array()) =>
                {
                    if let Some(serde_json::Value::Array(items)) = map.get("items") {
                        values.extend(items.iter().cloned());
                    }
                }
                value => state.add(value)?,
            }
        }
        Ok(state)
    }

    /// The objects the collector recorded (a `cluster_objects` event's), each added by its
    /// kind; an object that does not read as its kind is skipped and counted (the second
    /// value), so one odd object does not lose the rest.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a serde_json::Value>,
    ) -> (ClusterState, usize) {
        let mut state = ClusterState::default();
        let mut unreadable = 0;
        for object in objects.into_iter().take(MAX_OBJECTS) {
            if state.add(object.clone()).is_err() {
                unreadable += 1;
            }
        }
        (state, unreadable)
    }

    /// Adds one object by its `kind`.
    pub fn add(&mut self, value: serde_json::Value) -> Result<(), ClusterError> {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let error = |e: serde_json::Error| ClusterError::Object {
            kind: kind.clone(),
            name: name.clone(),
            error: e.to_string(),
        };
        match kind.as_str() {
            "Pod" => self
                .pods
                .push(serde_json::from_value(value).map_err(error)?),
            "Namespace" => self
                .namespaces
                .push(serde_json::from_value(value).map_err(error)?),
            "ServiceAccount" => self
                .service_accounts
                .push(serde_json::from_value(value).map_err(error)?),
            "Role" => self
                .rbac
                .roles
                .push(serde_json::from_value(value).map_err(error)?),
            "ClusterRole" => self
                .rbac
                .cluster_roles
                .push(serde_json::from_value(value).map_err(error)?),
            "RoleBinding" => self
                .rbac
                .role_bindings
                .push(serde_json::from_value(value).map_err(error)?),
            "ClusterRoleBinding" => self
                .rbac
                .cluster_role_bindings
                .push(serde_json::from_value(value).map_err(error)?),
            "NetworkPolicy" => self
                .network_policies
                .push(serde_json::from_value(value).map_err(error)?),
            _ => self.skipped += 1,
        }
        Ok(())
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace_name: &str) -> Option<&Pod> {
        let (namespace, name) = namespace_name.split_once('/')?;
        self.pods.iter().find(|pod| {
            pod.metadata.namespace.as_deref() == Some(namespace)
                && pod.metadata.name.as_deref() == Some(name)
        })
    }

    /// The ServiceAccount `namespace/name`.
    pub fn service_account(&self, namespace_name: &str) -> Option<&ServiceAccount> {
        let (namespace, name) = namespace_name.split_once('/')?;
        self.service_accounts.iter().find(|account| {
            account.metadata.namespace.as_deref() == Some(namespace)
                && account.metadata.name.as_deref() == Some(name)
        })
    }

    /// What NetworkPolicy evaluation needs: the policies, namespaces' labels, pods by IP.
    pub fn network_view(&self) -> NetworkView {
        let namespace_labels = self
            .namespaces
            .iter()
            .filter_map(|ns| {
                let name = ns.metadata.name.clone()?;
                let mut labels = ns.metadata.labels.clone().unwrap_or_default();
                labels
                    .entry("kubernetes.io/metadata.name".into())
                    .or_insert_with(|| name.clone());
                Some((name, labels))
            })
            .collect();
        let mut pods_by_ip = BTreeMap::new();
        for pod in &self.pods {
            let ips = pod
                .status
                .as_ref()
                .map(|status| {
                    let mut ips: Vec<String> = status
                        .pod_ips
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .map(|ip| ip.ip.clone())
                        .collect();
                    ips.extend(status.pod_ip.clone());
                    ips
                })
                .unwrap_or_default();
            // Host-network pods share the node's address: they are not pods to a policy.
            if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
                continue;
            }
            let ports = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.as_deref().unwrap_or_default())
                .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
                .collect::<BTreeMap<_, _>>();
            for ip in ips {
                if let Ok(address) = ip.parse::<IpAddr>() {
                    pods_by_ip.insert(
                        address,
                        PeerPod {
                            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                            labels: pod.metadata.labels.clone().unwrap_or_default(),
                            ports: ports.clone(),
                        },
                    );
                }
            }
        }
        NetworkView {
            policies: self.network_policies.clone(),
            namespace_labels,
            pods_by_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_arrays_and_yaml_documents() {
        let json = r#"{"kind": "List", "apiVersion": "v1", "items": [
            {"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "r", "namespace": "a"}, "rules": []},
            {"kind": "List", "items": [{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a"}}]},
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}}
        ]}"#;
        let state = ClusterState::parse(json).unwrap();
        assert_eq!(state.rbac.roles.len(), 1);
        assert_eq!(state.namespaces.len(), 1);
        assert_eq!(state.skipped, 1);
        let yaml = "kind: ServiceAccount\napiVersion: v1\nmetadata: {name: s, namespace: a}\n---\nkind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: n, namespace: a}\nspec: {podSelector: {}}\n";
        let state = ClusterState::parse(yaml).unwrap();
        assert!(state.service_account("a/s").is_some());
        assert_eq!(state.network_policies.len(), 1);
        assert!(ClusterState::parse("{not yaml: [").is_err());
        let bad = r#"{"kind": "Role", "metadata": {"name": "r"}, "rules": "many"}"#;
        assert!(matches!(
            ClusterState::parse(bad),
            Err(ClusterError::Object { .. })
        ));
    }
}
