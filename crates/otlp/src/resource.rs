//! The OpenTelemetry resource of one agent run: who produced the spans and log records, in
//! the resource conventions' names (node, namespace, pod, workload, container, service
//! account, process), from the identity agentscope resolved for the agent.

use agentscope_analysis::model::Agent;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

/// Marks every resource as coming from agentscope's observation (not from instrumentation
/// inside the agent), as the conventions' `telemetry.sdk.*` would for an SDK.
const OBSERVER: &str = "agentscope";

/// The resource of `agent`'s run whose outermost process is `session_pid`, on `node`.
pub fn agent_resource(agent: Option<&Agent>, session_pid: u32, node: Option<&str>) -> Resource {
    let mut attributes = vec![
        KeyValue::new("agentscope.observer", OBSERVER),
        KeyValue::new("agentscope.observer.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("process.pid", i64::from(session_pid)),
    ];
    if let Some(node) = node.filter(|n| !n.is_empty()) {
        attributes.push(KeyValue::new("k8s.node.name", node.to_string()));
        attributes.push(KeyValue::new("host.name", node.to_string()));
    }
    if let Some(agent) = agent {
        attributes.push(KeyValue::new("service.name", agent.name.clone()));
        attributes.push(KeyValue::new("gen_ai.agent.name", agent.name.clone()));
        attributes.push(KeyValue::new("gen_ai.agent.id", agent.key.clone()));
        // The program key is the executable and, for an interpreter, its script.
        attributes.push(KeyValue::new(
            "agentscope.agent.program",
            agent.program.clone(),
        ));
        if let Some(executable) = agent.program.split_whitespace().next() {
            attributes.push(KeyValue::new(
                "process.executable.path",
                executable.to_string(),
            ));
            let name = executable.rsplit('/').next().unwrap_or(executable);
            attributes.push(KeyValue::new("process.executable.name", name.to_string()));
        }
        let identity = &agent.identity;
        attributes.push(KeyValue::new("enduser.id", i64::from(identity.uid)));
        if let Some(container) = &identity.container_id {
            attributes.push(KeyValue::new("container.id", container.clone()));
        }
        if let Some((namespace, pod)) = identity.pod.as_deref().and_then(|p| p.split_once('/')) {
            attributes.push(KeyValue::new("k8s.namespace.name", namespace.to_string()));
            attributes.push(KeyValue::new("k8s.pod.name", pod.to_string()));
        }
        if let Some((_, account)) = identity
            .service_account
            .as_deref()
            .and_then(|s| s.split_once('/'))
        {
            attributes.push(KeyValue::new(
                "k8s.pod.service_account.name",
                account.to_string(),
            ));
        }
        attributes.extend(workload_attributes(&identity.workload));
    }
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

/// `k8s:namespace/Kind/name/container` as the resource conventions name its parts
/// (`k8s.deployment.name`, `k8s.container.name`, ...); nothing for `host` and `container:…`.
fn workload_attributes(workload: &str) -> Vec<KeyValue> {
    let Some(rest) = workload.strip_prefix("k8s:") else {
        return Vec::new();
    };
    let parts: Vec<&str> = rest.splitn(4, '/').collect();
    let [namespace, kind, name, container] = parts[..] else {
        return Vec::new();
    };
    let mut attributes = vec![
        KeyValue::new("k8s.namespace.name", namespace.to_string()),
        KeyValue::new("k8s.container.name", container.to_string()),
        KeyValue::new("k8s.workload.kind", kind.to_string()),
        KeyValue::new("k8s.workload.name", name.to_string()),
    ];
    let kind_key = match kind {
        "Deployment" => Some("k8s.deployment.name"),
        "StatefulSet" => Some("k8s.statefulset.name"),
        "DaemonSet" => Some("k8s.daemonset.name"),
        "ReplicaSet" => Some("k8s.replicaset.name"),
        "Job" => Some("k8s.job.name"),
        "CronJob" => Some("k8s.cronjob.name"),
        _ => None,
    };
    if let Some(key) = kind_key {
        attributes.push(KeyValue::new(key, name.to_string()));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_workloads_get_the_convention_names() {
        let attributes = workload_attributes("k8s:agents/Deployment/crm-agent/agent");
        let get = |key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("k8s.namespace.name").as_deref(), Some("agents"));
        assert_eq!(get("k8s.deployment.name").as_deref(), Some("crm-agent"));
        assert_eq!(get("k8s.container.name").as_deref(), Some("agent"));
        assert!(workload_attributes("host").is_empty());
        assert!(workload_attributes("container:abc").is_empty());
        assert!(workload_attributes("k8s:broken").is_empty());
    }
}
