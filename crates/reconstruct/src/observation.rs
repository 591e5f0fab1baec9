//! What reconstruction hands to the model: one [`Observation`] per meaningful action, with the
//! process that did it and references to the raw events it was built from.

use serde::Serialize;

use crate::event::Header;

use super::file_access::FileClass;
use super::http::HttpExchange;
use super::llm::LlmCall;
use super::mcp::{McpExchange, McpTransport};
use super::object_store::ObjectAccess;
use super::postgres::SqlStatement;
use super::redis::RedisCommand;
use super::vector_db::RetrievalCall;

/// The process an observation belongs to, as the event header described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: crate::event::Comm,
}

impl From<&Header> for Actor {
    fn from(header: &Header) -> Self {
        Self {
            pid: header.pid,
            ppid: header.ppid,
            uid: header.uid,
            gid: header.gid,
            cgroup_id: header.cgroup_id,
            comm: header.comm.clone(),
        }
    }
}

/// A run of raw events, by their position in the event stream (0 = first event consumed).
/// Recordings replay events in the same order, so positions mean the same there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventRange {
    pub first: u64,
    pub last: u64,
}

impl EventRange {
    pub fn single(index: u64) -> Self {
        Self {
            first: index,
            last: index,
        }
    }

    pub fn extend(&mut self, index: u64) {
        self.first = self.first.min(index);
        self.last = self.last.max(index);
    }
}

/// `12` or `12-14`, as `cap slice` and the console count events.
impl std::fmt::Display for EventRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The peer of a network connection, when its connect or accept was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Peer {
    pub addr: String,
    pub port: u16,
}

/// How the observed process took part in a request/response exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// It sent the request (an agent calling an API).
    Client,
    /// It answered the request (an MCP server handling a call).
    Server,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObservationKind {
    Exec {
        filename: String,
        argv: Vec<String>,
    },
    /// The process ended (its last thread exited, whichever it was).
    Exit {
        exit_code: Option<i32>,
    },
    FileOpen {
        path: String,
        class: FileClass,
        write: bool,
    },
    Connect {
        peer: Peer,
        /// The kernel sampled the connection out (`--sample-connections`): what it carried
        /// is not in the capture, so no exchange on it is not evidence of none.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        payloads_sampled_out: bool,
    },
    Dns {
        queries: Vec<String>,
    },
    /// A TLS connection began (its ClientHello): where it goes, and whether agentscope sees
    /// the process's plaintext (the collector's verdict).
    TlsHello {
        server_name: Option<String>,
        alpn: Vec<String>,
        /// The socket's peer, when its connect was seen.
        peer: Option<Peer>,
        /// The LLM provider whose API host `server_name` is, if any.
        provider: Option<String>,
        coverage: Option<agentscope_event::TlsCoverage>,
    },
    /// An HTTP exchange that no more specific interpreter claimed (an API call).
    Http {
        exchange: Box<HttpExchange>,
        role: Role,
    },
    Llm {
        call: Box<LlmCall>,
        host: Option<String>,
        port: Option<u16>,
        /// The client's User-Agent (SDKs and frameworks name themselves there).
        user_agent: Option<String>,
        /// When the response ended: tool calls it requested are carried out after this.
        end_ts_ns: u64,
    },
    Mcp {
        exchange: Box<McpExchange>,
        transport: McpTransport,
        role: Role,
        /// Where the server is: its URL for HTTP, the server's command for stdio.
        endpoint: Option<String>,
        /// The server process, when known (a stdio server is the client's child).
        peer_pid: Option<u32>,
    },
    Sql {
        statement: Box<SqlStatement>,
        peer: Option<Peer>,
    },
    Redis {
        command: Box<RedisCommand>,
        peer: Option<Peer>,
    },
    ObjectStore {
        access: Box<ObjectAccess>,
    },
    Retrieval {
        call: Box<RetrievalCall>,
    },
    /// A governed agent's action its baseline's policy does not allow: let through and
    /// reported ("would block", audit mode) or denied ("blocked", enforce mode).
    Enforce {
        decision: Box<agentscope_event::enforcement::EnforceDecision>,
    },
    /// A package the process loaded, with the version the collector read from its metadata
    /// (`package` events): the AI-BOM's frameworks and libraries.
    Package {
        package: Box<agentscope_event::package::PackageFound>,
    },
    /// A file opened for writing under a host directory mounted into the process's container
    /// (the collector's finding from the process's mount table).
    HostPathWrite {
        path: String,
        mount_point: String,
        host_path: String,
    },
    /// A container-escape syscall: namespaces, mounts, root changes, kernel modules, ptrace
    /// attach.
    EscapeSyscall {
        call: Box<agentscope_event::escape_syscall::EscapeSyscall>,
        /// ptrace: the target and its ancestors as the process table knew them (nearest
        /// first), so detection can tell a process of the agent's own tree from another.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        target_lineage: Vec<u32>,
    },
    /// A governed agent's policy as the kernel applies it (the collector's `enforce_policy`
    /// event): which modes apply to whom, before or without any decision.
    EnforcePolicy {
        policy: Box<agentscope_event::enforcement::EnforcePolicy>,
    },
    /// The cluster's declared objects as the collector read them from the API (its
    /// `cluster_objects` event, redacted): the declared side of posture.
    ClusterObjects {
        objects: Box<agentscope_event::cluster_objects::ClusterObjects>,
    },
    /// What the kernel left out of the process's payloads (the collector's
    /// `payloads_left_out` event): bytes it moved that no observation can show.
    PayloadsLeftOut {
        opaque_socket_bytes: u64,
        on_request_bytes: u64,
        /// Bytes of its connections sampled out (`--sample-connections`).
        sampled_out_bytes: u64,
        /// Reported when capture stopped, the process still running.
        running: bool,
    },
}

/// One action of one process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Monotonic nanoseconds since boot, as in events.
    pub ts_ns: u64,
    pub time_unix_ns: u64,
    pub actor: Actor,
    pub events: Vec<EventRange>,
    /// The wire protocol that carried it, for what came out of an HTTP-family exchange (LLM,
    /// MCP over HTTP, API, object-store and retrieval calls); `None` for everything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<crate::http::WireProtocol>,
    #[serde(flatten)]
    pub kind: ObservationKind,
}
