//! Kubernetes RBAC as the API server's authorizer evaluates it, for one service account: which
//! rules reach it through RoleBindings and ClusterRoleBindings (ServiceAccount, User and the
//! service-account Group subjects; aggregated ClusterRoles by their selectors), whether a
//! request is allowed (`kubectl auth can-i`), which granted verbs/resources no observed
//! request used, and the least-privilege Role(s) allowing exactly the requests observed.
//!
//! Written here because no Rust crate evaluates RBAC; the rules follow
//! `k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`,
//! `APIGroupMatches`, `ResourceMatches` with `*/subresource`, `ResourceNameMatches`,
//! `NonResourceURLMatches` with a trailing `*`) and `pkg/registry/rbac/validation/rule.go`
//! (`appliesToUser`: a ServiceAccount subject without a namespace takes the binding's).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::selector::selector_matches;
use crate::detect::kubernetes_request::{KubernetesRequest, KubernetesVerb, ResourceRequest};

/// The RBAC objects of a cluster.
#[derive(Debug, Clone, Default)]
pub struct RbacObjects {
    pub roles: Vec<Role>,
    pub cluster_roles: Vec<ClusterRole>,
    pub role_bindings: Vec<RoleBinding>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

/// A service account, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountRef {
    /// From `namespace/name`.
    pub fn parse(text: &str) -> Option<ServiceAccountRef> {
        let (namespace, name) = text.split_once('/')?;
        (!namespace.is_empty() && !name.is_empty()).then(|| ServiceAccountRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The user name the API server authenticates the account's token as.
    pub fn user_name(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// One rule that reaches the account, where it applies and through what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    /// `None`: cluster-wide (a ClusterRoleBinding).
    pub namespace: Option<String>,
    pub rule: PolicyRule,
    /// `RoleBinding shop/agent → Role shop/agent-role`.
    pub via: String,
}

/// Every rule that reaches `account`.
pub fn effective_grants(objects: &RbacObjects, account: &ServiceAccountRef) -> Vec<Grant> {
    let mut grants = Vec::new();
    for binding in &objects.cluster_role_bindings {
        let subjects = binding.subjects.as_deref().unwrap_or_default();
        if !subjects.iter().any(|s| applies_to(s, None, account)) {
            continue;
        }
        let via = format!(
            "ClusterRoleBinding {} → ClusterRole {}",
            name_of(&binding.metadata),
            binding.role_ref.name
        );
        if binding.role_ref.kind == "ClusterRole" {
            for rule in cluster_role_rules(objects, &binding.role_ref.name) {
                grants.push(Grant {
                    namespace: None,
                    rule,
                    via: via.clone(),
                });
            }
        }
    }
    for binding in &objects.role_bindings {
        let Some(namespace) = binding.metadata.namespace.as_deref() else {
            continue;
        };
        let subjects = binding.subjects.as_deref().unwrap_or_default();
        if !subjects
            .iter()
            .any(|s| applies_to(s, Some(namespace), account))
        {
            continue;
        }
        let via = format!(
            "RoleBinding {namespace}/{} → {} {}",
            name_of(&binding.metadata),
            binding.role_ref.kind,
            binding.role_ref.name
        );
        for rule in role_ref_rules(objects, &binding.role_ref, namespace) {
            grants.push(Grant {
                namespace: Some(namespace.to_string()),
                rule,
                via: via.clone(),
            });
        }
    }
    grants
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn role_ref_rules(objects: &RbacObjects, role_ref: &RoleRef, namespace: &str) -> Vec<PolicyRule> {
    match role_ref.kind.as_str() {
        "ClusterRole" => cluster_role_rules(objects, &role_ref.name),
        "Role" => objects
            .roles
            .iter()
            .filter(|role| {
                role.metadata.namespace.as_deref() == Some(namespace)
                    && name_of(&role.metadata) == role_ref.name
            })
            .flat_map(|role| role.rules.clone().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

/// A ClusterRole's rules, with those of the ClusterRoles its aggregation rule selects (the
/// aggregation controller writes them into `rules`; a snapshot taken before it ran, or a
/// manifest, has only the selectors).
fn cluster_role_rules(objects: &RbacObjects, name: &str) -> Vec<PolicyRule> {
    let Some(role) = objects
        .cluster_roles
        .iter()
        .find(|role| name_of(&role.metadata) == name)
    else {
        return Vec::new();
    };
    let mut rules = role.rules.clone().unwrap_or_default();
    if let Some(aggregation) = &role.aggregation_rule {
        for selector in aggregation
            .cluster_role_selectors
            .as_deref()
            .unwrap_or_default()
        {
            for other in &objects.cluster_roles {
                if name_of(&other.metadata) == name {
                    continue;
                }
                let labels = other.metadata.labels.clone().unwrap_or_default();
                if selector_matches(selector, &labels) {
                    for rule in other.rules.clone().unwrap_or_default() {
                        if !rules.contains(&rule) {
                            rules.push(rule);
                        }
                    }
                }
            }
        }
    }
    rules
}

/// Whether a binding subject names the account (`binding_namespace`: the RoleBinding's).
fn applies_to(
    subject: &Subject,
    binding_namespace: Option<&str>,
    account: &ServiceAccountRef,
) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let namespace = subject
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .or(binding_namespace);
            namespace == Some(account.namespace.as_str()) && subject.name == account.name
        }
        "User" => subject.name == account.user_name(),
        "Group" => {
            subject.name == "system:serviceaccounts"
                || subject.name == "system:authenticated"
                || subject.name == format!("system:serviceaccounts:{}", account.namespace)
        }
        _ => false,
    }
}

fn has(list: &Option<Vec<String>>, wanted: &str) -> bool {
    list.as_deref()
        .unwrap_or_default()
        .iter()
        .any(|item| item == "*" || item == wanted)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: Option<&str>) -> bool {
    let combined = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    rule.resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| {
            r == "*"
                || *r == combined
                || subresource.is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
                || (subresource.is_some() && r.strip_suffix("/*") == Some(resource))
        })
}

/// Whether `rule` allows the resource request.
pub fn rule_allows(rule: &PolicyRule, request: &ResourceRequest) -> bool {
    if !has(&Some(rule.verbs.clone()), request.verb.as_str())
        || !has(&rule.api_groups, &request.group)
        || !resource_matches(rule, &request.resource, request.subresource.as_deref())
    {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => request
            .name
            .as_deref()
            .is_some_and(|name| names.iter().any(|n| n == name)),
    }
}

fn non_resource_allows(rule: &PolicyRule, verb: &str, path: &str) -> bool {
    has(&Some(rule.verbs.clone()), verb)
        && rule
            .non_resource_urls
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|url| match url.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => url == path,
            })
}

/// Whether the grant allows the request (`kubectl auth can-i`): a namespaced grant only in its
/// namespace; non-resource URLs only through cluster-wide grants.
pub fn grant_allows(grant: &Grant, request: &KubernetesRequest) -> bool {
    match request {
        KubernetesRequest::Resource(resource) => {
            let in_scope = match &grant.namespace {
                None => true,
                Some(ns) => resource.namespace.as_deref() == Some(ns.as_str()),
            };
            in_scope && rule_allows(&grant.rule, resource)
        }
        KubernetesRequest::NonResource { verb, path } => {
            grant.namespace.is_none() && non_resource_allows(&grant.rule, verb, path)
        }
    }
}

/// Whether any grant allows the request.
pub fn can(grants: &[Grant], request: &KubernetesRequest) -> bool {
    grants.iter().any(|grant| grant_allows(grant, request))
}

/// A permission granted and never used: one verb on one resource in one scope, as the rule
/// spells them (wildcards stay wildcards).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UnusedPermission {
    /// `None`: cluster-wide.
    pub namespace: Option<String>,
    pub verb: String,
    /// `""` for the core group.
    pub api_group: String,
    /// `pods`, `pods/exec`, `*`, or a non-resource URL.
    pub resource: String,
    pub resource_names: Vec<String>,
    pub via: String,
}

impl UnusedPermission {
    pub fn describe(&self) -> String {
        let group = if self.api_group.is_empty() || self.resource.starts_with('/') {
            String::new()
        } else {
            format!("{}/", self.api_group)
        };
        let names = if self.resource_names.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.resource_names.join(", "))
        };
        let scope = match &self.namespace {
            Some(ns) => format!("in {ns}"),
            None => "cluster-wide".to_string(),
        };
        format!("{} {group}{}{names} {scope}", self.verb, self.resource)
    }
}

/// Whether a request falls under one verb/group/resource cell of a rule.
fn cell_used(
    grant: &Grant,
    verb: &str,
    group: &str,
    resource: &str,
    request: &KubernetesRequest,
) -> bool {
    if !grant_allows(grant, request) {
        return false;
    }
    match request {
        KubernetesRequest::Resource(r) => {
            let cell = PolicyRule {
                verbs: vec![verb.to_string()],
                api_groups: Some(vec![group.to_string()]),
                resources: Some(vec![resource.to_string()]),
                resource_names: grant.rule.resource_names.clone(),
                non_resource_urls: None,
            };
            rule_allows(&cell, r)
        }
        KubernetesRequest::NonResource { verb: v, path } => {
            let cell = PolicyRule {
                verbs: vec![verb.to_string()],
                non_resource_urls: Some(vec![resource.to_string()]),
                ..Default::default()
            };
            non_resource_allows(&cell, v, path)
        }
    }
}

/// The granted verb/resource cells no request used.
pub fn unused_permissions(grants: &[Grant], used: &[KubernetesRequest]) -> Vec<UnusedPermission> {
    let mut unused = BTreeSet::new();
    for grant in grants {
        let rule = &grant.rule;
        let names = rule.resource_names.clone().unwrap_or_default();
        let groups = rule.api_groups.clone().unwrap_or_default();
        for verb in &rule.verbs {
            for group in &groups {
                for resource in rule.resources.as_deref().unwrap_or_default() {
                    if !used
                        .iter()
                        .any(|r| cell_used(grant, verb, group, resource, r))
                    {
                        unused.insert(UnusedPermission {
                            namespace: grant.namespace.clone(),
                            verb: verb.clone(),
                            api_group: group.clone(),
                            resource: resource.clone(),
                            resource_names: names.clone(),
                            via: grant.via.clone(),
                        });
                    }
                }
            }
            for url in rule.non_resource_urls.as_deref().unwrap_or_default() {
                if grant.namespace.is_none()
                    && !used.iter().any(|r| cell_used(grant, verb, "", url, r))
                {
                    unused.insert(UnusedPermission {
                        namespace: None,
                        verb: verb.clone(),
                        api_group: String::new(),
                        resource: url.clone(),
                        resource_names: Vec::new(),
                        via: grant.via.clone(),
                    });
                }
            }
        }
    }
    unused.into_iter().collect()
}

/// Verbs whose requests name one object, so `resourceNames` can restrict them.
fn nameable(verb: KubernetesVerb) -> bool {
    matches!(
        verb,
        KubernetesVerb::Get
            | KubernetesVerb::Update
            | KubernetesVerb::Patch
            | KubernetesVerb::Delete
    )
}

/// The least-privilege RBAC for the requests observed: one Role (and RoleBinding to the
/// account) per namespace the requests went to, and a ClusterRole (and ClusterRoleBinding) for
/// cluster-scoped and all-namespace requests and non-resource URLs. Rules list exactly the
/// verbs used per group/resource, restricted by `resourceNames` when every request of that
/// verb named its object and the verb allows it.
pub fn least_privilege(
    account: &ServiceAccountRef,
    role_name: &str,
    used: &[KubernetesRequest],
) -> Vec<serde_json::Value> {
    // scope → (group, resource) → verb → names (None: some request had no name).
    type Cells = BTreeMap<(String, String), BTreeMap<KubernetesVerb, Option<BTreeSet<String>>>>;
    let mut scopes: BTreeMap<Option<String>, Cells> = BTreeMap::new();
    let mut non_resource: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in used {
        match request {
            KubernetesRequest::Resource(r) => {
                let cell = scopes
                    .entry(r.namespace.clone())
                    .or_default()
                    .entry((r.group.clone(), r.rbac_resource()))
                    .or_default();
                let names = cell.entry(r.verb).or_insert_with(|| Some(BTreeSet::new()));
                match (&r.name, names.as_mut()) {
                    (Some(name), Some(set)) if nameable(r.verb) => {
                        set.insert(name.clone());
                    }
                    _ => *names = None,
                }
            }
            KubernetesRequest::NonResource { verb, path } => {
                non_resource
                    .entry(path.clone())
                    .or_default()
                    .insert(verb.clone());
            }
        }
    }
    let mut documents = Vec::new();
    for (namespace, cells) in &scopes {
        let mut rules = rules_of(cells);
        if namespace.is_none() {
            rules.extend(non_resource.iter().map(
                |(path, verbs)| serde_json::json!({"nonResourceURLs": [path], "verbs": verbs}),
            ));
        }
        documents.extend(role_and_binding(
            account,
            role_name,
            namespace.as_deref(),
            rules,
        ));
    }
    if !scopes.contains_key(&None) && !non_resource.is_empty() {
        let rules = non_resource
            .iter()
            .map(|(path, verbs)| serde_json::json!({"nonResourceURLs": [path], "verbs": verbs}))
            .collect();
        documents.extend(role_and_binding(account, role_name, None, rules));
    }
    documents
}

type VerbNames = BTreeMap<KubernetesVerb, Option<BTreeSet<String>>>;

fn rules_of(cells: &BTreeMap<(String, String), VerbNames>) -> Vec<serde_json::Value> {
    let mut rules = Vec::new();
    for ((group, resource), verbs) in cells {
        // Verbs with the same names restriction share a rule.
        let mut by_names: BTreeMap<Option<BTreeSet<String>>, Vec<&str>> = BTreeMap::new();
        for (verb, names) in verbs {
            by_names
                .entry(names.clone())
                .or_default()
                .push(verb.as_str());
        }
        for (names, verbs) in by_names {
            let mut rule = serde_json::json!({
                "apiGroups": [group],
                "resources": [resource],
                "verbs": verbs,
            });
            if let Some(names) = names {
                rule["resourceNames"] = serde_json::json!(names);
            }
            rules.push(rule);
        }
    }
    rules
}

fn role_and_binding(
    account: &ServiceAccountRef,
    role_name: &str,
    namespace: Option<&str>,
    rules: Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    let labels = serde_json::json!({"app.kubernetes.io/managed-by": "agentscope-posture"});
    let subject = serde_json::json!([{
        "kind": "ServiceAccount",
        "name": account.name,
        "namespace": account.namespace,
    }]);
    match namespace {
        Some(namespace) => vec![
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": role_name, "namespace": namespace, "labels": labels},
                "rules": rules,
            }),
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": role_name, "namespace": namespace, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
                "subjects": subject,
            }),
        ],
        None => vec![
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role_name, "labels": labels},
                "rules": rules,
            }),
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role_name, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                "subjects": subject,
            }),
        ],
    }
}

/// Reads generated (or any) RBAC documents back as objects, so the least-privilege output can
/// be checked with the same evaluation as the cluster's.
pub fn objects_from_documents(documents: &[serde_json::Value]) -> Result<RbacObjects, String> {
    let mut objects = RbacObjects::default();
    for document in documents {
        let kind = document["kind"].as_str().unwrap_or_default();
        let parse_error = |e: serde_json::Error| format!("{kind}: {e}");
        match kind {
            "Role" => objects
                .roles
                .push(serde_json::from_value(document.clone()).map_err(parse_error)?),
            "ClusterRole" => objects
                .cluster_roles
                .push(serde_json::from_value(document.clone()).map_err(parse_error)?),
            "RoleBinding" => objects
                .role_bindings
                .push(serde_json::from_value(document.clone()).map_err(parse_error)?),
            "ClusterRoleBinding" => objects
                .cluster_role_bindings
                .push(serde_json::from_value(document.clone()).map_err(parse_error)?),
            other => return Err(format!("not an RBAC object: {other:?}")),
        }
    }
    Ok(objects)
}
