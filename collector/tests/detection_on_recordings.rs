//! Detection over the committed recordings (recordings/README.md): the injected scenario is
//! one incident that tells the whole chain, the ordinary one is none.

use std::path::PathBuf;

use agentscope_analysis::detect::{FindingDetail, FindingKind, Severity};
use agentscope_analysis::model::ModelSnapshot;
use agentscope_capture::capture::Replay;

fn replay(name: &str) -> ModelSnapshot {
    let path = PathBuf::from(env!("AGENTSCOPE_REPO"))
        .join("recordings")
        .join(name);
    let mut replay = Replay::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    replay.run_to_end();
    replay.pipeline().snapshot()
}

#[test]
fn the_injected_recording_is_exactly_one_incident_telling_the_chain() {
    let snapshot = replay("injected.cap");
    assert_eq!(snapshot.incidents.len(), 1, "{:#?}", snapshot.incidents);
    let incident = &snapshot.incidents[0];
    assert_eq!(incident.severity, Severity::Critical);
    let story = &incident.story;
    // The injected content, the database tool call and table, the exfiltration endpoint and
    // the service identity.
    for expected in [
        "prompt injection",
        "SUP-4711.txt",
        "ignore your previous instructions",
        "database tool call query_database",
        "crm.customers",
        "exfiltration",
        "127.0.0.2:",
        "service account support/support-agent",
        "arn:aws:iam::123456789012:role/support-agent-crm",
    ] {
        assert!(
            story.contains(expected),
            "story lacks {expected:?}: {story}"
        );
    }
    // Trigger first, identity last: the order of the chain.
    let at = |s: &str| story.find(s).unwrap();
    assert!(at("prompt injection") < at("query_database"));
    assert!(at("query_database") < at("exfiltration"));
    assert!(at("exfiltration") < at("service account"));

    let kinds: Vec<FindingKind> = incident
        .findings
        .iter()
        .map(|id| snapshot.findings.iter().find(|f| &f.id == id).unwrap().kind)
        .collect();
    for kind in [
        FindingKind::PromptInjection,
        FindingKind::ToolMisuse,
        FindingKind::SensitiveAccess,
        FindingKind::Exfiltration,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing from {kinds:?}");
    }
    // The exfiltration finding matched the rows, not just the timing.
    let exfil = snapshot
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Exfiltration)
        .unwrap();
    let FindingDetail::Exfiltration {
        destination,
        samples,
        origins,
        ..
    } = &exfil.detail
    else {
        unreachable!()
    };
    assert!(destination.starts_with("127.0.0.2:"), "{destination}");
    assert!(
        samples.iter().any(|s| s.contains("ada@example.com")),
        "{samples:?}"
    );
    assert!(origins.iter().any(|o| o.contains("query_database")));
    // Every finding of the agent in the chain window belongs to the incident, and each
    // carries evidence events and OWASP labels.
    for finding in &snapshot.findings {
        assert_eq!(finding.incident.as_deref(), Some("inc-1"), "{finding:#?}");
        assert!(!finding.events.is_empty());
        assert!(!finding.labels.is_empty());
    }
    let labels: Vec<&str> = incident.labels.iter().map(|l| l.id).collect();
    assert!(labels.contains(&"LLM01:2025") && labels.contains(&"ASI01:2026"));
}

#[test]
fn the_ordinary_recording_has_no_incident() {
    let snapshot = replay("ordinary.cap");
    assert!(snapshot.incidents.is_empty(), "{:#?}", snapshot.incidents);
    // Reading the customers table is its job: reported as sensitive access, not alarmed on.
    assert!(snapshot
        .findings
        .iter()
        .all(|f| f.severity <= Severity::Medium && f.incident.is_none()));
    assert!(!snapshot.findings.iter().any(|f| matches!(
        f.kind,
        FindingKind::PromptInjection | FindingKind::Exfiltration
    )));
}

#[test]
fn detection_is_the_same_on_every_replay() {
    let first = replay("injected.cap");
    let second = replay("injected.cap");
    assert_eq!(
        serde_json::to_string(&first.findings).unwrap(),
        serde_json::to_string(&second.findings).unwrap()
    );
    assert_eq!(
        serde_json::to_string(&first.incidents).unwrap(),
        serde_json::to_string(&second.incidents).unwrap()
    );
}
