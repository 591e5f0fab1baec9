//! Secrets a pod's container is given, from its spec: Secret volumes (also inside projected
//! volumes) mounted into the container, the service-account token (a projected
//! `serviceAccountToken` source, or the token the API server mounts at
//! `/var/run/secrets/kubernetes.io/serviceaccount` unless `automountServiceAccountToken` is
//! false on the pod or its ServiceAccount) and Secrets passed as environment variables. Set
//! against the files the agent opened, a mount nobody read is a secret the agent holds without
//! need.

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use serde::Serialize;

/// Where the API server mounts the service-account token by default.
pub const TOKEN_DIRECTORY: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What a mount holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecretSource {
    /// A Secret's keys as files.
    Secret { name: String },
    /// A service-account token.
    ServiceAccountToken,
    /// A Secret's keys as environment variables (reads are not observable).
    Environment { name: String },
}

/// One secret given to the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SecretMount {
    pub source: SecretSource,
    /// The directory (or file, with `subPath`) it appears at; `None` for environment.
    pub mount_path: Option<String>,
    pub volume: Option<String>,
}

impl SecretMount {
    /// Whether opening `path` reads this mount.
    pub fn covers(&self, path: &str) -> bool {
        self.mount_path.as_deref().is_some_and(|mount| {
            let mount = mount.trim_end_matches('/');
            path == mount
                || path
                    .strip_prefix(mount)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    pub fn describe(&self) -> String {
        let what = match &self.source {
            SecretSource::Secret { name } => format!("Secret {name}"),
            SecretSource::ServiceAccountToken => "service-account token".to_string(),
            SecretSource::Environment { name } => format!("Secret {name} (environment)"),
        };
        match &self.mount_path {
            Some(path) => format!("{what} at {path}"),
            None => what,
        }
    }
}

/// The secrets `container` (every container when `None`) of `pod` is given.
pub fn secret_mounts(
    pod: &Pod,
    container: Option<&str>,
    account: Option<&ServiceAccount>,
) -> Vec<SecretMount> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut mounts = Vec::new();
    let mut token_mounted = false;
    for c in spec
        .containers
        .iter()
        .filter(|c| container.is_none_or(|name| c.name == name))
    {
        for mount in c.volume_mounts.as_deref().unwrap_or_default() {
            let Some(volume) = volumes.iter().find(|v| v.name == mount.name) else {
                continue;
            };
            let path = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => format!("{}/{sub}", mount.mount_path.trim_end_matches('/')),
                None => mount.mount_path.clone(),
            };
            let mut sources = Vec::new();
            if let Some(secret) = &volume.secret {
                sources.push(SecretSource::Secret {
                    name: secret.secret_name.clone().unwrap_or_default(),
                });
            }
            if let Some(projected) = &volume.projected {
                for source in projected.sources.as_deref().unwrap_or_default() {
                    if let Some(secret) = &source.secret {
                        sources.push(SecretSource::Secret {
                            name: secret.name.clone(),
                        });
                    }
                    if source.service_account_token.is_some() {
                        sources.push(SecretSource::ServiceAccountToken);
                    }
                }
            }
            for source in sources {
                token_mounted |= source == SecretSource::ServiceAccountToken;
                mounts.push(SecretMount {
                    source,
                    mount_path: Some(path.clone()),
                    volume: Some(volume.name.clone()),
                });
            }
        }
        for env in c.env.as_deref().unwrap_or_default() {
            if let Some(key) = env
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
            {
                mounts.push(SecretMount {
                    source: SecretSource::Environment {
                        name: key.name.clone(),
                    },
                    mount_path: None,
                    volume: None,
                });
            }
        }
        for from in c.env_from.as_deref().unwrap_or_default() {
            if let Some(secret) = &from.secret_ref {
                mounts.push(SecretMount {
                    source: SecretSource::Environment {
                        name: secret.name.clone(),
                    },
                    mount_path: None,
                    volume: None,
                });
            }
        }
    }
    // A manifest (not yet admitted) has no token volume: the API server adds it unless told
    // not to, the pod's setting winning over the account's.
    let automount = spec
        .automount_service_account_token
        .or_else(|| account.and_then(|a| a.automount_service_account_token))
        .unwrap_or(true);
    if !token_mounted && automount {
        mounts.push(SecretMount {
            source: SecretSource::ServiceAccountToken,
            mount_path: Some(TOKEN_DIRECTORY.to_string()),
            volume: None,
        });
    }
    mounts.sort();
    mounts.dedup();
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn secret_volumes_projected_tokens_and_environment() {
        let pod = pod(serde_json::json!({
            "metadata": {"name": "agent", "namespace": "support"},
            "spec": {
                "containers": [{
                    "name": "agent",
                    "volumeMounts": [
                        {"name": "db", "mountPath": "/etc/db", "readOnly": true},
                        {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                        {"name": "cfg", "mountPath": "/etc/cfg"}
                    ],
                    "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-key", "key": "k"}}}]
                }, {
                    "name": "sidecar",
                    "volumeMounts": [{"name": "other", "mountPath": "/other"}]
                }],
                "volumes": [
                    {"name": "db", "secret": {"secretName": "db-credentials"}},
                    {"name": "other", "secret": {"secretName": "sidecar-only"}},
                    {"name": "cfg", "configMap": {"name": "settings"}},
                    {"name": "kube-api-access-x1", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {"configMap": {"name": "kube-root-ca.crt"}}
                    ]}}
                ]
            }
        }));
        let mounts = secret_mounts(&pod, Some("agent"), None);
        let described: Vec<String> = mounts.iter().map(SecretMount::describe).collect();
        assert_eq!(
            described,
            vec![
                "Secret db-credentials at /etc/db",
                "service-account token at /var/run/secrets/kubernetes.io/serviceaccount",
                "Secret llm-key (environment)",
            ]
        );
        assert!(mounts[0].covers("/etc/db/password"));
        assert!(!mounts[0].covers("/etc/dbx/password"));
        assert!(mounts[1].covers("/var/run/secrets/kubernetes.io/serviceaccount/token"));
    }

    #[test]
    fn automount_off_on_the_pod_or_account_means_no_token() {
        let manifest = |automount: Option<bool>| {
            pod(serde_json::json!({
                "spec": {"containers": [{"name": "agent"}], "automountServiceAccountToken": automount}
            }))
        };
        assert_eq!(
            secret_mounts(&manifest(None), None, None),
            vec![SecretMount {
                source: SecretSource::ServiceAccountToken,
                mount_path: Some(TOKEN_DIRECTORY.into()),
                volume: None
            }]
        );
        assert!(secret_mounts(&manifest(Some(false)), None, None).is_empty());
        let account: ServiceAccount =
            serde_json::from_value(serde_json::json!({"automountServiceAccountToken": false}))
                .unwrap();
        assert!(secret_mounts(&manifest(None), None, Some(&account)).is_empty());
        assert_eq!(
            secret_mounts(&manifest(Some(true)), None, Some(&account)).len(),
            1
        );
    }
}
