//! A Kubernetes API request as RBAC names it: verb, resource, subresource, namespace, name,
//! from the HTTP method and path (the API server's own request-info rules, for the core group
//! `/api/v1/…` and named groups `/apis/GROUP/VERSION/…`). Written here because no crate reads
//! request paths this way without a client; it is small: path segments and a method table.

/// One request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
    /// The API group (`""` for the core group).
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Subresources that run something in a pod or reach into it.
const POD_ENTRY_SUBRESOURCES: [&str; 4] = ["exec", "attach", "portforward", "ephemeralcontainers"];

impl KubernetesRequest {
    /// Classifies `method path` (the query string is ignored; `?watch=1` makes a list a watch).
    pub fn classify(method: &str, path: &str) -> Option<Self> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest),
            ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", namespace, rest @ ..] if !rest.is_empty() => {
                (Some(namespace.to_string()), rest)
            }
            _ => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [resource] => (*resource, None, None),
            [resource, name] => (*resource, Some(name.to_string()), None),
            [resource, name, subresource] => (
                *resource,
                Some(name.to_string()),
                Some(subresource.to_string()),
            ),
            _ => return None,
        };
        let watch = query
            .split('&')
            .any(|pair| pair == "watch=1" || pair == "watch=true");
        let verb = match (method.to_ascii_uppercase().as_str(), name.is_some()) {
            // exec, attach and portforward are upgraded GETs (WebSocket) or POSTs (SPDY); RBAC
            // checks both as `create` on the subresource.
            ("GET" | "POST", _)
                if subresource
                    .as_deref()
                    .is_some_and(|s| ["exec", "attach", "portforward"].contains(&s)) =>
            {
                "create"
            }
            ("GET", _) if watch => "watch",
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => return None,
        };
        Some(KubernetesRequest {
            verb,
            group,
            resource: resource.to_string(),
            subresource,
            namespace,
            name,
        })
    }

    /// Whether the request makes a pod or gets into one: pods created, or exec, attach,
    /// port-forward, an ephemeral container added.
    pub fn controls_pods(&self) -> bool {
        if !self.group.is_empty() || self.resource != "pods" {
            return false;
        }
        match self.subresource.as_deref() {
            None => self.verb == "create",
            Some(sub) => {
                POD_ENTRY_SUBRESOURCES.contains(&sub)
                    && matches!(self.verb, "create" | "update" | "patch")
            }
        }
    }

    /// `create pods/exec support-agent-0 in shop`.
    pub fn describe(&self) -> String {
        let resource = match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        };
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        format!(
            "{} {resource}{group}{}{}",
            self.verb,
            self.name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default(),
            self.namespace
                .as_deref()
                .map(|n| format!(" in {n}"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_created_and_entered() {
        let create = KubernetesRequest::classify("POST", "/api/v1/namespaces/shop/pods").unwrap();
        assert_eq!(create.verb, "create");
        assert_eq!(create.namespace.as_deref(), Some("shop"));
        assert!(create.controls_pods());
        assert_eq!(create.describe(), "create pods in shop");
        let exec = KubernetesRequest::classify(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0/exec?command=sh&stdin=true",
        )
        .unwrap();
        assert_eq!(exec.describe(), "create pods/exec web-0 in shop");
        assert!(exec.controls_pods());
        let ephemeral = KubernetesRequest::classify(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
        )
        .unwrap();
        assert!(ephemeral.controls_pods());
    }

    #[test]
    fn reads_do_not_control_pods() {
        for (method, path) in [
            ("GET", "/api/v1/namespaces/shop/pods"),
            ("GET", "/api/v1/namespaces/shop/pods/web-0"),
            ("GET", "/api/v1/namespaces/shop/pods/web-0/log"),
            ("GET", "/api/v1/namespaces/shop/pods?watch=1"),
            ("POST", "/api/v1/namespaces/shop/configmaps"),
            ("DELETE", "/api/v1/namespaces/shop/pods/web-0"),
        ] {
            let request = KubernetesRequest::classify(method, path).unwrap();
            assert!(!request.controls_pods(), "{method} {path}");
        }
        let watch = KubernetesRequest::classify("GET", "/api/v1/pods?watch=true").unwrap();
        assert_eq!(watch.verb, "watch");
        let deployment =
            KubernetesRequest::classify("POST", "/apis/apps/v1/namespaces/shop/deployments")
                .unwrap();
        assert_eq!(deployment.group, "apps");
        assert_eq!(deployment.describe(), "create deployments.apps in shop");
        assert_eq!(KubernetesRequest::classify("GET", "/healthz"), None);
    }
}
