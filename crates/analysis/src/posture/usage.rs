//! What each agent was seen doing that posture compares with what it may do: its Kubernetes
//! API requests (with the status the API server answered), the network destinations it
//! connected to and whether it resolved names, the files it opened, the tools its models
//! called, and the databases it connected to with the tables it queried.
//!
//! [`UsageBook`] is a [`Sink`]: a recording's replay or a live session feeds it every
//! attributed observation. Each collection is bounded per agent ([`MAX_ENTRIES`]); what did not
//! fit is counted, and the report says so (a posture computed from a partial view would call
//! a used permission unused).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use agentscope_event::Event;

use super::cluster::ClusterState;
use super::network_policy::Destination;
use crate::detect::kubernetes_request::KubernetesRequest;
use crate::pipeline::AttributedObservation;
use crate::reconstruct::mcp::McpDetail;
use crate::reconstruct::{ObservationKind, Role};
use crate::session::{Session, Sink, Step};

/// Entries kept per collection per agent.
pub const MAX_ENTRIES: usize = 4096;
/// Bytes of file paths kept per agent (paths are up to 4 KiB each: the entry count alone
/// would not bound them).
pub const MAX_PATH_BYTES: usize = 256 << 10;
/// Agents followed. With the limits above an agent's usage stays under about 1 MiB, so the
/// book stays under about 256 MiB in the worst case and a few KiB per agent in practice.
pub const MAX_AGENTS: usize = 256;

/// Ports databases listen on, for "connected to a database" without a query seen.
const DATABASE_PORTS: &[(u16, &str)] = &[
    (5432, "postgresql"),
    (3306, "mysql"),
    (1433, "sqlserver"),
    (1521, "oracle"),
    (27017, "mongodb"),
    (6379, "redis"),
    (9042, "cassandra"),
];

/// One Kubernetes API request an agent made, and how often.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservedRequest {
    pub request: KubernetesRequest,
    /// The response status, when the response was seen.
    pub status: Option<u16>,
}

/// What one agent was seen doing.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub kubernetes: BTreeMap<ObservedRequest, u64>,
    pub destinations: BTreeMap<Destination, u64>,
    /// The agent resolved names (so a restrictive policy must allow DNS).
    pub dns: bool,
    /// Files opened for reading.
    pub files_read: BTreeSet<String>,
    /// Tool name → calls the agent's models asked for.
    pub tool_calls: BTreeMap<String, u64>,
    /// MCP tool name → `tools/call` requests the agent sent.
    pub mcp_calls: BTreeMap<String, u64>,
    /// Database (`address:port`, or the engine when the peer is unknown) → tables queried.
    pub databases: BTreeMap<String, BTreeSet<String>>,
    /// Database → tables its catalogue answered the agent with (what the agent's database role
    /// can see; only when the agent listed them).
    pub listed_tables: BTreeMap<String, BTreeSet<String>>,
    /// Entries not kept because a collection was full.
    pub dropped: u64,
    /// Bytes of `files_read`.
    path_bytes: usize,
}

fn insert_bounded<T: Ord>(set: &mut BTreeSet<T>, value: T, dropped: &mut u64) {
    if set.len() < MAX_ENTRIES || set.contains(&value) {
        set.insert(value);
    } else {
        *dropped += 1;
    }
}

fn count_bounded<T: Ord>(map: &mut BTreeMap<T, u64>, key: T, dropped: &mut u64) {
    if let Some(n) = map.get_mut(&key) {
        *n += 1;
    } else if map.len() < MAX_ENTRIES {
        map.insert(key, 1);
    } else {
        *dropped += 1;
    }
}

impl Usage {
    /// Takes in one observation of the agent.
    pub fn observe(&mut self, kind: &ObservationKind) {
        let dropped = &mut self.dropped;
        match kind {
            ObservationKind::Http {
                exchange,
                role: Role::Client,
            } => {
                if let Some(request) = KubernetesRequest::of_exchange(exchange) {
                    let observed = ObservedRequest {
                        request,
                        status: exchange.response.as_ref().map(|r| r.status),
                    };
                    count_bounded(&mut self.kubernetes, observed, dropped);
                }
            }
            ObservationKind::Connect { peer, .. } => {
                let Ok(address) = peer.addr.parse::<IpAddr>() else {
                    return; // a Unix socket
                };
                let destination = Destination {
                    address,
                    port: peer.port,
                    protocol: "TCP",
                };
                count_bounded(&mut self.destinations, destination, dropped);
                if let Some((_, engine)) = DATABASE_PORTS.iter().find(|(p, _)| *p == peer.port) {
                    let key = format!("{engine} {}", socket(&peer.addr, peer.port));
                    if !self.databases.contains_key(&key) && self.databases.len() >= MAX_ENTRIES {
                        *dropped += 1;
                    } else {
                        self.databases.entry(key).or_default();
                    }
                }
            }
            ObservationKind::Dns { .. } => self.dns = true,
            ObservationKind::Llm { call, .. } => {
                for tool_call in &call.tool_calls {
                    count_bounded(&mut self.tool_calls, tool_call.name.clone(), dropped);
                }
            }
            ObservationKind::Mcp {
                exchange,
                role: Role::Client,
                ..
            } => {
                if let McpDetail::ToolsCall(call) = &exchange.detail {
                    let name = call.name.clone().unwrap_or_default();
                    count_bounded(&mut self.mcp_calls, name, dropped);
                }
            }
            ObservationKind::FileOpen {
                path, write: false, ..
            } => {
                if self.files_read.contains(path) {
                    return;
                }
                if self.path_bytes + path.len() > MAX_PATH_BYTES {
                    *dropped += 1;
                    return;
                }
                let before = self.files_read.len();
                insert_bounded(&mut self.files_read, path.clone(), dropped);
                if self.files_read.len() > before {
                    self.path_bytes += path.len();
                }
            }
            ObservationKind::Sql { statement, peer } => {
                let key = match peer {
                    Some(peer) => format!("postgresql {}", socket(&peer.addr, peer.port)),
                    None => "postgresql".to_string(),
                };
                if !self.databases.contains_key(&key) && self.databases.len() >= MAX_ENTRIES {
                    *dropped += 1;
                    return;
                }
                if !statement.listed_tables.is_empty() {
                    let listed = self.listed_tables.entry(key.clone()).or_default();
                    for table in &statement.listed_tables {
                        insert_bounded(listed, table.clone(), dropped);
                    }
                }
                let tables = self.databases.entry(key).or_default();
                for table in &statement.tables {
                    insert_bounded(tables, table.clone(), dropped);
                }
            }
            _ => {}
        }
    }
}

fn socket(addr: &str, port: u16) -> String {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{addr}:{port}"),
    }
}

/// The declared side the collector recorded: the session's last `cluster_objects` snapshot,
/// read into a [`ClusterState`] once (a snapshot comes only when the objects changed).
#[derive(Debug, Clone)]
pub struct RecordedCluster {
    pub state: Arc<ClusterState>,
    /// When the collector read it (wall clock, nanoseconds since the Unix epoch).
    pub time_unix_ns: u64,
    /// Objects the snapshot carried.
    pub objects: usize,
    /// Objects the collector left out (its size cap), by kind.
    pub omitted: BTreeMap<String, u64>,
    /// Objects that did not read as their kind (skipped).
    pub unreadable: usize,
}

impl RecordedCluster {
    /// Where the declared side came from, for the report: "the cluster objects the collector
    /// read from the Kubernetes API at 2026-12-05T15:22:14Z (42 objects)".
    pub fn describe(&self) -> String {
        let mut text = format!(
            "the cluster objects the collector read from the Kubernetes API at {} ({} objects",
            jiff::Timestamp::from_nanosecond(i128::from(self.time_unix_ns))
                .map_or_else(|_| "an unknown time".to_string(), |t| t.to_string()),
            self.objects
        );
        if !self.omitted.is_empty() {
            let omitted: Vec<String> = self
                .omitted
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            text.push_str(&format!("; cut, left out: {}", omitted.join(", ")));
        }
        if self.unreadable > 0 {
            text.push_str(&format!("; {} unreadable, skipped", self.unreadable));
        }
        text.push(')');
        text
    }
}

/// Usage per agent key.
#[derive(Debug, Clone, Default)]
pub struct UsageBook {
    agents: BTreeMap<String, Usage>,
    /// Observations of agents beyond [`MAX_AGENTS`].
    pub agents_dropped: u64,
    /// The last declared objects the collector recorded in the session, if any.
    pub cluster: Option<RecordedCluster>,
}

impl UsageBook {
    /// Takes in an attributed observation (observations of no agent are ignored, but for the
    /// collector's snapshots of the cluster's objects).
    pub fn observe(&mut self, observation: &AttributedObservation) {
        if let ObservationKind::ClusterObjects { objects } = &observation.kind {
            self.observe_cluster(observation.time_unix_ns, objects);
            return;
        }
        let Some(agent) = &observation.agent else {
            return;
        };
        if !self.agents.contains_key(agent) && self.agents.len() >= MAX_AGENTS {
            self.agents_dropped += 1;
            return;
        }
        self.agents
            .entry(agent.clone())
            .or_default()
            .observe(&observation.kind);
    }

    /// Takes a snapshot of the declared objects read at `time_unix_ns` as the declared side: a
    /// `cluster_objects` observation, or the one a keyframe carried
    /// ([`crate::pipeline::Pipeline::last_cluster_objects`] after a start from the middle).
    pub fn observe_cluster(
        &mut self,
        time_unix_ns: u64,
        objects: &agentscope_event::cluster_objects::ClusterObjects,
    ) {
        let (state, unreadable) = ClusterState::from_objects(&objects.objects);
        self.cluster = Some(RecordedCluster {
            state: Arc::new(state),
            time_unix_ns,
            objects: objects.objects.len(),
            omitted: objects.omitted.clone(),
            unreadable,
        });
    }

    /// Takes the snapshot `pipeline` kept when none was observed or the one observed is
    /// older: a session that started from a keyframe (a rotated recording's later file, a
    /// console that attached or sought) saw no `cluster_objects` event, and a served console
    /// whose chunk holding one was dropped gets it from the keyframe that follows.
    pub fn or_pipeline_cluster(&mut self, pipeline: &crate::pipeline::Pipeline) {
        let Some(last) = pipeline.last_cluster_objects() else {
            return;
        };
        if self
            .cluster
            .as_ref()
            .is_none_or(|seen| seen.time_unix_ns < last.time_unix_ns)
        {
            self.observe_cluster(last.time_unix_ns, &last.objects);
        }
    }

    pub fn agent(&self, key: &str) -> Option<&Usage> {
        self.agents.get(key)
    }
}

impl Sink for UsageBook {
    fn step(&mut self, _: Option<&Event>, step: &Step, _: &Session) -> std::io::Result<()> {
        for observation in &step.observations {
            self.observe(observation);
        }
        Ok(())
    }

    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        self.step(None, step, session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruct::file_access::classify;
    use crate::reconstruct::Peer;

    #[test]
    fn every_collection_is_bounded_and_what_is_dropped_is_counted() {
        let mut usage = Usage::default();
        let long = "x".repeat(4000);
        for i in 0..200 {
            let path = format!("/data/{long}/{i}");
            usage.observe(&ObservationKind::FileOpen {
                class: classify(&path),
                path,
                write: false,
            });
        }
        assert!(usage.files_read.len() < 200);
        assert!(usage.files_read.iter().map(String::len).sum::<usize>() <= MAX_PATH_BYTES);
        let kept = usage.files_read.len() as u64;
        assert_eq!(usage.dropped, 200 - kept);
        for port in 0..(MAX_ENTRIES as u16 + 10) {
            usage.observe(&ObservationKind::Connect {
                peer: Peer {
                    addr: "10.0.0.1".into(),
                    port,
                },
                payloads_sampled_out: false,
            });
        }
        assert_eq!(usage.destinations.len(), MAX_ENTRIES);
        assert!(usage.dropped >= 10 + 200 - kept);
        // A Unix socket is no destination.
        let before = usage.destinations.len();
        usage.observe(&ObservationKind::Connect {
            peer: Peer {
                addr: "/run/containerd/containerd.sock".into(),
                port: 0,
            },
            payloads_sampled_out: false,
        });
        assert_eq!(usage.destinations.len(), before);
    }
}
