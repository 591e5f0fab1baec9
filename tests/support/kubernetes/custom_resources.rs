//! agentscope's custom resources (`agentscope.dev/v1` AgentBaseline and AgentObservation) in
//! the API-server double, as the Kubernetes API serves them: GET, list and watch (per
//! namespace and across namespaces, with resourceVersions and watch events from an older
//! version), DELETE, and server-side apply (`PATCH` with `application/apply-patch+yaml`).
//!
//! Server-side apply follows the API's documented semantics for what agentscope uses
//! (kubernetes.io/docs/reference/using-api/server-side-apply/), at the granularity of
//! top-level fields of `spec` (and any other top-level section) and single labels and
//! annotations:
//! - `fieldManager` is required; the applied configuration's name and namespace must be the
//!   URL's; `metadata.managedFields` may not be sent;
//! - each manager owns the fields of its last applied configuration, recorded in
//!   `metadata.managedFields` (`operation: Apply`, `fieldsType: FieldsV1`, `f:` keys);
//! - applying a field another manager owns with a different value is a conflict: 409 with
//!   `reason: Conflict` and one `FieldManagerConflict` cause per field, unless `force=true`,
//!   which takes the field over; the same value makes the managers co-owners;
//! - a field a manager stops applying is removed unless another manager owns it;
//! - `metadata.resourceVersion` in the applied configuration is a precondition (409 when it
//!   is not the stored one);
//! - an apply that changes nothing bumps no resourceVersion and sends no watch event;
//! - creating by apply answers 201 and is authorized as `create` as well as `patch` (what the
//!   RBAC check of the caller counts).
//!
//! Not implemented (agentscope does not use them): validation against the CRD schema, granular
//! ownership inside `spec`'s fields, list-map merging, `Update` managers, `dryRun`, label and
//! field selectors (refused, not ignored), status subresources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};

use super::{json_response, status_body, Response};

pub const PREFIX: &str = "/apis/agentscope.dev/v1/";
const API_VERSION: &str = "agentscope.dev/v1";
const GROUP: &str = "agentscope.dev";

/// The resources served: plural → kind.
fn kind_of(plural: &str) -> Option<&'static str> {
    match plural {
        "agentbaselines" => Some("AgentBaseline"),
        "agentobservations" => Some("AgentObservation"),
        _ => None,
    }
}

/// A field a manager can own: `["spec", "mode"]`, `["metadata", "labels", "app"]`.
type FieldPath = Vec<String>;
type Key = (String, String, String);

#[derive(Default)]
pub struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    /// Per object: manager → the fields it owns.
    owners: BTreeMap<Key, BTreeMap<String, BTreeSet<FieldPath>>>,
    events: Vec<(u64, String, String, Value)>,
    watchers: Vec<(String, Option<String>, mpsc::UnboundedSender<Bytes>)>,
    uids: u64,
}

/// What a request did.
pub struct Answer {
    pub response: Response,
    /// A server-side apply created the object.
    pub created: bool,
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Answer {
            response,
            created: false,
        }
    }
}

/// The fields an applied configuration sets.
fn applied_fields(config: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(object) = config.as_object() else {
        return out;
    };
    for (key, value) in object {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for section in ["labels", "annotations"] {
                    if let Some(map) = value.get(section).and_then(Value::as_object) {
                        for name in map.keys() {
                            out.insert(vec!["metadata".into(), section.into(), name.clone()]);
                        }
                    }
                }
            }
            _ => match value.as_object() {
                Some(map) => {
                    for field in map.keys() {
                        out.insert(vec![key.clone(), field.clone()]);
                    }
                }
                None => {
                    out.insert(vec![key.clone()]);
                }
            },
        }
    }
    out
}

fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn set_path(value: &mut Value, path: &[String], new: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = value;
    for key in parents {
        if !at.get(key).is_some_and(Value::is_object) {
            at[key.as_str()] = json!({});
        }
        at = at.get_mut(key).unwrap();
    }
    at[last.as_str()] = new;
}

fn remove_path(value: &mut Value, path: &[String]) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = value;
    for key in parents {
        match at.get_mut(key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
}

/// Fields as FieldsV1: `{"f:spec": {"f:mode": {}}}`.
fn fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut out = json!({});
    for path in fields {
        let keys: Vec<String> = path.iter().map(|k| format!("f:{k}")).collect();
        set_path(&mut out, &keys, json!({}));
    }
    out
}

/// The object without what the server maintains, for "did anything change".
fn content(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "resourceVersion", "generation"] {
            meta.remove(key);
        }
    }
    out
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

fn conflict(message: String, causes: Vec<Value>) -> Response {
    json_response(
        409,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": "Conflict",
            "details": {"causes": causes}, "code": 409
        }),
    )
}

fn not_found(plural: &str, name: &str) -> Response {
    json_response(
        404,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": format!("{plural}.{GROUP} \"{name}\" not found"),
            "reason": "NotFound",
            "details": {"name": name, "group": GROUP, "kind": plural},
            "code": 404
        }),
    )
}

impl Store {
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(plural.to_string(), namespace.to_string(), name.to_string()))
    }

    pub fn all(&self, plural: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((p, _, _), _)| p == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Serves `rest` (the path after [`PREFIX`]).
    pub fn handle(
        &mut self,
        request: &hyper::http::request::Parts,
        rest: &str,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Answer {
        let parts: Vec<&str> = rest.split('/').collect();
        let (plural, namespace, name) = match parts.as_slice() {
            [plural] => (*plural, None, None),
            ["namespaces", namespace, plural] => (*plural, Some(*namespace), None),
            ["namespaces", namespace, plural, name] => (*plural, Some(*namespace), Some(*name)),
            _ => {
                return status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
                .into()
            }
        };
        let Some(kind) = kind_of(plural) else {
            return status_body(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into();
        };
        for selector in ["labelSelector", "fieldSelector"] {
            if query.get(selector).is_some_and(|s| !s.is_empty()) {
                return status_body(
                    400,
                    "BadRequest",
                    &format!("the double does not implement {selector}"),
                )
                .into();
            }
        }
        let method = request.method.as_str();
        match (method, namespace, name) {
            ("GET", _, None) if query.get("watch").map(String::as_str) == Some("true") => {
                self.watch(plural, namespace, query).into()
            }
            ("GET", _, None) => self.list(plural, kind, namespace).into(),
            ("GET", Some(namespace), Some(name)) => match self.get(plural, namespace, name) {
                Some(object) => json_response(200, object).into(),
                None => not_found(plural, name).into(),
            },
            ("DELETE", Some(namespace), Some(name)) => self.delete(plural, namespace, name).into(),
            ("PATCH", Some(namespace), Some(name)) => {
                let content_type = request
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if content_type != "application/apply-patch+yaml" {
                    return status_body(
                        415,
                        "UnsupportedMediaType",
                        &format!(
                            "the double implements only server-side apply, not {content_type:?}"
                        ),
                    )
                    .into();
                }
                self.apply(plural, kind, namespace, name, query, body)
            }
            _ => status_body(
                405,
                "MethodNotAllowed",
                &format!("{method} is not allowed here"),
            )
            .into(),
        }
    }

    fn list(&self, plural: &str, kind: &str, namespace: Option<&str>) -> Response {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((p, ns, _), _)| p == plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect();
        json_response(
            200,
            &json!({
                "apiVersion": API_VERSION, "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": self.resource_version.to_string()},
                "items": items
            }),
        )
    }

    fn watch(
        &mut self,
        plural: &str,
        namespace: Option<&str>,
        query: &HashMap<String, String>,
    ) -> Response {
        let since: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (sender, receiver) = mpsc::unbounded();
        for (version, p, ns, event) in &self.events {
            if *version > since && p == plural && namespace.is_none_or(|n| n == ns) {
                let _ = sender.unbounded_send(Bytes::from(format!("{event}\n")));
            }
        }
        self.watchers
            .push((plural.to_string(), namespace.map(str::to_string), sender));
        let body = StreamBody::new(receiver.map(|line| Ok::<_, Infallible>(Frame::data(line))));
        hyper::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(body))
            .unwrap()
    }

    fn notify(&mut self, kind: &str, plural: &str, namespace: &str, object: &Value) {
        let event = json!({"type": kind, "object": object});
        let line = Bytes::from(format!("{event}\n"));
        self.watchers.retain(|(p, ns, sender)| {
            if p != plural || ns.as_deref().is_some_and(|n| n != namespace) {
                return true;
            }
            sender.unbounded_send(line.clone()).is_ok()
        });
        self.events.push((
            self.resource_version,
            plural.to_string(),
            namespace.to_string(),
            event,
        ));
    }

    fn delete(&mut self, plural: &str, namespace: &str, name: &str) -> Response {
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        let Some(mut object) = self.objects.remove(&key) else {
            return not_found(plural, name);
        };
        self.owners.remove(&key);
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.notify("DELETED", plural, namespace, &object);
        json_response(200, &object)
    }

    fn apply(
        &mut self,
        plural: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Answer {
        let bad = |message: String| Answer::from(status_body(400, "BadRequest", &message));
        let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
            return bad("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into());
        };
        let force = query.get("force").map(String::as_str) == Some("true");
        // YAML, of which JSON is a subset (kube-rs sends JSON).
        let config: Value = match serde_norway::from_slice(body) {
            Ok(value) => value,
            Err(e) => return bad(format!("error decoding YAML: {e}")),
        };
        if config["apiVersion"] != API_VERSION || config["kind"] != kind {
            return bad(format!(
                "apiVersion {} and kind {} do not match {API_VERSION} {kind}",
                config["apiVersion"], config["kind"]
            ));
        }
        let meta = &config["metadata"];
        if meta["name"] != name {
            return bad(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta["name"]
            ));
        }
        if meta.get("namespace").is_some_and(|n| n != namespace) {
            return bad(format!(
                "the namespace of the object ({}) does not match the namespace on the URL ({namespace})",
                meta["namespace"]
            ));
        }
        if meta.get("managedFields").is_some_and(|m| !m.is_null()) {
            return bad("metadata.managedFields must be nil".into());
        }
        if !config["spec"].is_object() {
            return Answer::from(status_body(
                422,
                "Invalid",
                &format!("{kind}.{GROUP} \"{name}\" is invalid: spec: Required value"),
            ));
        }
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        let stored = self.objects.get(&key).cloned();
        if let Some(wanted) = meta.get("resourceVersion").and_then(Value::as_str) {
            let current = stored
                .as_ref()
                .and_then(|o| o["metadata"]["resourceVersion"].as_str());
            if current != Some(wanted) {
                return Answer::from(conflict(
                    format!(
                        "Operation cannot be fulfilled on {plural}.{GROUP} \"{name}\": the object \
                         has been modified; please apply your changes to the latest version and \
                         try again"
                    ),
                    Vec::new(),
                ));
            }
        }
        let fields = applied_fields(&config);
        let mut owners = self.owners.get(&key).cloned().unwrap_or_default();
        let current = stored.clone().unwrap_or_else(|| json!({}));
        // Conflicts: fields others own, applied with another value.
        let mut conflicts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut contested: Vec<(String, FieldPath)> = Vec::new();
        for field in &fields {
            for (other, owned) in &owners {
                if other != manager
                    && owned.contains(field)
                    && get_path(&current, field) != get_path(&config, field)
                {
                    conflicts
                        .entry(other.clone())
                        .or_default()
                        .push(format!(".{}", field.join(".")));
                    contested.push((other.clone(), field.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                let count: usize = conflicts.values().map(Vec::len).sum();
                let mut causes = Vec::new();
                let mut described = Vec::new();
                for (other, paths) in &conflicts {
                    described.push(format!(
                        "conflict with \"{other}\" using {API_VERSION}: {}",
                        paths.join(", ")
                    ));
                    for path in paths {
                        causes.push(json!({
                            "reason": "FieldManagerConflict",
                            "message": format!("conflict with \"{other}\" using {API_VERSION}"),
                            "field": path
                        }));
                    }
                }
                let noun = if count == 1 { "conflict" } else { "conflicts" };
                return Answer::from(conflict(
                    format!("Apply failed with {count} {noun}: {}", described.join("; ")),
                    causes,
                ));
            }
            // Forced: the conflicting fields change hands (fields applied with the same value
            // stay shared).
            for (other, field) in &contested {
                if let Some(owned) = owners.get_mut(other) {
                    owned.remove(field);
                }
            }
        }
        let mut object = stored.clone().unwrap_or_else(|| {
            self.uids += 1;
            json!({
                "apiVersion": API_VERSION, "kind": kind,
                "metadata": {
                    "name": name, "namespace": namespace,
                    "uid": format!("00000000-0000-4000-8000-{:012x}", self.uids),
                    "creationTimestamp": now(),
                    "generation": 1
                }
            })
        });
        // Fields this manager no longer applies go, unless another manager owns them.
        let previous = owners.get(manager).cloned().unwrap_or_default();
        for field in previous.difference(&fields) {
            let kept = owners
                .iter()
                .any(|(other, owned)| other != manager && owned.contains(field));
            if !kept {
                remove_path(&mut object, field);
            }
        }
        for field in &fields {
            set_path(
                &mut object,
                field,
                get_path(&config, field).cloned().unwrap(),
            );
        }
        owners.insert(manager.clone(), fields);
        owners.retain(|_, owned| !owned.is_empty());
        let changed = stored
            .as_ref()
            .is_none_or(|old| content(old) != content(&object))
            || self.owners.get(&key) != Some(&owners);
        if !changed {
            return Answer::from(json_response(200, stored.as_ref().unwrap()));
        }
        self.resource_version += 1;
        if let Some(old) = &stored {
            if old["spec"] != object["spec"] {
                let generation = old["metadata"]["generation"].as_u64().unwrap_or(1);
                object["metadata"]["generation"] = json!(generation + 1);
            }
        }
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let previous_entries: BTreeMap<String, Value> = object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["manager"].as_str()?.to_string(), e.clone())))
            .collect();
        let managed: Vec<Value> = owners
            .iter()
            .map(|(owner, owned)| {
                let time = match previous_entries.get(owner) {
                    Some(entry) if owner != manager => entry["time"].clone(),
                    _ => json!(now()),
                };
                json!({
                    "manager": owner, "operation": "Apply", "apiVersion": API_VERSION,
                    "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields_v1(owned)
                })
            })
            .collect();
        object["metadata"]["managedFields"] = Value::Array(managed);
        let created = stored.is_none();
        self.objects.insert(key.clone(), object.clone());
        self.owners.insert(key, owners);
        self.notify(
            if created { "ADDED" } else { "MODIFIED" },
            plural,
            namespace,
            &object,
        );
        Answer {
            response: json_response(if created { 201 } else { 200 }, &object),
            created,
        }
    }
}
