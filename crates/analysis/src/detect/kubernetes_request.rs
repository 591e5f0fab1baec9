//! What a Kubernetes API request asks for, read from its method and target the way the API
//! server's own request-info factory reads it: the RBAC verb (`get`, `list`, `watch`,
//! `create`, `update`, `patch`, `delete`, `deletecollection`, `proxy`), API group, version,
//! resource, subresource (`pods/exec`), namespace and name; or, outside `/api` and `/apis`
//! resource paths, a non-resource URL with its HTTP verb.
//!
//! Hand-written because no crate does this: `k8s-openapi` builds request paths but does not
//! parse them, and the API server's parser (`k8s.io/apiserver/pkg/endpoints/request`) is Go.
//! The rules followed, as that parser has them:
//! - `/api/VERSION/…` is the core group (`""`), `/apis/GROUP/VERSION/…` a named group; fewer
//!   parts than a resource needs (`/api`, `/api/v1`, `/apis/apps`) is discovery, a
//!   non-resource URL.
//! - the legacy `…/VERSION/watch/…` and `…/VERSION/proxy/…` prefixes set the verb;
//! - `namespaces/NS/RESOURCE/…` names a namespace; `namespaces/NS` alone (and its `status`,
//!   `finalize` subresources) is the namespace object itself, with `namespace` = NS;
//! - `RESOURCE/NAME/SUBRESOURCE` (no subresource for `proxy`);
//! - a GET without a name is `list`, or `watch` when the query says `watch=true` (any value
//!   Go's `ParseBool` takes as true); `fieldSelector=metadata.name=X` then names the object;
//!   a DELETE without a name is `deletecollection`.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::reconstruct::http::HttpExchange;

use super::sensitive::is_kubernetes_api;

/// The RBAC verb of a resource request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubernetesVerb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// The legacy `…/proxy/…` path prefix.
    Proxy,
}

impl KubernetesVerb {
    /// Every verb, in RBAC's usual order.
    pub const ALL: [KubernetesVerb; 9] = [
        KubernetesVerb::Get,
        KubernetesVerb::List,
        KubernetesVerb::Watch,
        KubernetesVerb::Create,
        KubernetesVerb::Update,
        KubernetesVerb::Patch,
        KubernetesVerb::Delete,
        KubernetesVerb::DeleteCollection,
        KubernetesVerb::Proxy,
    ];

    /// The verb as RBAC rules spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesVerb::Get => "get",
            KubernetesVerb::List => "list",
            KubernetesVerb::Watch => "watch",
            KubernetesVerb::Create => "create",
            KubernetesVerb::Update => "update",
            KubernetesVerb::Patch => "patch",
            KubernetesVerb::Delete => "delete",
            KubernetesVerb::DeleteCollection => "deletecollection",
            KubernetesVerb::Proxy => "proxy",
        }
    }

    /// The verb RBAC spells `name`, if it is one of these.
    pub fn from_rbac(name: &str) -> Option<KubernetesVerb> {
        KubernetesVerb::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// Whether the verb changes state (everything but get, list, watch).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            KubernetesVerb::Get | KubernetesVerb::List | KubernetesVerb::Watch
        )
    }
}

impl fmt::Display for KubernetesVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request for an API resource (`/api/…`, `/apis/…` with a resource).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRequest {
    pub verb: KubernetesVerb,
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    /// Plural resource name: `pods`, `configmaps`, `deployments`.
    pub resource: String,
    /// `exec`, `log`, `status`, `scale`…
    pub subresource: Option<String>,
    /// `None` for cluster-scoped requests and requests across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl ResourceRequest {
    /// The resource as RBAC rules name it: `pods`, or `pods/exec` with a subresource.
    pub fn rbac_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// What a request to the Kubernetes API asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubernetesRequest {
    Resource(ResourceRequest),
    /// Discovery, `/version`, `/healthz`, `/openapi/…`: RBAC's `nonResourceURLs`, whose verbs
    /// are the lower-cased HTTP method.
    NonResource {
        verb: String,
        path: String,
    },
}

impl KubernetesRequest {
    /// Classifies a request by its method and target (origin form, with or without query).
    pub fn classify(method: &str, target: &str) -> KubernetesRequest {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (target, ""),
        };
        let path = path.split('#').next().unwrap_or(path);
        let http_verb = method.to_ascii_lowercase();
        let non_resource = || KubernetesRequest::NonResource {
            verb: http_verb.clone(),
            path: path.to_string(),
        };
        let parts: Vec<String> = path
            .split('/')
            .filter(|part| !part.is_empty())
            .map(|part| percent_decode_str(part).decode_utf8_lossy().into_owned())
            .collect();
        let (group, version, mut rest) = match parts.first().map(String::as_str) {
            Some("api") if parts.len() >= 3 => (String::new(), parts[1].clone(), &parts[2..]),
            Some("apis") if parts.len() >= 4 => (parts[1].clone(), parts[2].clone(), &parts[3..]),
            _ => return non_resource(),
        };
        let mut verb = match method.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" => KubernetesVerb::Get,
            "POST" => KubernetesVerb::Create,
            "PUT" => KubernetesVerb::Update,
            "PATCH" => KubernetesVerb::Patch,
            "DELETE" => KubernetesVerb::Delete,
            _ => return non_resource(),
        };
        match rest[0].as_str() {
            "watch" if rest.len() > 1 => {
                verb = KubernetesVerb::Watch;
                rest = &rest[1..];
            }
            "proxy" if rest.len() > 1 => {
                verb = KubernetesVerb::Proxy;
                rest = &rest[1..];
            }
            _ => {}
        }
        let mut namespace = None;
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = Some(rest[1].clone());
            if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
                rest = &rest[2..];
            }
        }
        let resource = rest[0].clone();
        let mut name = rest.get(1).cloned();
        let subresource = if verb == KubernetesVerb::Proxy {
            None
        } else {
            rest.get(2).cloned()
        };
        if name.is_none() && verb == KubernetesVerb::Get {
            let watch = query_value(query, "watch").is_some_and(|value| go_parse_bool(&value));
            verb = if watch {
                KubernetesVerb::Watch
            } else {
                KubernetesVerb::List
            };
        }
        if name.is_none() && matches!(verb, KubernetesVerb::List | KubernetesVerb::Watch) {
            name = query_value(query, "fieldSelector").and_then(|selector| exact_name(&selector));
        }
        if name.is_none() && verb == KubernetesVerb::Delete {
            verb = KubernetesVerb::DeleteCollection;
        }
        KubernetesRequest::Resource(ResourceRequest {
            verb,
            group,
            version,
            resource,
            subresource,
            namespace,
            name,
        })
    }

    /// The request of an HTTP exchange, when the exchange is a call to the Kubernetes API
    /// ([`is_kubernetes_api`]).
    pub fn of_exchange(exchange: &HttpExchange) -> Option<KubernetesRequest> {
        if !is_kubernetes_api(exchange) {
            return None;
        }
        // Absolute-form targets (through a proxy) carry scheme and authority first.
        let target = exchange.request.target.as_str();
        let target = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))
            .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
            .unwrap_or(target);
        Some(KubernetesRequest::classify(
            &exchange.request.method,
            target,
        ))
    }

    /// The resource request, if this is one.
    pub fn resource(&self) -> Option<&ResourceRequest> {
        match self {
            KubernetesRequest::Resource(request) => Some(request),
            KubernetesRequest::NonResource { .. } => None,
        }
    }
}

impl fmt::Display for KubernetesRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubernetesRequest::Resource(r) => {
                write!(f, "{} ", r.verb)?;
                if !r.group.is_empty() {
                    write!(f, "{}/", r.group)?;
                }
                write!(f, "{}", r.rbac_resource())?;
                if let Some(name) = &r.name {
                    write!(f, " {name}")?;
                }
                if let Some(namespace) = &r.namespace {
                    write!(f, " in {namespace}")?;
                }
                Ok(())
            }
            KubernetesRequest::NonResource { verb, path } => write!(f, "{verb} {path}"),
        }
    }
}

/// The percent-decoded value of the first `key` in a query string.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (decode(k) == key).then(|| decode(v))
    })
}

/// Go's `strconv.ParseBool` true values, which the API server's query decoding uses.
fn go_parse_bool(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The object a field selector pins by exact name: `metadata.name=X` or `metadata.name==X`,
/// alone or among other terms.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        (!value.is_empty() && !value.contains('/')).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(method: &str, target: &str) -> ResourceRequest {
        match KubernetesRequest::classify(method, target) {
            KubernetesRequest::Resource(r) => r,
            other => panic!("{method} {target}: not a resource request: {other:?}"),
        }
    }

    #[test]
    fn core_group_requests() {
        let r = resource("GET", "/api/v1/namespaces/shop/configmaps/agent-settings");
        assert_eq!(r.verb, KubernetesVerb::Get);
        assert_eq!(r.group, "");
        assert_eq!(r.version, "v1");
        assert_eq!(r.resource, "configmaps");
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert_eq!(r.name.as_deref(), Some("agent-settings"));
        assert_eq!(r.subresource, None);

        let r = resource("GET", "/api/v1/namespaces/shop/pods?limit=500");
        assert_eq!(
            (r.verb, r.resource.as_str()),
            (KubernetesVerb::List, "pods")
        );
        assert_eq!(r.name, None);

        let r = resource("GET", "/api/v1/pods");
        assert_eq!((r.verb, r.namespace), (KubernetesVerb::List, None));

        let r = resource("POST", "/api/v1/namespaces/shop/pods");
        assert_eq!(r.verb, KubernetesVerb::Create);
        assert_eq!(r.name, None);
    }

    #[test]
    fn named_groups_and_subresources() {
        let r = resource(
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
        );
        assert_eq!(r.verb, KubernetesVerb::Patch);
        assert_eq!((r.group.as_str(), r.version.as_str()), ("apps", "v1"));
        assert_eq!(r.rbac_resource(), "deployments/scale");
        assert_eq!(r.name.as_deref(), Some("web"));

        let r = resource(
            "POST",
            "/api/v1/namespaces/shop/pods/web-0/exec?command=sh&stdin=true",
        );
        assert_eq!(r.verb, KubernetesVerb::Create);
        assert_eq!(r.rbac_resource(), "pods/exec");
        assert_eq!(r.name.as_deref(), Some("web-0"));

        let r = resource("GET", "/api/v1/namespaces/shop/pods/web-0/log");
        assert_eq!(
            (r.verb, r.rbac_resource()),
            (KubernetesVerb::Get, "pods/log".into())
        );

        let r = resource("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles");
        assert_eq!(r.group, "rbac.authorization.k8s.io");
        assert_eq!((r.verb, r.namespace), (KubernetesVerb::List, None));
    }

    #[test]
    fn watch_list_and_deletecollection() {
        for value in ["true", "1", "True", "t"] {
            let r = resource(
                "GET",
                &format!("/api/v1/namespaces/shop/pods?watch={value}"),
            );
            assert_eq!(r.verb, KubernetesVerb::Watch, "watch={value}");
        }
        let r = resource("GET", "/api/v1/namespaces/shop/pods?watch=false");
        assert_eq!(r.verb, KubernetesVerb::List);
        let r = resource("GET", "/api/v1/watch/namespaces/shop/pods");
        assert_eq!(
            (r.verb, r.resource.as_str()),
            (KubernetesVerb::Watch, "pods")
        );
        assert_eq!(r.namespace.as_deref(), Some("shop"));

        let r = resource(
            "GET",
            "/api/v1/namespaces/shop/configmaps?fieldSelector=metadata.name%3Dsettings&watch=1",
        );
        assert_eq!(r.verb, KubernetesVerb::Watch);
        assert_eq!(r.name.as_deref(), Some("settings"));

        let r = resource("DELETE", "/api/v1/namespaces/shop/pods");
        assert_eq!(r.verb, KubernetesVerb::DeleteCollection);
        let r = resource("DELETE", "/api/v1/namespaces/shop/pods/web-0");
        assert_eq!(r.verb, KubernetesVerb::Delete);
        let r = resource("PUT", "/api/v1/namespaces/shop/secrets/db");
        assert_eq!(r.verb, KubernetesVerb::Update);
        let r = resource("HEAD", "/api/v1/namespaces/shop/secrets/db");
        assert_eq!(r.verb, KubernetesVerb::Get);
    }

    #[test]
    fn namespaces_themselves() {
        let r = resource("GET", "/api/v1/namespaces/shop");
        assert_eq!(r.resource, "namespaces");
        assert_eq!(r.name.as_deref(), Some("shop"));
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        let r = resource("PUT", "/api/v1/namespaces/shop/finalize");
        assert_eq!(r.rbac_resource(), "namespaces/finalize");
        let r = resource("GET", "/api/v1/namespaces");
        assert_eq!((r.verb, r.namespace), (KubernetesVerb::List, None));
    }

    #[test]
    fn proxy_has_no_subresource() {
        let r = resource("GET", "/api/v1/proxy/namespaces/shop/services/web/healthz");
        assert_eq!(r.verb, KubernetesVerb::Proxy);
        assert_eq!(r.resource, "services");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource, None);
        // The modern form is a subresource with the HTTP verb.
        let r = resource("GET", "/api/v1/namespaces/shop/services/web/proxy/healthz");
        assert_eq!(
            (r.verb, r.rbac_resource()),
            (KubernetesVerb::Get, "services/proxy".into())
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource() {
        for (method, target) in [
            ("GET", "/api"),
            ("GET", "/api/v1"),
            ("GET", "/apis"),
            ("GET", "/apis/apps"),
            ("GET", "/apis/apps/v1"),
            ("GET", "/version"),
            ("GET", "/openapi/v3?x=1"),
            ("OPTIONS", "/api/v1/pods"),
        ] {
            match KubernetesRequest::classify(method, target) {
                KubernetesRequest::NonResource { verb, path } => {
                    assert_eq!(verb, method.to_ascii_lowercase());
                    assert_eq!(path, target.split('?').next().unwrap());
                }
                other => panic!("{method} {target}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_paths_do_not_panic() {
        for target in [
            "",
            "/",
            "//api//v1//",
            "/api/v1/watch",
            "/api/v1/namespaces",
            "/api/v1/namespaces/",
            "/apis/%ZZ/v1/x",
            "/api/v1/namespaces/%2F/pods?fieldSelector=metadata.name%3D",
            "?watch=true",
        ] {
            for method in ["GET", "DELETE", "POST", "\u{0}"] {
                let _ = KubernetesRequest::classify(method, target);
            }
        }
        let r = resource("GET", "/api/v1/watch");
        assert_eq!(
            (r.verb, r.resource.as_str()),
            (KubernetesVerb::List, "watch")
        );
    }

    #[test]
    fn display_reads_like_a_sentence() {
        let request = KubernetesRequest::classify("GET", "/api/v1/namespaces/shop/pods/web-0/log");
        assert_eq!(request.to_string(), "get pods/log web-0 in shop");
        let request = KubernetesRequest::classify("GET", "/apis/apps/v1/deployments");
        assert_eq!(request.to_string(), "list apps/deployments");
    }
}
