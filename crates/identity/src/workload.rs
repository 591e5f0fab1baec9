//! Which workload a pod belongs to.
//!
//! From the API, the pod's controlling owner reference names it, one level up for the
//! controllers that are themselves owned: a ReplicaSet by its Deployment, a Job by its CronJob.
//! StatefulSets, DaemonSets and other controllers own their pods directly; a pod without owner
//! is its own workload (kind `Pod`).
//!
//! Without the API (or when the ReplicaSet or Job cannot be read) the workload is guessed from
//! names, and flagged `inferred`: Deployment pods are named `<deployment>-<template hash>-<5
//! random>`, StatefulSet pods `<statefulset>-<ordinal>`, CronJob pods `<cronjob>-<scheduled
//! minute>-<5 random>`. The random suffixes and template hashes use Kubernetes' "safe"
//! alphabet (no vowels, no 0, 1 or 3), which is what makes the guess reasonable.

use serde::Serialize;

/// A pod's workload: what keeps (re)creating it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `ReplicaSet`, `Pod`, any
    /// other controller's kind, or `Unknown` when a guess from the name cannot tell.
    pub kind: String,
    pub name: String,
    /// Guessed from names rather than read from owner references.
    pub inferred: bool,
}

impl Workload {
    fn new(kind: &str, name: &str, inferred: bool) -> Workload {
        Workload {
            kind: kind.to_string(),
            name: name.to_string(),
            inferred,
        }
    }
}

/// An owner reference, reduced to what workload resolution needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

/// What is known of the owner of a pod's owner (a ReplicaSet's Deployment, a Job's CronJob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentOwner {
    /// Read from the API: this owner, or none.
    Known(Option<Owner>),
    /// Not read (yet), or reading it failed.
    Unknown,
}

/// The owner kinds whose own owner is the workload.
pub fn needs_parent(kind: &str) -> bool {
    matches!(kind, "ReplicaSet" | "Job")
}

/// Resolves the workload of a pod from its controlling owner and, for ReplicaSets and Jobs,
/// that owner's owner. `template_hash` is the pod's `pod-template-hash` label.
pub fn workload_from_owners(
    pod_name: &str,
    owner: Option<&Owner>,
    parent: &ParentOwner,
    template_hash: Option<&str>,
) -> Workload {
    let Some(owner) = owner else {
        return Workload::new("Pod", pod_name, false);
    };
    if !needs_parent(&owner.kind) {
        return Workload::new(&owner.kind, &owner.name, false);
    }
    match parent {
        ParentOwner::Known(Some(parent)) => Workload::new(&parent.kind, &parent.name, false),
        ParentOwner::Known(None) => Workload::new(&owner.kind, &owner.name, false),
        ParentOwner::Unknown => match owner.kind.as_str() {
            "ReplicaSet" => {
                let hash_suffix = template_hash.map(|h| format!("-{h}"));
                match hash_suffix.and_then(|s| owner.name.strip_suffix(s.as_str())) {
                    Some(deployment) if !deployment.is_empty() => {
                        Workload::new("Deployment", deployment, true)
                    }
                    _ => Workload::new("ReplicaSet", &owner.name, true),
                }
            }
            _ => match strip_suffix_where(&owner.name, is_scheduled_minute) {
                Some(cronjob) => Workload::new("CronJob", cronjob, true),
                None => Workload::new("Job", &owner.name, true),
            },
        },
    }
}

/// Kubernetes' alphabet for generated name suffixes and template hashes
/// (`k8s.io/apimachinery/pkg/util/rand`).
fn is_safe_alphabet(s: &str) -> bool {
    s.bytes()
        .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

fn is_random_suffix(s: &str) -> bool {
    s.len() == 5 && is_safe_alphabet(s)
}

fn is_template_hash(s: &str) -> bool {
    (1..=10).contains(&s.len()) && is_safe_alphabet(s)
}

/// A CronJob names its Jobs after the scheduled time in minutes since the epoch.
fn is_scheduled_minute(s: &str) -> bool {
    s.len() >= 8 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_ordinal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `name` without its last `-segment` when that segment satisfies `test`.
fn strip_suffix_where(name: &str, test: impl Fn(&str) -> bool) -> Option<&str> {
    let (base, last) = name.rsplit_once('-')?;
    (!base.is_empty() && test(last)).then_some(base)
}

/// Guesses a pod's workload from its name alone (flagged `inferred`).
pub fn infer_workload_from_pod_name(pod_name: &str) -> Workload {
    if let Some(rest) = strip_suffix_where(pod_name, is_random_suffix) {
        if let Some(cronjob) = strip_suffix_where(rest, is_scheduled_minute) {
            return Workload::new("CronJob", cronjob, true);
        }
        if let Some(deployment) = strip_suffix_where(rest, is_template_hash) {
            return Workload::new("Deployment", deployment, true);
        }
        // `<name>-<5 random>`: a DaemonSet, a Job or a generateName pod; the name cannot tell.
        return Workload::new("Unknown", rest, true);
    }
    if let Some(statefulset) = strip_suffix_where(pod_name, is_ordinal) {
        return Workload::new("StatefulSet", statefulset, true);
    }
    Workload::new("Pod", pod_name, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str) -> Owner {
        Owner {
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn replicaset_resolves_to_its_deployment() {
        let rs = owner("ReplicaSet", "api-5d9c7b8f6d");
        let w = workload_from_owners(
            "api-5d9c7b8f6d-x2x4z",
            Some(&rs),
            &ParentOwner::Known(Some(owner("Deployment", "api"))),
            Some("5d9c7b8f6d"),
        );
        assert_eq!(w, Workload::new("Deployment", "api", false));
        // A ReplicaSet made by hand is the workload itself.
        let w = workload_from_owners("x", Some(&rs), &ParentOwner::Known(None), None);
        assert_eq!(w, Workload::new("ReplicaSet", "api-5d9c7b8f6d", false));
    }

    #[test]
    fn unreadable_replicaset_is_inferred_from_the_template_hash() {
        let rs = owner("ReplicaSet", "my-api-5d9c7b8f6d");
        let w = workload_from_owners(
            "my-api-5d9c7b8f6d-x2x4z",
            Some(&rs),
            &ParentOwner::Unknown,
            Some("5d9c7b8f6d"),
        );
        assert_eq!(w, Workload::new("Deployment", "my-api", true));
        let w = workload_from_owners("p", Some(&rs), &ParentOwner::Unknown, None);
        assert_eq!(w, Workload::new("ReplicaSet", "my-api-5d9c7b8f6d", true));
    }

    #[test]
    fn job_resolves_to_its_cronjob() {
        let job = owner("Job", "nightly-eval-28930140");
        let w = workload_from_owners(
            "nightly-eval-28930140-q7w2k",
            Some(&job),
            &ParentOwner::Known(Some(owner("CronJob", "nightly-eval"))),
            None,
        );
        assert_eq!(w, Workload::new("CronJob", "nightly-eval", false));
        let w = workload_from_owners("p", Some(&job), &ParentOwner::Unknown, None);
        assert_eq!(w, Workload::new("CronJob", "nightly-eval", true));
        let plain = owner("Job", "migrate");
        let w = workload_from_owners("p", Some(&plain), &ParentOwner::Unknown, None);
        assert_eq!(w, Workload::new("Job", "migrate", true));
        let w = workload_from_owners("p", Some(&plain), &ParentOwner::Known(None), None);
        assert_eq!(w, Workload::new("Job", "migrate", false));
    }

    #[test]
    fn direct_owners_and_bare_pods() {
        for kind in ["StatefulSet", "DaemonSet", "Rollout", "Node"] {
            let w =
                workload_from_owners("p-0", Some(&owner(kind, "w")), &ParentOwner::Unknown, None);
            assert_eq!(w, Workload::new(kind, "w", false));
        }
        let w = workload_from_owners("debug-shell", None, &ParentOwner::Unknown, None);
        assert_eq!(w, Workload::new("Pod", "debug-shell", false));
    }

    #[test]
    fn inference_from_pod_names() {
        let cases = [
            (
                "research-agent-7d9f8b6c5d-x2x4z",
                "Deployment",
                "research-agent",
            ),
            ("coredns-5dd5756b68-4xbhl", "Deployment", "coredns"),
            ("nightly-eval-28930140-q7w2k", "CronJob", "nightly-eval"),
            ("postgres-0", "StatefulSet", "postgres"),
            ("web-12", "StatefulSet", "web"),
            ("kube-proxy-x2x4z", "Unknown", "kube-proxy"),
            ("debug", "Pod", "debug"),
            ("my-pod", "Pod", "my-pod"),
            ("agent-abcde", "Pod", "agent-abcde"), // vowels: not a generated suffix
            ("-x2x4z", "Pod", "-x2x4z"),
            ("", "Pod", ""),
        ];
        for (pod, kind, name) in cases {
            assert_eq!(
                infer_workload_from_pod_name(pod),
                Workload::new(kind, name, true),
                "{pod}"
            );
        }
    }

    #[test]
    fn inference_is_stable_across_pods_of_one_deployment() {
        let a = infer_workload_from_pod_name("api-5d9c7b8f6d-x2x4z");
        let b = infer_workload_from_pod_name("api-5d9c7b8f6d-bq9lm");
        let after_rollout = infer_workload_from_pod_name("api-68f7c9d4b-zp6wn");
        assert_eq!(a, b);
        assert_eq!(a, after_rollout);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_names_never_panic(name in "\\PC{0,80}") {
            let _ = infer_workload_from_pod_name(&name);
            let _ = workload_from_owners(&name, Some(&owner("ReplicaSet", &name)), &ParentOwner::Unknown, Some(&name));
        }
    }
}
