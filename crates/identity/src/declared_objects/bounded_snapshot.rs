//! A snapshot of the declared objects built as they are read, within its byte cap: each object
//! is redacted ([`super::redact_object`]) when it arrives, and only what the snapshot will carry
//! is kept, so reading a cluster of many thousand pods holds one page of the API's answer and
//! at most the cap of redacted objects, never the whole cluster (the collector reads it again
//! every minute; the whole of a large cluster, unredacted, was hundreds of megabytes held
//! outside the memory budget while it was read and cut).
//!
//! What is kept, in order of preference: the pods on the collector's node (the agents there),
//! then every object that is not a pod (the RBAC and NetworkPolicies posture compares against),
//! then the other pods (they only matter as NetworkPolicy peers); within each, the API's order.
//! An object that does not fit makes room by leaving out the newest objects less preferred than
//! itself, if that suffices; otherwise it is left out itself (a later, smaller one may still
//! fit). Whatever is left out is counted by kind.

use std::collections::BTreeMap;

use agentscope_event::cluster_objects::ClusterObjects;

use super::redact_object;

/// Preferences, most preferred first.
const RANKS: usize = 3;

/// A snapshot in the making.
#[derive(Debug)]
pub struct SnapshotBuilder {
    node_name: Option<String>,
    max_bytes: usize,
    /// Per rank, the objects kept with their JSON length.
    kept: [Vec<(serde_json::Value, usize)>; RANKS],
    /// Per rank, the sum of the kept objects' JSON lengths.
    kept_bytes: [usize; RANKS],
    omitted: BTreeMap<String, u64>,
}

impl SnapshotBuilder {
    /// An empty snapshot of at most `max_bytes` of JSON; `node_name`'s pods are preferred.
    pub fn new(node_name: Option<&str>, max_bytes: usize) -> Self {
        SnapshotBuilder {
            node_name: node_name.map(str::to_string),
            max_bytes,
            kept: Default::default(),
            kept_bytes: [0; RANKS],
            omitted: BTreeMap::new(),
        }
    }

    /// Counts objects the reader left out (past its object cap), by kind.
    pub fn note_omitted(&mut self, omitted: &BTreeMap<String, u64>) {
        for (kind, n) in omitted {
            *self.omitted.entry(kind.clone()).or_insert(0) += n;
        }
    }

    fn rank(&self, object: &serde_json::Value) -> usize {
        let is_pod = object["kind"] == "Pod";
        match &self.node_name {
            Some(node) if is_pod && object["spec"]["nodeName"].as_str() == Some(node) => 0,
            _ if !is_pod => 1,
            _ => 2,
        }
    }

    /// The snapshot's JSON size with `count` objects of `bytes` in all: `[`, `]` and commas.
    fn json_size(count: usize, bytes: usize) -> usize {
        2usize
            .saturating_add(bytes)
            .saturating_add(count.saturating_sub(1))
    }

    fn omit(&mut self, object: &serde_json::Value) {
        let kind = object["kind"].as_str().unwrap_or("?").to_string();
        *self.omitted.entry(kind).or_insert(0) += 1;
    }

    /// Objects kept of rank `from` or less preferred, and their JSON bytes.
    fn kept_from(&self, from: usize) -> (usize, usize) {
        (from..RANKS).fold((0, 0), |(n, b), r| {
            (n + self.kept[r].len(), b + self.kept_bytes[r])
        })
    }

    /// The snapshot's JSON size as kept so far.
    #[cfg(test)]
    fn held(&self) -> usize {
        let (count, bytes) = self.kept_from(0);
        Self::json_size(count, bytes)
    }

    /// Takes in one object as the API returned it.
    pub fn add(&mut self, mut object: serde_json::Value) {
        redact_object(&mut object);
        let Ok(len) = serde_json::to_vec(&object).map(|b| b.len()) else {
            self.omit(&object);
            return;
        };
        let rank = self.rank(&object);
        let max_bytes = self.max_bytes;
        // Whether the object fits beside `kept` (objects, JSON bytes).
        let fits = |(count, bytes): (usize, usize)| {
            Self::json_size(count + 1, bytes.saturating_add(len)) <= max_bytes
        };
        if !fits(self.kept_from(0)) {
            // Would leaving out every less preferred object make room?
            let (count, bytes) = self.kept_from(0);
            let (less_count, less_bytes) = self.kept_from(rank + 1);
            if !fits((count - less_count, bytes - less_bytes)) {
                self.omit(&object);
                return;
            }
            // Then leave out the newest of the least preferred until it fits.
            for less in (rank + 1..RANKS).rev() {
                while !fits(self.kept_from(0)) {
                    let Some((evicted, evicted_len)) = self.kept[less].pop() else {
                        break;
                    };
                    self.kept_bytes[less] -= evicted_len;
                    self.omit(&evicted);
                }
            }
        }
        self.kept_bytes[rank] += len;
        self.kept[rank].push((object, len));
    }

    /// The snapshot: the kept objects, most preferred first.
    pub fn finish(self) -> ClusterObjects {
        let mut counts = BTreeMap::new();
        let (count, bytes) = self.kept_from(0);
        let mut objects = Vec::with_capacity(count);
        for (object, _) in self.kept.into_iter().flatten() {
            let kind = object["kind"].as_str().unwrap_or("?").to_string();
            *counts.entry(kind).or_insert(0) += 1;
            objects.push(object);
        }
        ClusterObjects {
            bytes: Self::json_size(objects.len(), bytes) as u64,
            objects,
            counts,
            truncated: !self.omitted.is_empty(),
            omitted: self.omitted,
            node_name: self.node_name,
        }
    }
}

/// One snapshot of `objects` (read by kind, `omitted` past the reader's object cap), as a
/// [`SnapshotBuilder`] makes it.
pub fn snapshot(
    objects: Vec<serde_json::Value>,
    omitted: BTreeMap<String, u64>,
    node_name: Option<&str>,
    max_bytes: usize,
) -> ClusterObjects {
    let mut builder = SnapshotBuilder::new(node_name, max_bytes);
    builder.note_omitted(&omitted);
    for object in objects {
        builder.add(object);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, padding: usize) -> serde_json::Value {
        json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "shop", "labels": {"pad": "x".repeat(padding)}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}})
    }

    fn role(name: &str) -> serde_json::Value {
        json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": name, "namespace": "shop"}, "rules": []})
    }

    fn names(snapshot: &ClusterObjects) -> Vec<&str> {
        snapshot
            .objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_large_cluster_read_through_the_builder_never_holds_more_than_the_cap() {
        let cap = 64 << 10;
        let mut builder = SnapshotBuilder::new(Some("node-a"), cap);
        for i in 0..20_000 {
            let node = if i % 1000 == 0 { "node-a" } else { "node-b" };
            builder.add(pod(&format!("p{i}"), node, 200));
            let held = builder.held();
            assert!(held <= cap, "{held} held after {i}");
        }
        for i in 0..50 {
            builder.add(role(&format!("r{i}")));
        }
        let snapshot = builder.finish();
        assert_eq!(
            serde_json::to_vec(&snapshot.objects).unwrap().len(),
            snapshot.bytes as usize
        );
        assert!(snapshot.bytes as usize <= cap);
        // The node's 20 pods first, then every Role, then other pods in the API's order.
        let names = names(&snapshot);
        let mine: Vec<String> = (0..20).map(|i| format!("p{}", i * 1000)).collect();
        assert_eq!(
            names[..20],
            mine.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
        assert_eq!(snapshot.counts["Role"], 50);
        assert_eq!(names[20], "r0");
        assert_eq!(names[70], "p1");
        assert_eq!(
            snapshot.counts["Pod"] + snapshot.omitted["Pod"],
            20_000,
            "every pod is kept or counted"
        );
        assert!(snapshot.truncated);
    }

    #[test]
    fn an_object_that_cannot_fit_even_alone_leaves_the_rest_alone() {
        let small = pod("small", "node-b", 10);
        let small_len = serde_json::to_vec(&small).unwrap().len();
        let mut builder = SnapshotBuilder::new(Some("node-a"), small_len + 2);
        builder.add(small);
        // Preferred, but larger than the whole cap: evicting would not make room.
        builder.add(pod("huge-mine", "node-a", 4096));
        // Same rank as what is kept, and no room: left out, nothing evicted for it.
        builder.add(pod("late", "node-b", 10));
        let snapshot = builder.finish();
        assert_eq!(names(&snapshot), ["small"]);
        assert_eq!(snapshot.omitted["Pod"], 2);
    }

    #[test]
    fn redaction_happens_on_arrival() {
        let mut secret = pod("p", "node-a", 1);
        secret["metadata"]["annotations"] = json!({"token": "hunter2"});
        secret["spec"]["containers"][0]["env"] = json!([{"name": "K", "value": "hunter2"}]);
        let mut builder = SnapshotBuilder::new(None, usize::MAX);
        builder.add(secret);
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
