//! The Kubernetes objects that declare what a workload may do, read from the API for posture
//! (`agentscope posture --cluster-from-api`): pods (specs, labels, addresses), namespaces,
//! ServiceAccounts, Roles, ClusterRoles, RoleBindings, ClusterRoleBindings and
//! NetworkPolicies, in every namespace, page by page. They come back as the API's JSON (with
//! `kind` and `apiVersion`), which the analysis layer reads; this crate does not interpret
//! them. deploy/clusterrole.yaml grants the `list` each of these needs.

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Objects read at most, over all kinds (a cluster larger than this is cut, with an error).
pub const MAX_DECLARED_OBJECTS: usize = 200_000;
/// Objects per page.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum DeclaredObjectsError {
    #[error(
        "listing {what} is forbidden ({reason}): grant list on them (deploy/clusterrole.yaml has the rules)"
    )]
    Forbidden { what: &'static str, reason: String },
    #[error("listing {what}: {reason}")]
    Api { what: &'static str, reason: String },
    #[error("more than {MAX_DECLARED_OBJECTS} objects: posture needs a smaller scope")]
    TooMany,
}

async fn list_all<K>(
    client: &Client,
    what: &'static str,
    out: &mut Vec<serde_json::Value>,
) -> Result<(), DeclaredObjectsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await.map_err(|e| match &e {
            kube::Error::Api(status) if status.code == 403 => DeclaredObjectsError::Forbidden {
                what,
                reason: status.message.clone(),
            },
            _ => DeclaredObjectsError::Api {
                what,
                reason: e.to_string(),
            },
        })?;
        for item in page.items {
            if out.len() >= MAX_DECLARED_OBJECTS {
                return Err(DeclaredObjectsError::TooMany);
            }
            // k8s-openapi writes `kind` and `apiVersion` for typed objects.
            if let Ok(value) = serde_json::to_value(&item) {
                out.push(value);
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// Every object posture compares against, from the API `client` reaches.
pub async fn read_declared_objects(
    client: &Client,
) -> Result<Vec<serde_json::Value>, DeclaredObjectsError> {
    let mut out = Vec::new();
    list_all::<Pod>(client, "pods", &mut out).await?;
    list_all::<Namespace>(client, "namespaces", &mut out).await?;
    list_all::<ServiceAccount>(client, "serviceaccounts", &mut out).await?;
    list_all::<Role>(client, "roles", &mut out).await?;
    list_all::<ClusterRole>(client, "clusterroles", &mut out).await?;
    list_all::<RoleBinding>(client, "rolebindings", &mut out).await?;
    list_all::<ClusterRoleBinding>(client, "clusterrolebindings", &mut out).await?;
    list_all::<NetworkPolicy>(client, "networkpolicies", &mut out).await?;
    Ok(out)
}
