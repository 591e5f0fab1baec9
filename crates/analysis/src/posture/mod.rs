//! Posture: what each agent may do, declared by the cluster and its configuration, against
//! what it was seen doing (issue 19). Per agent: the Kubernetes RBAC its service account holds
//! against the API requests it made ([`rbac`], requests read by
//! [`crate::detect::kubernetes_request`]); the tools offered to its models and listed by its
//! MCP servers against those called ([`tools`]); the NetworkPolicies selecting its pod against
//! the destinations it reached ([`network_policy`]); the secrets and token its pod spec gives
//! it against the files it read ([`secrets`]); the databases it reached against the tables it
//! queried. [`usage`] gathers the observed side from a session's steps (and the declared
//! objects the collector recorded in it), [`cluster`] reads the declared side, and [`report`]
//! turns both into gaps with evidence and risk scores, and the artifacts that would close them
//! (docs/posture.md).

pub mod cluster;
pub mod network_policy;
pub mod rbac;
pub mod report;
pub mod secrets;
pub mod selector;
pub mod tools;
pub mod usage;

pub use cluster::{ClusterError, ClusterState};
pub use report::{agent_posture, AgentPosture, Gap, GapCategory, PostureReport};
pub use usage::{RecordedCluster, Usage, UsageBook};

#[cfg(test)]
mod tests;
